// Slabs: runs of buddy pages cut into equal objects of one size class.
//
// Invariants (checked by SlabClass::check):
//  - A slab's bitmaps live outside code memory. `avail` marks objects that are free and
//    hold only trap bytes; `live` marks objects handed to the user. An object with
//    neither bit is in transit (being written by jit_alloc or trap-filled by jit_free);
//    no object has both. `code` marks live objects that have held code since they were
//    handed out (written with code or updated): other threads may be running them, so
//    rewriting them needs cross-CPU serialisation (src/serialise). A free object with it
//    is stale (arenas with lazy trap fill only): freed, its old code still in place, to
//    be overwritten (code and trap tail, up to the old code's end) when it is handed
//    out again.
//  - `wide` marks objects (live or stale) whose bytes past req[i] + 1 may hold something
//    other than traps (an update wrote there); every other object holds only traps past
//    its requested length, so a trap fill or a stale object's reuse writes up to
//    code_end(i), not the whole object. A free object that is not stale has req[i] == 0
//    and no `wide` bit; a stale one keeps both as they were when it was freed.
//  - navail / nlive are the popcounts of the bitmaps; requested is the sum of req[] over
//    live objects.
//  - A slab is on exactly one list of its class: partial (some avail, some not),
//    full (no avail) or empty (all avail), matching its counts.
//  - Every page of a slab has state slab, owner == the slab and slab_key == its key
//    (slab_key_of: shard and class, so a lookup finds the lock that guards it).
// Locking: everything in a SlabClass and its slabs is guarded by SlabClass::lock.
// The slab layer never maps or writes code memory; the arena does that around it.
#pragma once

#include "chunk/chunk.h"
#include "slab/size_class.h"

#include <mutex>
#include <string>

namespace jitalloc {

struct Slab {
    Chunk *chunk;
    uint8_t *base;        // first object
    uint16_t first_page;
    uint8_t cls;
    uint8_t list;         // which SlabList it is on
    uint8_t shard;        // the arena's shard whose class holds it (arena/shards.h)
    uint16_t nobj;
    uint16_t navail;
    uint16_t nlive;
    uint32_t size;        // object size
    uint64_t requested;   // bytes asked for by live objects
    Slab *next, *prev;
    uint64_t *avail;      // nobj bits
    uint64_t *live;       // nobj bits
    uint64_t *code;       // nobj bits: live object has held code since it was handed out
    uint64_t *wide;       // nobj bits: written past the requested length (see above)
    uint16_t *req;        // requested length - 1 per live (or stale) object, 1..64 KiB
    // floor(2^kRecipShift / size) + 1: offset / size as a multiply and shift, exact for
    // every offset inside the slab (slab.cpp). Every free and update turns a pointer into
    // an index; a 64-bit divide is tens of cycles on most CPUs.
    uint64_t recip;
    static constexpr unsigned kRecipShift = 40;

    uint8_t *object(unsigned i) const { return base + size_t{i} * size; }
    size_t pages() const { return size_class(cls).pages; }
    // Index of the object starting exactly at p; -1 for an interior or foreign pointer.
    int index_of(const void *p) const;
    // Index of the object containing p; -1 if p is past the last object.
    int index_containing(const void *p) const;
    bool is_live(unsigned i) const { return live[i / 64] >> (i % 64) & 1; }
    bool is_avail(unsigned i) const { return avail[i / 64] >> (i % 64) & 1; }
    bool held_code(unsigned i) const { return code[i / 64] >> (i % 64) & 1; }
    bool is_wide(unsigned i) const { return wide[i / 64] >> (i % 64) & 1; }
    // Records that object i holds code now, written up to `end` bytes from its start;
    // returns whether it held code before.
    bool mark_written(unsigned i, size_t end);
    // Bytes from the start of object i (live or stale) past which it holds only traps.
    size_t code_end(unsigned i) const { return is_wide(i) ? size : requested_of(i); }
    bool is_stale(unsigned i) const { return is_avail(i) && held_code(i); }
    // The smallest range [*lo, *hi) holding every stale object; false if there is none.
    bool stale_span(uint8_t **lo, uint8_t **hi) const;
    uint32_t requested_of(unsigned i) const { return uint32_t{req[i]} + 1; }
};

struct SlabList {
    Slab *head = nullptr;
    uint64_t count = 0;
};

class SlabClass {
public:
    enum ListId : uint8_t { kPartial, kFull, kEmpty, kNumLists };

    WordLock lock;  // held briefly, never while code memory is written

    // --- all below require `lock` ---

    // Takes an available object into transit (neither free nor live: the caller writes it,
    // then publishes it or gives it back with finish_free). nullptr if no slab of this
    // class has one; *slab is set to the object's slab and *index to its index there.
    // prefer_clean: take an object holding only traps if the slab has one (a reservation
    // then needs no write). *stale: the object taken holds freed code (lazy trap fill).
    // *stale_end: a stale object's code_end (else 0).
    uint8_t *take(Slab **slab, unsigned *index, bool prefer_clean = false, bool *stale = nullptr,
                  size_t *stale_end = nullptr);
    // Makes an object in transit live with `requested` bytes; with_code: it holds code.
    // wide: bytes past requested may hold code (a batch's update of its own allocation).
    void publish(Slab *s, unsigned i, uint32_t requested, bool with_code, bool wide = false);
    // Adds a new slab (all objects available).
    void add(Slab *s);
    // First half of a free: the object at index i stops being live (it is in transit).
    // EINVAL if it is not live.
    int begin_free(Slab *s, unsigned i);
    // Undo begin_free (trap fill failed): live again, its code mark unchanged.
    void abort_free(Slab *s, unsigned i, uint32_t requested);
    // Second half of a free, or giving back an object taken and not published: the object
    // in transit, now trap-filled (or stale: still holding code, lazy trap fill only),
    // becomes available. If the slab became
    // empty and more than `keep_empty` empty slabs are cached, the slab is unlinked and
    // returned: the caller gives its pages back to the buddy.
    // stale with unknown_end: what it holds is not known (a failed write into it), so its
    // reuse overwrites it whole (`wide`).
    Slab *finish_free(Slab *s, unsigned i, unsigned keep_empty, bool stale = false,
                      bool unknown_end = false);
    // The live object i now counts `requested` bytes (1..size; jit_shrink_alloc). EINVAL
    // if it is not live.
    int set_requested(Slab *s, unsigned i, uint32_t requested);
    // Unlinks and returns a cached empty slab (for shrinking), or nullptr.
    Slab *pop_empty();
    // Unlinks and returns any slab (arena destruction), or nullptr.
    Slab *pop_any();

    uint64_t slabs() const;
    uint64_t empty_slabs() const { return lists_[kEmpty].count; }
    uint64_t objects_live() const { return live_; }
    uint64_t objects_avail() const { return avail_; }
    uint64_t requested() const { return requested_; }

    // This class is class cls of shard `shard`; lazy: the arena fills traps lazily, so
    // free objects may be stale.
    bool check(unsigned shard, unsigned cls, std::string &msg, bool lazy = false) const;

private:
    void link(Slab *s, ListId l);
    void unlink(Slab *s);
    void relist(Slab *s);

    SlabList lists_[kNumLists];
    uint64_t live_ = 0, avail_ = 0, requested_ = 0;
};

// The key a slab page's descriptor holds (PageDesc::slab_key): which class of which shard,
// from 1 up (0 is kNoSlab: a zero-filled descriptor names no slab).
inline uint16_t slab_key_of(unsigned shard, unsigned cls) {
    return static_cast<uint16_t>(shard * kNumClasses + cls + 1);
}

// A new slab of class cls for shard `shard` over `pages` pages of chunk c starting at
// first_page; claims the pages' descriptors. nullptr if metadata cannot be allocated.
Slab *slab_new(unsigned cls, unsigned shard, Chunk *c, unsigned first_page);
// Releases the descriptors' claim and the metadata (not the pages).
void slab_delete(Slab *s);
// Bytes of metadata held by one slab of class cls.
size_t slab_metadata_bytes(unsigned cls);

}  // namespace jitalloc
