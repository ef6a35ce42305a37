// Unit tests of WordLock (process/word_lock.h), the size classes' and chunks' lock:
// mutual exclusion under contention (threads sleeping in the kernel and woken), and
// try_lock.
#include "process/word_lock.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

using jitalloc::WordLock;

namespace {

// Many threads on one lock, with critical sections long enough that waiters go to sleep:
// no increment is lost, and every thread gets through (no waiter left asleep).
TEST(WordLock, ExcludesAndWakesEveryWaiter) {
    WordLock lock;
    uint64_t counter = 0;  // plain: only ever touched under the lock
    constexpr unsigned kThreads = 8;
    constexpr unsigned kRounds = 20000;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreads; t++)
        threads.emplace_back([&] {
            for (unsigned i = 0; i < kRounds; i++) {
                std::lock_guard<WordLock> g(lock);
                uint64_t seen = counter;
                if (i % 64 == 0)
                    std::this_thread::yield();  // hold it a while: others must wait
                counter = seen + 1;
            }
        });
    for (std::thread &t : threads)
        t.join();
    EXPECT_EQ(counter, uint64_t{kThreads} * kRounds);
    EXPECT_TRUE(lock.try_lock());  // left unlocked
    lock.unlock();
}

TEST(WordLock, TryLockFailsWhileHeld) {
    WordLock lock;
    ASSERT_TRUE(lock.try_lock());
    bool other = true;
    std::thread([&] { other = lock.try_lock(); }).join();
    EXPECT_FALSE(other);
    lock.unlock();
    std::thread([&] {
        other = lock.try_lock();
        if (other)
            lock.unlock();
    }).join();
    EXPECT_TRUE(other);
}

}  // namespace
