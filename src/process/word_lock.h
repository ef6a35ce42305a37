// WordLock: the library's hot-path mutex, one 32-bit word (size classes' locks, chunks'
// bind_lock).
//
// The allocation and free paths take two to four of these per operation, each held for
// a few dozen instructions and almost never contended (a class belongs to one shard's
// threads). pthread_mutex_lock + unlock is about fifty instructions of type and
// elision checks around the one atomic; here the uncontended pair is a compare-exchange
// and an exchange, inline. Contended, it sleeps in the kernel as a futex, like a default
// pthread mutex (std::atomic wait / notify: libstdc++ spins briefly, then waits on a
// futex), with no fairness promise.
//
// Invariants:
//  - state_ is 0 (unlocked), 1 (locked, no thread waiting) or 2 (locked, threads may be
//    waiting). A thread that waits sets 2 before it sleeps, and one that finds 2 when it
//    unlocks wakes one waiter, which takes the lock as 2 again (it cannot know whether
//    others wait): no wakeup is lost (Drepper, "Futexes are tricky", mutex 2).
//  - lock() acquires, unlock() releases (the memory orders of a mutex): TSan sees the
//    happens-before through the atomics.
//  - Zero-initialised is unlocked; after fork() the child's copy is whatever the parent's
//    was: callers hold these only inside an arena's fork gate (arena.h), so none is held
//    when the process is copied.
// Meets Lockable: usable with std::lock_guard and std::unique_lock.
#pragma once

#include <atomic>

namespace jitalloc {

class WordLock {
public:
    void lock() {
        int seen = 0;
        if (!state_.compare_exchange_strong(seen, 1, std::memory_order_acquire,
                                            std::memory_order_relaxed)) [[unlikely]]
            lock_contended(seen);
    }
    bool try_lock() {
        int seen = 0;
        return state_.compare_exchange_strong(seen, 1, std::memory_order_acquire,
                                              std::memory_order_relaxed);
    }
    void unlock() {
        if (state_.exchange(0, std::memory_order_release) == 2) [[unlikely]]
            state_.notify_one();
    }

private:
    // seen: the state the fast path found (1 or 2).
    void lock_contended(int seen) {
        if (seen != 2)
            seen = state_.exchange(2, std::memory_order_acquire);
        while (seen != 0) {
            state_.wait(2, std::memory_order_relaxed);  // returns at once unless still 2
            seen = state_.exchange(2, std::memory_order_acquire);
        }
    }

    std::atomic<int> state_{0};
};

}  // namespace jitalloc
