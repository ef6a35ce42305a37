// Packs: runs of buddy pages holding code objects of any length in 16-byte units — the
// layout of batches (as the kernel's bpf_prog_pack packs BPF programs into 2 MiB pages).
//
// Why: a batch of a thousand functions of mixed sizes, laid out by size class, lands in a
// few dozen slabs — a few dozen kernel writes — and pays a size-class allocation per
// function. In a pack a batch reserves one run of free units, hands out consecutive
// addresses from it (a bump pointer), stages them in one buffer and commits them with one
// kernel write; the unused end of the run is released at the commit.
//
// Invariants (checked by PackSet::check):
//  - A pack's bitmaps live outside code memory, one bit per 16-byte unit. `used`: the unit
//    belongs to a live object, an object in transit, a batch's reservation or a
//    quarantined range (a failed write that could not be undone); `start`: the unit begins
//    one of those; `live`: the start unit of an object handed to the user; `code`: the
//    start unit of a live object that has held code (rewriting it needs cross-CPU
//    serialisation, src/serialise). live ⊆ start ⊆ used, code ⊆ live.
//  - An object extends from its start unit to the next start unit or the first unused
//    unit, whichever comes first; pad[] holds, per live start unit, its usable bytes minus
//    the bytes asked for (0..15).
//  - Unused units hold only trap bytes. A freed pack object is always trap-filled (packs
//    never fill lazily).
//  - nused / nlive / live_units / requested agree with the bitmaps.
//  - Every page of a pack has state pack and owner == the pack.
// Locking: PackSet::lock guards every pack of an arena and all of its fields. Order: the
// pack lock, then the buddy lock. The pack layer never maps or writes code memory.
#pragma once

#include "chunk/chunk.h"

#include <mutex>
#include <string>

namespace jitalloc {

inline constexpr unsigned kPackPages = 128;  // 512 KiB: one order-7 buddy block
inline constexpr unsigned kPackUnitShift = 4;
inline constexpr size_t kPackUnit = size_t{1} << kPackUnitShift;
inline constexpr unsigned kPackUnits = kPackPages * kPageSize / kPackUnit;  // 32768
inline constexpr unsigned kPackWords = kPackUnits / 64;
// Batch allocations up to this length go into packs; longer ones into slabs and page runs,
// where a whole object of their size class is as dense.
inline constexpr size_t kPackMaxObject = 4096;
// A batch reserves what its first allocation needs, in a free run of at least this many
// units, and grows its reservation in place by this many at a time (fewer if fewer are
// free), so a batch of one function holds only its own units until its commit.
inline constexpr unsigned kPackReserveUnits = 4096;  // 64 KiB

struct Pack {
    Chunk *chunk;
    uint8_t *base;
    uint16_t first_page;
    bool cached_empty;     // on the empty list (nused == 0)
    uint32_t nused;        // units used
    uint32_t nlive;        // live objects
    uint32_t live_units;   // units of live objects
    uint64_t requested;    // bytes asked for by live objects
    uint32_t max_run;      // no free run is longer (an upper bound; reserve makes it exact)
    Pack *next, *prev;
    uint64_t used[kPackWords];
    uint64_t start[kPackWords];
    uint64_t live[kPackWords];
    uint64_t code[kPackWords];
    uint8_t pad[kPackUnits / 2];  // a nibble per unit

    uint8_t *unit_addr(unsigned u) const { return base + (size_t{u} << kPackUnitShift); }
    // The unit p lies in, or -1 if p is outside the pack.
    int unit_of(const void *p) const;
    bool is_used(unsigned u) const { return used[u / 64] >> (u % 64) & 1; }
    bool is_start(unsigned u) const { return start[u / 64] >> (u % 64) & 1; }
    bool is_live(unsigned u) const { return live[u / 64] >> (u % 64) & 1; }
    bool held_code(unsigned u) const { return code[u / 64] >> (u % 64) & 1; }
    // Units of the object (or reservation) starting at unit u.
    unsigned extent(unsigned u) const;
    // Start unit of the live object containing unit u (exact: starting at it), or -1.
    int live_object(unsigned u, bool exact) const;
    uint32_t requested_of(unsigned u) const;
};

// A run of units reserved by a batch: [first, first + units) of pack, used, with a start
// bit at first; nothing in it is live.
struct PackRun {
    Pack *pack = nullptr;
    unsigned first = 0, units = 0;
    uint8_t *begin() const { return pack->unit_addr(first); }
    uint8_t *end() const { return pack->unit_addr(first + units); }
};

// An object a batch made inside its reservation, to be published at the commit.
struct PackObject {
    unsigned unit, units;
    uint32_t requested;
    bool with_code;
};

class PackSet {
public:
    std::mutex lock;

    // --- all below require `lock` ---

    // Reserves `need` free units of one pack: at the start of the first free run of at
    // least `want` units (so the reservation can grow in place, extend), else of the
    // longest run of at least `need`. Only `need`: many batches open at once (an LLVM ORC
    // session materialising thousands of modules) each hold just what they use. false if
    // no pack has `need` free units in a row (the caller adds a pack).
    bool reserve(unsigned need, unsigned want, PackRun &out);
    // Grows r by up to `want` (at least `need`) free units right after it; false if the
    // units after it are not free.
    bool extend(PackRun &r, unsigned need, unsigned want);
    // Adds a new pack (all units free, the pages holding traps). Packs that become empty
    // are retired while another one is cached (settle), so empty packs are few: at most
    // one, plus those added and not yet reserved from.
    void add(Pack *p);
    // Publishes objs (inside r, in address order, consecutive from r.first) and releases
    // the rest of r, from `end` on. Returns a pack to give back to the buddy, or nullptr.
    Pack *publish(const PackRun &r, const PackObject *objs, size_t n, unsigned end);
    // Releases [u, u + n) of a reservation (its bytes hold traps). As publish's result.
    Pack *release(Pack *p, unsigned u, unsigned n);
    // First half of a free: the live object starting at unit u stops being live (it is in
    // transit). EINVAL if there is none.
    int begin_free(Pack *p, unsigned u);
    // Undoes begin_free (the trap fill failed): live again, as it was.
    void abort_free(Pack *p, unsigned u, uint32_t requested, bool held_code);
    // Second half: the object at u, `units` long and trap-filled now, becomes free. As
    // publish's result.
    Pack *finish_free(Pack *p, unsigned u, unsigned units);
    // The live object at u now asks for `requested` bytes and keeps `units` units (its
    // tail past them holds traps and is freed). EINVAL if it is not live or would grow.
    int shrink(Pack *p, unsigned u, unsigned units, uint32_t requested);
    // Records that the live object at u holds code; returns whether it did before.
    bool mark_code(Pack *p, unsigned u);
    // Unlinks and returns a cached empty pack / any pack (shrink, destruction), or nullptr.
    Pack *pop_empty();
    Pack *pop_any();

    uint64_t packs() const { return npacks_; }
    uint64_t objects_live() const { return live_; }
    uint64_t bytes_live() const { return live_units_ * kPackUnit; }
    uint64_t requested() const { return requested_; }
    uint64_t bytes_free() const { return (npacks_ * kPackUnits - used_) * kPackUnit; }
    template <class Fn>
    void for_each(Fn &&fn) const {
        for (const Pack *p = head_; p; p = p->next)
            fn(*p);
    }

    // Every invariant of pack.h; traps: also that unused units hold only traps.
    bool check(std::string &msg, bool traps = true) const;

private:
    void link(Pack *p);
    void unlink(Pack *p);
    // p's nused changed: an empty pack is cached if none is, else returned to retire.
    Pack *settle(Pack *p);
    void take_units(Pack *p, unsigned u, unsigned n);
    // Object o (its start bit set) becomes live: bitmaps, pad and every count.
    void make_live(Pack *p, const PackObject &o);
    void free_units(Pack *p, unsigned u, unsigned n);

    Pack *head_ = nullptr;
    uint64_t npacks_ = 0, empty_ = 0, used_ = 0, live_ = 0, live_units_ = 0, requested_ = 0;
};

// A new pack over kPackPages pages of chunk c from first_page (claims their descriptors);
// nullptr if its metadata cannot be allocated.
Pack *pack_new(Chunk *c, unsigned first_page);
// Releases the descriptors' claim and the metadata (not the pages).
void pack_delete(Pack *p);
inline constexpr size_t kPackMetadataBytes = sizeof(Pack);

}  // namespace jitalloc
