// Sizes across all paths: slab classes (1 .. kMaxSlabSize), page runs (.. 2 MiB) and
// large allocations (> 2 MiB): usable sizes, alignment, contents, packing.
#include "helpers.h"

#include "slab/size_class.h"

#include <algorithm>

using namespace jt;

namespace {

// The usable size the design promises for a request of len bytes.
size_t expected_usable(size_t len) {
    int cls = jitalloc::class_index(len);
    if (cls >= 0)
        return jitalloc::size_class(static_cast<unsigned>(cls)).size;
    if (len <= kChunk)
        return round_up(len, 4096);
    return round_up(len, kChunk);
}

size_t expected_align(size_t len) {
    if (len <= jitalloc::kMaxSlabSize)
        return JIT_ALLOC_ALIGN;
    return len <= kChunk ? 4096 : kChunk;
}

class Sizes : public ::testing::Test {
protected:
    ArenaHolder arena{options()};
};

TEST_F(Sizes, EveryPathUsableSizeAlignmentContents) {
    ASSERT_NE(arena.get(), nullptr);
    std::vector<size_t> lens;
    for (size_t l = 1; l <= 300; l++)
        lens.push_back(l);
    for (size_t l : {511, 512, 513, 1000, 1024, 2047, 4095, 4096, 4097, 8191, 12000, 16383, 16384,
                     16385, 20000, 65536, 65537, 1048575, 2 * 1048576 - 1, 2 * 1048576,
                     2 * 1048576 + 1, 5 * 1048576})
        lens.push_back(l);
    lens.push_back(jitalloc::kMaxSlabSize);
    lens.push_back(jitalloc::kMaxSlabSize + 1);
    struct Live {
        uint8_t *p;
        size_t len;
        std::vector<uint8_t> code;
    };
    std::vector<Live> live;
    for (size_t len : lens) {
        SCOPED_TRACE(len);
        auto code = pattern(len, static_cast<uint32_t>(len));
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(arena, code.data(), len));
        ASSERT_NE(p, nullptr) << strerror(errno);
        EXPECT_EQ(jit_size(p), expected_usable(len));
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % expected_align(len), 0u);
        EXPECT_TRUE(same_bytes(p, code));
        live.push_back({p, len, std::move(code)});
    }
    ASSERT_TRUE(ArenaOk(arena));
    // No two allocations overlap, and every one still holds its code.
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
    for (const Live &l : live)
        ranges.push_back({reinterpret_cast<uintptr_t>(l.p), reinterpret_cast<uintptr_t>(l.p) + jit_size(l.p)});
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); i++) {
        EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "overlap";
    }
    for (const Live &l : live) {
        EXPECT_TRUE(same_bytes(l.p, l.code)) << l.len;
        EXPECT_EQ(jit_free(l.p), 0);
    }
    EXPECT_TRUE(ArenaOk(arena));
}

TEST_F(Sizes, SmallCodeIsPackedDensely) {
    ASSERT_NE(arena.get(), nullptr);
    // 64 objects of one class sit back to back in one slab.
    std::vector<uint8_t *> ptrs;
    for (int i = 0; i < 64; i++) {
        ptrs.push_back(static_cast<uint8_t *>(jit_arena_alloc(arena, nullptr, 30)));
        ASSERT_NE(ptrs.back(), nullptr);
    }
    std::sort(ptrs.begin(), ptrs.end());
    EXPECT_EQ(ptrs.back() - ptrs.front(), 63 * 32);
    for (uint8_t *p : ptrs) {
        EXPECT_EQ(jit_free(p), 0);
    }
}

TEST_F(Sizes, UpdateEveryOffsetOfASmallObject) {
    ASSERT_NE(arena.get(), nullptr);
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(arena, nullptr, 48));
    ASSERT_NE(p, nullptr);
    std::vector<uint8_t> model = trap_bytes(p, 48);
    for (size_t off = 0; off < 48; off++)
        for (size_t len = 1; off + len <= 48; len += 7) {
            auto bytes = pattern(len, static_cast<uint32_t>(off * 100 + len));
            ASSERT_EQ(jit_update(p + off, bytes.data(), len), 0);
            std::copy(bytes.begin(), bytes.end(), model.begin() + static_cast<long>(off));
            ASSERT_TRUE(same_bytes(p, model)) << off << "+" << len;
        }
    EXPECT_EQ(jit_free(p), 0);
}

}  // namespace
