// Thread-affine shards of an arena: the arena's per-thread state, and counters striped
// over the shards (the thread -> shard assignment is process/thread_shard.h).
//
// An arena has kShards copies of its size classes (each with its own slabs and lock), of
// its fork-gate counter and of its operation counters. Two threads on different shards
// share no lock, no counter and no cache line on the allocation path, and the code
// they JIT lies in different slabs (pages): one thread's writes never land on a cache
// line another thread's fresh code shares.
//
// Invariants:
//  - Nothing here is a cache: every object stays in its slab, so statistics, jit_shrink
//    and arena destruction need no flush when a thread exits; a shard whose threads are
//    gone is just a set of slabs any thread frees into.
//  - StripedCounter: load() is the exact sum of every add() that happened before it
//    (relaxed, like the single atomic it replaces); each add() touches only the caller's
//    shard's cache line.
// Locking: none; the counters are atomics.
#pragma once

#include "process/thread_shard.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace jitalloc {

class StripedCounter {
public:
    void fetch_add(uint64_t n, std::memory_order order = std::memory_order_relaxed) {
        add_on(this_thread_shard(), n, order);
    }
    // fetch_add for a caller that knows its shard (GateGuard::shard).
    void add_on(unsigned shard, uint64_t n, std::memory_order order = std::memory_order_relaxed) {
        slots_[shard].n.fetch_add(n, order);
    }
    uint64_t load(std::memory_order order = std::memory_order_relaxed) const {
        uint64_t sum = 0;
        for (const Slot &s : slots_)
            sum += s.n.load(order);
        return sum;
    }

private:
    struct alignas(kCacheLine) Slot {
        std::atomic<uint64_t> n{0};
    };
    Slot slots_[kShards];
};

}  // namespace jitalloc
