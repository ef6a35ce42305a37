// Aligned allocations (jit_alloc_aligned, jit_arena_alloc_aligned) and giving back the
// tail of an allocation (jit_shrink_alloc), with every writer: start addresses are
// multiples of the alignment, contents and trap fill are right, bad alignments and bad
// shrinks fail with EINVAL and change nothing, a shrunk tail holds traps, and whole pages
// given back are reused.
#include "helpers.h"

#include <jitalloc/jitalloc.hpp>

using namespace jt;

namespace {

class Aligned : public ::testing::TestWithParam<jit_writer> {};

bool aligned_to(const void *p, size_t align) { return reinterpret_cast<uintptr_t>(p) % align == 0; }

TEST_P(Aligned, EveryAlignmentAndSize) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    const size_t aligns[] = {1, 2, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    const size_t lens[] = {1, 6, 31, 33, 64, 100, 500, 4000, 4097, 20000, 70000, 3 * MiB};
    std::vector<void *> live;
    for (size_t align : aligns) {
        for (size_t len : lens) {
            auto code = pattern(len, static_cast<uint32_t>(align * 131 + len));
            // Several of each, so objects past the first in a slab are checked too.
            for (int k = 0; k < (len < 5000 ? 3 : 1); k++) {
                void *p = jit_arena_alloc_aligned(a, code.data(), len, align, "aligned");
                ASSERT_NE(p, nullptr) << "align " << align << " len " << len << ": " << strerror(errno);
                EXPECT_TRUE(aligned_to(p, align < JIT_ALLOC_ALIGN ? JIT_ALLOC_ALIGN : align))
                    << p << " align " << align << " len " << len;
                EXPECT_GE(jit_size(p), len);
                EXPECT_TRUE(same_bytes(p, code)) << "align " << align << " len " << len;
                EXPECT_TRUE(all_traps(static_cast<uint8_t *>(p) + len, jit_size(p) - len));
                live.push_back(p);
            }
        }
    }
    EXPECT_TRUE(ArenaOk(a));
    for (void *p : live)
        EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

TEST_P(Aligned, ReserveAlignedThenWriteAndRun) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    // What JITLink asks for: 16 / 32 / 64 for code sections, 4096 for aligned(4096).
    for (size_t align : {size_t{32}, size_t{64}, size_t{4096}}) {
        void *p = jit_arena_alloc_aligned(a, nullptr, 40, align, nullptr);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(aligned_to(p, align));
        EXPECT_TRUE(all_traps(p, jit_size(p)));
        auto code = ret_imm(static_cast<int32_t>(align));
        ASSERT_EQ(jit_arena_update(a, p, code.data(), code.size()), 0);
        EXPECT_EQ(call_int(p), static_cast<int>(align));
        EXPECT_EQ(jit_arena_free(a, p), 0);
    }
}

TEST(AlignedApi, BadAlignmentsAreRejectedAndChangeNothing) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    auto before = stats_of(a);
    auto code = ret_imm(1);
    for (size_t align : {size_t{0}, size_t{3}, size_t{48}, size_t{100}, size_t{8192},
                         size_t{1} << 21, SIZE_MAX, (SIZE_MAX >> 1) + 1}) {
        errno = 0;
        EXPECT_EQ(jit_arena_alloc_aligned(a, code.data(), code.size(), align, nullptr), nullptr) << align;
        EXPECT_EQ(errno, EINVAL) << align;
        errno = 0;
        EXPECT_EQ(jit_alloc_aligned(code.data(), code.size(), align), nullptr) << align;
        EXPECT_EQ(errno, EINVAL) << align;
    }
    errno = 0;
    EXPECT_EQ(jit_arena_alloc_aligned(nullptr, code.data(), code.size(), 64, nullptr), nullptr);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(jit_arena_alloc_aligned(a, code.data(), 0, 64, nullptr), nullptr);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_TRUE(SameStats(before, stats_of(a)));
    // The default arena works too.
    void *p = jit_alloc_aligned(code.data(), code.size(), 256);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned_to(p, 256));
    EXPECT_EQ(jit_free(p), 0);
}

class Shrink : public ::testing::TestWithParam<jit_writer> {};

// A slab object keeps its size; the tail past len holds traps; stats count len.
TEST_P(Shrink, SlabObjectTailBecomesTraps) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = pattern(200, 7);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    size_t usable = jit_size(p);
    ASSERT_EQ(jit_arena_shrink_alloc(a, p, 50), 0);
    EXPECT_EQ(jit_size(p), usable);
    EXPECT_TRUE(std::memcmp(p, code.data(), 50) == 0);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(p) + 50, usable - 50));
    EXPECT_EQ(stats_of(a).bytes_requested, 50u);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// A page run gives its whole pages past len back: they are free, trap-filled, and the
// next allocation of that many pages gets them.
TEST_P(Shrink, PageRunGivesBackWholePages) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    const size_t reserved = 64 * KiB + 1;  // a page run (above the slab sizes): 17 pages
    void *p = jit_arena_alloc(a, nullptr, reserved);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(jit_size(p), 17 * 4 * KiB);
    auto code = pattern(5000, 3);
    ASSERT_EQ(jit_arena_update(a, p, code.data(), code.size()), 0);
    auto before = stats_of(a);
    ASSERT_EQ(jit_arena_shrink_alloc(a, p, 5000), 0);
    EXPECT_EQ(jit_size(p), 2 * 4 * KiB);
    EXPECT_TRUE(same_bytes(p, code));
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(p) + 5000, 2 * 4 * KiB - 5000));
    auto after = stats_of(a);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use - 15 * 4 * KiB);
    EXPECT_EQ(after.bytes_requested, 5000u);
    EXPECT_EQ(after.bytes_cached, before.bytes_cached + 15 * 4 * KiB);
    EXPECT_TRUE(ArenaOk(a));
    // A pointer into the given-back tail is no allocation.
    uint8_t *tail = static_cast<uint8_t *>(p) + 8 * KiB;
    EXPECT_EQ(jit_size(tail), 0u);
    uint8_t b = 0x90;
    errno = 0;
    EXPECT_EQ(jit_arena_update(a, tail, &b, 1), -1);
    EXPECT_EQ(errno, EINVAL);
    // The freed pages hold traps and are handed out again.
    void *q = jit_arena_alloc(a, nullptr, 8 * 4 * KiB);
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(all_traps(q, jit_size(q)));
    auto *given_back = static_cast<uint8_t *>(p) + 8 * KiB;
    EXPECT_TRUE(q >= given_back && static_cast<uint8_t *>(q) + jit_size(q) <= given_back + 15 * 4 * KiB)
        << "the 8 pages came from " << q << ", not from the pages given back at " << (void *)given_back;
    EXPECT_EQ(jit_arena_free(a, q), 0);
    EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

// A large allocation keeps its chunks; its tail holds traps.
TEST_P(Shrink, LargeAllocationTailBecomesTraps) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = pattern(3 * MiB, 11);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    size_t usable = jit_size(p);
    ASSERT_EQ(jit_arena_shrink_alloc(a, p, 100), 0);
    EXPECT_EQ(jit_size(p), usable);
    EXPECT_TRUE(std::memcmp(p, code.data(), 100) == 0);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(p) + 100, usable - 100));
    EXPECT_EQ(stats_of(a).bytes_requested, 100u);
    EXPECT_EQ(jit_arena_free(a, p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

TEST(ShrinkApi, BadShrinksAreRejectedAndChangeNothing) {
    ArenaHolder a;
    ArenaHolder other;
    ASSERT_NE(a.get(), nullptr);
    auto code = pattern(5000, 9);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    auto before = stats_of(a);
    auto bytes = snapshot(p, jit_size(p));
    struct Case {
        jit_arena *arena;
        void *ptr;
        size_t len;
    } cases[] = {
        {a, p, 0},                                       // zero length
        {a, p, jit_size(p) + 1},                         // longer than the allocation
        {a, p, SIZE_MAX},
        {a, static_cast<uint8_t *>(p) + 16, 16},        // interior pointer
        {a, nullptr, 16},
        {nullptr, p, 16},
        {other, p, 16},                                  // another arena's allocation
        {a, reinterpret_cast<void *>(&jit_alloc), 16},   // not code memory
    };
    for (const Case &c : cases) {
        errno = 0;
        EXPECT_EQ(jit_arena_shrink_alloc(c.arena, c.ptr, c.len), -1) << c.ptr << " " << c.len;
        EXPECT_EQ(errno, EINVAL);
    }
    errno = 0;
    EXPECT_EQ(jit_shrink_alloc(static_cast<uint8_t *>(p) + 16, 16), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_TRUE(SameStats(before, stats_of(a)));
    EXPECT_TRUE(same_bytes(p, bytes));
    // Shrinking to the full size is allowed and changes nothing but the requested length.
    EXPECT_EQ(jit_shrink_alloc(p, jit_size(p)), 0);
    EXPECT_TRUE(same_bytes(p, bytes));
    EXPECT_EQ(jit_arena_free(a, p), 0);
    errno = 0;
    EXPECT_EQ(jit_shrink_alloc(p, 16), -1);  // freed
    EXPECT_EQ(errno, EINVAL);
}

// The C++ wrappers: reserve_aligned, load_aligned, Code::shrink.
TEST(AlignedApi, CppWrappers) {
    auto arena = jitalloc::Arena::create();
    ASSERT_TRUE(arena);
    auto r = arena->reserve_aligned(10000, 4096, "page_aligned");
    ASSERT_TRUE(r);
    EXPECT_TRUE(aligned_to(r->data(), 4096));
    EXPECT_EQ(r->shrink(100), 0);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(r->data()) + 100, r->size() - 100));
    auto code = ret_imm(5);
    auto l = arena->load_aligned(std::as_bytes(std::span(code)), 64);
    ASSERT_TRUE(l);
    EXPECT_TRUE(aligned_to(l->data(), 64));
    EXPECT_TRUE(same_bytes(l->data(), code));
    EXPECT_EQ(arena->reserve_aligned(16, 24).error(), EINVAL);
}

auto writer_param_name = [](const ::testing::TestParamInfo<jit_writer> &i) {
    return std::string(jit_writer_name(i.param));
};
INSTANTIATE_TEST_SUITE_P(All, Aligned, ::testing::ValuesIn(kAllWriters), writer_param_name);
INSTANTIATE_TEST_SUITE_P(All, Shrink, ::testing::ValuesIn(kAllWriters), writer_param_name);

}  // namespace
