// Placement windows: where an arena's chunks may go, from its options.
//
//   JIT_PLACE_NEAR_LIBRARY    [L - r, L + r): L = libjitalloc's own code (jit_alloc) — in
//                             libjitalloc.so when linked shared (among libc and the other
//                             shared libraries), in the executable when linked statically
//   JIT_PLACE_NEAR_ADDRESS    [A - r, A + r) around options.near
//   JIT_PLACE_NEAR_ADDRESSES  the intersection of [T - r, T + r) over every target T:
//                             every code byte within r of each target; empty when they
//                             lie more than 2r apart
//   JIT_PLACE_ANYWHERE        wherever the kernel puts it
// r is options.near_range (JIT_DEFAULT_NEAR_RANGE when 0); windows are clamped to user
// space. The search for a chunk starts at the window's centre (`near`).
#pragma once

#include "chunk/chunk.h"

#include <jitalloc/jitalloc.h>

namespace jitalloc {

// The reach of a direct call from code to a target (x86-64 call rel32: 2 GiB, arm64 bl:
// 128 MiB), as the architecture seam gives it.
inline constexpr size_t kDirectCallReach = arch::kDirectBranchReach;

// Where the chunks of an arena with options o may go (options validated, except that a
// NEAR_ADDRESSES window may come out empty: see window_has_room).
Placement make_placement(const jit_arena_options &o);
// True if the window holds at least one 2 MiB-aligned chunk of user space above the
// lowest slot (never mappable: mmap_min_addr).
bool window_has_room(const Placement &p);
// The window as the public API reports it (anywhere: all of user space).
void window_of(const Placement &p, enum jit_placement kind, struct jit_window *out);
// True if a direct call from any byte the window can hold reaches target.
bool window_reaches(const Placement &p, uintptr_t target);

}  // namespace jitalloc
