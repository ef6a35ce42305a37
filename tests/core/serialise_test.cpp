// Cross-CPU serialisation (src/serialise): which writes run membarrier(SYNC_CORE).
//
//  - a process with one thread never serialises;
//  - with other threads, an update of an allocation that has held code serialises once;
//    writes into memory no thread can be running (new code, the first write into a
//    reservation, trap fills on free) do not on x86-64; on arm64 new code serialises
//    once per write too (kFreshCodeSerialises), trap fills on free do not;
//  - code written without serialisation runs correctly on another thread as soon as its
//    address is published (release store / acquire load), the way a JIT hands it over.
// membarrier calls are counted through the os seam (os::set_fault with nth = 0 counts
// without failing anything).
#include "helpers.h"

#include "os/os.h"
#include "serialise/serialise.h"

#include <atomic>
#include <memory>
#include <thread>

namespace os = jitalloc::os;
using namespace jt;

namespace {

// Counts membarrier calls while alive.
struct MembarrierCount : CallCount {
    MembarrierCount() : CallCount(os::Call::membarrier) {}
};

TEST(Serialise, SingleThreadedProcessNeverSerialises) {
    if (!jitalloc::process_single_threaded())
        GTEST_SKIP() << "this process has made threads already (run this test on its own)";
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    ASSERT_EQ(stats_of(a).sync_core, 1u) << "membarrier SYNC_CORE not available here";
    MembarrierCount count;
    auto f1 = ret_imm(1, 64), f2 = ret_imm(2, 64);
    void *p = jit_arena_alloc(a, f1.data(), f1.size());
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(jit_update(p, f2.data(), f2.size()), 0);  // live code: no other thread
    ASSERT_EQ(jit_update(p, f1.data(), f1.size()), 0);
    {
        EXPECT_EQ(call_int(p), 1);
    }
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(count.calls(), 0u);
    EXPECT_TRUE(jitalloc::process_single_threaded());
}

TEST(Serialise, FlagTurnsFalseWithTheFirstThread) {
    std::thread([] {}).join();
    EXPECT_FALSE(jitalloc::process_single_threaded()) << "glibc resets __libc_single_threaded?";
}

// Sizes that take each allocation path: slab object, page run, large chunk.
class SerialiseWithThreads : public ::testing::TestWithParam<size_t> {};

TEST_P(SerialiseWithThreads, OnlyUpdatesOfLiveCodeSerialise) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    ASSERT_EQ(stats_of(a).sync_core, 1u) << "membarrier SYNC_CORE not available here";
    auto spin = ret_imm(7, 64);
    void *spin_fn = jit_arena_alloc(a, spin.data(), spin.size());
    ASSERT_NE(spin_fn, nullptr);
    auto runner = std::make_unique<Runner>(spin_fn);  // the process has two threads now

    const size_t len = GetParam();
    auto f1 = ret_imm(1, 64), f2 = ret_imm(2, 64);
    MembarrierCount count;
    // A reservation: its first write is new code.
    void *r = jit_arena_alloc(a, nullptr, len);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(jit_update(r, f1.data(), f1.size()), 0);
    EXPECT_EQ(count.calls(), kFreshCodeSerialises) << "first write into a reservation serialised";
    EXPECT_EQ(call_int(r), 1);
    // Now it has held code: rewriting it serialises, once per update.
    ASSERT_EQ(jit_update(r, f2.data(), f2.size()), 0);
    EXPECT_EQ(count.calls(), 1 + kFreshCodeSerialises);
    EXPECT_EQ(call_int(r), 2);
    // Even a write into its trap tail: threads may be running the allocation.
    ASSERT_EQ(jit_update(static_cast<uint8_t *>(r) + 64, f1.data(), 8), 0);
    EXPECT_EQ(count.calls(), 2 + kFreshCodeSerialises);
    // New allocations with code and frees (trap fills of code nobody may run) do not.
    auto whole = ret_imm(1, len);
    void *q = jit_arena_alloc(a, whole.data(), whole.size());
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(call_int(q), 1);
    EXPECT_EQ(jit_free(q), 0);
    EXPECT_EQ(jit_free(r), 0);
    EXPECT_EQ(count.calls(), 2 + 2 * kFreshCodeSerialises);
    // A new reservation (possibly the same memory) starts unrun again.
    void *r2 = jit_arena_alloc(a, nullptr, len);
    ASSERT_NE(r2, nullptr);
    ASSERT_EQ(jit_update(r2, f2.data(), f2.size()), 0);
    EXPECT_EQ(count.calls(), 2 + 3 * kFreshCodeSerialises);
    EXPECT_EQ(call_int(r2), 2);
    EXPECT_EQ(jit_free(r2), 0);
    // A failed (rejected) update marks nothing and serialises nothing.
    void *r3 = jit_arena_alloc(a, nullptr, len);
    ASSERT_NE(r3, nullptr);
    EXPECT_EQ(jit_update(static_cast<uint8_t *>(r3) + jit_size(r3) - 1, f1.data(), 2), -1);
    ASSERT_EQ(jit_update(r3, f1.data(), f1.size()), 0);
    EXPECT_EQ(count.calls(), 2 + 4 * kFreshCodeSerialises) << "a rejected update made the reservation count as code";
    EXPECT_EQ(jit_free(r3), 0);
    runner.reset();
    EXPECT_EQ(jit_free(spin_fn), 0);
}

INSTANTIATE_TEST_SUITE_P(Paths, SerialiseWithThreads,
                         ::testing::Values(size_t{100}, size_t{3 * 4096 * 30},
                                           size_t{2 * MiB + 4096}),
                         [](const auto &info) {
                             return info.param < 65536  ? std::string("slab")
                                    : info.param < kChunk ? std::string("pages")
                                                          : std::string("large");
                         });

TEST(Serialise, NoSyncCoreFlagNeverSerialises) {
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.flags |= JIT_ARENA_NO_SYNC_CORE;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    auto f1 = ret_imm(1, 64), f2 = ret_imm(2, 64);
    void *p = jit_arena_alloc(a, f1.data(), f1.size());
    ASSERT_NE(p, nullptr);
    {
        Runner runner(p);
        MembarrierCount count;
        ASSERT_EQ(jit_update(p, f2.data(), f2.size()), 0);  // changes one byte: the imm32
        EXPECT_EQ(count.calls(), 0u);
    }
    EXPECT_EQ(jit_free(p), 0);
}

// The hand-over a JIT does: write code, publish its address, another thread calls it at
// once. No serialisation runs on x86-64 (the memory held only traps), yet the other thread must
// always run the new code, never the traps (SIGTRAP) nor the previous occupant's code.
TEST(Serialise, NewCodeRunsOnAnotherThreadAsSoonAsPublished) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::atomic<void *> published{nullptr};
    std::atomic<int> result{-1};
    std::atomic<bool> stop{false};
    std::thread caller([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            void *fn = published.exchange(nullptr, std::memory_order_acquire);
            if (fn)
                result.store(call_int(fn), std::memory_order_release);
        }
    });
    MembarrierCount count;
    const int kRounds = 1000;
    int wrong = 0;
    for (int i = 0; i < kRounds && !wrong; i++) {
        auto code = ret_imm(i, 48);
        // Alternate the two ways of writing new code: alloc with code, reserve + write.
        void *p = i % 2 ? jit_arena_alloc(a, code.data(), code.size())
                        : jit_arena_alloc(a, nullptr, code.size());
        ASSERT_NE(p, nullptr);
        if (i % 2 == 0) {
            ASSERT_EQ(jit_update(p, code.data(), code.size()), 0);
        }
        result.store(-1, std::memory_order_relaxed);
        published.store(p, std::memory_order_release);
        int got;
        while ((got = result.load(std::memory_order_acquire)) == -1)
            std::this_thread::yield();
        wrong += got != i;
        ASSERT_EQ(jit_free(p), 0);  // the same object comes back next round
    }
    stop.store(true);
    caller.join();
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(count.calls(), kRounds * kFreshCodeSerialises);
}

}  // namespace
