// Live patching: jit_patch / jit_patch_batch replace instructions while other threads run
// them (the int3 protocol of text_poke_bp). Checked here: 64 sites flipped 10 000 times
// between two variants under callers, with every writer that can do it (never a wrong
// result, never a crash, the new code in effect when the call returns, no W+X mapping);
// a batch costs three syncs and one write per step per group of nearby sites; bad input
// gets EINVAL and changes nothing; the mprotect writer is refused; a failed kernel write
// puts the old bytes back; other signals, sigaltstack and fork during patches.
#include "patch_rig.h"

#include "os/os.h"
#include "patch/trap.h"
#include "poke/write_gate.h"
#include "serialise/serialise.h"

#include <jitalloc/jitalloc.hpp>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <functional>

using namespace jt;
namespace os = jitalloc::os;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
// GCC 12's ASan allocator has no fork handlers: a child forked while another thread is
// inside it waits for its lock forever at the first allocation (seen in
// PatchFork.ForkWhileAnotherThreadPatches: the child blocked in operator new).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// Writers that can patch live code: all but mprotect (refused, see PatchRefused.MprotectWriter).
constexpr jit_writer kPatchWriters[] = {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                        JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS};

std::string name_of(const ::testing::TestParamInfo<jit_writer> &info) {
    return jit_writer_name(info.param);
}

// Scans /proc/self/maps for W+X mappings until stopped.
class WxMonitor {
public:
    WxMonitor() : t_([this] {
        while (!stop_.load()) {
            if (!wx_mappings().empty())
                seen_.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }) {}
    ~WxMonitor() { stop(); }
    void stop() {
        stop_.store(true);
        if (t_.joinable())
            t_.join();
    }
    int seen() const { return seen_.load(); }

private:
    std::atomic<bool> stop_{false};
    std::atomic<int> seen_{0};
    std::thread t_;
};

// ---------------------------------------------------------------- under callers

// A proc_mem arena with the 64-site rig, for the tests below that run x86-64 code.
class RigTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_NE(a_.get(), nullptr);
        rig_ = std::make_unique<PatchRig>(a_);
        ASSERT_TRUE(rig_->ok());
        JT_SKIP_WITHOUT_LIVE_PATCH(*rig_);
    }
    ArenaHolder a_{JIT_WRITER_PROC_MEM};
    std::unique_ptr<PatchRig> rig_;
};
class PatchSignals : public RigTest {};
class PatchFork : public RigTest {};
class PatchBatch : public RigTest {};

class PatchFlips : public ::testing::TestWithParam<jit_writer> {};

// 64 sites flipped between their variants while three threads call through them: each
// flip is one batch (every 250th: 64 single patches); after each the patching thread
// sees the new variant everywhere. 10 000 flips with the default writer and the
// persistent alias; the other writers cost more per write (memfd: a pwrite into shmem
// pages, ~1.1x; temp_alias: map + unmap a view, ~30x with threads running), so they
// flip 2 000 / 300 times to keep the suite's time.
TEST_P(PatchFlips, SixtyFourSitesUnderCallers) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    PatchRig rig(a);
    ASSERT_TRUE(rig.ok());
    JT_SKIP_WITHOUT_LIVE_PATCH(rig);
    ASSERT_EQ(rig.wrong(0), 0);
    const int flips = GetParam() == JIT_WRITER_TEMP_ALIAS ? 300
                      : GetParam() == JIT_WRITER_MEMFD    ? 2000
                                                          : 10000;
    uint64_t restarts0 = jitalloc::patch_trap::restarts();
    WxMonitor wx;
    Callers callers(rig, 3, /*altstack=*/false);
    int failed = 0, not_in_effect = 0;
    for (int i = 1; i <= flips && !failed; i++) {
        int v = i & 1;
        failed = rig.flip(v, i % 250 != 0);
        not_in_effect += rig.wrong(v);
    }
    callers.stop();
    wx.stop();
    EXPECT_EQ(failed, 0) << strerror(failed);
    EXPECT_EQ(not_in_effect, 0);
    EXPECT_EQ(callers.bad(), 0u) << "of " << callers.calls() << " calls";
    EXPECT_GT(callers.calls(), 0u);
    EXPECT_EQ(wx.seen(), 0) << "a W+X mapping appeared during patches";
    // The callers did run into the int3s (else this test proves nothing about them).
    EXPECT_GT(jitalloc::patch_trap::restarts(), restarts0);
    EXPECT_TRUE(ArenaOk(a));
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.strict_wx, GetParam() != JIT_WRITER_PERSISTENT_ALIAS);
}

INSTANTIATE_TEST_SUITE_P(Writers, PatchFlips, ::testing::ValuesIn(kPatchWriters), name_of);

// Flips every site `flips` times in batches; returns the first error (0) and counts
// the flips after which a site did not run the new variant.
int flip_many(const PatchRig &rig, int flips, int &not_in_effect, const std::function<void(int)> &at = {}) {
    for (int i = 1; i <= flips; i++) {
        if (at)
            at(i);
        if (int rc = rig.flip(i & 1, true))
            return rc;
        not_in_effect += rig.wrong(i & 1);
    }
    return 0;
}

// Threads with an alternate signal stack, and a thread started after patching began.
TEST_F(PatchSignals, AltstackAndLateThreads) {
    const PatchRig &rig = *rig_;
    ASSERT_EQ(rig.flip(1, true), 0);  // the handler is installed before these threads exist
    Callers early(rig, 2, /*altstack=*/true);
    std::unique_ptr<Callers> late;
    int not_in_effect = 0;
    int rc = flip_many(rig, 3000, not_in_effect, [&](int i) {
        if (i == 1500)
            late = std::make_unique<Callers>(rig, 1, true);
    });
    early.stop();
    ASSERT_TRUE(late);
    late->stop();
    EXPECT_EQ(rc, 0) << strerror(rc);
    EXPECT_EQ(not_in_effect, 0);
    EXPECT_EQ(early.bad() + late->bad(), 0u);
    EXPECT_GT(late->calls(), 0u);
}

// Asynchronous signals arrive at the calling threads all the time, and their handler
// itself calls a patch site (an int3 hit there nests a SIGTRAP in the SIGUSR1 handler).
// Skipped under TSan: its runtime defers asynchronous signals and may run their
// handlers inside another signal handler whatever that handler's sa_mask says (here
// inside the SIGTRAP handler, where SIGTRAP is blocked, so a nested int3 is fatal).
TEST_F(PatchSignals, HandlersOfOtherSignalsRunSites) {
    if (kTsan)
        GTEST_SKIP() << "TSan delivers deferred signals inside other handlers, ignoring sa_mask";
    const PatchRig &rig = *rig_;
    static const PatchRig *g_rig;
    static std::atomic<uint64_t> g_in_handler_bad, g_in_handler_calls;
    g_rig = &rig;
    g_in_handler_bad = 0;
    g_in_handler_calls = 0;
    struct sigaction sa {}, old {};
    sa.sa_handler = [](int) {
        int r = g_rig->call(0);  // may hit the int3 of a site in flight: SIGTRAP nested
        if (r != 1 && r != 2)
            g_in_handler_bad.fetch_add(1);
        g_in_handler_calls.fetch_add(1);
    };
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    Callers callers(rig, 2);
    std::atomic<bool> stop{false};
    std::vector<pthread_t> targets = callers.handles();
    std::thread signaller([&] {
        while (!stop.load())
            for (pthread_t t : targets) {
                pthread_kill(t, SIGUSR1);
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
    });
    int not_in_effect = 0;
    int rc = flip_many(rig, 3000, not_in_effect);
    stop.store(true);
    signaller.join();
    callers.stop();
    sigaction(SIGUSR1, &old, nullptr);
    EXPECT_EQ(rc, 0) << strerror(rc);
    EXPECT_EQ(not_in_effect, 0);
    EXPECT_EQ(callers.bad(), 0u);
    EXPECT_EQ(g_in_handler_bad.load(), 0u);
    EXPECT_GT(g_in_handler_calls.load(), 0u);
}

// fork() while another thread flips sites: the child sees every site whole (old or
// new), runs them, and can patch them itself. Skipped under TSan: gcc 12's TSan
// runtime deadlocks in a child forked while another thread allocates (the patching
// thread does), as for the reliability suite's fork-during-writes test.
TEST_F(PatchFork, ForkWhileAnotherThreadPatches) {
    if (kTsan || kAsan)
        GTEST_SKIP() << "the sanitizer's allocator deadlocks in a child forked while another "
                        "thread allocates";
    const PatchRig &rig = *rig_;
    std::atomic<bool> stop{false};
    std::atomic<int> flips{0};
    std::thread patcher([&] {
        for (int i = 1; !stop.load(); i++)
            if (rig.flip(i & 1, i % 3 != 0) == 0)
                flips.fetch_add(1);
    });
    for (int k = 0; k < 20; k++) {
        int st = in_child([&] {
            for (int i = 0; i < PatchRig::kSites; i++) {
                int r = rig.call(i);
                if (r != 1 && r != 2)
                    return 1;
            }
            // The child's own patches work (its patch lock and table are free).
            if (rig.flip(0, true) != 0 || rig.wrong(0) != 0)
                return 2;
            if (rig.flip(1, false) != 0 || rig.wrong(1) != 0)
                return 3;
            return 0;
        });
        EXPECT_EQ(st, 0) << "fork " << k;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    stop.store(true);
    patcher.join();
    EXPECT_GT(flips.load(), 0);
    EXPECT_EQ(rig.flip(0, true), 0);
    EXPECT_EQ(rig.wrong(0), 0);
}

// ---------------------------------------------------------------- cost structure

// Counts the calls of one kind that fn makes (the fault seam counts without failing).
template <class Fn>
uint64_t count_calls(os::Call k, Fn &&fn) {
    os::set_fault({0, 0, os::mask_of(k), false, false});
    fn();
    uint64_t n = os::fault_calls();
    os::clear_fault();
    return n;
}

// text_poke_bp_batch: N sites, three syncs in total; sites of one chunk within 4 KiB share
// one write per step, whosever bytes lie between them.
// (With another thread in the process: while it has one, nothing is synced, below.)
TEST_F(PatchBatch, ThreeSyncsAndOneWritePerStepPerGroup) {
    const PatchRig &rig = *rig_;
    std::thread([] {}).join();
    EXPECT_EQ(count_calls(os::Call::membarrier, [&] { EXPECT_EQ(rig.flip(1, true), 0); }), 3u);
    // 32 sites in the stub table (one group), 16 scattered among spacers and 16 in
    // allocations that adjoin (a group per size class): 3 writes per step.
    ASSERT_TRUE(rig.adjacent_quarter_adjoins());
    ASSERT_TRUE(rig.class_groups_fit());
    EXPECT_EQ(count_calls(os::Call::pwrite, [&] { EXPECT_EQ(rig.flip(0, true), 0); }),
              3u * PatchRig::kWritesPerStep);
    EXPECT_EQ(count_calls(os::Call::membarrier, [&] { EXPECT_EQ(rig.flip(1, false), 0); }),
              3u * PatchRig::kSites);
    EXPECT_EQ(rig.wrong(1), 0);
    // A site whose tail does not change (jmp rel32 -> call rel32, same operand): the
    // middle step and its sync are skipped, as the kernel does.
    uint8_t call_same[5];
    std::memcpy(call_same, rig.variant(1, 0), 5);  // site 1 is a jump site
    ASSERT_EQ(jit_patch(rig.site(1), rig.variant(1, 0), 5), 0);
    call_same[0] = 0xE8;
    uint64_t syncs = count_calls(os::Call::membarrier, [&] {
        EXPECT_EQ(jit_patch(rig.site(1), call_same, 5), 0);
    });
    EXPECT_EQ(syncs, 2u);
    // Nothing to change: no write, no sync.
    EXPECT_EQ(count_calls(os::Call::pwrite, [&] { EXPECT_EQ(jit_patch(rig.site(1), call_same, 5), 0); }),
              0u);
}

// A batch writes the spacers between scattered sites back as it read them. Meanwhile
// their owner rewrites them without pause: every rewrite must stay, never undone by a
// patch step that read the bytes before it (the write gate makes the step wait, or the
// rewrite). Checked after every rewrite and after every flip. Every writer that patches.
class PatchForeignBytes : public ::testing::TestWithParam<jit_writer> {};

TEST_P(PatchForeignBytes, OwnersRewritesBetweenSitesAreNeverLost) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    PatchRig rig(a);
    ASSERT_TRUE(rig.ok());
    JT_SKIP_WITHOUT_LIVE_PATCH(rig);
    const std::vector<uint8_t *> &spacers = rig.spacers();
    std::atomic<bool> stop{false};
    std::atomic<long> lost{0}, rewrites{0};
    std::thread owner([&] {
        std::vector<uint8_t> bytes;
        for (uint32_t round = 1; !stop.load(std::memory_order_relaxed); round++) {
            for (size_t i = 0; i < spacers.size(); i++) {
                const size_t len = jit_size(spacers[i]);  // two size classes
                bytes.resize(len);
                for (size_t k = 0; k < len; k++)
                    bytes[k] = static_cast<uint8_t>(round * 31 + i * 7 + k);
                if (jit_arena_update(a, spacers[i], bytes.data(), len) != 0) {
                    ADD_FAILURE() << "jit_arena_update: " << strerror(errno);
                    lost.fetch_add(1000000);
                    return;
                }
                // Nobody else writes this spacer: it holds what was just written.
                if (std::memcmp(spacers[i], bytes.data(), len) != 0)
                    lost.fetch_add(1);
                rewrites.fetch_add(1, std::memory_order_relaxed);
            }
        }
    });
    const int flips = GetParam() == JIT_WRITER_TEMP_ALIAS ? 300 : 3000;
    int bad_flips = 0;
    for (int f = 0; f < flips && lost.load() == 0; f++) {
        bad_flips += rig.flip(f % 2, true) != 0;
        // A rewrite the flip undid shows up at the owner's check or as a wrong call.
    }
    stop = true;
    owner.join();
    EXPECT_EQ(bad_flips, 0);
    EXPECT_EQ(lost.load(), 0) << "of " << rewrites.load() << " rewrites";
    EXPECT_GT(rewrites.load(), 0);
    EXPECT_EQ(rig.wrong((flips - 1) % 2), 0);
    EXPECT_EQ(jitalloc::write_gate_shared_holders(), 0);
}
INSTANTIATE_TEST_SUITE_P(Writers, PatchForeignBytes, ::testing::ValuesIn(kPatchWriters), name_of);

// The same with everything else another thread's code writes can be waiting on while a
// patch holds the write gate: an observed arena (GDB's JIT interface: the observers' lock
// is held across a free's commit), lazy trap fill (a retiring slab's stale objects are
// trap-filled inside that commit), large allocations (their chunk is destroyed under the
// buddy lock, waiting for updates in flight). No wait may close a cycle: the flips and
// the other thread's churn all finish, with the spacers' rewrites kept.
TEST(PatchForeignBytesChurn, ObservedLazyArenaFreesSlabsAndLargeChunksMeanwhile) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.flags |= JIT_ARENA_GDB_JIT | JIT_ARENA_LAZY_TRAP_FILL;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    PatchRig rig(a);
    ASSERT_TRUE(rig.ok());
    JT_SKIP_WITHOUT_LIVE_PATCH(rig);
    std::atomic<bool> stop{false};
    std::atomic<long> lost{0}, rounds{0};
    std::thread churn([&] {
        const std::vector<uint8_t> code = jt_code::ret_imm_code(7);
        std::vector<void *> many;
        for (uint32_t round = 1; !stop.load(std::memory_order_relaxed); round++) {
            for (int i = 0; i < 600; i++)  // several slabs, retired when freed
                many.push_back(jit_arena_alloc(a, code.data(), code.size()));
            void *large = jit_arena_alloc(a, nullptr, 3u << 20);
            lost += large == nullptr || jit_arena_update(a, large, code.data(), code.size()) != 0;
            for (void *p : many)
                lost += p == nullptr || jit_arena_free(a, p) != 0;
            many.clear();
            lost += large != nullptr && jit_arena_free(a, large) != 0;
            uint8_t *spacer = rig.spacers()[round % rig.spacers().size()];
            std::vector<uint8_t> bytes(jit_size(spacer), static_cast<uint8_t>(round));
            lost += jit_arena_update(a, spacer, bytes.data(), bytes.size()) != 0 ||
                    std::memcmp(spacer, bytes.data(), bytes.size()) != 0;
            rounds++;
        }
    });
    int bad_flips = 0, f = 0;
    for (; f < 400 || (rounds.load() < 20 && f < 100000); f++)  // overlap 20 rounds
        bad_flips += rig.flip(f % 2, true) != 0;
    stop = true;
    churn.join();
    EXPECT_EQ(bad_flips, 0);
    EXPECT_EQ(lost.load(), 0) << "of " << rounds.load() << " rounds";
    EXPECT_GE(rounds.load(), 20);
    EXPECT_EQ(rig.wrong((f - 1) % 2), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// While the process has a single thread no other CPU can have fetched a site: a patch
// writes its three steps and serialises nothing (src/serialise). Run on its own (ctest
// runs each test in a fresh process); skipped where the process made threads already.
TEST_F(PatchBatch, SingleThreadedProcessWritesStepsWithoutSync) {
    if (!jitalloc::process_single_threaded())
        GTEST_SKIP() << "this process has made threads already (run this test on its own)";
    const PatchRig &rig = *rig_;
    EXPECT_EQ(count_calls(os::Call::membarrier, [&] { EXPECT_EQ(rig.flip(1, true), 0); }), 0u);
    EXPECT_EQ(count_calls(os::Call::pwrite, [&] { EXPECT_EQ(rig.flip(0, true), 0); }),
              3u * PatchRig::kWritesPerStep);
    EXPECT_EQ(rig.wrong(0), 0);
    EXPECT_TRUE(jitalloc::process_single_threaded());
}

// ---------------------------------------------------------------- results and errors

class PatchWriters : public ::testing::TestWithParam<jit_writer> {};

TEST_P(PatchWriters, SinglePatchLandsAndCounts) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    JT_SKIP_WITHOUT_LIVE_PATCH(a.get());
    auto code = ret_imm(7, 16);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    auto patched = ret_imm(9, 6);
    uint64_t updates = stats_of(a).total_updates;
    ASSERT_EQ(jit_arena_patch(a, p, patched.data(), 5), 0) << strerror(errno);
    EXPECT_TRUE(same_bytes(p, patched));
    EXPECT_EQ(stats_of(a).total_updates, updates + 1);
    EXPECT_EQ(call_int(p), 9);
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// A site past the allocation's requested length (in its trap tail) moves the code end
// the free trap-fills up to: after the free the whole object holds traps again. Alone
// and in a batch with a site inside the code (whose allocation already held code).
TEST_P(PatchWriters, SitesPastTheRequestedLengthAreTrapFilledAtTheFree) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    JT_SKIP_WITHOUT_LIVE_PATCH(a.get());
    for (bool batch : {false, true}) {
        auto code = ret_imm(7, 20);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(p, nullptr);
        const size_t usable = jit_size(p);
        ASSERT_GE(usable, 32u);
        auto late = ret_imm(9, 6);
        if (!batch) {
            ASSERT_EQ(jit_arena_patch(a, p + usable - 8, late.data(), 6), 0) << strerror(errno);
        } else {
            auto early = ret_imm(8, 6);
            const jit_patch_site sites[2] = {{p, early.data(), 5}, {p + usable - 8, late.data(), 6}};
            ASSERT_EQ(jit_arena_patch_batch(a, sites, 2), 0) << strerror(errno);
            EXPECT_EQ(call_int(p), 8);
        }
        EXPECT_EQ(call_int(p + usable - 8), 9);
        EXPECT_TRUE(ArenaOk(a)) << "bytes past the code end, unrecorded";
        EXPECT_EQ(jit_free(p), 0);
        EXPECT_TRUE(all_traps(p, usable)) << "the site past the code survived the free";
        EXPECT_TRUE(ArenaOk(a));
    }
}

INSTANTIATE_TEST_SUITE_P(Writers, PatchWriters, ::testing::ValuesIn(kPatchWriters), name_of);

// The mprotect writer makes the page RW and not executable during each write: threads
// running it would fault, so live patching is refused, and nothing changes.
TEST(PatchRefused, MprotectWriter) {
    ArenaHolder a(JIT_WRITER_MPROTECT);
    ASSERT_NE(a.get(), nullptr);
    auto code = ret_imm(7, 16);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    auto patched = ret_imm(9);
    // one instruction's length on this architecture (x86-64: 5, arm64: 4): a site that
    // would be valid input, so the refusal is the writer's, not a length check's
    errno = 0;
    EXPECT_EQ(jit_patch(p, patched.data(), jt_code::kSiteLen), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    jit_patch_site site{p, patched.data(), jt_code::kSiteLen};
    EXPECT_EQ(jit_patch_batch(&site, 1), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    EXPECT_TRUE(same_bytes(p, code));
    EXPECT_EQ(jit_free(p), 0);
}

// Bad input: EINVAL, and no byte, stat or invariant changes.
TEST(PatchBadInput, RejectedAndNothingChanges) {
    ArenaHolder a(JIT_WRITER_AUTO), other(JIT_WRITER_AUTO);
    ASSERT_NE(a.get(), nullptr);
    ASSERT_NE(other.get(), nullptr);
    auto ca = pattern(64, 1), cb = pattern(64, 2);
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, ca.data(), ca.size()));
    auto *q = static_cast<uint8_t *>(jit_arena_alloc(a, cb.data(), cb.size()));
    auto *elsewhere = static_cast<uint8_t *>(jit_arena_alloc(other, ca.data(), ca.size()));
    auto *freed = static_cast<uint8_t *>(jit_arena_alloc(a, ca.data(), ca.size()));
    ASSERT_TRUE(p && q && elsewhere && freed);
    ASSERT_EQ(jit_free(freed), 0);
    const size_t usable = jit_size(p);
    const uint8_t nb[16] = {0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
                            0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
    uint8_t stack_code[8] = {};
    auto rejected = [&](const char *what, auto &&call) {
        SCOPED_TRACE(what);
        auto sp = snapshot(p, usable), sq = snapshot(q, 64), so = snapshot(elsewhere, 64);
        struct jit_stats before = stats_of(a);
        errno = 0;
        EXPECT_EQ(call(), -1);
        EXPECT_EQ(errno, EINVAL);
        EXPECT_TRUE(same_bytes(p, sp));
        EXPECT_TRUE(same_bytes(q, sq));
        EXPECT_TRUE(same_bytes(elsewhere, so));
        EXPECT_TRUE(SameStats(before, stats_of(a)));
        EXPECT_TRUE(ArenaOk(a));
    };
    rejected("dst NULL", [&] { return jit_patch(nullptr, nb, 1); });
    rejected("src NULL", [&] { return jit_patch(p, nullptr, 1); });
    rejected("len 0", [&] { return jit_patch(p, nb, 0); });
    rejected("len above the longest instruction",
             [&] { return jit_patch(p, nb, JIT_PATCH_MAX_LEN + 1); });
    rejected("past the end of the allocation", [&] { return jit_patch(p + usable - 2, nb, 3); });
    rejected("freed allocation", [&] { return jit_patch(freed, nb, 1); });
    rejected("not jitalloc memory", [&] { return jit_patch(stack_code, nb, 1); });
    rejected("wrong arena", [&] { return jit_arena_patch(a, elsewhere, nb, 1); });
    rejected("NULL arena", [&] { return jit_arena_patch(nullptr, p, nb, 1); });
    rejected("batch of 0", [&] {
        jit_patch_site s{p, nb, 1};
        return jit_patch_batch(&s, 0);
    });
    rejected("batch NULL", [&] { return jit_patch_batch(nullptr, 1); });
    rejected("overlapping sites", [&] {
        jit_patch_site s[] = {{p + 8, nb, 4}, {p, nb, 5}, {p + 4, nb, 2}};
        return jit_patch_batch(s, 3);
    });
    rejected("same site twice", [&] {
        jit_patch_site s[] = {{q, nb, 2}, {q, nb, 2}};
        return jit_patch_batch(s, 2);
    });
    rejected("one bad site among good ones", [&] {
        jit_patch_site s[] = {{p, nb, 5}, {q, nb, 5}, {q + 60, nb, 5}};
        return jit_patch_batch(s, 3);
    });
    rejected("sites in two arenas", [&] {
        jit_patch_site s[] = {{p, nb, 5}, {elsewhere, nb, 5}};
        return jit_patch_batch(s, 2);
    });
    if (!jt_code::kLivePatch) {
        EXPECT_EQ(jit_patch(p, nb, 1), -1);  // valid, not supported here
        EXPECT_EQ(errno, EOPNOTSUPP);
        GTEST_SKIP() << "no live-patch protocol for this architecture";
    }
    // Boundaries that are fine: the last bytes, the longest length, adjacent sites.
    EXPECT_EQ(jit_patch(p + usable - 3, nb, 3), 0);
    EXPECT_EQ(jit_patch(p, nb, JIT_PATCH_MAX_LEN), 0);
    jit_patch_site adjacent[] = {{q + 5, nb, 5}, {q, nb, 5}};
    EXPECT_EQ(jit_patch_batch(adjacent, 2), 0);
    EXPECT_TRUE(all_bytes(q, 10, 0x90));
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(q), 0);
    EXPECT_EQ(jit_free(elsewhere), 0);
}

// A kernel write or sync that fails part-way: the error comes back and every site holds
// its old bytes again (undone by the same protocol), for each call of the patch.
TEST(PatchFailure, FailedWriteOrSyncPutsOldBytesBack) {
    std::thread([] {}).join();  // a process with threads: every step is synced
    for (os::Call k : {os::Call::pwrite, os::Call::membarrier}) {
        ArenaHolder a(JIT_WRITER_PROC_MEM);
        ASSERT_NE(a.get(), nullptr);
        JT_SKIP_WITHOUT_LIVE_PATCH(a.get());
        auto c1 = ret_imm(1, 32), c2 = ret_imm(2, 32);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, c1.data(), c1.size()));
        auto *q = static_cast<uint8_t *>(jit_arena_alloc(a, c2.data(), c2.size()));
        ASSERT_TRUE(p && q);
        auto n1 = ret_imm(11, 6), n2 = ret_imm(12, 6);
        jit_patch_site s[] = {{p, n1.data(), 5}, {q, n2.data(), 5}, {p + 16, n2.data(), 5}};
        uint64_t calls = count_calls(k, [&] {
            EXPECT_EQ(jit_arena_patch_batch(a, s, 3), 0);
            jit_patch_site back[] = {{p, c1.data(), 5}, {q, c2.data(), 5}, {p + 16, c1.data() + 16, 5}};
            EXPECT_EQ(jit_arena_patch_batch(a, back, 3), 0);
        }) / 2;
        ASSERT_GT(calls, 0u);
        for (uint64_t nth = 1; nth <= calls; nth++) {
            SCOPED_TRACE(std::string(os::call_name(k)) + " #" + std::to_string(nth) + " fails");
            os::set_fault({nth, EIO, os::mask_of(k), false, false});
            errno = 0;
            int rc = jit_arena_patch_batch(a, s, 3);
            int err = errno;
            os::clear_fault();
            EXPECT_EQ(rc, -1);
            EXPECT_EQ(err, EIO);
            EXPECT_TRUE(same_bytes(p, c1));
            EXPECT_TRUE(same_bytes(q, c2));
            EXPECT_TRUE(ArenaOk(a));
        }
        ASSERT_EQ(jit_arena_patch_batch(a, s, 3), 0);  // and it works afterwards
        EXPECT_EQ(std::memcmp(p, n1.data(), 5), 0);
        EXPECT_EQ(std::memcmp(p + 16, n2.data(), 5), 0);
        EXPECT_EQ(std::memcmp(q, n2.data(), 5), 0);
        EXPECT_EQ(jit_free(p), 0);
        EXPECT_EQ(jit_free(q), 0);
    }
}

// The C++ forms: Code::patch (offset into the allocation) and jitalloc::patch (a batch).
TEST(PatchCpp, CodePatchAndBatch) {
    auto arena = jitalloc::Arena::create(jitalloc::ArenaOptions().add_flags(JIT_ARENA_IGNORE_ENV));
    ASSERT_TRUE(arena.ok());
    JT_SKIP_WITHOUT_LIVE_PATCH(arena->get());
    auto c1 = ret_imm(1, 16), c2 = ret_imm(2, 16);
    auto f = arena->load(std::as_bytes(std::span(c1)));
    auto g = arena->load(std::as_bytes(std::span(c2)));
    ASSERT_TRUE(f.ok() && g.ok());
    auto n = ret_imm(5, 6);
    EXPECT_EQ(f->patch(0, std::as_bytes(std::span(n.data(), 5))), 0);
    EXPECT_EQ(std::memcmp(f->data(), n.data(), 5), 0);
    EXPECT_EQ(f->patch(f->size() - 2, std::as_bytes(std::span(n.data(), 5))), EINVAL);
    EXPECT_EQ(f->patch(f->size() + 1, std::as_bytes(std::span(n.data(), 1))), EINVAL);
    auto m = ret_imm(6, 6);
    const jit_patch_site sites[] = {{f->data(), m.data(), 5}, {g->data(), m.data(), 5}};
    EXPECT_EQ(arena->patch(sites), 0);
    EXPECT_EQ(jitalloc::patch(sites), 0);
    EXPECT_EQ(f->as<int (*)()>()(), 6);
    EXPECT_EQ(g->as<int (*)()>()(), 6);
    jitalloc::Code empty;
    EXPECT_EQ(empty.patch(0, std::as_bytes(std::span(n.data(), 1))), EINVAL);
}

}  // namespace
