// The thread -> shard assignment (see thread_shard.h): leases.
//
// A thread takes a lease on a shard the first time it asks: the shard the fewest live
// threads hold, the next one after the previous assignment among those (so threads made
// one after the other still go round the shards). The lease ends when the thread exits
// (a thread_local destructor). Round robin over every thread ever made, as before, put
// two live threads on one shard as soon as four threads had come and gone — a thread
// pool that is rebuilt, or Google Benchmark's fresh threads for every run: their class
// locks, slabs and counter lines were shared again.
//
// Invariants:
//  - g_holders[s] counts the live threads that hold shard s (approximately after fork:
//    shards_fork_child() makes it exact again, the caller being the only thread).
//  - A thread's shard never changes (thread_shard.h): the destructor ends the lease but
//    keeps t_shard, so a late call (another thread_local destructor using the library)
//    still gets the same shard, just no longer counted.
// Locking: g_assigning, a spin lock held for a few loads and stores, serialises
// assignments (once per thread); the hot path reads only t_shard. Not a mutex: a forked
// child clears it whoever held it.
#include "process/thread_shard.h"

#include <atomic>

#include <sched.h>

namespace jitalloc {

namespace {

std::atomic<bool> g_assigning{false};  // assignments (and their cursor)
std::atomic<unsigned> g_holders[kShards];
unsigned g_cursor = 0;                 // where the next tie-break starts (g_assigning)
thread_local unsigned t_shard = ~0u;

// Ends the thread's lease when it exits.
struct Lease {
    unsigned shard = ~0u;
    ~Lease() {
        if (shard < kShards)
            g_holders[shard].fetch_sub(1, std::memory_order_relaxed);
    }
};
thread_local Lease t_lease;

unsigned assign() {
    while (g_assigning.exchange(true, std::memory_order_acquire))
        sched_yield();
    unsigned best = g_cursor % kShards;
    for (unsigned i = 1; i < kShards; i++) {
        unsigned s = (g_cursor + i) % kShards;
        if (g_holders[s].load(std::memory_order_relaxed) <
            g_holders[best].load(std::memory_order_relaxed))
            best = s;
    }
    g_cursor = best + 1;
    g_holders[best].fetch_add(1, std::memory_order_relaxed);
    g_assigning.store(false, std::memory_order_release);
    return best;
}

}  // namespace

unsigned this_thread_shard() {
    unsigned s = t_shard;
    if (s == ~0u) [[unlikely]] {
        s = assign();
        t_lease.shard = s;  // first use of t_lease: registers its destructor
        t_shard = s;
    }
    return s;
}

unsigned shard_holders(unsigned shard) {
    return shard < kShards ? g_holders[shard].load(std::memory_order_relaxed) : 0;
}

void shards_fork_child() {
    // The only thread of the child; the assignment lock may be held by a thread the
    // child does not have.
    g_assigning.store(false, std::memory_order_relaxed);
    for (auto &h : g_holders)
        h.store(0, std::memory_order_relaxed);
    if (t_shard < kShards && t_lease.shard == t_shard)
        g_holders[t_shard].store(1, std::memory_order_relaxed);
}

}  // namespace jitalloc
