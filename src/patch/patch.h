// Live patching (jit_patch / jit_patch_batch): replaces instructions in code other
// threads are running, with the architecture's protocol (src/arch/live_patch.h).
//
// Invariants:
//  - One patch at a time in the process (g_patch_lock, like the kernel's text_mutex):
//    the table of sites in flight holds one set.
//  - Inside the arena's fork gate, so fork() never copies a half-done patch.
//  - All or nothing: bad input changes nothing (EINVAL); a failed write or sync is
//    undone by the same protocol towards the old bytes before the error is returned.
//  - The calling thread takes no asynchronous signal and no cancellation while a set is
//    in flight (a handler running a site in flight would wait for itself).
//  - A run whose groups span other owners' bytes holds the write gate exclusively
//    (poke/write_gate.h) from before its first write to after its last undo: every
//    other thread's code write in the process waits that long (three syncs, about).
#pragma once

#include <jitalloc/jitalloc.h>

#include <cstddef>

namespace jitalloc {

// 0 or an errno (see jit_patch in jitalloc.h).
int live_patch(jit_arena *a, const jit_patch_site *sites, size_t n);

}  // namespace jitalloc
