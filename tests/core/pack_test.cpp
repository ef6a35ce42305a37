// Pack objects (src/pack) through the public API: the layout batches give allocations of
// up to 4 KiB. What users rely on: code lands and runs, frees trap-fill and the units are
// reused, bad pointers change nothing, threads and fork, memory given back.
#include "helpers.h"

#include "pack/pack.h"

#include <jitalloc/dump.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <random>
#include <thread>

using namespace jt;

namespace {

struct BatchHolder {
    explicit BatchHolder(jit_arena *a) : b(jit_batch_create(a)) {}
    ~BatchHolder() { jit_batch_destroy(b); }
    operator jit_batch *() const { return b; }
    jit_batch *b;
};

// Returns value; at least kRetImmLen bytes (6 on x86-64, 12 on arm64), the rest padding.
std::vector<uint8_t> fn_code(int value, size_t len) { return ret_imm(value, len); }
size_t units(size_t len) { return (len + 15) / 16 * 16; }

// Loads n functions of random lengths in [lo, hi] (at least kRetImmLen) in one batch;
// their lengths in *lens.
std::vector<void *> load(jit_arena *a, size_t n, size_t lo, size_t hi, std::vector<size_t> *lens,
                         uint32_t seed, int value0 = 0) {
    std::mt19937 rng(seed);
    BatchHolder b(a);
    std::vector<void *> ps;
    for (size_t i = 0; i < n; i++) {
        size_t len = lo + rng() % (hi - lo + 1);
        auto code = fn_code(value0 + static_cast<int>(i), len);
        void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
        EXPECT_NE(p, nullptr);
        if (!p)
            return {};
        ps.push_back(p);
        lens->push_back(code.size());
    }
    EXPECT_EQ(jit_batch_commit(b), 0);
    return ps;
}

class PackWriters : public ::testing::TestWithParam<jit_writer> {};

TEST_P(PackWriters, CodeLandsRunsAndFreedUnitsHoldTrapsAndAreReused) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 300, 1, 4096, &lens, 1);
    ASSERT_EQ(ps.size(), 300u);
    for (size_t i = 0; i < ps.size(); i++) {
        ASSERT_EQ(jit_size(ps[i]), units(lens[i])) << i;
        ASSERT_TRUE(same_bytes(ps[i], fn_code(static_cast<int>(i), lens[i])));
        ASSERT_TRUE(all_traps(static_cast<uint8_t *>(ps[i]) + lens[i], units(lens[i]) - lens[i]));
        ASSERT_EQ(call_int(ps[i]), static_cast<int>(i));
    }
    EXPECT_TRUE(ArenaOk(a));
    // Free every other one: its units hold traps at once (packs never fill lazily).
    for (size_t i = 0; i < ps.size(); i += 2) {
        ASSERT_EQ(jit_free(ps[i]), 0);
        EXPECT_TRUE(all_traps(ps[i], units(lens[i]))) << i;
        EXPECT_EQ(jit_size(ps[i]), 0u);
    }
    for (size_t i = 1; i < ps.size(); i += 2)
        ASSERT_TRUE(same_bytes(ps[i], fn_code(static_cast<int>(i), lens[i]))) << "neighbour kept";
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(stats_of(a).allocations, 150u);
    // Free the rest; the same load again reuses the memory: the arena does not grow.
    for (size_t i = 1; i < ps.size(); i += 2)
        ASSERT_EQ(jit_free(ps[i]), 0);
    const uint64_t mapped = stats_of(a).chunks_mapped;
    std::vector<size_t> lens1;
    auto same = load(a, 300, 1, 4096, &lens1, 1);
    ASSERT_EQ(same.size(), 300u);
    EXPECT_EQ(stats_of(a).chunks_mapped, mapped);
    for (void *p : same)
        ASSERT_EQ(jit_free(p), 0);
    std::vector<size_t> lens2;
    auto again = load(a, 10, 64, 64, &lens2, 2, 1000);
    ASSERT_EQ(again.size(), 10u);
    for (size_t i = 0; i < again.size(); i++)
        EXPECT_EQ(call_int(again[i]), 1000 + static_cast<int>(i));
    for (void *p : again)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(Strict, PackWriters,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD, JIT_WRITER_TEMP_ALIAS),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(Pack, BadPointersAndWritesChangeNothing) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 3, 100, 100, &lens, 3);  // 112 usable bytes each, back to back
    ASSERT_EQ(ps.size(), 3u);
    auto *p = static_cast<uint8_t *>(ps[1]);
    ASSERT_EQ(p, static_cast<uint8_t *>(ps[0]) + 112);
    auto *end = static_cast<uint8_t *>(ps[2]) + 112;  // the released rest of the reservation
    const struct jit_stats before = stats_of(a);
    EXPECT_EQ(jit_free(p + 16), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(jit_free(end), -1);
    EXPECT_EQ(jit_size(p + 16), 0u);
    EXPECT_EQ(jit_size(end), 0u);
    uint8_t x[32] = {};
    EXPECT_EQ(jit_update(p + 100, x, 13), -1) << "past its usable size, into the next object";
    EXPECT_EQ(jit_update(end, x, 1), -1) << "free units";
    EXPECT_EQ(jit_shrink_alloc(p, 113), -1);
    EXPECT_EQ(jit_shrink_alloc(p + 16, 20), -1);
    EXPECT_TRUE(SameStats(before, stats_of(a)));
    for (size_t i = 0; i < 3; i++)
        EXPECT_TRUE(same_bytes(ps[i], fn_code(static_cast<int>(i), 100)));
    EXPECT_TRUE(all_traps(end, 64));
    // An interior write inside the usable size is an update of that object.
    const std::vector<uint8_t> f42 = ret_imm_code(42);
    EXPECT_EQ(jit_update(p, f42.data(), f42.size()), 0);
    EXPECT_EQ(call_int(p), 42);
    EXPECT_EQ(jit_update(p + 100, x, 12), 0);
    ASSERT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(p), -1) << "twice";
    EXPECT_EQ(jit_update(p, f42.data(), f42.size()), -1) << "freed";
    EXPECT_EQ(call_int(ps[0]), 0);
    EXPECT_EQ(call_int(ps[2]), 2);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(ps[0]), 0);
    EXPECT_EQ(jit_free(ps[2]), 0);
}

// jit_dump lists pack objects with their usable and requested sizes.
TEST(Pack, DumpListsPackObjects) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 2, 100, 100, &lens, 12);
    ASSERT_EQ(ps.size(), 2u);
    char *text = nullptr;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(jit_dump(f, 0), 0);
    std::fclose(f);
    std::string dump(text, size);
    std::free(text);
    for (void *p : ps) {
        char want[96];
        std::snprintf(want, sizeof want, "alloc %lx usable 112 requested 100 kind pack",
                      static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
        EXPECT_NE(dump.find(want), std::string::npos) << want << "\n" << dump.substr(0, 2000);
    }
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
}

// jit_batch_alloc_aligned: above 16 bytes the start is a multiple of align (from a size
// class whose objects are all aligned, or pages), whatever the pack's layout; bad
// alignments are refused and add nothing.
TEST(Pack, AlignedBatchAllocations) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    BatchHolder b(a);
    std::vector<std::pair<void *, size_t>> ps;
    const size_t aligns[] = {1, 16, 32, 64, 256, 4096};
    for (size_t k = 0; k < 12; k++) {
        size_t align = aligns[k % 6], len = 20 + 37 * k;
        auto code = fn_code(static_cast<int>(k), len);
        void *p = jit_batch_alloc_aligned(b, code.data(), code.size(), align, nullptr);
        ASSERT_NE(p, nullptr) << align;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % std::max<size_t>(align, 16), 0u) << align;
        ps.emplace_back(p, k);
    }
    for (size_t bad : {size_t{0}, size_t{3}, size_t{48}, size_t{8192}}) {
        errno = 0;
        EXPECT_EQ(jit_batch_alloc_aligned(b, nullptr, 64, bad, nullptr), nullptr) << bad;
        EXPECT_EQ(errno, EINVAL);
    }
    EXPECT_EQ(jit_batch_alloc_aligned(nullptr, nullptr, 64, 64, nullptr), nullptr);
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(stats_of(a).allocations, 12u);
    for (auto &[p, k] : ps)
        EXPECT_EQ(call_int(p), static_cast<int>(k));
    EXPECT_TRUE(ArenaOk(a));
    for (auto &[p, k] : ps)
        EXPECT_EQ(jit_free(p), 0);
}

// A small batch allocation succeeds wherever jit_arena_alloc of the same length does: with
// no pack to be had (the max_bytes cap reached, the free pages scattered in 128 KiB
// blocks, none of the 512 KiB a pack needs) it takes a slab object. On 5a2d07a
// jit_batch_alloc failed with ENOMEM where jit_arena_alloc succeeded.
TEST(Pack, SmallBatchAllocationsTakeSlabObjectsWhenNoPackCanBeMade) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.max_bytes = 2 * MiB;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> runs;
    while (void *p = jit_arena_alloc(a, nullptr, 100 * KiB))  // 32 pages each
        runs.push_back(p);
    ASSERT_EQ(errno, ENOMEM);
    ASSERT_GE(runs.size(), 8u);
    for (size_t i = 0; i < runs.size(); i += 2)  // every other: no free 512 KiB block
        ASSERT_EQ(jit_free(runs[i]), 0);
    void *single = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(single, nullptr) << "the arena has room";
    const struct jit_stats before = stats_of(a);
    BatchHolder b(a);
    std::vector<void *> ps;
    for (int i = 0; i < 3; i++) {
        auto code = fn_code(i, 64 + 100 * i);
        void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
        ASSERT_NE(p, nullptr) << i << ": errno " << errno;
        EXPECT_EQ(jit_size(p), 0u) << "not live before the commit";
        ps.push_back(p);
    }
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(stats_of(a).chunks_mapped, before.chunks_mapped);
    EXPECT_EQ(stats_of(a).allocations, before.allocations + 3);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(call_int(ps[i]), i);
        EXPECT_GE(jit_size(ps[i]), 64u + 100 * i);
    }
    EXPECT_TRUE(ArenaOk(a));
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(single), 0);
    for (size_t i = 1; i < runs.size(); i += 2)
        EXPECT_EQ(jit_free(runs[i]), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

TEST(Pack, ShrinkAllocFreesTheTailUnits) {
    ArenaHolder a(JIT_WRITER_MEMFD);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 2, 1000, 1000, &lens, 4);
    ASSERT_EQ(ps.size(), 2u);
    const uint64_t req = stats_of(a).bytes_requested;
    ASSERT_EQ(jit_shrink_alloc(ps[0], 40), 0);
    EXPECT_EQ(jit_size(ps[0]), 48u);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(ps[0]) + 40, 1008 - 40));
    EXPECT_EQ(stats_of(a).bytes_requested, req - 960);
    EXPECT_EQ(stats_of(a).bytes_in_use, 48u + 1008);
    EXPECT_EQ(call_int(ps[0]), 0);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(ps[0]), 0);
    EXPECT_EQ(jit_free(ps[1]), 0);
}

TEST(Pack, EmptyPacksAreGivenBack) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> all;
    for (uint32_t round = 0; round < 4; round++) {  // ~1.1 MiB: three packs
        std::vector<size_t> lens;
        auto ps = load(a, 1000, 64, 512, &lens, 10 + round);
        all.insert(all.end(), ps.begin(), ps.end());
    }
    ASSERT_EQ(all.size(), 4000u);
    EXPECT_GE(stats_of(a).bytes_metadata, 3 * sizeof(jitalloc::Pack));
    for (void *p : all)
        ASSERT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
    const uint64_t chunks = stats_of(a).chunks_mapped;
    EXPECT_EQ(jit_arena_shrink(a), chunks * kChunk) << "every chunk counted";
    struct jit_stats st = stats_of(a);
    EXPECT_EQ(st.allocations, 0u);
    EXPECT_EQ(st.chunks_mapped, 0u);
    EXPECT_EQ(st.bytes_mapped, 0u);
    EXPECT_EQ(st.bytes_metadata, 0u) << "no pack's metadata kept";
    EXPECT_TRUE(ArenaOk(a));
}

TEST(Pack, LazyFillArenasStillFillFreedPackObjects) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 20, 100, 300, &lens, 5);
    for (size_t i = 0; i < ps.size(); i++) {
        ASSERT_EQ(jit_free(ps[i]), 0);
        EXPECT_TRUE(all_traps(ps[i], units(lens[i])));
    }
    EXPECT_TRUE(ArenaOk(a));
}

// Threads load, run, update and free batches in one arena while another allocates and
// frees one by one: every function returns its own value, the arena stays consistent.
TEST(Pack, ThreadsLoadRunAndFreeBatches) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; t++)
        ts.emplace_back([&, t] {
            std::vector<void *> keep;
            for (int round = 0; round < 60; round++) {
                std::vector<size_t> lens;
                int base = (t * 1000 + round) * 64;
                auto ps = load(a, 40, 6, 700, &lens, static_cast<uint32_t>(t * 100 + round), base);
                if (ps.size() != 40) {
                    bad++;
                    return;
                }
                for (size_t i = 0; i < ps.size(); i++)
                    if (call_int(ps[i]) != base + static_cast<int>(i))
                        bad++;
                const std::vector<uint8_t> f7 = ret_imm_code(7);
                if (jit_update(ps[0], f7.data(), f7.size()) != 0 || call_int(ps[0]) != 7)
                    bad++;
                for (void *p : keep)
                    if (jit_free(p) != 0)
                        bad++;
                keep.clear();
                for (size_t i = 0; i < ps.size(); i++)
                    if (i % 3 == 0 ? jit_free(ps[i]) != 0 : (keep.push_back(ps[i]), false))
                        bad++;
            }
            for (void *p : keep)
                if (jit_free(p) != 0)
                    bad++;
        });
    std::thread churn([&] {
        for (int i = 0; i < 1500; i++) {
            auto code = fn_code(i, 64 + i % 300);
            void *p = jit_arena_alloc(a, code.data(), code.size());
            if (!p || call_int(p) != i || jit_free(p) != 0)
                bad++;
        }
    });
    for (auto &t : ts)
        t.join();
    churn.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

// The child of a fork keeps the parent's pack objects: it runs them, frees them and
// loads its own; the parent's are untouched by what the child does.
TEST(Pack, ForkedChildRunsFreesAndLoads) {
    ArenaHolder a(JIT_WRITER_MEMFD);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 200, 6, 2000, &lens, 8);
    ASSERT_EQ(ps.size(), 200u);
    BatchHolder open(a);  // a batch with a reservation open across the fork
    auto code = fn_code(77, 300);
    void *pending = jit_batch_alloc(open, code.data(), code.size(), nullptr);
    ASSERT_NE(pending, nullptr);
    int st = in_child([&] {
        for (size_t i = 0; i < ps.size(); i++)
            if (call_int(ps[i]) != static_cast<int>(i) || jit_free(ps[i]) != 0)
                return 1;
        if (jit_batch_commit(open) != 0 || call_int(pending) != 77)
            return 2;
        std::vector<size_t> l;
        auto qs = load(a, 100, 6, 400, &l, 9, 500);
        for (size_t i = 0; i < qs.size(); i++)
            if (call_int(qs[i]) != 500 + static_cast<int>(i))
                return 3;
        return jit_arena_check(a, nullptr, 0) == 0 ? 0 : 4;
    });
    EXPECT_EQ(st, 0);
    for (size_t i = 0; i < ps.size(); i++)
        ASSERT_EQ(call_int(ps[i]), static_cast<int>(i));
    EXPECT_EQ(jit_size(pending), 0u) << "the child's commit is the child's";
    ASSERT_EQ(jit_batch_commit(open), 0);
    EXPECT_EQ(call_int(pending), 77);
    EXPECT_TRUE(ArenaOk(a));
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(pending), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// fork() from a process whose other thread is loading batches: the child sees whole
// objects (never a half-published reservation), runs and frees them, and loads its own.
TEST(Pack, ForkWhileAnotherThreadLoadsBatches) {
    if (kForkWhileAllocatingHangs)
        GTEST_SKIP() << "the sanitizer's allocator deadlocks in a child forked while another "
                        "thread allocates";
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<size_t> lens;
    auto ps = load(a, 50, 6, 500, &lens, 6);
    ASSERT_EQ(ps.size(), 50u);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread loader([&] {
        for (uint32_t round = 0; !stop; round++) {
            std::vector<size_t> l;
            auto qs = load(a, 30, 6, 300, &l, 100 + round, 5000);
            for (size_t i = 0; i < qs.size(); i++)
                if (call_int(qs[i]) != 5000 + static_cast<int>(i) || jit_free(qs[i]) != 0)
                    bad++;
        }
    });
    for (int k = 0; k < 5; k++) {
        int st = in_child([&] {
            char msg[256];
            if (jit_arena_check(a, msg, sizeof msg) != 0)
                return 10;
            for (size_t i = 0; i < ps.size(); i++)
                if (call_int(ps[i]) != static_cast<int>(i))
                    return 11;
            for (void *p : ps)
                if (jit_free(p) != 0)
                    return 12;
            std::vector<size_t> l;
            auto qs = load(a, 100, 6, 400, &l, 7, 300);
            for (size_t i = 0; i < qs.size(); i++)
                if (call_int(qs[i]) != 300 + static_cast<int>(i))
                    return 13;
            return jit_arena_check(a, msg, sizeof msg) == 0 ? 0 : 14;
        });
        EXPECT_EQ(st, 0) << "fork " << k;
    }
    stop = true;
    loader.join();
    EXPECT_EQ(bad.load(), 0);
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

}  // namespace
