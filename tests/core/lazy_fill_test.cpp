// Lazy trap fill (JIT_ARENA_LAZY_TRAP_FILL): jit_free leaves a slab object's code in place
// until the memory is reused; the reuse overwrites the whole object (new code and trap
// tail) in one write; memory going back to the buddy is trap-filled first; page runs and
// large allocations are filled / unmapped on free as without the flag. Kernel writes are
// counted through the os seam.
#include "helpers.h"

#include "os/os.h"

namespace os = jitalloc::os;
using namespace jt;

namespace {

// Counts kernel writes (pwrite calls) while alive.
struct WriteCount : CallCount {
    WriteCount() : CallCount(os::Call::pwrite) {}
    uint64_t writes() const { return calls(); }
};

jit_arena_options lazy(jit_writer w = JIT_WRITER_PROC_MEM) {
    jit_arena_options o = options(w);
    o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    o.retain_bytes = 0;
    return o;
}

TEST(LazyFill, FreeLeavesTheCodeAndReuseOverwritesTheWholeObject) {
    ArenaHolder a(lazy());
    ASSERT_NE(a.get(), nullptr);
    auto f1 = ret_imm(11, 200);
    void *keep = jit_arena_alloc(a, nullptr, 200);  // keeps the slab alive
    void *p = jit_arena_alloc(a, f1.data(), f1.size());
    ASSERT_TRUE(keep && p);
    const size_t usable = jit_size(p);
    WriteCount count;
    ASSERT_EQ(jit_free(p), 0);
    EXPECT_EQ(count.writes(), 0u) << "free wrote into code memory";
    EXPECT_EQ(jit_size(p), 0u);
    EXPECT_TRUE(same_bytes(p, f1)) << "the freed code was not left in place";
    {
        EXPECT_EQ(call_int(p), 11);  // the weaker promise: a stale call runs the old code
    }
    // The next allocation of the class reuses the stale object: shorter code (same size
    // class: 193..208 bytes), one write, the rest of the object traps (old nops gone).
    auto f2 = ret_imm(22, 194);
    void *q = jit_arena_alloc(a, f2.data(), f2.size());
    ASSERT_EQ(q, p) << "the stale object was not the one reused";
    EXPECT_EQ(count.writes(), 1u);
    EXPECT_TRUE(same_bytes(q, f2));
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(q) + f2.size(), usable - f2.size()));
    {
        EXPECT_EQ(call_int(q), 22);
    }
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(q), 0);
    EXPECT_EQ(jit_free(keep), 0);
    EXPECT_TRUE(ArenaOk(a));
}

TEST(LazyFill, ReservationsAreTrapsPreferringCleanObjects) {
    ArenaHolder a(lazy());
    ASSERT_NE(a.get(), nullptr);
    auto f = ret_imm(5, 100);
    void *keep = jit_arena_alloc(a, f.data(), f.size());
    void *stale = jit_arena_alloc(a, f.data(), f.size());
    ASSERT_TRUE(keep && stale);
    ASSERT_EQ(jit_free(stale), 0);
    WriteCount count;
    // A clean object is left in the slab: a reservation takes it and writes nothing.
    void *r1 = jit_arena_alloc(a, nullptr, 100);
    ASSERT_NE(r1, nullptr);
    EXPECT_NE(r1, stale);
    EXPECT_EQ(count.writes(), 0u);
    EXPECT_TRUE(all_traps(r1, jit_size(r1)));
    // Fill the slab up with reservations until the stale object is the one left: taking it
    // costs one trap fill, and it reads as traps like any reservation.
    std::vector<void *> rs{r1};
    void *got_stale = nullptr;
    for (int i = 0; i < 64 && !got_stale; i++) {
        void *r = jit_arena_alloc(a, nullptr, 100);
        ASSERT_NE(r, nullptr);
        rs.push_back(r);
        if (r == stale)
            got_stale = r;
        EXPECT_TRUE(all_traps(r, jit_size(r)));
    }
    ASSERT_EQ(got_stale, stale);
    EXPECT_EQ(count.writes(), 1u);
    for (void *r : rs)
        EXPECT_EQ(jit_free(r), 0);
    EXPECT_EQ(jit_free(keep), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// Memory that leaves a slab holds only traps again: jit_arena_check verifies every free
// buddy page, and nothing is left mapped after the shrink.
TEST(LazyFill, SlabsGoBackToTheBuddyTrapFilled) {
    ArenaHolder a(lazy());
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> ps;
    for (int i = 0; i < 2000; i++) {
        size_t len = 64 + static_cast<size_t>(i % 7) * 300;
        auto f = ret_imm(i, len);
        void *p = jit_arena_alloc(a, f.data(), f.size());
        ASSERT_NE(p, nullptr);
        ps.push_back(p);
    }
    for (void *p : ps)
        ASSERT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));  // empty slabs beyond the cached ones went back filled
    jit_arena_shrink(a);       // and the cached ones now too
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
}

TEST(LazyFill, PageRunsAndLargeAllocationsAreStillFilledOnFree) {
    ArenaHolder a(lazy());
    ASSERT_NE(a.get(), nullptr);
    void *keep = jit_arena_alloc(a, nullptr, 100);  // keeps the chunk mapped
    auto big = ret_imm(3, 100 * 1024);
    void *p = jit_arena_alloc(a, big.data(), big.size());
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(jit_free(p), 0);
    EXPECT_TRUE(all_traps(p, big.size()));
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(keep), 0);
}

TEST(LazyFill, DefaultArenasStillFillOnFree) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    auto f = ret_imm(1, 100);
    void *keep = jit_arena_alloc(a, nullptr, 100);
    void *p = jit_arena_alloc(a, f.data(), f.size());
    ASSERT_TRUE(keep && p);
    ASSERT_EQ(jit_free(p), 0);
    EXPECT_TRUE(all_traps(p, 112));
    EXPECT_EQ(jit_free(keep), 0);
}

// A failed reuse write: no allocation, the object stays stale (overwritten whole next
// time), the arena consistent, and the next allocation gets correct bytes.
TEST(LazyFill, FailedReuseWriteLeavesNoAllocation) {
    for (jit_writer w : {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD}) {
        SCOPED_TRACE(writer_name(w));
        ArenaHolder a(lazy(w));
        ASSERT_NE(a.get(), nullptr);
        auto f1 = ret_imm(1, 200), f2 = ret_imm(2, 196);  // one size class
        void *keep = jit_arena_alloc(a, nullptr, 200);
        void *p = jit_arena_alloc(a, f1.data(), f1.size());
        ASSERT_TRUE(keep && p);
        ASSERT_EQ(jit_free(p), 0);
        const struct jit_stats before = stats_of(a);
        for (bool short_io : {false, true}) {
            os::set_fault({1, EIO, os::mask_of(os::Call::pwrite), !short_io, short_io});
            errno = 0;
            void *q = jit_arena_alloc(a, f2.data(), f2.size());
            os::clear_fault();
            if (short_io) {  // short writes are completed
                ASSERT_EQ(q, p);
                EXPECT_TRUE(same_bytes(q, f2));
                EXPECT_TRUE(all_traps(static_cast<uint8_t *>(q) + 196, jit_size(q) - 196));
                ASSERT_EQ(jit_free(q), 0);
            } else {
                EXPECT_EQ(q, nullptr);
                EXPECT_EQ(errno, EIO);
                EXPECT_TRUE(SameStats(before, stats_of(a)));
            }
            EXPECT_TRUE(ArenaOk(a));
        }
        void *q = jit_arena_alloc(a, f2.data(), f2.size());
        ASSERT_EQ(q, p);
        EXPECT_TRUE(same_bytes(q, f2));
        EXPECT_TRUE(all_traps(static_cast<uint8_t *>(q) + 196, jit_size(q) - 196));
        EXPECT_EQ(jit_free(q), 0);
        EXPECT_EQ(jit_free(keep), 0);
        EXPECT_TRUE(ArenaOk(a));
    }
}

}  // namespace
