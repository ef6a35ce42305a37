// Live patching of real AArch64 code while other threads run it (arm64 only).
//
// Sites are small functions whose first instruction is flipped between `b target_a`,
// `b target_b` and `nop` (falls through to `movz w0, #3; ret`) with jit_update: one
// aligned 4-byte write per flip, which the architecture allows to be changed while other
// PEs execute it (B, BL, NOP are in the ARM ARM's list for concurrent modification),
// followed by membarrier SYNC_CORE (the arena default). Checked:
//  - lock step: after jit_update returns and the patcher publishes the flip, every
//    caller's next call runs the new instruction (the update reached all CPUs: cache
//    maintenance and context synchronisation);
//  - free running: callers call sites as fast as they can while the patcher flips them;
//    every call returns the value of one of the site's instructions (never a torn or
//    stale-forever one; a torn instruction would crash the process).
// Every writer that lets other threads run code during a write is tested (not mprotect).
// Under QEMU's TCG this checks the library's protocol, not the silicon's caches: TCG
// sees every store whether or not the caches were maintained (see docs/GUARANTEES.md).
#include <jitalloc/jitalloc.h>

#include "../common/a64.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using Fn = int (*)();
constexpr int kSites = 16;
constexpr int kCallers = 2;
constexpr int kLockStepRounds = 200;
constexpr int kFreeRunFlips = 1000;
constexpr int kNopValue = 3;

struct Code {
    jit_arena *arena = nullptr;
    uint8_t *target[2] = {};  // return 1 / return 2
    uint8_t *site[kSites] = {};

    // The instruction that makes site s return `value` (1, 2 or kNopValue).
    a64::Insn insn_for(int s, int value) const {
        if (value == kNopValue)
            return a64::nop();
        int64_t off = target[value - 1] - site[s];
        EXPECT_TRUE(a64::branch_reaches(off));
        return a64::b(off);
    }
    int call(int s) const { return reinterpret_cast<Fn>(site[s])(); }
};

// The value a site returns in generation g of the patch sequence (site-dependent start).
int value_at(int s, long g) { return 1 + static_cast<int>((g + s) % 3); }

class LivePatch : public ::testing::TestWithParam<jit_writer> {
protected:
    Code c;

    void SetUp() override {
        jit_arena_options o;
        jit_arena_options_init(&o);
        o.writer = GetParam();
        o.flags |= JIT_ARENA_IGNORE_ENV;
        c.arena = jit_arena_create(&o);
        ASSERT_NE(c.arena, nullptr) << std::strerror(errno);
        for (int t = 0; t < 2; t++) {
            auto code = a64::bytes({a64::movz_w(0, static_cast<uint16_t>(t + 1)), a64::ret()});
            c.target[t] = static_cast<uint8_t *>(jit_arena_alloc(c.arena, code.data(), code.size()));
            ASSERT_NE(c.target[t], nullptr);
        }
        for (int s = 0; s < kSites; s++) {
            // Reserve, then write: the branch offset depends on the site's address.
            c.site[s] = static_cast<uint8_t *>(jit_arena_alloc(c.arena, nullptr, 12));
            ASSERT_NE(c.site[s], nullptr);
            ASSERT_EQ(reinterpret_cast<uintptr_t>(c.site[s]) % 4, 0u);
            auto code = a64::bytes({c.insn_for(s, value_at(s, 0)), a64::movz_w(0, kNopValue), a64::ret()});
            ASSERT_EQ(jit_update(c.site[s], code.data(), code.size()), 0);
            ASSERT_EQ(c.call(s), value_at(s, 0));
        }
    }
    void TearDown() override {
        if (c.arena) {
            EXPECT_EQ(jit_arena_destroy(c.arena), 0);
        }
    }
    // Flips site s to generation g: one aligned 4-byte jit_update.
    void flip(int s, long g) {
        a64::Insn i = c.insn_for(s, value_at(s, g));
        ASSERT_EQ(jit_update(c.site[s], &i, 4), 0);
    }
};

TEST_P(LivePatch, EveryCallAfterAnUpdateRunsTheNewInstruction) {
    struct jit_stats st;
    ASSERT_EQ(jit_arena_stats(c.arena, &st), 0);
    ASSERT_EQ(st.sync_core, 1u) << "membarrier SYNC_CORE is what this test relies on";
    // Round r: the patcher flips site r % kSites to generation g, publishes `round`;
    // each caller calls that site once and acknowledges.
    std::atomic<long> round{0};
    std::atomic<int> acks{0};
    std::atomic<long> wrong{0};
    std::atomic<bool> stop{false};
    long gen[kSites] = {};
    std::atomic<long> published_gen{0};
    std::vector<std::thread> callers;
    for (int k = 0; k < kCallers; k++)
        callers.emplace_back([&] {
            long seen = 0;
            while (!stop.load(std::memory_order_acquire)) {
                long r = round.load(std::memory_order_acquire);
                if (r == seen) {
                    // Keep running the site meanwhile, as a busy caller would.
                    (void)c.call(static_cast<int>(r % kSites));
                    continue;
                }
                int s = static_cast<int>(r % kSites);
                long g = published_gen.load(std::memory_order_relaxed);
                if (c.call(s) != value_at(s, g))
                    wrong.fetch_add(1);
                seen = r;
                acks.fetch_add(1, std::memory_order_release);
            }
        });
    for (long r = 1; r <= kLockStepRounds; r++) {
        int s = static_cast<int>(r % kSites);
        flip(s, ++gen[s]);
        published_gen.store(gen[s], std::memory_order_relaxed);
        acks.store(0, std::memory_order_relaxed);
        round.store(r, std::memory_order_release);  // after jit_update returned
        while (acks.load(std::memory_order_acquire) < kCallers)
            std::this_thread::yield();
    }
    stop.store(true, std::memory_order_release);
    for (auto &t : callers)
        t.join();
    EXPECT_EQ(wrong.load(), 0) << "calls ran an instruction older than the last update";
}

TEST_P(LivePatch, FreeRunningCallersNeverSeeATornInstruction) {
    std::atomic<bool> stop{false};
    std::atomic<long> calls{0}, invalid{0};
    std::vector<std::thread> callers;
    for (int k = 0; k < kCallers; k++)
        callers.emplace_back([&, k] {
            unsigned x = 12345u + static_cast<unsigned>(k);
            long n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                x = x * 1103515245u + 12345u;
                int v = c.call(static_cast<int>((x >> 8) % kSites));
                if (v < 1 || v > 3)
                    invalid.fetch_add(1);
                n++;
            }
            calls.fetch_add(n);
        });
    long gen[kSites] = {};
    for (int i = 0; i < kFreeRunFlips; i++) {
        int s = i % kSites;
        flip(s, ++gen[s]);
    }
    stop.store(true, std::memory_order_relaxed);
    for (auto &t : callers)
        t.join();
    EXPECT_EQ(invalid.load(), 0);
    EXPECT_GT(calls.load(), 0);
    // Once the patcher is done every site runs its last instruction.
    for (int s = 0; s < kSites; s++)
        EXPECT_EQ(c.call(s), value_at(s, gen[s])) << "site " << s;
    struct jit_stats st;
    ASSERT_EQ(jit_arena_stats(c.arena, &st), 0);
    EXPECT_EQ(st.total_updates, static_cast<uint64_t>(kSites + kFreeRunFlips));
    std::printf("%ld calls during %d flips\n", calls.load(), kFreeRunFlips);
}

INSTANTIATE_TEST_SUITE_P(Writers, LivePatch,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                           JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS),
                         [](const auto &i) { return std::string(jit_writer_name(i.param)); });

// jit_alloc of fresh code is run at once by another thread that gets the pointer through
// memory (arm64: jitalloc syncs other CPUs for fresh code too, arch.h).
TEST(FreshCode, AnotherThreadRunsItAtOnce) {
    std::atomic<Fn> slot{nullptr};
    std::atomic<bool> done{false};
    std::atomic<long> wrong{0}, ran{0};
    std::thread runner([&] {
        Fn last = nullptr;
        while (!done.load(std::memory_order_acquire)) {
            Fn f = slot.load(std::memory_order_acquire);
            if (f && f != last) {
                if (f() != 7)
                    wrong.fetch_add(1);
                ran.fetch_add(1);
                last = f;
            }
        }
    });
    std::vector<void *> ptrs;
    auto code = a64::bytes({a64::movz_w(0, 7), a64::ret()});
    for (int i = 0; i < 500; i++) {
        void *p = jit_alloc(code.data(), code.size());
        ASSERT_NE(p, nullptr);
        slot.store(reinterpret_cast<Fn>(p), std::memory_order_release);
        ptrs.push_back(p);
        while (ran.load() < i / 2)  // let the runner keep up now and then
            std::this_thread::yield();
    }
    done.store(true, std::memory_order_release);
    runner.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_GT(ran.load(), 0);
    slot.store(nullptr);
    for (void *p : ptrs)
        EXPECT_EQ(jit_free(p), 0);
}

}  // namespace
