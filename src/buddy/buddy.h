// Buddy allocator of 4 KiB pages inside 2 MiB chunks: orders 0 (4 KiB) .. 9 (2 MiB).
//
// Invariants (checked by Buddy::check):
//  - Every page of every small chunk is in exactly one place: a free block on the free
//    list of its order (head page has free_order == order, block aligned to its size,
//    all its pages in state free) or an allocation (state != free).
//  - Two free buddies of the same order never coexist: freeing coalesces.
//  - nr_free[o] is the length of free list o; chunk->free_pages counts its free pages.
//  - No code memory is touched: the buddy works on page descriptors only, so it can be
//    tested without mapping anything.
// Locking: the owner (the arena) serialises all calls with its buddy lock.
#pragma once

#include "chunk/chunk.h"

#include <jitalloc/jitalloc.h>

#include <string>

namespace jitalloc {

class Buddy {
public:
    // Hands a fresh small chunk (all pages free) to the allocator.
    void add_chunk(Chunk *c);
    // Takes back a wholly free chunk; false (nothing changed) if any page is in use.
    bool remove_chunk(Chunk *c);
    // Puts back a chunk taken by remove_chunk (its release failed).
    void undo_remove_chunk(Chunk *c);
    // Drops every free block of c from the free lists (the chunk is going away with
    // allocations still in it: arena destruction).
    void forget_chunk(Chunk *c);
    // A wholly free chunk to release, or nullptr.
    Chunk *any_free_chunk() const;

    // npages (1..512) contiguous pages; the pages are marked pages_head / pages_tail.
    // nullptr if no free block is large enough.
    PageDesc *alloc(unsigned npages);
    // The same from chunk c, just added (add_chunk) and wholly free: its pages from 0 on
    // (a chunk made holding its first allocation's code, arena.cpp grow_locked).
    PageDesc *alloc_first(Chunk *c, unsigned npages);
    // Frees [first, first+npages) of chunk c. Returns true if c became wholly free.
    bool free(Chunk *c, unsigned first, unsigned npages);

    uint64_t nr_free(unsigned order) const { return nr_free_[order]; }
    uint64_t nr_cached(unsigned order) const { return nr_cached_[order]; }
    uint64_t nr_released(unsigned order) const { return nr_released_[order]; }
    uint64_t free_pages() const;

    // Verifies the invariants above for the given chunks (the arena's chunk list);
    // returns false with a message.
    bool check(const Chunk *chunks, std::string &msg) const;

private:
    // Page `index` of c heads a free block of `order` now.
    void push(Chunk *c, unsigned index, unsigned order);
    void unlink(PageDesc *d);
    void free_block(Chunk *c, unsigned first, unsigned order);
    // The run of npages at the start of free block d (order `order`, >= npages' order).
    PageDesc *carve(PageDesc *d, unsigned order, unsigned npages);

    PageDesc *heads_[kMaxOrder + 1] = {};
    uint64_t nr_free_[kMaxOrder + 1] = {};
    uint64_t nr_cached_[kMaxOrder + 1] = {};
    uint64_t nr_released_[kMaxOrder + 1] = {};
};

static_assert(kMaxOrder + 1 == JIT_BUDDY_ORDERS);

}  // namespace jitalloc
