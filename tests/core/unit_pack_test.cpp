// Unit tests of packs (src/pack) on a fake chunk backed by heap memory (the checker reads
// free units to verify they hold trap bytes; nothing is mapped ROX).
#include "pack/pack.h"

#include "fake_chunk.h"
#include "helpers.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace jitalloc;

namespace {

class PackTest : public ::testing::Test {
protected:
    jt::FakeChunk fake;
    Chunk *const chunk = fake.chunk.get();
    uint8_t *const mem = fake.mem;
    PackSet set;

    void SetUp() override { ASSERT_NE(mem, nullptr); }
    void TearDown() override {
        while (Pack *p = set.pop_any())
            pack_delete(p);
    }
    Pack *new_pack(unsigned first_page) {
        Pack *p = pack_new(chunk, first_page);
        EXPECT_NE(p, nullptr);
        set.add(p);
        return p;
    }
    ::testing::AssertionResult Valid() {
        std::string msg;
        bool ok = set.check(msg);
        return jt::Checked(ok, msg);
    }
    ::testing::AssertionResult CheckFails(const char *what) {
        std::string msg;
        bool ok = set.check(msg);
        return jt::FailedWith(ok, msg, what);
    }
    // Reserves a run, lays out objects of `lens` bytes in it and publishes them.
    std::vector<PackObject> load(const std::vector<uint32_t> &lens, PackRun *out = nullptr) {
        unsigned total = 0;
        for (uint32_t len : lens)
            total += (len + 15) / 16;
        PackRun r;
        EXPECT_TRUE(set.reserve(total, kPackReserveUnits, r));
        EXPECT_EQ(r.units, total) << "a reservation holds what it needs";
        std::vector<PackObject> objs;
        unsigned u = r.first;
        for (uint32_t len : lens) {
            unsigned n = (len + 15) / 16;
            objs.push_back({u, n, len, true});
            u += n;
        }
        EXPECT_LE(u, r.first + r.units);
        EXPECT_EQ(set.publish(r, objs.data(), objs.size(), u), nullptr);
        if (out)
            *out = r;
        return objs;
    }
};

TEST_F(PackTest, NewPackClaimsItsPagesAndIsCachedEmpty) {
    Pack *p = new_pack(128);
    EXPECT_EQ(p->base, mem + 128 * kPageSize);
    for (unsigned pg = 128; pg < 128 + kPackPages; pg++) {
        EXPECT_EQ(chunk->pages[pg].state.load(), PageState::pack);
        EXPECT_EQ(chunk->pages[pg].owner.load(), p);
    }
    EXPECT_EQ(set.packs(), 1u);
    EXPECT_EQ(set.bytes_free(), kPackPages * kPageSize);
    EXPECT_TRUE(p->cached_empty);
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, ObjectsLieBackToBackAndKnowTheirExtent) {
    Pack *p = new_pack(0);
    auto objs = load({100, 16, 1, 4096, 33});
    EXPECT_EQ(objs[0].unit, 0u);
    EXPECT_EQ(objs[1].unit, 7u);   // 100 B: 7 units
    EXPECT_EQ(objs[2].unit, 8u);
    EXPECT_EQ(objs[3].unit, 9u);
    EXPECT_EQ(objs[4].unit, 9u + 256);
    for (const PackObject &o : objs) {
        EXPECT_EQ(p->extent(o.unit), o.units);
        EXPECT_EQ(p->requested_of(o.unit), o.requested);
        EXPECT_EQ(p->live_object(o.unit, true), static_cast<int>(o.unit));
        EXPECT_EQ(p->live_object(o.unit + o.units - 1, false), static_cast<int>(o.unit));
    }
    EXPECT_EQ(p->live_object(1, true), -1);                 // interior: not a start
    EXPECT_EQ(p->live_object(9 + 256 + 3, false), -1);      // past the last object
    EXPECT_EQ(set.objects_live(), 5u);
    EXPECT_EQ(set.requested(), 100u + 16 + 1 + 4096 + 33);
    EXPECT_EQ(set.bytes_live(), (7u + 1 + 1 + 256 + 3) * 16);
    EXPECT_EQ(p->nused, 7u + 1 + 1 + 256 + 3);  // the reservation's rest was released
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, AReservationIsNotLiveAndEndsTheObjectBeforeIt) {
    Pack *p = new_pack(0);
    auto objs = load({64});
    PackRun r;
    ASSERT_TRUE(set.reserve(2, 8, r));
    EXPECT_EQ(r.first, 4u);  // right after the object
    EXPECT_EQ(r.units, 2u);
    EXPECT_EQ(p->extent(0), 4u) << "the reservation's start bit ends the object";
    EXPECT_EQ(p->live_object(r.first, true), -1);
    EXPECT_EQ(p->live_object(r.first + 3, false), -1);
    ASSERT_TRUE(set.extend(r, 4, 100));
    EXPECT_EQ(r.units, 102u);
    EXPECT_TRUE(Valid());
    EXPECT_EQ(set.release(p, r.first, r.units), nullptr);
    EXPECT_EQ(p->nused, 4u);
    EXPECT_EQ(p->extent(0), 4u);
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, ReserveTakesTheWantedRunOrTheLongestThatFits) {
    Pack *p = new_pack(0);
    // Objects at units [0, 10), [20, 30) ... : free runs of 10 units between them.
    PackRun all;
    ASSERT_TRUE(set.reserve(kPackUnits, kPackUnits, all));
    std::vector<PackObject> objs;
    for (unsigned u = 0; u + 20 <= kPackUnits; u += 20)
        objs.push_back({u, 10, 160, false});
    const unsigned last = objs.back().unit + 20;
    objs.push_back({last, kPackUnits - last, 16 * (kPackUnits - last), false});
    // Publish the objects, then free the gap after each (by hand: a batch's objects lie
    // back to back).
    ASSERT_EQ(set.publish(all, objs.data(), objs.size(), kPackUnits), nullptr);
    for (size_t i = 0; i + 1 < objs.size(); i++)
        set.release(p, objs[i].unit + 10, 10);
    EXPECT_TRUE(Valid());
    PackRun r;
    EXPECT_FALSE(set.reserve(11, 11, r)) << "no 11 free units in a row";
    ASSERT_TRUE(set.reserve(3, 64, r));
    EXPECT_EQ(r.units, 3u) << "in the longest run that fits";
    EXPECT_EQ(r.first % 20, 10u);
    EXPECT_FALSE(set.extend(r, 8, 100)) << "only 7 free units follow";
    ASSERT_TRUE(set.extend(r, 1, 100));
    EXPECT_EQ(r.units, 10u) << "grown by what was free";
    EXPECT_FALSE(set.extend(r, 1, 1)) << "an object follows";
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, FreeInTwoHalvesAndAbort) {
    Pack *p = new_pack(0);
    auto objs = load({48, 200, 48});
    const PackObject &mid = objs[1];
    EXPECT_EQ(set.begin_free(p, mid.unit + 1), EINVAL) << "not a start";
    ASSERT_EQ(set.begin_free(p, mid.unit), 0);
    EXPECT_EQ(set.begin_free(p, mid.unit), EINVAL) << "twice";
    EXPECT_EQ(p->live_object(mid.unit, true), -1);
    EXPECT_EQ(p->extent(objs[0].unit), objs[0].units) << "transit still bounds its neighbour";
    EXPECT_EQ(set.objects_live(), 2u);
    set.abort_free(p, mid.unit, mid.requested, true);
    EXPECT_TRUE(p->held_code(mid.unit));
    EXPECT_EQ(p->requested_of(mid.unit), 200u);
    EXPECT_TRUE(Valid());
    ASSERT_EQ(set.begin_free(p, mid.unit), 0);
    EXPECT_EQ(set.finish_free(p, mid.unit, mid.units), nullptr);
    EXPECT_EQ(p->extent(objs[0].unit), objs[0].units);
    EXPECT_EQ(p->live_object(mid.unit + 2, false), -1) << "a hole now";
    EXPECT_TRUE(Valid());
    const unsigned tail = objs[2].unit + objs[2].units;
    PackRun rest, r;
    ASSERT_TRUE(set.reserve(kPackUnits - tail, kPackUnits, rest));  // all after the objects
    EXPECT_EQ(rest.first, tail);
    ASSERT_TRUE(set.reserve(mid.units, kPackUnits, r));
    EXPECT_EQ(r.first, mid.unit) << "the hole is reused (no other free run)";
    EXPECT_EQ(r.units, mid.units);
    EXPECT_TRUE(Valid());
    set.release(p, r.first, r.units);
    set.release(p, rest.first, rest.units);
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, ShrinkFreesWholeUnitsOfTheTail) {
    Pack *p = new_pack(0);
    auto objs = load({1000});
    EXPECT_EQ(set.shrink(p, 0, 62, 1000), EINVAL) << "1000 B need 63 units";
    EXPECT_EQ(set.shrink(p, 0, 64, 1010), EINVAL) << "cannot grow";
    ASSERT_EQ(set.shrink(p, 0, 7, 100), 0);
    EXPECT_EQ(p->extent(0), 7u);
    EXPECT_EQ(p->requested_of(0), 100u);
    EXPECT_EQ(set.bytes_live(), 7u * 16);
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, APackThatBecomesEmptyIsRetiredWhenAnotherIsCached) {
    new_pack(0);
    new_pack(128);
    EXPECT_EQ(set.packs(), 2u);
    PackRun r;
    ASSERT_TRUE(set.reserve(1, 64, r));
    EXPECT_FALSE(r.pack->cached_empty);
    EXPECT_TRUE(Valid());
    Pack *dead = set.release(r.pack, r.first, r.units);
    EXPECT_EQ(dead, r.pack) << "the other pack is still cached empty";
    EXPECT_EQ(set.packs(), 1u);
    pack_delete(dead);
    EXPECT_TRUE(Valid());
    // The last empty pack stays cached.
    ASSERT_TRUE(set.reserve(1, 64, r));
    EXPECT_EQ(set.release(r.pack, r.first, r.units), nullptr);
    EXPECT_EQ(set.packs(), 1u);
    EXPECT_TRUE(Valid());
}

TEST_F(PackTest, CheckFindsBrokenBitmapsCountsAndTraps) {
    Pack *p = new_pack(0);
    auto objs = load({64, 64});
    p->live[0] |= uint64_t{1} << 1;  // live inside an object, no start bit
    EXPECT_TRUE(CheckFails("not nested"));
    p->live[0] &= ~(uint64_t{1} << 1);
    p->nlive++;
    EXPECT_TRUE(CheckFails("counts disagree"));
    p->nlive--;
    EXPECT_TRUE(Valid());
    mem[100 * 16] = 0x90;  // a free unit with a non-trap byte
    EXPECT_TRUE(CheckFails("non-trap"));
    jt_traps::fill_traps(mem + 100 * 16, 16);
    EXPECT_TRUE(Valid());
}

}  // namespace
