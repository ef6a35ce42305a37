// Chunk growth (issue 16, src/chunk/growth.h): an arena's first chunk is reserved whole
// but exposed in steps. What users rely on: only the exposed part is executable, and it
// holds code or traps; the rest cannot be read or run; growing keeps every earlier
// allocation in place and working; a chunk that becomes whole is on a huge page (proc_mem,
// THP not "never"); stats count exposed bytes; fork copies a partly grown chunk.
#include "helpers.h"

#include "chunk/growth.h"

#include <csignal>
#include <set>

using namespace jt;

namespace {

class Growth : public ::testing::TestWithParam<jit_writer> {};

uint64_t anon_huge_kb(uintptr_t base) {
    uint64_t kb = 0;
    for (const SmapsEntry &e : read_smaps())
        if (e.map.start >= base && e.map.start < base + kChunk)
            kb += e.anon_huge_kb;
    return kb;
}

TEST_P(Growth, FirstChunkGrowsInStepsAndEndsWhole) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = ret_imm(7, 200);
    void *first = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(first, nullptr);
    const uintptr_t base = chunk_base(first);

    // One step exposed, the first that holds the code's slab (two pages for 200 bytes):
    // traps around the code, the rest reserved and inaccessible.
    ChunkView v = chunk_view(base);
    EXPECT_EQ(v.exposed, std::max<size_t>(jitalloc::first_step(), 2 * 4096));
    EXPECT_TRUE(v.rest_inaccessible);
    EXPECT_EQ(stats_of(a).bytes_mapped, v.exposed);
    EXPECT_TRUE(ArenaOk(a));  // free exposed pages hold traps; nothing allocated beyond

    // Page runs of 8 pages fill the chunk from the bottom: the exposure grows by steps,
    // never shrinks, always one read+execute mapping from the base, the rest PROT_NONE.
    std::vector<void *> runs;
    std::vector<std::vector<uint8_t>> contents;
    size_t last = v.exposed;
    unsigned steps = 1;
    while (last < kChunk) {
        auto c = pattern(8 * 4096 - 64, static_cast<uint32_t>(runs.size()));
        void *p = jit_arena_alloc(a, c.data(), c.size());
        ASSERT_NE(p, nullptr) << std::strerror(errno);
        if (chunk_base(p) != base) {  // the chunk is full: the run went to a new chunk
            ASSERT_EQ(jit_free(p), 0);
            break;
        }
        runs.push_back(p);
        contents.push_back(c);
        ChunkView now = chunk_view(base);
        ASSERT_TRUE(now.rest_inaccessible) << "exposed " << now.exposed;
        ASSERT_GE(now.exposed, last);
        ASSERT_GE(now.exposed, reinterpret_cast<uintptr_t>(p) + c.size() - base);
        if (now.exposed != last) {
            steps++;
            // Newly exposed memory holds traps beyond the run just written.
            uintptr_t end = reinterpret_cast<uintptr_t>(p) + round_up(c.size(), 4096);
            EXPECT_TRUE(all_traps(reinterpret_cast<uint8_t *>(end), base + now.exposed - end));
            EXPECT_TRUE(ArenaOk(a));
        }
        last = now.exposed;
        EXPECT_EQ(stats_of(a).bytes_mapped, last);
    }
    EXPECT_EQ(last, kChunk);
    EXPECT_GE(steps, 3u) << "grew all at once";
    EXPECT_TRUE(chunk_view(base).rest_inaccessible);
    // Everything written before and across the steps is still there and runs.
    EXPECT_TRUE(same_bytes(first, code));
    for (size_t i = 0; i < runs.size(); i++)
        ASSERT_TRUE(same_bytes(runs[i], contents[i])) << i;
    EXPECT_EQ(call_int(first), 7);
    const uint64_t huge_kb = anon_huge_kb(base);
    for (void *p : runs)
        ASSERT_EQ(jit_free(p), 0);
    ASSERT_EQ(jit_free(first), 0);
    EXPECT_TRUE(ArenaOk(a));
    // Whole: collapsed to a huge page where the writer's memory can be one.
    if (GetParam() == JIT_WRITER_PROC_MEM && thp_mode() != "never" && !thp_mode().empty()) {
        if (std::string why = read_only_collapse_refused(); !why.empty())
            GTEST_SKIP() << "the huge-page check after growth: " << why
                         << ", so a chunk grown in steps stays on 4 KiB pages";
        EXPECT_EQ(huge_kb, 2048u) << "THP enabled=" << thp_mode();
    }
}

// The unexposed part of a chunk is PROT_NONE: reading it or jumping into it faults.
TEST_P(Growth, UnexposedPartIsNotAccessible) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(p, nullptr);
    ChunkView v = chunk_view(chunk_base(p));
    ASSERT_LT(v.exposed, kChunk);
    auto *beyond = reinterpret_cast<volatile uint8_t *>(chunk_base(p) + v.exposed);
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    // The default action, not a sanitizer's handler (which would exit instead).
    EXPECT_EXIT((std::signal(SIGSEGV, SIG_DFL), (void)*beyond), ::testing::KilledBySignal(SIGSEGV),
                "");
    EXPECT_EXIT((std::signal(SIGSEGV, SIG_DFL), call_int(const_cast<uint8_t *>(beyond))),
                ::testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EQ(jit_free(p), 0);
}

// Once an arena has code memory, a new chunk is mapped whole (one huge-page fault rather
// than steps and a collapse).
TEST_P(Growth, LaterChunksAreMappedWhole) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    void *small = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(small, nullptr);
    // A run of a whole chunk cannot come from the first one: it needs a second.
    void *whole = jit_arena_alloc(a, nullptr, kChunk - 4096);
    ASSERT_NE(whole, nullptr);
    ASSERT_NE(chunk_base(whole), chunk_base(small));
    ChunkView v = chunk_view(chunk_base(whole));
    EXPECT_EQ(v.exposed, kChunk);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(whole), kChunk - 4096));
    EXPECT_EQ(stats_of(a).bytes_mapped, kChunk + chunk_view(chunk_base(small)).exposed);
    EXPECT_EQ(jit_free(whole), 0);
    EXPECT_EQ(jit_free(small), 0);
    // Shrink gives both back, the partly grown one included.
    jit_arena_shrink(a);
    EXPECT_EQ(stats_of(a).bytes_mapped, 0u);
    EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
}

// Chunk metadata starts in its reset state, untouched (src/chunk/chunk.cpp: zero-filled,
// only the descriptor pages in use are ever written), and recycled metadata is reset:
// objects of every size in three chunks, each chunk's pages handed out down to the last,
// then all of it freed and given back, and the same again on the recycled metadata.
TEST_P(Growth, MetadataPastTheFirstChunkAndRecycled) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    for (int round = 0; round < 2; round++) {
        std::vector<std::pair<void *, std::vector<uint8_t>>> live;
        std::set<uintptr_t> chunks;
        for (uint32_t i = 0; chunks.size() < 3 || i % 7 != 0; i++) {
            size_t len = i % 7 == 6 ? 5 * 4096 + 64 : size_t{64} << (i % 7);  // 64 B .. 4 KiB, runs
            auto c = pattern(len, i + 1000u * static_cast<uint32_t>(round));
            void *p = jit_arena_alloc(a, c.data(), c.size());
            ASSERT_NE(p, nullptr) << std::strerror(errno);
            chunks.insert(chunk_base(p));
            live.emplace_back(p, std::move(c));
        }
        ASSERT_TRUE(ArenaOk(a));
        for (auto &[p, c] : live)
            ASSERT_TRUE(same_bytes(p, c));
        for (size_t i = 0; i < live.size(); i += 2)  // every other one first: coalescing
            ASSERT_EQ(jit_free(live[i].first), 0);
        ASSERT_TRUE(ArenaOk(a));
        for (size_t i = 1; i < live.size(); i += 2)
            ASSERT_EQ(jit_free(live[i].first), 0);
        jit_arena_shrink(a);
        ASSERT_TRUE(ArenaOk(a));
        EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
    }
}

// fork() with a partly grown chunk: the child keeps the code, and grows the chunk on its own
// without touching the parent's (memfd writers copy the exposed part for the child).
TEST_P(Growth, ForkedChildGrowsItsOwnCopy) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = ret_imm(11, 100);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    const uintptr_t base = chunk_base(p);
    const size_t before = chunk_view(base).exposed;
    ASSERT_LT(before, kChunk);
    int rc = in_child([&] {
        if (!same_bytes(p, code))
            return 1;
        std::vector<void *> runs;
        while (chunk_view(base).exposed == before) {
            auto c = pattern(16 * 4096, 5);
            void *q = jit_arena_alloc(a, c.data(), c.size());
            if (!q || !same_bytes(q, c) || chunk_base(q) != base)
                return 2;
            runs.push_back(q);
        }
        if (!chunk_view(base).rest_inaccessible || !same_bytes(p, code))
            return 3;
        if (call_int(p) != 11)
            return 4;
        for (void *q : runs)
            if (jit_free(q) != 0)
                return 5;
        return 0;
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(chunk_view(base).exposed, before);  // the parent's chunk did not grow
    EXPECT_TRUE(same_bytes(p, code));
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(p), 0);
}

INSTANTIATE_TEST_SUITE_P(All, Growth, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

}  // namespace
