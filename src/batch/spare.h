// Spare batches: each thread keeps the last jit_batch it destroyed, emptied, for its next
// jit_batch_create. A batch is a 4 KiB run cache and a dozen growable arrays: making and
// freeing one for every function (jitalloc::JitRuntime makes a batch per add(), the ORC
// memory manager one per allocation) cost ~1 800 instructions in malloc, zeroing and the
// arrays' first growth — about as much as all the rest of a batch of one function.
//
// Invariants:
//  - jit_arena::open_batches counts the batches made here for the arena and not yet
//    destroyed (jit_arena_destroy refuses while it is not 0).
//  - A parked batch is empty (abort() ran: no allocation, reservation, run or live write)
//    and belongs to no arena (arena == nullptr); only its thread reaches it.
//  - A batch whose arrays hold more than kMaxParkedBytes is freed, not parked, so one
//    huge batch does not keep its memory for the thread's lifetime.
//  - The parked batch is freed when its thread exits; a batch destroyed after that (by
//    a later thread_local destructor) is freed at once.
#pragma once

#include "batch/batch.h"

namespace jitalloc {

inline constexpr size_t kMaxParkedBytes = size_t{64} << 10;

// A batch of arena a: this thread's parked one, or a new one. nullptr: no memory.
jit_batch *batch_create(jit_arena *a);

// Aborts b (its allocations go back, nothing is written) and parks or frees it.
void batch_destroy(jit_batch *b);

}  // namespace jitalloc
