// Chunk growth: a chunk's address space is reserved whole (2 MiB, aligned) but made into
// code memory in steps, so a process that JITs a few functions pays for a few pages of
// traps, not for zeroing and filling a whole huge page (issue 16).
//
// Invariants:
//  - A small chunk's pages [0, exposed_pages) are mapped ROX and hold code or traps; the
//    rest of the chunk is PROT_NONE (nothing can read or run it) and is never handed out:
//    the arena covers every page run the buddy gives it before using it (chunk_cover).
//  - Exposure only grows, from the bottom of the chunk (the buddy hands out low pages
//    first), by doubling from first_step() (one OS page: 4 KiB on x86-64) up to
//    kGrowWholeAfter, then the whole rest at once. One page first because every page a
//    fresh process exposes is a page fault (the trap fill) and, on a paravirtualised VM,
//    ~10-20 µs: a 64 KiB first step was a third of the first jit_alloc (issue 16).
//    A chunk that becomes whole is collapsed to a huge page (poke: Writer::expose), so an
//    arena with real demand ends up with its code on 2 MiB pages as before.
//  - Only an arena's first small chunk starts small: once an arena has code memory,
//    its next chunks are mapped whole (one huge-page fault instead of a collapse later).
//  - Growth happens under the arena's buddy lock, like chunk creation.
#pragma once

#include "chunk/chunk.h"

#include <cstddef>

namespace jitalloc {

inline constexpr size_t kGrowStep = size_t{4} << 10;         // first exposure, at least
inline constexpr size_t kGrowWholeAfter = size_t{256} << 10; // beyond this, all of it

// Bytes of an arena's first small chunk exposed at its creation: kGrowStep, or one OS
// page where pages are larger (16 or 64 KiB on arm64).
size_t first_step();

// Bytes of a new chunk of `size` to expose at creation: for the first small chunk of an
// arena that has no chunk mapped, the first step that covers `need` bytes (the run the
// chunk is made for, so it is not grown again at once), else the whole chunk.
size_t initial_exposure(size_t size, bool arena_has_chunks, size_t need);

// Pages [0, end_page) of small chunk c are exposed (grown if needed, by the steps above).
// Buddy lock held. 0, or an errno with the chunk's exposure unchanged.
int chunk_cover(const Writer &w, Chunk *c, unsigned end_page);

inline unsigned exposed_pages(const Chunk *c) {
    return static_cast<unsigned>(c->mapping.exposed >> kPageShift);
}

}  // namespace jitalloc
