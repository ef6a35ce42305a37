// Chunk growth: a chunk's address space is reserved whole (2 MiB, aligned) but made into
// code memory in steps, so a process that JITs a few functions pays for a few pages of
// traps, not for zeroing and filling a whole huge page (issue 16).
//
// Invariants:
//  - A small chunk's pages [0, exposed_pages) are mapped ROX and hold code or traps; the
//    rest of the chunk is PROT_NONE (nothing can read or run it) and is never handed out:
//    the arena covers every page run the buddy gives it before using it (chunk_cover).
//  - Exposure only grows, from the bottom of the chunk (the buddy hands out low pages
//    first), by doubling from kGrowStep up to kGrowWholeAfter, then the whole rest at once.
//    A chunk that becomes whole is collapsed to a huge page (poke: Writer::expose), so an
//    arena with real demand ends up with its code on 2 MiB pages as before.
//  - Only an arena's first small chunk starts small: once an arena has code memory,
//    its next chunks are mapped whole (one huge-page fault instead of a collapse later).
//  - Growth happens under the arena's buddy lock, like chunk creation.
#pragma once

#include "chunk/chunk.h"

#include <cstddef>

namespace jitalloc {

inline constexpr size_t kGrowStep = size_t{64} << 10;        // first exposure: 16 pages
inline constexpr size_t kGrowWholeAfter = size_t{256} << 10; // beyond this, all of it

// Bytes of a new chunk of `size` to expose at creation: one step for the first small
// chunk of an arena that has no chunk mapped, else the whole chunk.
size_t initial_exposure(size_t size, bool arena_has_chunks);

// Pages [0, end_page) of small chunk c are exposed (grown if needed, by the steps above).
// Buddy lock held. 0, or an errno with the chunk's exposure unchanged.
int chunk_cover(const Writer &w, Chunk *c, unsigned end_page);

inline unsigned exposed_pages(const Chunk *c) {
    return static_cast<unsigned>(c->mapping.exposed >> kPageShift);
}

}  // namespace jitalloc
