// Stats match what was allocated; shrink and the retention limit give chunks back;
// max_bytes gives ENOMEM and changes nothing.
#include "helpers.h"

#include "slab/size_class.h"

#include <bit>

using namespace jt;

namespace {

jit_arena_options opts_with(size_t retain, size_t max_bytes = 0) {
    jit_arena_options o = options();
    o.retain_bytes = retain;
    o.max_bytes = max_bytes;
    return o;
}

TEST(Stats, FreshArenaIsEmpty) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.chunks_mapped, 0u);
    EXPECT_EQ(s.bytes_mapped, 0u);
    EXPECT_EQ(s.allocations, 0u);
    EXPECT_EQ(s.bytes_requested, 0u);
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.nr_classes, jitalloc::kNumClasses);
    for (unsigned i = 0; i < s.nr_classes; i++) {
        const jitalloc::SizeClass &sc = jitalloc::size_class(i);
        EXPECT_EQ(s.classes[i].object_size, sc.size);
        EXPECT_EQ(s.classes[i].slab_pages, sc.pages);
        EXPECT_EQ(s.classes[i].objects_per_slab, sc.objects);
        EXPECT_EQ(s.classes[i].slabs, 0u);
    }
}

TEST(Stats, MatchWhatWasAllocated) {
    ArenaHolder a(opts_with(JIT_DEFAULT_RETAIN_BYTES));
    ASSERT_NE(a.get(), nullptr);
    struct Req {
        size_t len;
        int count;
    };
    const Req reqs[] = {{40, 10}, {300, 5}, {run_len(), 3}, {3 * MiB, 1}};
    std::vector<void *> ptrs;
    uint64_t requested = 0, in_use = 0;
    for (const Req &r : reqs)
        for (int i = 0; i < r.count; i++) {
            void *p = jit_arena_alloc(a, nullptr, r.len);
            ASSERT_NE(p, nullptr);
            ptrs.push_back(p);
            requested += r.len;
            in_use += jit_size(p);
        }
    const int c40 = jitalloc::class_index(40), c300 = jitalloc::class_index(300);
    const auto &k40 = jitalloc::size_class(c40), &k300 = jitalloc::size_class(c300);

    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.allocations, ptrs.size());
    EXPECT_EQ(s.bytes_requested, requested);
    EXPECT_EQ(s.bytes_in_use, in_use);
    EXPECT_EQ(s.bytes_in_use, 10u * k40.size + 5u * k300.size + 3u * run_pages() * 4096 + 4 * MiB);
    EXPECT_EQ(s.total_allocs, ptrs.size());
    EXPECT_EQ(s.total_frees, 0u);
    EXPECT_EQ(s.classes[c40].objects_in_use, 10u);
    EXPECT_EQ(s.classes[c40].slabs, 1u);
    EXPECT_EQ(s.classes[c40].objects_free, k40.objects - 10u);
    EXPECT_EQ(s.classes[c300].objects_in_use, 5u);
    EXPECT_EQ(s.classes[c300].objects_free, k300.objects - 5u);
    uint64_t others = 0;
    for (unsigned i = 0; i < s.nr_classes; i++)
        if (static_cast<int>(i) != c40 && static_cast<int>(i) != c300)
            others += s.classes[i].slabs + s.classes[i].objects_in_use;
    EXPECT_EQ(others, 0u);
    // One small chunk plus a 4 MiB large one. The small chunk is the arena's first: it is
    // mapped (read+execute) only as far as it has grown; the buddy lists the rest of it
    // as free blocks, but it is neither mapped nor cached.
    EXPECT_EQ(s.chunks_mapped, 3u);
    const size_t grown = chunk_view(chunk_base(ptrs[0])).exposed;
    EXPECT_GT(grown, 0u);
    EXPECT_EQ(s.bytes_mapped, 4 * MiB + grown);
    EXPECT_EQ(s.order_cached[JIT_BUDDY_ORDERS - 1], 1u);
    uint64_t used_pages = k40.pages + k300.pages + 3 * run_pages();
    EXPECT_EQ(s.bytes_cached, grown - used_pages * 4096);
    uint64_t listed = 0;
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++)
        listed += s.order_free[o] << o;
    EXPECT_EQ(listed * 4096, s.bytes_cached + (kChunk - grown));
    EXPECT_GT(s.bytes_metadata, 0u);
    EXPECT_GT(s.bytes_resident, 0u);
    EXPECT_LE(s.bytes_resident, s.bytes_mapped);
    EXPECT_TRUE(ArenaOk(a));

    // Updates are counted.
    uint8_t b = 0x90;
    ASSERT_EQ(jit_update(ptrs[0], &b, 1), 0);
    EXPECT_EQ(stats_of(a).total_updates, 1u);

    for (void *p : ptrs) {
        ASSERT_EQ(jit_free(p), 0);
    }
    s = stats_of(a);
    EXPECT_EQ(s.allocations, 0u);
    EXPECT_EQ(s.bytes_requested, 0u);
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.total_frees, ptrs.size());
    EXPECT_EQ(s.chunks_released, 2u);  // the large chunk goes at once
    EXPECT_EQ(s.chunks_mapped, 1u);    // the small one is cached (empty slabs kept)
    EXPECT_TRUE(ArenaOk(a));

    size_t released = jit_arena_shrink(a);
    EXPECT_EQ(released, 2 * MiB);
    s = stats_of(a);
    EXPECT_EQ(s.chunks_mapped, 0u);
    EXPECT_EQ(s.bytes_mapped, 0u);
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.bytes_resident, 0u);
    EXPECT_EQ(s.order_released[JIT_BUDDY_ORDERS - 1], 1u);
    EXPECT_EQ(s.chunks_released, 3u);
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++) {
        EXPECT_EQ(s.order_free[o], 0u) << o;
    }
    for (unsigned i = 0; i < s.nr_classes; i++) {
        EXPECT_EQ(s.classes[i].slabs, 0u) << i;
    }
    EXPECT_EQ(jit_arena_shrink(a), 0u);
    EXPECT_TRUE(ArenaOk(a));
}

TEST(Stats, OrderFreeAfterOnePageRun) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    // The smallest power-of-two page run: exactly one buddy block of order `order`.
    const size_t len = std::bit_ceil(jitalloc::kMaxSlabSize + 1);
    const unsigned order = static_cast<unsigned>(std::countr_zero(len / 4096));
    void *p = jit_arena_alloc(a, nullptr, len);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(jit_size(p), len);
    struct jit_stats s = stats_of(a);
    for (unsigned o = 0; o + 1 < JIT_BUDDY_ORDERS; o++) {
        EXPECT_EQ(s.order_free[o], o >= order ? 1u : 0u) << o;
    }
    EXPECT_EQ(s.order_free[JIT_BUDDY_ORDERS - 1], 0u);
    ASSERT_EQ(jit_free(p), 0);
    s = stats_of(a);
    EXPECT_EQ(s.order_free[JIT_BUDDY_ORDERS - 1], 1u);
    for (unsigned o = 0; o + 1 < JIT_BUDDY_ORDERS; o++) {
        EXPECT_EQ(s.order_free[o], 0u) << o;
    }
}

// Four 2 MiB page runs take four chunks; freeing them keeps retain_bytes of chunks.
void retention_case(size_t retain, uint64_t expect_kept) {
    SCOPED_TRACE(retain);
    ArenaHolder a(opts_with(retain));
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> ptrs;
    for (int i = 0; i < 4; i++) {
        ptrs.push_back(jit_arena_alloc(a, nullptr, 2 * MiB));
        ASSERT_NE(ptrs.back(), nullptr);
    }
    EXPECT_EQ(stats_of(a).chunks_mapped, 4u);
    for (void *p : ptrs) {
        ASSERT_EQ(jit_free(p), 0);
    }
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.chunks_mapped, expect_kept);
    EXPECT_EQ(s.chunks_released, 4 - expect_kept);
    EXPECT_EQ(s.order_released[JIT_BUDDY_ORDERS - 1], 4 - expect_kept);
    EXPECT_EQ(s.order_cached[JIT_BUDDY_ORDERS - 1], 4u);
    EXPECT_EQ(s.bytes_cached, expect_kept * 2 * MiB);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_arena_shrink(a), expect_kept * 2 * MiB);
    EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
}

TEST(Stats, RetentionLimit) {
    retention_case(0, 0);
    retention_case(2 * MiB, 1);
    retention_case(5 * MiB, 2);
    retention_case(SIZE_MAX, 4);
}

// What shrink returns is what it gave back to the OS, also the chunks that the empty slab
// or pack it retires frees wholly (released at once when retain_bytes keeps none of
// them): on 5a2d07a both returned 0 with the chunk gone.
TEST(Stats, ShrinkReturnsTheChunksItsRetiredSlabsAndPacksFree) {
    for (bool batch : {false, true}) {
        SCOPED_TRACE(batch ? "pack object" : "slab object");
        ArenaHolder a(opts_with(0));
        ASSERT_NE(a.get(), nullptr);
        auto code = ret_imm(1, 64);
        void *p = nullptr;
        if (batch) {
            jit_batch *b = jit_batch_create(a);
            ASSERT_NE(b, nullptr);
            p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
            EXPECT_EQ(jit_batch_commit(b), 0);
            jit_batch_destroy(b);
        } else {
            p = jit_arena_alloc(a, code.data(), code.size());
        }
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(jit_free(p), 0);
        struct jit_stats s = stats_of(a);
        ASSERT_EQ(s.chunks_mapped, 1u) << "the empty slab / pack is kept for reuse";
        const uint64_t released_before = s.chunks_released;
        EXPECT_EQ(jit_arena_shrink(a), 2 * MiB);
        s = stats_of(a);
        EXPECT_EQ(s.chunks_mapped, 0u);
        EXPECT_EQ(s.chunks_released, released_before + 1);
        EXPECT_EQ(jit_arena_shrink(a), 0u);
        EXPECT_TRUE(ArenaOk(a));
    }
}

TEST(Stats, GlobalShrinkReleasesEveryArena) {
    ArenaHolder a(opts_with(SIZE_MAX)), b(opts_with(SIZE_MAX));
    ASSERT_TRUE(a.get() && b.get());
    for (jit_arena *ar : {a.get(), b.get()}) {
        void *p = jit_arena_alloc(ar, nullptr, 2 * MiB);
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(jit_free(p), 0);
    }
    EXPECT_GE(jit_shrink(), 4 * MiB);
    EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
    EXPECT_EQ(stats_of(b).chunks_mapped, 0u);
}

TEST(Stats, MaxBytesGivesEnomemAndChangesNothing) {
    ArenaHolder a(opts_with(SIZE_MAX, 4 * MiB));
    ASSERT_NE(a.get(), nullptr);
    void *r1 = jit_arena_alloc(a, nullptr, 2 * MiB);
    void *r2 = jit_arena_alloc(a, nullptr, 2 * MiB);
    ASSERT_TRUE(r1 && r2);
    struct jit_stats before = stats_of(a);
    auto code = ret_imm(1, 64);
    for (size_t len : {size_t{64}, run_len(), size_t{2} * MiB, size_t{3} * MiB}) {
        SCOPED_TRACE(len);
        errno = 0;
        EXPECT_EQ(jit_arena_alloc(a, len == 64 ? code.data() : nullptr, len), nullptr);
        EXPECT_EQ(errno, ENOMEM);
        EXPECT_TRUE(SameStats(before, stats_of(a)));
        EXPECT_TRUE(ArenaOk(a));
    }
    ASSERT_EQ(jit_free(r1), 0);
    void *small = jit_arena_alloc(a, code.data(), 64);  // room again
    EXPECT_NE(small, nullptr);
    EXPECT_EQ(jit_free(small), 0);
    EXPECT_EQ(jit_free(r2), 0);
    jit_arena_shrink(a);
    void *large = jit_arena_alloc(a, nullptr, 3 * MiB);  // 4 MiB: exactly the cap
    EXPECT_NE(large, nullptr);
    EXPECT_EQ(jit_arena_alloc(a, nullptr, 16), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_EQ(jit_free(large), 0);
}

TEST(Stats, PrintsTables) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 100);
    ASSERT_NE(p, nullptr);
    struct jit_stats s = stats_of(a);
    char buf[16384] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(jit_stats_print(f, &s), 0);
    std::fclose(f);
    std::string out(buf);
    for (const char *word : {"Free:", "Cached:", "Released:", "writer", "112"}) {
        EXPECT_NE(out.find(word), std::string::npos) << word << "\n" << out;
    }
    EXPECT_EQ(jit_free(p), 0);
}

TEST(Stats, DefaultArenaStats) {
    void *p = jit_alloc(nullptr, 32);
    ASSERT_NE(p, nullptr);
    struct jit_stats s;
    ASSERT_EQ(jit_stats(&s), 0);
    EXPECT_GE(s.allocations, 1u);
    EXPECT_GE(s.chunks_mapped, 1u);
    EXPECT_EQ(jit_free(p), 0);
}

}  // namespace
