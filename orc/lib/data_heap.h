// DataHeap: the non-executable memory of JIT-linked graphs (their R and RW segments),
// packed many graphs to a page, in blocks that the arena maps inside its code window
// (jit_arena_map_near), so every byte is within PC-relative reach of the arena's code.
//
// Invariants (all under the heap's lock):
//  - Every byte of every block is either in exactly one free range or handed out.
//    Free ranges are 16-byte aligned and sized, indexed by address and by size, and
//    coalesced within a block (never across two blocks, so a block can be unmapped).
//  - A page wholly inside a free range has been given back (MADV_DONTNEED): resident
//    memory follows live data, and such a page reads as zero when it is used again.
//  - At most one wholly free block stays mapped (for reuse); others are unmapped.
//  - Read-only heap: blocks are PROT_READ at all times except inside write(), which
//    flips the written pages RW (never executable) under the lock and back.
//  - Read-write heap: a range reads as zero when alloc() hands it out.
#pragma once

#include <jitalloc/jitalloc.h>
#include <jitalloc/orc.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace jitalloc::orc::detail {

class DataHeap {
public:
    enum class Access { ReadOnly, ReadWrite };

    DataHeap(jit_arena *arena, Access access) : arena_(arena), access_(access) {}
    ~DataHeap();
    DataHeap(const DataHeap &) = delete;
    DataHeap &operator=(const DataHeap &) = delete;

    // A range of len bytes (len > 0) aligned to align (a power of two). 0 or an errno:
    // EINVAL for a bad alignment or length, ENOMEM (or the mapping's errno) when no
    // block can be had. Nothing changes on error.
    int alloc(size_t len, size_t align, uint8_t **out);
    // Gives back a range from alloc (the same p and len).
    void free(uint8_t *p, size_t len);
    // Read-only heap: copies len bytes into a range from alloc. 0 or the errno of the
    // failed protection change (the pages stay as they were, or at worst read-write).
    int write(uint8_t *dst, const void *src, size_t len);

    DataStats stats() const;
    // Unmaps a wholly free block kept for reuse; returns the bytes released.
    size_t shrink();

private:
    struct Block {
        size_t size = 0;
        size_t in_use = 0;  // bytes handed out
    };
    using Blocks = std::map<uintptr_t, Block>;

    Blocks::iterator block_of(uintptr_t addr);
    int add_block_locked(size_t min_len);
    void insert_free_locked(uintptr_t start, size_t len);
    void erase_free_locked(std::map<uintptr_t, size_t>::iterator it);
    void release_block_locked(Blocks::iterator b);

    jit_arena *const arena_;
    const Access access_;
    mutable std::mutex lock_;
    Blocks blocks_;
    std::map<uintptr_t, size_t> free_by_addr_;
    std::set<std::pair<size_t, uintptr_t>> free_by_size_;
    size_t bytes_in_use_ = 0;
    size_t bytes_mapped_ = 0;
    uintptr_t spare_block_ = 0;  // a wholly free block kept mapped, 0 if none
};

}  // namespace jitalloc::orc::detail
