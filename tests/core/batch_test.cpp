// Batches (jit_batch_*, jitalloc::Batch): many writes made at one commit.
//
//  - contents: after commit every allocation reads as its code followed by traps up to
//    jit_size, updates land, code runs; before commit nothing is live;
//  - few kernel writes: allocations of one size class are consecutive and become one
//    write; adjacent live updates merge (pwrite calls counted through the os seam);
//  - serialisation: none for new code and first writes into reservations, exactly one per
//    batch that rewrites code that has run (membarrier calls counted, a second thread runs
//    JIT code);
//  - errors, all or nothing: bad input adds nothing and leaves the batch usable; a commit
//    failing at any kernel write (fault injection, every strict writer) leaves no
//    allocation, live code unchanged, the arena consistent; abort gives everything back;
//  - W^X after batches on every writer; threads running batches, jit_alloc and jit_free
//    at once; lazy trap fill (stale objects overwritten whole); the C++ API.
#include "helpers.h"

#include <jitalloc/jitalloc.hpp>

#include "os/os.h"

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>

namespace os = jitalloc::os;
using namespace jt;

namespace {

struct WriteCount : CallCount {
    WriteCount() : CallCount(os::Call::pwrite) {}
};
struct MembarrierCount : CallCount {
    MembarrierCount() : CallCount(os::Call::membarrier) {}
};

struct BatchHolder {
    explicit BatchHolder(jit_arena *a) : b(jit_batch_create(a)) {}
    ~BatchHolder() { jit_batch_destroy(b); }
    operator jit_batch *() const { return b; }
    jit_batch *b;
};

// Code of a given length that returns `value` (>= 6 bytes), the rest nops.
std::vector<uint8_t> fn_code(int value, size_t len) { return ret_imm(value, len < 6 ? 6 : len); }

// Every allocation reads as its code then traps up to its usable size.
::testing::AssertionResult Holds(void *p, const std::vector<uint8_t> &code) {
    size_t usable = jit_size(p);
    if (usable < code.size())
        return ::testing::AssertionFailure() << "jit_size " << usable << " < " << code.size();
    if (!code.empty() && !same_bytes(p, code))
        return ::testing::AssertionFailure() << "code differs at " << p;
    if (!all_traps(static_cast<uint8_t *>(p) + code.size(), usable - code.size()))
        return ::testing::AssertionFailure() << "tail is not traps at " << p;
    return ::testing::AssertionSuccess();
}

class BatchWriters : public ::testing::TestWithParam<jit_writer> {};

TEST_P(BatchWriters, AllocationsHoldTheirCodeAfterCommitAndNothingIsLiveBefore) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    BatchHolder b(a);
    ASSERT_NE(b.b, nullptr);
    std::mt19937 rng(42);
    std::vector<std::pair<void *, std::vector<uint8_t>>> fns;
    for (int i = 0; i < 300; i++) {
        // 64..512 B functions, a few page runs, and reservations.
        size_t len = i % 50 == 49 ? 70 * KiB + i : 64 + rng() % 449;
        auto code = fn_code(i, len);
        bool reserve = i % 10 == 3;
        void *p = jit_batch_alloc(b, reserve ? nullptr : code.data(), len, "f");
        ASSERT_NE(p, nullptr) << i;
        EXPECT_EQ(jit_size(p), 0u) << "a batch allocation is live before the commit";
        EXPECT_EQ(jit_free(p), -1);
        EXPECT_EQ(errno, EINVAL);
        fns.push_back({p, reserve ? std::vector<uint8_t>() : code});
    }
    struct jit_stats before = stats_of(a);
    EXPECT_EQ(before.allocations, 0u);
    ASSERT_EQ(jit_batch_commit(b), 0);
    struct jit_stats after = stats_of(a);
    EXPECT_EQ(after.allocations, fns.size());
    EXPECT_EQ(after.total_allocs, fns.size());
    std::set<uintptr_t> starts;
    for (size_t i = 0; i < fns.size(); i++) {
        auto &[p, code] = fns[i];
        EXPECT_TRUE(starts.insert(reinterpret_cast<uintptr_t>(p)).second);
        EXPECT_TRUE(Holds(p, code)) << i;
        if (!code.empty()) {
            EXPECT_EQ(call_int(p), static_cast<int>(i));
        }
    }
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_TRUE(wx_mappings().empty() || GetParam() == JIT_WRITER_PERSISTENT_ALIAS);
    for (auto &f : fns)
        EXPECT_EQ(jit_free(f.first), 0);
    EXPECT_TRUE(ArenaOk(a));
}

TEST_P(BatchWriters, UpdatesOfLiveCodeAndOfTheBatchsOwnAllocationsLand) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> live;
    for (int i = 0; i < 8; i++) {
        auto code = add_imm(i, 64);
        live.push_back(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(live.back(), nullptr);
    }
    BatchHolder b(a);
    auto fresh = add_imm(0, 100);
    void *q = jit_batch_alloc(b, fresh.data(), fresh.size(), nullptr);
    ASSERT_NE(q, nullptr);
    for (int i = 0; i < 8; i++) {
        int32_t imm = 100 + i;
        ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(live[i]) + kAddImmOff, &imm, 4), 0);
    }
    int32_t imm = 1000;  // a "relocation" into the batch's own allocation
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(q) + kAddImmOff, &imm, 4), 0);
    for (int i = 0; i < 8; i++)
        EXPECT_TRUE(same_bytes(live[i], add_imm(i, 64))) << "written before the commit";
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_TRUE(Holds(q, add_imm(1000, 100)));
    for (int i = 0; i < 8; i++)
        EXPECT_TRUE(Holds(live[i], add_imm(100 + i, 64))) << i;
    {
        EXPECT_EQ(call_int(q, 1), 1001);
        EXPECT_EQ(call_int(live[3], 1), 104);
    }
    EXPECT_EQ(stats_of(a).total_updates, 9u);
    EXPECT_EQ(jit_free(q), 0);
    for (void *p : live)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(Writers, BatchWriters, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

// Writers that go through the kernel: a batch of functions of one size is one write.
class BatchKernelWrites : public ::testing::TestWithParam<jit_writer> {};

TEST_P(BatchKernelWrites, ConsecutiveAllocationsAndAdjacentUpdatesBecomeOneWrite) {
    jit_arena_options o = options(GetParam());
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    BatchHolder b(a);
    std::vector<void *> ps;
    for (int i = 0; i < 32; i++) {
        auto code = fn_code(i, 60);  // one class (64 B), a fresh slab: consecutive objects
        ps.push_back(jit_batch_alloc(b, code.data(), code.size(), nullptr));
        ASSERT_NE(ps.back(), nullptr);
    }
    {
        WriteCount count;
        ASSERT_EQ(jit_batch_commit(b), 0);
        EXPECT_EQ(count.calls(), 1u) << "32 consecutive 64-byte functions";
    }
    for (int i = 0; i < 32; i++)
        EXPECT_TRUE(Holds(ps[i], fn_code(i, 60)));
    // Updates of the first byte after each function's code: 32 adjacent-by-object
    // updates that cover whole objects merge; scattered ones do not.
    for (int i = 0; i < 32; i++) {
        std::vector<uint8_t> whole = fn_code(i + 100, jit_size(ps[i]));
        ASSERT_EQ(jit_batch_update(b, ps[i], whole.data(), whole.size()), 0);
    }
    {
        WriteCount count;
        ASSERT_EQ(jit_batch_commit(b), 0);
        EXPECT_EQ(count.calls(), 1u) << "updates of 32 whole adjacent objects";
    }
    for (int i = 0; i < 32; i++)
        EXPECT_TRUE(same_bytes(ps[i], fn_code(i + 100, jit_size(ps[i]))));
    for (int i = 0; i < 32; i += 2) {
        uint8_t x = 0x5a;  // after the ret: never run
        ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(ps[i]) + 6, &x, 1), 0);
    }
    {
        WriteCount count;
        ASSERT_EQ(jit_batch_commit(b), 0);
        EXPECT_EQ(count.calls(), 16u) << "16 scattered one-byte updates";
    }
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
}

TEST_P(BatchKernelWrites, AThousandMixedFunctionsTakeFewWrites) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    BatchHolder b(a);
    std::mt19937 rng(7);
    std::vector<void *> ps;
    std::vector<size_t> lens;
    size_t packed = 0;  // 16-byte units, the pack's layout
    for (int i = 0; i < 1000; i++) {
        lens.push_back(64 + rng() % 449);
        auto code = fn_code(i, lens.back());
        ps.push_back(jit_batch_alloc(b, code.data(), code.size(), nullptr));
        ASSERT_NE(ps.back(), nullptr);
        packed += (lens.back() + 15) / 16 * 16;
    }
    // Laid out back to back whatever their sizes (a pack, src/pack), each 16-byte aligned.
    size_t apart = 0;
    for (int i = 1; i < 1000; i++)
        apart += static_cast<uint8_t *>(ps[i]) != static_cast<uint8_t *>(ps[i - 1]) + (lens[i - 1] + 15) / 16 * 16;
    EXPECT_EQ(apart, 0u);
    WriteCount count;
    ASSERT_EQ(jit_batch_commit(b), 0);
    // ~290 KiB in one range of a fresh 512 KiB pack: one kernel write (one per 64 KiB
    // for a gathering writer would be 5; one per function 1 000).
    EXPECT_LE(count.calls(), 5u);
    struct jit_stats st = stats_of(a);
    EXPECT_EQ(st.allocations, 1000u);
    EXPECT_EQ(st.bytes_in_use, packed);
    EXPECT_TRUE(ArenaOk(a));
    for (int i = 0; i < 1000; i++) {
        EXPECT_EQ(jit_size(ps[i]), (lens[i] + 15) / 16 * 16);
        EXPECT_TRUE(Holds(ps[i], fn_code(i, lens[i]))) << i;
    }
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_TRUE(ArenaOk(a));
}

// One range made of many pieces: 100 updates of a 200 KiB allocation staged back to
// front (none continues the run before it, so each is a piece of its own), merged at the
// commit into one range that is longer than a gathering write (the proc_mem writer
// copies the pieces into 64 KiB writes: /proc/self/mem writes each vector apart). Every
// byte lands, also when every kernel write transfers only half of what was asked.
TEST_P(BatchKernelWrites, ARangeOfManyPiecesLandsWholeAlsoWithShortWrites) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    constexpr size_t kPiece = 2048 + 16, kPieces = 100, kLen = kPiece * kPieces;
    void *p = jit_arena_alloc(a, nullptr, kLen);
    ASSERT_NE(p, nullptr);
    auto *at = static_cast<uint8_t *>(p);
    for (bool short_writes : {false, true}) {
        SCOPED_TRACE(short_writes ? "short writes" : "whole writes");
        BatchHolder b(a);
        std::vector<uint8_t> want(kLen);
        for (size_t i = kPieces; i-- > 0;) {
            auto piece = pattern(kPiece, static_cast<uint32_t>(i + (short_writes ? 1000 : 0)));
            std::copy(piece.begin(), piece.end(), want.begin() + static_cast<ptrdiff_t>(i * kPiece));
            ASSERT_EQ(jit_batch_update(b, at + i * kPiece, piece.data(), piece.size()), 0);
        }
        os::Fault f;
        f.nth = 1;
        f.mask = os::mask_of(os::Call::pwrite);
        f.sticky = true;
        f.short_io = true;
        if (short_writes)
            os::set_fault(f);
        EXPECT_EQ(jit_batch_commit(b), 0);
        if (short_writes) {
            EXPECT_GT(os::faults_injected(), 1u);
        }
        os::clear_fault();
        EXPECT_TRUE(same_bytes(p, want));
    }
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(Writers, BatchKernelWrites,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(Batch, SerialisesOnceAndOnlyWhenCodeThatRanIsRewritten) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    ASSERT_EQ(stats_of(a).sync_core, 1u) << "membarrier SYNC_CORE not available here";
    auto spin = ret_imm(7, 64);
    void *spin_fn = jit_arena_alloc(a, spin.data(), spin.size());
    ASSERT_NE(spin_fn, nullptr);
    Runner runner(spin_fn);
    std::vector<void *> reservations, live;
    for (int i = 0; i < 4; i++) {
        reservations.push_back(jit_arena_alloc(a, nullptr, 64));
        auto code = ret_imm(i, 64);
        live.push_back(jit_arena_alloc(a, code.data(), code.size()));
    }
    BatchHolder b(a);
    MembarrierCount count;
    // New code and first writes into reservations: nothing to serialise on x86-64, one
    // serialisation for the commit where fresh code needs it (arm64).
    for (int i = 0; i < 50; i++) {
        auto code = ret_imm(i, 64 + i);
        ASSERT_NE(jit_batch_alloc(b, code.data(), code.size(), nullptr), nullptr);
    }
    for (int i = 0; i < 4; i++) {
        auto code = ret_imm(10 + i, 64);
        ASSERT_EQ(jit_batch_update(b, reservations[i], code.data(), code.size()), 0);
    }
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(count.calls(), kFreshCodeSerialises);
    EXPECT_EQ(call_int(reservations[2]), 12);
    // Rewriting code that has held code: one serialisation for the whole batch.
    for (int i = 0; i < 4; i++) {
        int32_t imm = 20 + i;
        ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(live[i]) + kRetImmOff, &imm, 4), 0);
        ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(reservations[i]) + kRetImmOff, &imm, 4), 0);
    }
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(count.calls(), kFreshCodeSerialises + 1);
    EXPECT_EQ(call_int(live[1]), 21);
    EXPECT_EQ(call_int(reservations[3]), 23);
}

TEST(Batch, BadInputAddsNothingAndTheBatchStaysUsable) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    auto code = fn_code(5, 64);
    void *live = jit_arena_alloc(a, code.data(), code.size());
    void *other_live = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_TRUE(live && other_live);
    ArenaHolder other(JIT_WRITER_PROC_MEM);
    void *foreign = jit_arena_alloc(other, code.data(), code.size());
    ASSERT_NE(foreign, nullptr);
    BatchHolder b(a);
    void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
    ASSERT_NE(p, nullptr);
    uint8_t x = 0x90;
    uint8_t big[200] = {};
    auto einval = [](long rc) { return rc == -1 && errno == EINVAL; };
    EXPECT_TRUE(einval(jit_batch_alloc(nullptr, code.data(), 64, nullptr) ? 0 : -1));
    EXPECT_TRUE(einval(jit_batch_alloc(b, code.data(), 0, nullptr) ? 0 : -1));
    EXPECT_TRUE(einval(jit_batch_alloc(b, code.data(), JIT_MAX_ALLOC_SIZE + 1, nullptr) ? 0 : -1));
    EXPECT_TRUE(einval(jit_batch_update(nullptr, live, &x, 1)));
    EXPECT_TRUE(einval(jit_batch_update(b, nullptr, &x, 1)));
    EXPECT_TRUE(einval(jit_batch_update(b, live, nullptr, 1)));
    EXPECT_TRUE(einval(jit_batch_update(b, live, &x, 0)));
    EXPECT_TRUE(einval(jit_batch_update(b, foreign, &x, 1))) << "another arena's code";
    EXPECT_TRUE(einval(jit_batch_update(b, &x, &x, 1))) << "not code memory";
    EXPECT_TRUE(einval(jit_batch_update(b, static_cast<uint8_t *>(live) + jit_size(live) - 1, &x, 2)))
        << "past the end of a live allocation";
    EXPECT_TRUE(einval(jit_batch_update(b, static_cast<uint8_t *>(p) + 10, big, sizeof big)))
        << "past the end of the batch's own allocation";
    EXPECT_TRUE(einval(jit_batch_commit(nullptr)));
    // Overlapping live updates: the second is refused, the first stays.
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(live) + 8, &x, 1), 0);
    uint8_t two[2] = {0x90, 0x90};
    EXPECT_TRUE(einval(jit_batch_update(b, static_cast<uint8_t *>(live) + 7, two, 2)));
    EXPECT_TRUE(einval(jit_batch_update(b, static_cast<uint8_t *>(live) + 8, &x, 1)));
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(live) + 9, &x, 1), 0);  // adjacent: fine
    // Nothing of the refused calls happened; what was added is committed.
    EXPECT_EQ(stats_of(a).allocations, 2u);
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(stats_of(a).allocations, 3u);
    EXPECT_TRUE(Holds(p, code));
    auto expect = code;
    expect[8] = expect[9] = 0x90;
    EXPECT_TRUE(same_bytes(live, expect));
    EXPECT_TRUE(same_bytes(other_live, code));
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_batch_commit(b), 0) << "an empty batch commits";
    jit_batch_abort(nullptr);
    jit_batch_destroy(nullptr);
}

TEST(Batch, CommitFailsWhenAnUpdatedAllocationWasFreedAndChangesNothing) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    auto code = fn_code(1, 64);
    void *keep = jit_arena_alloc(a, code.data(), code.size());
    void *gone = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_TRUE(keep && gone);
    BatchHolder b(a);
    void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
    ASSERT_NE(p, nullptr);
    uint8_t x = 0x90;
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(keep) + 6, &x, 1), 0);
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(gone) + 6, &x, 1), 0);
    ASSERT_EQ(jit_free(gone), 0);
    struct jit_stats before = stats_of(a);
    EXPECT_EQ(jit_batch_commit(b), -1);
    EXPECT_EQ(errno, EINVAL);
    struct jit_stats after = stats_of(a);
    EXPECT_EQ(after.allocations, before.allocations);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
    EXPECT_EQ(after.total_allocs, before.total_allocs);
    EXPECT_EQ(after.total_updates, before.total_updates);
    EXPECT_TRUE(same_bytes(keep, code)) << "the other update was made";
    EXPECT_EQ(jit_size(p), 0u);
    EXPECT_TRUE(all_traps(p, 64));
    EXPECT_TRUE(ArenaOk(a));
    // The memory went back: the next allocation of that size may take it.
    EXPECT_EQ(jit_batch_commit(b), 0) << "the batch is empty and usable again";
    EXPECT_EQ(jit_free(keep), 0);
}

TEST(Batch, AbortGivesEverythingBack) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    auto code = fn_code(3, 64);
    void *live = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(live, nullptr);
    struct jit_stats before = stats_of(a);
    BatchHolder b(a);
    std::vector<uint8_t> src = pattern(3 * MiB, 1);
    std::vector<void *> ps;
    for (int i = 0; i < 20; i++)
        ps.push_back(jit_batch_alloc(b, src.data(), 64 + i * 100, nullptr));
    ps.push_back(jit_batch_alloc(b, src.data(), 100 * KiB, nullptr));  // page run
    ps.push_back(jit_batch_alloc(b, src.data(), 3 * MiB, nullptr));    // large
    for (void *p : ps)
        ASSERT_NE(p, nullptr);
    uint8_t x = 0x90;
    ASSERT_EQ(jit_batch_update(b, static_cast<uint8_t *>(live) + 6, &x, 1), 0);
    jit_batch_abort(b);
    EXPECT_TRUE(same_bytes(live, code));
    for (void *p : ps)
        EXPECT_EQ(jit_size(p), 0u);
    struct jit_stats after = stats_of(a);
    EXPECT_EQ(after.allocations, before.allocations);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
    EXPECT_TRUE(ArenaOk(a));
    // The pack units are free again: the next batch is laid out at the same address.
    BatchHolder b2(a);
    void *again = jit_batch_alloc(b2, code.data(), 64, nullptr);
    EXPECT_EQ(again, ps[0]);
    ASSERT_EQ(jit_batch_commit(b2), 0);
    EXPECT_EQ(jit_free(again), 0);
    EXPECT_EQ(jit_free(live), 0);
}

// A thread keeps the batch it destroyed for its next jit_batch_create (batch/spare.h):
// the batch it gets again belongs to the arena it is made for, holds nothing of its
// previous life (not committed, given back, or aborted), and a batch destroyed on
// another thread, or after a very large batch, is as good.
TEST(Batch, DestroyedBatchesComeBackEmptyForAnyArena) {
    ArenaHolder a(JIT_WRITER_PROC_MEM), b(JIT_WRITER_MEMFD);
    ASSERT_NE(a.get(), nullptr);
    ASSERT_NE(b.get(), nullptr);
    auto code = fn_code(7, 200);
    // Left uncommitted in arena a: destroying it gives its memory back.
    jit_batch *first = jit_batch_create(a);
    ASSERT_NE(first, nullptr);
    void *dropped = jit_batch_alloc(first, code.data(), code.size(), nullptr);
    ASSERT_NE(dropped, nullptr);
    jit_batch_destroy(first);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_EQ(stats_of(a).bytes_in_use, 0u);
    // The next batch, for arena b, allocates from b and commits only its own work.
    jit_batch *second = jit_batch_create(b);
    ASSERT_NE(second, nullptr);
    void *p = jit_batch_alloc(second, code.data(), code.size(), nullptr);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(jit_batch_commit(second), 0);
    EXPECT_EQ(jit_arena_of(p), b.get());
    EXPECT_TRUE(Holds(p, code));
    EXPECT_EQ(call_int(p), 7);
    EXPECT_EQ(jit_size(dropped), 0u);
    EXPECT_EQ(stats_of(a).allocations, 0u);
    EXPECT_EQ(stats_of(b).allocations, 1u);
    // Committing it again, or aborting it, changes nothing.
    EXPECT_EQ(jit_batch_commit(second), 0);
    jit_batch_abort(second);
    EXPECT_EQ(call_int(p), 7);
    // Destroyed on another thread (parked there, freed when it exits) ...
    std::thread([second] { jit_batch_destroy(second); }).join();
    // ... and a batch of 20 000 allocations, too large to keep: later batches still work.
    jit_batch *big = jit_batch_create(a);
    ASSERT_NE(big, nullptr);
    std::vector<void *> many;
    for (int i = 0; i < 20000; i++)
        many.push_back(jit_batch_alloc(big, code.data(), 16, nullptr));
    for (void *q : many)
        ASSERT_NE(q, nullptr);
    ASSERT_EQ(jit_batch_commit(big), 0);
    jit_batch_destroy(big);
    for (int round = 0; round < 3; round++) {
        BatchHolder again(round % 2 ? a : b);
        void *q = jit_batch_alloc(again, code.data(), code.size(), nullptr);
        ASSERT_NE(q, nullptr);
        ASSERT_EQ(jit_batch_commit(again), 0);
        EXPECT_EQ(jit_arena_of(q), round % 2 ? a.get() : b.get());
        EXPECT_EQ(call_int(q), 7);
        EXPECT_EQ(jit_free(q), 0);
    }
    for (void *q : many)
        EXPECT_EQ(jit_free(q), 0);
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_TRUE(ArenaOk(b));
}

// jit_arena_destroy refuses an arena with a batch not yet destroyed (EBUSY) and changes
// nothing: the batch and the arena go on working, and once the batch is destroyed the
// arena can be. (Before, the batch was left pointing at the freed arena.)
TEST(Batch, ArenaWithAnOpenBatchIsNotDestroyed) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    jit_arena *a = jit_arena_create(&o);
    ASSERT_NE(a, nullptr);
    auto code = fn_code(5, 64);
    void *live = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(live, nullptr);
    jit_batch *b = jit_batch_create(a);
    ASSERT_NE(b, nullptr);
    void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
    ASSERT_NE(p, nullptr);
    errno = 0;
    EXPECT_EQ(jit_arena_destroy(a), -1);
    EXPECT_EQ(errno, EBUSY);
    EXPECT_EQ(call_int(live), 5);
    EXPECT_EQ(jit_arena_of(live), a);
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(call_int(p), 5);
    EXPECT_EQ(jit_arena_destroy(a), -1);  // committed, but not destroyed yet
    EXPECT_EQ(errno, EBUSY);
    jit_batch_destroy(b);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_arena_destroy(a), 0);
}

// A commit failing at the k-th kernel write (or mapping change), for every k: nothing of
// the batch happens, live code keeps its bytes, the arena stays consistent and usable.
struct FaultCase {
    jit_writer writer;
    os::Call call;
};

class BatchFaults : public ::testing::TestWithParam<FaultCase> {};

TEST_P(BatchFaults, AFailedCommitChangesNothing) {
    ArenaHolder a(GetParam().writer);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> live;
    std::vector<std::vector<uint8_t>> live_code;
    for (int i = 0; i < 6; i++) {
        live_code.push_back(fn_code(i, 100));
        live.push_back(jit_arena_alloc(a, live_code[i].data(), 100));
        ASSERT_NE(live.back(), nullptr);
    }
    BatchHolder b(a);
    bool succeeded = false;
    int failures = 0;
    for (uint64_t nth = 1; !succeeded && nth < 200; nth++) {
        struct jit_stats before = stats_of(a);
        std::vector<void *> ps;
        for (int i = 0; i < 40; i++) {
            auto code = fn_code(1000 + i, 64 + (i % 4) * 100);
            ps.push_back(jit_batch_alloc(b, code.data(), code.size(), nullptr));
            ASSERT_NE(ps.back(), nullptr);
        }
        for (int i = 0; i < 6; i++) {
            auto code = fn_code(2000 + i, 100);
            ASSERT_EQ(jit_batch_update(b, live[i], code.data(), code.size()), 0);
        }
        os::set_fault({nth, EIO, os::mask_of(GetParam().call), false, false});
        int rc = jit_batch_commit(b);
        int err = errno;
        bool injected = os::faults_injected() > 0;
        os::clear_fault();
        if (rc == 0) {
            succeeded = true;
            for (int i = 0; i < 6; i++)
                EXPECT_TRUE(same_bytes(live[i], fn_code(2000 + i, 100)));
            for (int i = 0; i < 40; i++)
                EXPECT_TRUE(Holds(ps[i], fn_code(1000 + i, 64 + (i % 4) * 100)));
            break;
        }
        failures++;
        ASSERT_TRUE(injected) << "the commit failed without an injected fault";
        EXPECT_EQ(err, EIO) << "at fault " << nth;
        for (int i = 0; i < 6; i++)
            EXPECT_TRUE(same_bytes(live[i], live_code[i])) << "live code changed, fault " << nth;
        for (void *p : ps)
            EXPECT_EQ(jit_size(p), 0u) << "an allocation of the failed batch is live";
        struct jit_stats after = stats_of(a);
        EXPECT_EQ(after.allocations, before.allocations);
        EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
        EXPECT_TRUE(ArenaOk(a)) << "fault " << nth;
    }
    EXPECT_TRUE(succeeded);
    EXPECT_GT(failures, 0);
    for (void *p : live)
        EXPECT_EQ(jit_free(p), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Writers, BatchFaults,
    ::testing::Values(FaultCase{JIT_WRITER_PROC_MEM, os::Call::pwrite},
                      FaultCase{JIT_WRITER_MEMFD, os::Call::pwrite},
                      FaultCase{JIT_WRITER_TEMP_ALIAS, os::Call::mmap},
                      FaultCase{JIT_WRITER_MPROTECT, os::Call::mprotect}),
    [](const auto &info) { return std::string(writer_name(info.param.writer)); });

TEST(Batch, ThreadsRunBatchesWhileOthersAllocateAndFree) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    constexpr int kThreads = 3, kRounds = 30, kPerBatch = 20;
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&, t] {
            jit_batch *b = jit_batch_create(a);
            std::vector<std::pair<void *, std::vector<uint8_t>>> mine;
            for (int r = 0; r < kRounds; r++) {
                for (int i = 0; i < kPerBatch; i++) {
                    auto code = fn_code(t * 100000 + r * 100 + i, 64 + (i * 37) % 400);
                    void *p = jit_batch_alloc(b, code.data(), code.size(), nullptr);
                    if (!p)
                        bad++;
                    else
                        mine.push_back({p, code});
                }
                if (!mine.empty() && r % 3 == 2) {  // also update some of this thread's live code
                    uint8_t x = static_cast<uint8_t>(r);  // after the ret: never run
                    if (jit_batch_update(b, static_cast<uint8_t *>(mine[0].first) + 6, &x, 1) != 0)
                        bad++;
                    mine[0].second[6] = x;
                }
                if (jit_batch_commit(b) != 0)
                    bad++;
                for (size_t k = 0; k + 10 < mine.size(); k++) {  // free all but the newest
                    if (!Holds(mine[k].first, mine[k].second) || jit_free(mine[k].first) != 0)
                        bad++;
                }
                if (mine.size() > 10)
                    mine.erase(mine.begin(), mine.end() - 10);
            }
            for (auto &m : mine)
                if (!Holds(m.first, m.second) || jit_free(m.first) != 0)
                    bad++;
            jit_batch_destroy(b);
        });
    std::thread churn([&] {  // plain allocations and frees in the same arena meanwhile
        for (int i = 0; i < 2000; i++) {
            auto code = fn_code(i, 64 + i % 300);
            void *p = jit_arena_alloc(a, code.data(), code.size());
            if (!p || !Holds(p, code) || jit_free(p) != 0)
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

TEST(Batch, LazyTrapFillArenasOverwriteStaleObjectsWhole) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    // Longer than kPackMaxObject (4 KiB), so the batch takes slab objects, not a pack.
    void *keep = jit_arena_alloc(a, nullptr, 4500);  // keeps the slab (4608-byte class)
    ASSERT_NE(keep, nullptr);
    std::vector<void *> old;
    auto whole = pattern(4608, 3);  // fills its object: no trap tail
    for (int i = 0; i < 8; i++)
        old.push_back(jit_arena_alloc(a, whole.data(), whole.size()));
    for (void *p : old)
        ASSERT_EQ(jit_free(p), 0);  // stale: the bytes stay
    ASSERT_TRUE(same_bytes(old[0], whole));
    BatchHolder b(a);
    std::vector<void *> ps;
    for (int i = 0; i < 8; i++) {
        auto code = fn_code(i, 4300 + i);  // same class, shorter: a trap tail over old bytes
        ps.push_back(jit_batch_alloc(b, code.data(), code.size(), nullptr));
        ASSERT_NE(ps.back(), nullptr);
    }
    EXPECT_EQ(ps[0], old[0]) << "the stale objects were not reused";
    ASSERT_EQ(jit_batch_commit(b), 0);
    for (int i = 0; i < 8; i++)
        EXPECT_TRUE(Holds(ps[i], fn_code(i, 4300 + i))) << i;
    for (void *p : ps)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(keep), 0);
    EXPECT_TRUE(ArenaOk(a));
}

TEST(Batch, CppApi) {
    auto arena = jitalloc::Arena::create(jitalloc::ArenaOptions().writer(jitalloc::Writer::ProcMem));
    ASSERT_TRUE(arena.ok());
    auto batch = jitalloc::Batch::create(arena.value());
    ASSERT_TRUE(batch.ok());
    auto code = fn_code(77, 64);
    auto bytes = std::as_bytes(std::span(code));
    auto p = batch->load(bytes, "f");
    auto r = batch->reserve(100);
    ASSERT_TRUE(p.ok() && r.ok());
    EXPECT_EQ(batch->update(r.value(), bytes), 0);
    EXPECT_EQ(batch->update(nullptr, bytes), EINVAL);
    EXPECT_EQ(batch->commit(), 0);
    jitalloc::Code f(p.value()), g(r.value());
    EXPECT_TRUE(Holds(f.data(), code));
    EXPECT_TRUE(Holds(g.data(), code));
    {
        EXPECT_EQ(f.as<IntFn>()(0), 77);
    }
    auto dropped = batch->load(bytes);
    ASSERT_TRUE(dropped.ok());
    batch->abort();
    EXPECT_EQ(jit_size(dropped.value()), 0u);
}

}  // namespace

// Updates into the batch's own allocations go straight into its staged bytes, so unlike
// live updates they may overlap: the later one's bytes are what the commit writes.
TEST(Batch, OverlappingUpdatesOfTheBatchsOwnAllocationLandInOrder) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    BatchHolder b(a);
    auto code = add_imm(0, 64);
    auto *q = static_cast<uint8_t *>(jit_batch_alloc(b, code.data(), code.size(), nullptr));
    ASSERT_NE(q, nullptr);
    int32_t first = 7, second = 42;
    ASSERT_EQ(jit_batch_update(b, q + kAddImmOff, &first, 4), 0);
    ASSERT_EQ(jit_batch_update(b, q + kAddImmOff, &second, 4), 0);
    ASSERT_EQ(jit_batch_commit(b), 0);
    EXPECT_TRUE(Holds(q, add_imm(42, 64)));
    EXPECT_EQ(call_int(q, 1), 43);
    EXPECT_EQ(jit_free(q), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// A live update staged for an allocation that is then freed, its memory handed out again
// at the same start before the commit: the commit refuses (EINVAL) and leaves the new
// allocation as it is. The start of a live allocation of that size is all a lookup by
// address can see; before the arena told batches of frees (arena/free_watch.h), the
// staged bytes landed in the new allocation. Every layout an allocation can have (slab
// object, page run, pack object of a batch), lazily and eagerly trap-filled, the free on
// this thread or on another one.
namespace {

struct ReuseCase {
    const char *name;
    size_t len;
    bool from_batch;  // allocations made by batches: pack objects up to kPackMaxObject
    bool lazy;        // JIT_ARENA_LAZY_TRAP_FILL
    bool other_thread;  // the free made on another thread
};

void PrintTo(const ReuseCase &c, std::ostream *os) { *os << c.name; }

class BatchFreedTarget : public ::testing::TestWithParam<ReuseCase> {};

TEST_P(BatchFreedTarget, CommitRefusesAnUpdateOfAFreedAllocationWhoseStartIsLiveAgain) {
    const ReuseCase &c = GetParam();
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    if (c.lazy)
        o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    auto alloc = [&](const std::vector<uint8_t> &code) -> uint8_t * {
        void *p = nullptr;
        if (!c.from_batch) {
            p = jit_arena_alloc(a, code.data(), code.size());
        } else {
            BatchHolder one(a);
            p = jit_batch_alloc(one, code.data(), code.size(), nullptr);
            if (p && jit_batch_commit(one) != 0)
                p = nullptr;
        }
        return static_cast<uint8_t *>(p);
    };
    const auto old_code = add_imm(1, c.len), new_code = add_imm(2, c.len);
    uint8_t *below = alloc(old_code);  // so that the freed one is not a chunk's first
    uint8_t *gone = alloc(old_code);
    ASSERT_TRUE(below && gone);
    BatchHolder b(a);
    const int32_t staged = 99;
    ASSERT_EQ(jit_batch_update(b, gone + kAddImmOff, &staged, 4), 0);
    ASSERT_EQ(jit_batch_update(b, below + kAddImmOff, &staged, 4), 0);

    // Freed on another thread, the batch hears of it there; handed out again here (a
    // slab object goes back to its own slab, whose shard is this thread's).
    int freed = -1;
    if (c.other_thread)
        std::thread([&] { freed = jit_free(gone); }).join();
    else
        freed = jit_free(gone);
    ASSERT_EQ(freed, 0);
    uint8_t *again = alloc(new_code);
    ASSERT_EQ(again, gone) << "the arena hands the lowest free address out first";
    ASSERT_EQ(jit_size(again), jit_size(below));

    struct jit_stats before = stats_of(a);
    EXPECT_EQ(jit_batch_commit(b), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_TRUE(Holds(again, new_code)) << "the staged bytes landed in the new allocation";
    EXPECT_EQ(call_int(again, 1), 3);
    EXPECT_TRUE(Holds(below, old_code)) << "all or nothing: the other update was made";
    EXPECT_EQ(stats_of(a).total_updates, before.total_updates);
    EXPECT_TRUE(ArenaOk(a));

    // The batch is usable again and hears of frees no more: an update of the new
    // allocation commits, whatever is freed meanwhile.
    ASSERT_EQ(jit_batch_update(b, again + kAddImmOff, &staged, 4), 0);
    EXPECT_EQ(jit_free(below), 0);
    EXPECT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(call_int(again, 1), 100);
    EXPECT_EQ(jit_free(again), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, BatchFreedTarget,
    ::testing::Values(ReuseCase{"slab", 64, false, false, false},
                      ReuseCase{"slab_lazy", 64, false, true, false},
                      ReuseCase{"slab_other_thread", 192, false, false, true},
                      ReuseCase{"slab_lazy_other_thread", 192, false, true, true},
                      ReuseCase{"page_run", 3 * 4096, false, false, false},
                      ReuseCase{"page_run_other_thread", 3 * 4096, false, false, true},
                      ReuseCase{"pack", 48, true, false, false},
                      ReuseCase{"pack_other_thread", 48, true, false, true}),
    [](const ::testing::TestParamInfo<ReuseCase> &i) { return std::string(i.param.name); });

}  // namespace

// Frees of other allocations, below, above and between the updated ones, do not fail a
// commit: the watch refuses only updates whose own allocation was freed.
TEST(Batch, FreesOfOtherAllocationsDoNotFailACommit) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<uint8_t *> p;
    for (int i = 0; i < 6; i++) {
        auto code = add_imm(i, 64);
        p.push_back(static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size())));
        ASSERT_NE(p.back(), nullptr);
    }
    std::sort(p.begin(), p.end());
    BatchHolder b(a);
    const int32_t staged = 50;
    ASSERT_EQ(jit_batch_update(b, p[1] + kAddImmOff, &staged, 4), 0);
    ASSERT_EQ(jit_batch_update(b, p[3] + kAddImmOff, &staged, 4), 0);
    for (int i : {0, 2, 4, 5})
        ASSERT_EQ(jit_free(p[i]), 0);
    EXPECT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(call_int(p[1], 1), 51);
    EXPECT_EQ(call_int(p[3], 1), 51);
    EXPECT_EQ(jit_free(p[1]), 0);
    EXPECT_EQ(jit_free(p[3]), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// An update of the batch's own allocation past its requested length is recorded when the
// commit publishes it: jit_arena_check finds nothing unrecorded past the code end, and the
// free trap-fills those bytes too (slab object, and a page run).
TEST(Batch, OwnUpdatesPastTheRequestedLengthAreTrapFilledAtTheFree) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    for (size_t len : {size_t{5000}, size_t{70000}}) {  // past packs: a slab object, a page run
        BatchHolder b(a);
        auto code = add_imm(3, len);
        auto *p = static_cast<uint8_t *>(jit_batch_alloc(b, code.data(), code.size(), nullptr));
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(jit_batch_commit(b), 0);
        const size_t usable = jit_size(p);
        ASSERT_GE(usable, len + 8) << len;
        ASSERT_EQ(jit_free(p), 0);
        // Again, now with an update past the code staged before the commit.
        p = static_cast<uint8_t *>(jit_batch_alloc(b, code.data(), code.size(), nullptr));
        ASSERT_NE(p, nullptr);
        const uint8_t late[4] = {0x90, 0x90, 0x90, 0xc3};
        ASSERT_EQ(jit_batch_update(b, p + usable - 8, late, sizeof late), 0);
        ASSERT_EQ(jit_batch_commit(b), 0);
        EXPECT_TRUE(ArenaOk(a)) << len;
        ASSERT_EQ(jit_free(p), 0);
        EXPECT_TRUE(all_traps(p, usable)) << len;
        EXPECT_TRUE(ArenaOk(a));
    }
}

// Staging many live updates (the batch's list of them grows and moves) while another
// thread frees: every free reads that list (the free watch), so it must never see it
// move. Under TSan a growth outside the watch's lock is reported here.
TEST(Batch, StagingLiveUpdatesWhileAnotherThreadFrees) {
    ArenaHolder a(JIT_WRITER_PERSISTENT_ALIAS);  // fast writes: many frees meanwhile
    ASSERT_NE(a.get(), nullptr);
    constexpr int kTargets = 3000;
    auto code = add_imm(0, 64);
    std::vector<uint8_t *> targets;
    for (int i = 0; i < kTargets; i++) {
        targets.push_back(static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size())));
        ASSERT_NE(targets.back(), nullptr);
    }
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread churn([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            void *p = jit_arena_alloc(a, code.data(), code.size());
            if (!p || jit_free(p) != 0)
                bad++;
        }
    });
    BatchHolder b(a);
    const int32_t imm = 5;
    for (int i = 0; i < kTargets; i++)
        if (jit_batch_update(b, targets[i] + kAddImmOff, &imm, 4) != 0)
            bad++;
    stop = true;
    churn.join();
    EXPECT_EQ(jit_batch_commit(b), 0);
    EXPECT_EQ(bad.load(), 0);
    for (uint8_t *t : targets) {
        EXPECT_EQ(call_int(t, 1), 6);
        EXPECT_EQ(jit_free(t), 0);
    }
    EXPECT_TRUE(ArenaOk(a));
}
