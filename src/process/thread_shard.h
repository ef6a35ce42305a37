// Thread shards: which of kShards per-thread stripes a thread uses, process-wide. The
// arena's size classes, fork-gate and operation counters (arena/shards.h) and its
// chunks' free lists (buddy.h) are striped by it, so threads on different shards share
// no lock, counter line or code page on their hot paths. Below the arena so that the
// slab, buddy and chunk layers can size their per-shard state.
//
// A thread is given one shard the first time it asks and keeps it for its life: a lease
// on the shard the fewest live threads hold (thread_shard.cpp), given back when the
// thread exits, so up to kShards live threads have a shard each however many threads
// came and went before.
//
// Invariants:
//  - this_thread_shard() < kShards, and is the same value for every call on one thread
//    (a forked child's thread keeps its parent's).
//  - While at most kShards threads that have asked are alive, no two of them share a
//    shard.
// Locking: none on the hot path (a thread-local); a thread's first call takes the
// assignment lock (thread_shard.cpp).
#pragma once

#include <cstddef>

namespace jitalloc {

inline constexpr unsigned kShards = 4;
inline constexpr size_t kCacheLine = 64;

unsigned this_thread_shard();
// Live threads holding a lease on shard (tests, diagnostics).
unsigned shard_holders(unsigned shard);
// fork child handler (process/fork.cpp): the calling thread is the only holder left.
void shards_fork_child();

}  // namespace jitalloc
