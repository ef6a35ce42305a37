// Unit tests of slabs and slab classes on a fake chunk backed by heap memory (the
// checker reads free objects to verify they hold trap bytes; nothing is mapped ROX).
#include "slab/slab.h"

#include "fake_chunk.h"
#include "helpers.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace jitalloc;

namespace {

class SlabTest : public ::testing::Test {
protected:
    jt::FakeChunk fake;
    Chunk *const chunk = fake.chunk.get();
    uint8_t *const mem = fake.mem;
    SlabClass k;
    std::vector<Slab *> slabs;  // every slab made (deleted at the end)

    void SetUp() override { ASSERT_NE(mem, nullptr); }
    void TearDown() override {
        while (Slab *s = k.pop_any())
            slab_delete(s);
    }

    Slab *new_slab(unsigned cls, unsigned first_page) {
        Slab *s = slab_new(cls, 0, chunk, first_page);
        EXPECT_NE(s, nullptr);
        k.add(s);
        return s;
    }

    // Takes an object and publishes it, as an allocation does once it is written.
    uint8_t *take_live(uint32_t requested, bool with_code, Slab **from) {
        unsigned i = 0;
        uint8_t *p = k.take(from, &i);
        if (p)
            k.publish(*from, i, requested, with_code);
        return p;
    }

    ::testing::AssertionResult CheckFails(unsigned cls, const char *what) {
        std::string msg;
        bool ok = k.check(0, cls, msg);
        return jt::FailedWith(ok, msg, what);
    }
    ::testing::AssertionResult Valid(unsigned cls) {
        std::string msg;
        bool ok = k.check(0, cls, msg);
        return jt::Checked(ok, msg);
    }
};

TEST_F(SlabTest, NewSlabClaimsItsPages) {
    const unsigned cls = 20;
    const SizeClass &sc = size_class(cls);
    Slab *s = new_slab(cls, 8);
    EXPECT_EQ(s->base, mem + 8 * kPageSize);
    EXPECT_EQ(s->nobj, sc.objects);
    EXPECT_EQ(s->navail, sc.objects);
    EXPECT_EQ(s->nlive, 0u);
    for (unsigned p = 8; p < 8u + sc.pages; p++) {
        EXPECT_EQ(chunk->pages[p].state.load(), PageState::slab);
        EXPECT_EQ(chunk->pages[p].owner.load(), s);
        EXPECT_EQ(chunk->pages[p].slab_key.load(), slab_key_of(0, cls));
    }
    EXPECT_EQ(k.slabs(), 1u);
    EXPECT_EQ(k.objects_avail(), sc.objects);
    EXPECT_TRUE(Valid(cls));
}

TEST_F(SlabTest, IndexOfAndContaining) {
    const unsigned cls = 3;  // 64-byte objects
    Slab *s = new_slab(cls, 0);
    EXPECT_EQ(s->index_of(s->object(0)), 0);
    EXPECT_EQ(s->index_of(s->object(5)), 5);
    EXPECT_EQ(s->index_of(s->object(5) + 1), -1);      // interior
    EXPECT_EQ(s->index_of(mem - 16), -1);              // before the slab
    EXPECT_EQ(s->index_of(s->object(s->nobj)), -1);    // past the last object
    EXPECT_EQ(s->index_containing(s->object(5) + 63), 5);
    EXPECT_EQ(s->index_containing(s->object(s->nobj)), -1);
}

// index_of / index_containing divide by multiplying (Slab::recip): every byte of a slab of
// every class maps to the index plain division gives.
TEST_F(SlabTest, IndexOfEveryByteOfEveryClassMatchesDivision) {
    for (unsigned cls = 0; cls < kNumClasses; cls++) {
        Slab *s = slab_new(cls, 0, chunk, 0);
        ASSERT_NE(s, nullptr);
        const size_t end = size_t{s->nobj} * s->size;
        for (size_t off = 0; off < end + s->size; off++) {
            const uint8_t *p = s->base + off;
            const int want = off < end ? static_cast<int>(off / s->size) : -1;
            ASSERT_EQ(s->index_containing(p), want) << "class " << cls << " offset " << off;
            ASSERT_EQ(s->index_of(p), off < end && off % s->size == 0 ? want : -1)
                << "class " << cls << " offset " << off;
        }
        slab_delete(s);
    }
}

TEST_F(SlabTest, TakeFillsSlabsAndMovesThemBetweenLists) {
    const unsigned cls = kNumClasses - 1;  // the largest objects: few per slab
    const SizeClass &sc = size_class(cls);
    Slab *s = new_slab(cls, 0);
    std::set<uint8_t *> got;
    Slab *from = nullptr;
    for (unsigned i = 0; i < sc.objects; i++) {
        uint8_t *p = take_live(100 + i, true, &from);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(from, s);
        EXPECT_TRUE(got.insert(p).second) << "object handed out twice";
        EXPECT_TRUE(Valid(cls));
    }
    EXPECT_EQ(s->list, SlabClass::kFull);
    EXPECT_EQ(k.objects_live(), sc.objects);
    EXPECT_EQ(k.objects_avail(), 0u);
    EXPECT_EQ(take_live(1, true, &from), nullptr);  // no slab with room
    uint64_t req = 0;
    for (unsigned i = 0; i < sc.objects; i++)
        req += 100 + i;
    EXPECT_EQ(k.requested(), req);
}

TEST_F(SlabTest, PartialSlabsAreUsedBeforeEmptyOnes) {
    const unsigned cls = 10;
    const SizeClass &sc = size_class(cls);
    Slab *a = new_slab(cls, 0);
    Slab *from = nullptr;
    ASSERT_NE(take_live(10, true, &from), nullptr);
    Slab *partial = from;
    Slab *b = new_slab(cls, sc.pages);  // empty, linked at the head of the empty list
    for (int i = 0; i < 5; i++) {
        ASSERT_NE(take_live(10, true, &from), nullptr);
        EXPECT_EQ(from, partial);
    }
    EXPECT_TRUE(partial == a || partial == b);
    EXPECT_TRUE(Valid(cls));
}

TEST_F(SlabTest, FreeProtocolBeginAbortFinish) {
    const unsigned cls = 5;
    Slab *s = new_slab(cls, 0);
    Slab *from = nullptr;
    uint8_t *p = take_live(90, true, &from);
    uint8_t *q = take_live(91, true, &from);
    ASSERT_NE(p, nullptr);
    ASSERT_NE(q, nullptr);
    unsigned i = static_cast<unsigned>(s->index_of(p));

    // The user wrote code into the object.
    std::memset(p, 0x90, 90);
    ASSERT_EQ(k.begin_free(s, i), 0);
    EXPECT_FALSE(s->is_live(i));
    EXPECT_FALSE(s->is_avail(i));              // in transit
    EXPECT_EQ(k.begin_free(s, i), EINVAL);     // double free
    EXPECT_EQ(k.objects_live(), 1u);
    EXPECT_EQ(k.requested(), 91u);
    EXPECT_TRUE(Valid(cls));                   // in-transit objects are not checked for traps

    k.abort_free(s, i, 90);                    // the trap fill failed
    EXPECT_TRUE(s->is_live(i));
    EXPECT_EQ(k.objects_live(), 2u);
    EXPECT_EQ(k.requested(), 181u);
    EXPECT_TRUE(Valid(cls));

    ASSERT_EQ(k.begin_free(s, i), 0);
    jt_traps::fill_traps(p, s->size);          // trap fill
    EXPECT_EQ(k.finish_free(s, i, 1), nullptr);
    EXPECT_TRUE(s->is_avail(i));
    EXPECT_EQ(s->list, SlabClass::kPartial);
    EXPECT_TRUE(Valid(cls));

    EXPECT_EQ(k.begin_free(s, s->nobj), EINVAL);  // out of range
    EXPECT_EQ(k.begin_free(s, i), EINVAL);        // not live
}

// take() leaves the object in transit until publish(); giving it back makes it free.
TEST_F(SlabTest, TakenObjectsAreInTransitUntilPublished) {
    const unsigned cls = 2;
    Slab *s = new_slab(cls, 0);
    Slab *from = nullptr;
    unsigned i = ~0u;
    uint8_t *p = k.take(&from, &i);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(from, s);
    EXPECT_EQ(i, static_cast<unsigned>(s->index_of(p)));  // take tells the index
    EXPECT_FALSE(s->is_live(i));
    EXPECT_FALSE(s->is_avail(i));
    EXPECT_EQ(k.objects_live(), 0u);
    EXPECT_EQ(k.objects_avail(), s->nobj - 1u);
    EXPECT_EQ(k.begin_free(s, i), EINVAL);  // not live yet
    EXPECT_TRUE(Valid(cls));
    k.publish(s, i, 33, false);
    EXPECT_TRUE(s->is_live(i));
    EXPECT_EQ(k.objects_live(), 1u);
    EXPECT_EQ(k.requested(), 33u);
    EXPECT_TRUE(Valid(cls));
    unsigned j = ~0u;
    uint8_t *q = k.take(&from, &j);  // written, then the write failed: given back
    EXPECT_EQ(j, static_cast<unsigned>(s->index_of(q)));
    EXPECT_EQ(k.finish_free(s, j, 1), nullptr);
    EXPECT_TRUE(s->is_avail(j));
    EXPECT_TRUE(Valid(cls));
}

// The "has held code" mark decides whether rewriting an object serialises other CPUs.
TEST_F(SlabTest, HeldCodeMarkFollowsTheObjectsLife) {
    const unsigned cls = 3;
    Slab *s = new_slab(cls, 0);
    Slab *from = nullptr;
    uint8_t *code = take_live(40, true, &from);      // alloc with code
    uint8_t *reserved = take_live(40, false, &from); // a reservation
    ASSERT_TRUE(code && reserved);
    unsigned c = static_cast<unsigned>(s->index_of(code));
    unsigned r = static_cast<unsigned>(s->index_of(reserved));
    EXPECT_TRUE(s->held_code(c));
    EXPECT_FALSE(s->held_code(r));
    EXPECT_FALSE(s->mark_written(r, 8));  // first write into the reservation: it held none
    EXPECT_TRUE(s->mark_written(r, 8));   // every later one: it did
    ASSERT_EQ(k.begin_free(s, r), 0);
    EXPECT_EQ(k.finish_free(s, r, 1), nullptr);
    EXPECT_FALSE(s->held_code(r));  // freed (and trap-filled): unrun again
    EXPECT_TRUE(Valid(cls));
    uint8_t *again = take_live(40, false, &from);
    EXPECT_EQ(again, reserved);
    EXPECT_FALSE(s->held_code(r));
    // A free object marked as holding code is caught by the checker.
    ASSERT_EQ(k.begin_free(s, r), 0);
    EXPECT_EQ(k.finish_free(s, r, 1), nullptr);
    s->mark_written(r, 8);
    EXPECT_TRUE(CheckFails(cls, "free object marked as holding code"));
}

// code_end: an object's requested length, or its whole size once a write went past it;
// freed (trap-filled) it forgets both; taken again it starts from its new length.
TEST_F(SlabTest, CodeEndFollowsWritesPastTheRequestedLength) {
    const unsigned cls = 3;
    Slab *s = new_slab(cls, 0);
    Slab *from = nullptr;
    uint8_t *p = take_live(20, true, &from);
    ASSERT_NE(p, nullptr);
    unsigned i = static_cast<unsigned>(s->index_of(p));
    ASSERT_GT(s->size, 20u);
    EXPECT_EQ(s->code_end(i), 20u);
    s->mark_written(i, 20);  // within the code: nothing changes
    EXPECT_EQ(s->code_end(i), 20u);
    s->mark_written(i, 21);  // one byte past it: the whole object may hold code
    EXPECT_TRUE(s->is_wide(i));
    EXPECT_EQ(s->code_end(i), s->size);
    ASSERT_EQ(k.begin_free(s, i), 0);
    EXPECT_EQ(k.finish_free(s, i, 1), nullptr);
    EXPECT_FALSE(s->is_wide(i));
    EXPECT_TRUE(Valid(cls));
    uint8_t *again = take_live(12, true, &from);
    EXPECT_EQ(again, p);
    EXPECT_EQ(s->code_end(i), 12u);
}

TEST_F(SlabTest, EmptySlabsAreCachedWithHysteresis) {
    const unsigned cls = kNumClasses - 1;
    const SizeClass &sc = size_class(cls);
    Slab *a = new_slab(cls, 0);
    Slab *b = new_slab(cls, sc.pages);
    Slab *from = nullptr;
    std::vector<std::pair<Slab *, uint8_t *>> objs;
    for (unsigned i = 0; i < 2u * sc.objects; i++) {
        uint8_t *p = take_live(kMaxSlabSize, true, &from);
        ASSERT_NE(p, nullptr);
        objs.push_back({from, p});
    }
    EXPECT_EQ(a->list, SlabClass::kFull);
    EXPECT_EQ(b->list, SlabClass::kFull);
    std::vector<Slab *> returned;
    for (auto [s, p] : objs) {
        unsigned i = static_cast<unsigned>(s->index_of(p));
        ASSERT_EQ(k.begin_free(s, i), 0);
        if (Slab *dead = k.finish_free(s, i, /*keep_empty=*/1))
            returned.push_back(dead);
    }
    // The first slab to empty stays cached; the second goes back to the caller.
    ASSERT_EQ(returned.size(), 1u);
    EXPECT_EQ(k.slabs(), 1u);
    EXPECT_EQ(k.objects_avail(), sc.objects);
    EXPECT_TRUE(Valid(cls));
    slab_delete(returned[0]);

    Slab *cached = k.pop_empty();
    ASSERT_NE(cached, nullptr);
    EXPECT_EQ(k.pop_empty(), nullptr);
    EXPECT_EQ(k.slabs(), 0u);
    EXPECT_EQ(k.objects_avail(), 0u);
    EXPECT_TRUE(Valid(cls));
    slab_delete(cached);
}

TEST_F(SlabTest, PopAnyTakesSlabsWithLiveObjects) {
    const unsigned cls = 1;
    new_slab(cls, 0);
    Slab *from = nullptr;
    ASSERT_NE(take_live(20, true, &from), nullptr);
    Slab *s = k.pop_any();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(k.objects_live(), 0u);
    EXPECT_EQ(k.objects_avail(), 0u);
    EXPECT_EQ(k.requested(), 0u);
    EXPECT_TRUE(Valid(cls));
    slab_delete(s);
}

// The checker must be able to fail.
TEST_F(SlabTest, CheckDetectsCodeLeftInAFreeObject) {
    const unsigned cls = 2;
    Slab *s = new_slab(cls, 0);
    s->object(3)[7] = 0x90;
    EXPECT_TRUE(CheckFails(cls, "non-trap"));
}

TEST_F(SlabTest, CheckDetectsBothBitsSet) {
    const unsigned cls = 2;
    Slab *s = new_slab(cls, 0);
    s->live[0] |= 1;  // object 0 is also avail
    EXPECT_TRUE(CheckFails(cls, "both free and live"));
    s->live[0] &= ~uint64_t{1};
}

TEST_F(SlabTest, CheckDetectsCountMismatch) {
    const unsigned cls = 2;
    Slab *s = new_slab(cls, 0);
    Slab *from = nullptr;
    ASSERT_NE(take_live(30, true, &from), nullptr);
    s->requested += 1;
    EXPECT_TRUE(CheckFails(cls, "counts disagree"));
    s->requested -= 1;
}

TEST_F(SlabTest, CheckDetectsForeignPageDescriptor) {
    const unsigned cls = 2;
    new_slab(cls, 0);
    chunk->pages[0].slab_key.store(slab_key_of(0, 3));
    EXPECT_TRUE(CheckFails(cls, "page descriptor"));
}

TEST_F(SlabTest, CheckDetectsSlabOfAnotherShard) {
    const unsigned cls = 2;
    new_slab(cls, 0);
    std::string msg;
    EXPECT_TRUE(jt::FailedWith(k.check(1, cls, msg), msg, "another shard"));
}

TEST_F(SlabTest, CheckDetectsWrongClass) {
    new_slab(2, 0);
    EXPECT_TRUE(CheckFails(4, "slab on the wrong list"));
}

}  // namespace
