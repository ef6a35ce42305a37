// Chunks: 2 MiB-aligned pieces of code memory and their out-of-band descriptors.
//
// Invariants:
//  - A chunk's base is 2 MiB aligned; a small chunk is exactly 2 MiB (512 pages, managed
//    by the buddy), a large chunk is a multiple of 2 MiB holding one allocation.
//  - Chunk metadata (this struct and its page descriptors) is ordinary memory from mmap,
//    never code memory, and is type-stable: a Chunk object is recycled only as a Chunk,
//    so a racing lookup of a stale pointer reads a Chunk, never freed memory. A new or
//    recycled chunk's descriptors are all in their reset state (all-zero bytes, PageDesc).
//  - The chunk map holds every mapped chunk; a pointer maps to its chunk in O(1). What
//    the map returns may be released or bound to another arena at any moment: a lookup
//    trusts a chunk only after confirming its binding (below) under bind_lock, with the
//    owning arena's lock held that orders the chunk's release there.
#pragma once

#include "arch/arch.h"
#include "poke/writer.h"
#include "process/word_lock.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

struct jit_arena;

namespace jitalloc {

// The buddy's and the slabs' page: 4 KiB whatever the kernel's page size (4, 16 or 64
// KiB on arm64), so size classes, orders and metadata are the same everywhere. Code that
// changes protections or mappings rounds to os::page_size() instead; a 2 MiB chunk is a
// whole number of pages of every size.
inline constexpr size_t kPageShift = 12;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
inline constexpr size_t kChunkShift = 21;
inline constexpr size_t kChunkSize = size_t{1} << kChunkShift;
inline constexpr unsigned kPagesPerChunk = kChunkSize / kPageSize;  // 512
inline constexpr unsigned kMaxOrder = 9;                            // 2 MiB block
inline constexpr uint8_t kNoOrder = 0xff;  // PageDesc::free_order(): heads no free block
inline constexpr uint16_t kNoSlab = 0;     // PageDesc::slab_key: no slab (slab_key_of is 1 up)

enum class PageState : uint8_t {
    free,        // inside a free buddy block
    slab,        // part of a slab: owner is the Slab
    pages_head,  // first page of a page allocation (npages, requested)
    pages_tail,  // later page of a page allocation (head)
    transit,     // page allocation in transit: being written before it is published, being
                 // trap-filled by a free, or quarantined (a failed write left code in it)
    pack,        // part of a pack (src/pack): owner is the Pack
};

// A T that is only ever read and written atomically (std::atomic_ref), with no
// constructor: unlike std::atomic it is trivially constructible, so an array of
// descriptors holding it can be used straight from zero-filled memory.
template <class T>
struct AtomicField {
    T raw;
    T load(std::memory_order o = std::memory_order_seq_cst) const {
        return std::atomic_ref<T>(const_cast<T &>(raw)).load(o);
    }
    void store(T v, std::memory_order o = std::memory_order_seq_cst) {
        std::atomic_ref<T>(raw).store(v, o);
    }
};

struct Chunk;

// One buddy page's descriptor. All-zero bytes are its reset state (free, heading no
// block, no slab, unlinked), so a new chunk's descriptors are zero-filled memory the
// kernel hands out, and only the pages of descriptors in use are ever touched: a fresh
// process's first jit_alloc writes three of them instead of seven (issue 16). No member
// has an initializer: a PageDesc is value-initialised or lies in zeroed memory.
struct PageDesc {
    // Buddy free-list links; valid while free_order() != kNoOrder (this page heads a free
    // block of that order). Guarded by the arena's buddy lock.
    PageDesc *next;
    PageDesc *prev;
    // Set when the page first heads a free block (Buddy::push), and kept: every
    // descriptor the buddy hands out or lists has them; others may still hold zero.
    Chunk *chunk;
    // Read without locks by lookups, written under the buddy lock (and the slab class
    // lock for slab pages): a lookup re-checks them under the right lock.
    AtomicField<void *> owner;
    AtomicField<PageState> state;
    bool wide;               // pages_head: written past `requested` (see slab.h's `wide`)
    // Slab pages: which class lock guards the slab (the arena's key: its shard and size
    // class, see arena/shards.h, from 1 up); kNoSlab otherwise.
    AtomicField<uint16_t> slab_key;
    uint8_t order_;          // free_order() + 1 while the page heads a free block, else 0
    bool held_code;          // pages_head: the allocation has held code (see slab.h)
    uint16_t index;          // page number within the chunk (set with chunk, above)
    uint16_t head;           // pages_tail: index of the head page
    uint16_t npages;         // pages_head: pages in the allocation (<= kPagesPerChunk)
    uint32_t requested;      // pages_head: bytes asked for

    // pages_head: bytes from the run's start past which it holds only traps.
    size_t code_end() const { return wide ? size_t{npages} * kPageSize : requested; }
    unsigned free_order() const { return order_ ? order_ - 1u : kNoOrder; }
    void set_free_order(unsigned o) { order_ = o == kNoOrder ? 0 : static_cast<uint8_t>(o + 1); }
};

static_assert(std::is_trivially_default_constructible_v<PageDesc>,
              "descriptors live in zero-filled memory, never constructed one by one");
static_assert(std::atomic_ref<void *>::is_always_lock_free &&
              std::atomic_ref<uint16_t>::is_always_lock_free);

static_assert(kPagesPerChunk <= UINT16_MAX, "PageDesc::npages holds a page count");

struct Chunk {
    // --- the binding: which arena owns the chunk and what it covers ---
    // Written only under bind_lock: set by chunk_create (no arena lock needed: it binds
    // metadata no arena holds, and before the binding no lookup trusts it), cleared when
    // the metadata is recycled (chunk_destroy, chunk_abandon) with the owning arena's
    // buddy lock held. So an arena holding its buddy lock that finds a chunk bound to itself keeps
    // it until it lets go; one holding a class lock that finds, under bind_lock, a page
    // of a slab of that class in a chunk bound to itself keeps that slab (its pages
    // leave it only under the class lock, and a chunk with a slab is never released).
    // bind_lock is taken only inside arena operations (inside the fork gate), never
    // around another lock.
    mutable WordLock bind_lock;
    uint8_t *base = nullptr;
    size_t size = 0;           // kChunkSize, or a multiple for a large chunk
    bool large = false;
    // Also read without bind_lock as a hint (the C API's jit_free / jit_size), which the
    // arena named then confirms.
    std::atomic<jit_arena *> arena{nullptr};
    // --- end of the binding ---

    // Updates between their lookup and the end of their write (taken under the lock that
    // confirmed the allocation live, see jit_arena::locate). chunk_destroy waits for none
    // before unmapping, so an update racing the free of its allocation (a stale pointer
    // whose range was reused, then released) never touches unmapped memory.
    std::atomic<uint32_t> writes_in_flight{0};
    bool live = false;         // large: the allocation is live
    uint64_t requested = 0;    // large: bytes asked for
    bool held_code = false;    // large: the allocation has held code (see slab.h)
    ChunkMapping mapping;
    Chunk *next = nullptr;     // arena's chunk list (buddy lock)
    Chunk *prev = nullptr;
    unsigned free_pages = 0;   // small chunk: pages in free buddy blocks
    PageDesc pages[kPagesPerChunk];

    uint8_t *page_addr(unsigned i) const { return base + (size_t{i} << kPageShift); }
    unsigned page_of(const void *p) const {
        return static_cast<unsigned>((static_cast<const uint8_t *>(p) - base) >> kPageShift);
    }
    bool contains(const void *p) const {
        auto *b = static_cast<const uint8_t *>(p);
        return b >= base && b < base + size;
    }
    // bind_lock held: the chunk is bound to arena a and covers p.
    bool bound_to(const jit_arena *a, const void *p) const {
        return arena.load(std::memory_order_relaxed) == a && contains(p);
    }
    // p's page descriptor in the chunk the map holds for p's 2 MiB slot, readable before
    // the binding is confirmed: a small chunk starts at its slot, so this is p's page; a
    // large chunk's descriptors all stay free.
    static unsigned page_in_slot_index(const void *p) {
        return (reinterpret_cast<uintptr_t>(p) >> kPageShift) % kPagesPerChunk;
    }
    PageDesc &page_in_slot(const void *p) { return pages[page_in_slot_index(p)]; }
};

// End of the user address space the kernel hands out by default (arch.h).
inline constexpr uintptr_t kUserTop = uintptr_t{1} << arch::kUserAddressBits;

// Where chunks may go: every byte inside [lo, hi), nearest to `near` first.
struct Placement {
    bool anywhere = true;
    uintptr_t lo = 0, hi = 0, near = 0;
};

// Maps a new chunk of `size` bytes (multiple of kChunkSize) with writer w, its first
// `exposed` bytes trap-filled and ROX (the rest reserved PROT_NONE, see growth.h), owned
// by `arena`, and registers it in the chunk map (only then can lookups see it). A chunk
// larger than kChunkSize is a large chunk. first (nullptr: none): the code of the
// allocation the chunk is made for, which then starts at its base holding it (written
// with the fill, see Writer::map); the caller must hand [base, base + first->len) out
// as that allocation before any other thread can take it. nullptr with errno on failure
// (nothing left mapped).
Chunk *chunk_create(const Writer &w, const Placement &where, size_t size, size_t exposed,
                    bool huge, jit_arena *arena, const Writer::Piece *first = nullptr);
// Unmaps a chunk and recycles its metadata. 0, or an errno with the chunk intact.
int chunk_destroy(const Writer &w, Chunk *c);

// Last resort when chunk_destroy fails on arena destruction: unmaps what it can and
// recycles the metadata regardless.
void chunk_abandon(Chunk *c);

// The chunk the map holds for p's 2 MiB slot, or nullptr. Lock-free; the result may be
// released or re-bound concurrently (callers confirm the binding, see Chunk).
Chunk *chunk_lookup(const void *p);

// Bytes of chunk metadata currently held (live and recycled).
size_t chunk_metadata_bytes();

// Reserves a 2 MiB-aligned PROT_NONE range of `size` bytes inside the placement window.
// nullptr with errno (ENOMEM when the window has no room).
uint8_t *reserve_range(const Placement &where, size_t size);

// reserve_range, then made accessible with prot (never executable): non-code memory in
// the placement window (jit_arena_map_near). nullptr with errno; nothing left mapped.
uint8_t *map_in_window(const Placement &where, size_t size, int prot);

}  // namespace jitalloc
