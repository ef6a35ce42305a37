// Thread-affine shards (src/arena/shards.h): threads JIT into slabs of their own, and
// everything the arena promises still holds across shards — exact statistics after
// churn on many threads, frees from any thread, memory given back by jit_shrink once
// the threads are gone, destruction with objects in every shard, fork while threads
// churn.
#include "helpers.h"

#include "arena/class_table.h"
#include "arena/shards.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace jt;

namespace {

struct Fn {
    void *p;
    size_t len;
    int tag;
};

// An arena's size classes are made on first use (src/arena/class_table.h): none before,
// one per (shard, class) however many threads race to make it, kept until the table goes.
TEST(ClassTable, ClassesAreMadeOnceOnFirstUse) {
    jitalloc::ClassTable t;
    for (unsigned s = 0; s < jitalloc::kShards; s++)
        for (unsigned c = 0; c < jitalloc::kNumClasses; c++)
            ASSERT_EQ(t.find(s, c), nullptr);
    constexpr int kThreads = 4;
    std::vector<jitalloc::SlabClass *> got(kThreads);
    std::atomic<int> ready{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < kThreads; i++)
        ts.emplace_back([&, i] {
            ready.fetch_add(1);
            while (ready.load() < kThreads) {
            }
            got[i] = t.get(1, 5);
        });
    for (auto &th : ts)
        th.join();
    ASSERT_NE(got[0], nullptr);
    for (int i = 1; i < kThreads; i++)
        EXPECT_EQ(got[i], got[0]);
    EXPECT_EQ(t.find(1, 5), got[0]);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got[0]) % jitalloc::kCacheLine, 0u);
    unsigned made = 0;
    t.for_each([&](unsigned s, unsigned c, jitalloc::SlabClass &k) {
        made++;
        EXPECT_EQ(s, 1u);
        EXPECT_EQ(c, 5u);
        EXPECT_EQ(&k, got[0]);
    });
    EXPECT_EQ(made, 1u);
    EXPECT_EQ(t.find(0, 5), nullptr);
}

// The first kShards threads that use the library one after the other get a shard each;
// a thread keeps its shard.
TEST(Shards, ThreadsOneAfterTheOtherGetDistinctShards) {
    std::set<unsigned> seen;
    for (unsigned t = 0; t < jitalloc::kShards; t++) {
        std::thread([&] {
            unsigned s = jitalloc::this_thread_shard();
            EXPECT_LT(s, jitalloc::kShards);
            EXPECT_EQ(jitalloc::this_thread_shard(), s);
            seen.insert(s);
        }).join();
    }
    EXPECT_EQ(seen.size(), size_t{jitalloc::kShards});
}

// Live threads never share a shard while there are enough, however many threads came
// and went before (a rebuilt thread pool, Google Benchmark's fresh threads for every
// run). With round robin over every thread ever made, the three threads started after
// the seven short-lived ones took shards 0..2 again, shard 0 being the main thread's:
// this test failed before the leases (process/thread_shard.cpp).
TEST(Shards, LiveThreadsGetDistinctShardsAfterOthersExited) {
    const unsigned main_shard = jitalloc::this_thread_shard();
    EXPECT_EQ(jitalloc::shard_holders(main_shard), 1u);
    for (int t = 0; t < 7; t++)
        std::thread([] { (void)jitalloc::this_thread_shard(); }).join();
    for (unsigned s = 0; s < jitalloc::kShards; s++)
        EXPECT_EQ(jitalloc::shard_holders(s), s == main_shard ? 1u : 0u) << "shard " << s;
    std::atomic<unsigned> ready{0};
    std::atomic<bool> done{false};
    unsigned got[jitalloc::kShards - 1];
    std::vector<std::thread> live;
    for (unsigned t = 0; t + 1 < jitalloc::kShards; t++)
        live.emplace_back([&, t] {
            got[t] = jitalloc::this_thread_shard();
            ready.fetch_add(1);
            while (!done.load())
                std::this_thread::yield();
        });
    while (ready.load() != jitalloc::kShards - 1)
        std::this_thread::yield();
    std::set<unsigned> shards{main_shard};
    for (unsigned s : got)
        shards.insert(s);
    EXPECT_EQ(shards.size(), size_t{jitalloc::kShards}) << "two live threads on one shard";
    done.store(true);
    for (auto &t : live)
        t.join();
}

// A forked child's only thread keeps its shard, and is the only holder left.
TEST(Shards, ForkedChildHoldsOnlyItsOwnShard) {
    const unsigned main_shard = jitalloc::this_thread_shard();
    std::atomic<bool> go{false}, done{false};
    std::thread other([&] {
        (void)jitalloc::this_thread_shard();
        go.store(true);
        while (!done.load())
            std::this_thread::yield();
    });
    while (!go.load())
        std::this_thread::yield();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        unsigned total = 0;
        for (unsigned s = 0; s < jitalloc::kShards; s++)
            total += jitalloc::shard_holders(s);
        bool ok = jitalloc::this_thread_shard() == main_shard &&
                  jitalloc::shard_holders(main_shard) == 1 && total == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    done.store(true);
    other.join();
}

// Two threads' functions of one size class lie in different slabs, so on different
// pages: one thread's writes never touch a cache line of the other's code, and the two
// never share a class lock. Before the shards both came from the same slab.
TEST(Shards, TwoThreadsJitIntoPagesOfTheirOwn) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> mine[2];
    for (int t = 0; t < 2; t++) {
        std::thread([&, t] {
            for (int i = 0; i < 32; i++) {
                auto code = add_imm(t * 1000 + i, 40);
                void *p = jit_arena_alloc(a, code.data(), code.size());
                ASSERT_NE(p, nullptr);
                mine[t].push_back(p);
            }
        }).join();
    }
    std::set<uintptr_t> pages0;
    for (void *p : mine[0])
        pages0.insert(reinterpret_cast<uintptr_t>(p) / 4096);
    for (void *p : mine[1])
        EXPECT_EQ(pages0.count(reinterpret_cast<uintptr_t>(p) / 4096), 0u)
            << "objects of two threads on one page";
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 32; i++)
            EXPECT_EQ(call_int(mine[t][i], 1), t * 1000 + i + 1);
    // Freed by the main thread: into the other threads' shards.
    for (auto &v : mine)
        for (void *p : v)
            EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// Each thread churns its own functions (slab objects of many classes and page runs),
// calling each one it loads; it leaves `keep` of them live and exits.
void churn(jit_arena *a, int id, int steps, size_t keep, std::vector<Fn> &out,
           std::atomic<int> &failures) {
    uint32_t x = 2654435761u * static_cast<uint32_t>(id + 1);
    auto next_len = [&] {
        x = x * 1103515245u + 12345;
        unsigned u = (x >> 8) % 100;
        return u < 70 ? 8 + (x >> 12) % 600 : u < 95 ? 600 + (x >> 12) % 8000 : 16384 + (x >> 12) % 60000;
    };
    std::vector<Fn> live;
    for (int i = 0; i < steps; i++) {
        int tag = id * 1000000 + i;
        size_t len = next_len();
        auto code = add_imm(tag, len);
        void *p = jit_arena_alloc(a, code.data(), code.size());
        if (!p || call_int(p, 1) != tag + 1) {
            failures++;
            continue;
        }
        live.push_back({p, code.size(), tag});  // at least len: code is padded to it
        if (live.size() > keep) {
            size_t k = (x >> 4) % live.size();
            if (jit_arena_free(a, live[k].p) != 0)
                failures++;
            live[k] = live.back();
            live.pop_back();
        }
    }
    out = std::move(live);
}

class ShardsChurn : public ::testing::TestWithParam<jit_writer> {};

// More threads than shards, so some share one. After the threads are gone the
// statistics count exactly what they left live, class by class; the main thread frees
// it all (into every shard), and jit_shrink gives every page back.
TEST_P(ShardsChurn, StatsExactAndMemoryGivenBackAfterThreadsExit) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    constexpr int kThreads = static_cast<int>(jitalloc::kShards) + 2;
    std::vector<std::vector<Fn>> left(kThreads);
    std::atomic<int> failures{0};
    {
        std::vector<std::thread> ts;
        for (int t = 0; t < kThreads; t++)
            ts.emplace_back(churn, a.get(), t, 1500, static_cast<size_t>(40 + 10 * t), std::ref(left[t]),
                            std::ref(failures));
        for (auto &t : ts)
            t.join();
    }
    ASSERT_EQ(failures.load(), 0);
    EXPECT_TRUE(wx_mappings().empty());
    EXPECT_TRUE(ArenaOk(a));

    uint64_t n = 0, requested = 0, in_use = 0;
    std::map<size_t, uint64_t> per_size;  // slab objects by object size
    for (auto &v : left)
        for (const Fn &f : v) {
            n++;
            requested += f.len;
            size_t usable = jit_size(f.p);
            ASSERT_GE(usable, f.len);
            in_use += usable;
            if (f.len <= jitalloc::kMaxSlabSize)
                per_size[usable]++;
            EXPECT_EQ(call_int(f.p, 1), f.tag + 1) << "another thread's churn changed it";
        }
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.allocations, n);
    EXPECT_EQ(s.bytes_requested, requested);
    EXPECT_EQ(s.bytes_in_use, in_use);
    EXPECT_EQ(s.total_allocs - s.total_frees, n);
    EXPECT_EQ(s.total_allocs, uint64_t{kThreads} * 1500);
    for (unsigned c = 0; c < s.nr_classes; c++) {
        auto it = per_size.find(s.classes[c].object_size);
        EXPECT_EQ(s.classes[c].objects_in_use, it == per_size.end() ? 0u : it->second)
            << "class " << c << " (" << s.classes[c].object_size << " B)";
    }

    for (auto &v : left)
        for (const Fn &f : v)
            EXPECT_EQ(jit_arena_free(a, f.p), 0);
    EXPECT_TRUE(ArenaOk(a));
    s = stats_of(a);
    EXPECT_EQ(s.allocations, 0u);
    EXPECT_EQ(s.bytes_requested, 0u);
    EXPECT_EQ(s.total_allocs, s.total_frees);
    EXPECT_GT(jit_arena_shrink(a), 0u);
    s = stats_of(a);
    EXPECT_EQ(s.bytes_mapped, 0u) << "jit_shrink kept pages of the exited threads' shards";
    EXPECT_EQ(s.chunks_mapped, 0u);
    for (unsigned c = 0; c < s.nr_classes; c++)
        EXPECT_EQ(s.classes[c].slabs, 0u) << "class " << c;
    EXPECT_TRUE(ArenaOk(a));
}

// An arena destroyed with live functions in every shard (its threads gone) releases
// them all: ASan's leak check and the W^X scan see nothing left.
TEST_P(ShardsChurn, DestroyWithObjectsInEveryShard) {
    jit_arena_options o = options(GetParam());
    jit_arena *a = jit_arena_create(&o);
    ASSERT_NE(a, nullptr);
    std::vector<std::vector<Fn>> left(jitalloc::kShards);
    std::atomic<int> failures{0};
    for (unsigned t = 0; t < jitalloc::kShards; t++)
        std::thread(churn, a, static_cast<int>(t), 300, size_t{50}, std::ref(left[t]),
                    std::ref(failures))
            .join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(stats_of(a).allocations, 0u);
    EXPECT_EQ(jit_arena_destroy(a), 0);
    EXPECT_TRUE(wx_mappings().empty());
}

INSTANTIATE_TEST_SUITE_P(Writers, ShardsChurn,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                           JIT_WRITER_PERSISTENT_ALIAS),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

// fork() while threads on other shards churn: the child inherits no operation in flight,
// frees the functions those threads had published (into shards it has no thread of),
// and its arena checks out with exact counts.
TEST(ShardsFork, ForkWhileOtherThreadsChurn) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    constexpr int kThreads = 3;
    constexpr int kStable = 20;
    // Each thread first loads kStable functions it never frees, then churns until told.
    std::vector<std::vector<void *>> stable(kThreads);
    std::atomic<int> ready{0}, failures{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&, t] {
            for (int i = 0; i < kStable; i++) {
                auto code = add_imm(t * 100 + i, 100);
                void *p = jit_arena_alloc(a, code.data(), code.size());
                if (!p) {
                    failures++;
                    continue;
                }
                stable[t].push_back(p);
            }
            ready++;
            for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); i++) {
                size_t len = 16 + i * 37 % 3000;
                auto code = add_imm(static_cast<int>(i), len);
                void *p = jit_arena_alloc(a, code.data(), code.size());
                if (!p || call_int(p, 2) != static_cast<int>(i) + 2 || jit_arena_free(a, p) != 0)
                    failures++;
            }
        });
    while (ready.load() < kThreads)
        std::this_thread::yield();
    for (int round = 0; round < 5; round++) {
        int st = in_child([&] {
            if (jit_arena_check(a, nullptr, 0) != 0)
                return 1;
            struct jit_stats s;
            if (jit_arena_stats(a, &s) != 0)
                return 2;
            // Live in the child: the stable functions, and at most one in-churn function per
            // thread (published, not freed yet when the parent forked).
            if (s.allocations < uint64_t{kThreads} * kStable || s.allocations > uint64_t{kThreads} * (kStable + 1))
                return 3;
            uint64_t before = s.allocations;
            for (int t = 0; t < kThreads; t++)
                for (int i = 0; i < kStable; i++) {
                    if (call_int(stable[t][i], 1) != t * 100 + i + 1)
                        return 4;
                    if (jit_arena_free(a, stable[t][i]) != 0)
                        return 5;
                }
            auto code = add_imm(7, 200);
            void *p = jit_arena_alloc(a, code.data(), code.size());
            if (!p || call_int(p, 1) != 8 || jit_arena_free(a, p) != 0)
                return 6;
            if (jit_arena_stats(a, &s) != 0 || s.allocations != before - uint64_t{kThreads} * kStable)
                return 7;
            return jit_arena_check(a, nullptr, 0) == 0 ? 0 : 8;
        });
        EXPECT_EQ(st, 0) << "round " << round;
    }
    stop = true;
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(failures.load(), 0);
    for (auto &v : stable)
        for (void *p : v)
            EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(stats_of(a).allocations, 0u);
}

}  // namespace
