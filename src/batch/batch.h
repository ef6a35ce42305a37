// Batches: many writes into one arena's code memory — the code of new allocations and
// updates of live ones — gathered and made at one commit, in as few kernel writes as
// their addresses allow, with at most one cross-CPU serialisation at the end.
//
// A batch talks to the arena only through its transit protocol (take / publish /
// give_back), locate() and the poke layer: it adds no branch to the arena.
//
// How it works:
//  - jit_batch_alloc takes memory into transit at once (the address is final, the memory
//    is not live: lookups, jit_free and jit_size reject it) and stages the allocation's
//    bytes — code, then traps up to its usable size — in a run: a buffer for one range of
//    consecutive addresses of one chunk. jit_batch_update stages live-code updates the
//    same way; an update inside an allocation of the same batch goes straight into its
//    staged bytes.
//  - Allocations of up to kPackMaxObject bytes are laid out in packs (src/pack): the
//    batch reserves a run of free 16-byte units and hands out consecutive addresses from
//    it (a bump pointer, the run grown in place when it is used up), so they all stage
//    into one run — one kernel write — whatever their sizes; the commit publishes them
//    and frees the reservation's unused end in one step under the pack lock. If no pack
//    run can be had (ENOMEM: the max_bytes cap, no 512 KiB of free pages in a row for a
//    new pack) such an allocation is taken like a longer one, from a slab. Longer ones
//    come from slabs and page runs: an allocation that starts where a run ends (the
//    next object of the same slab: the slab layer hands out the lowest free address
//    first) is appended to that run, so allocations of one size class become one range.
//  - Commit re-checks every live update (its allocation must still be live and not freed
//    since it was staged: the arena's free watch tells the batch of frees), sorts the
//    runs by address, merges adjacent runs into one write (pwritev gathers the pieces),
//    writes each range with poke_pieces, publishes the allocations, and serialises the
//    other CPUs once if any write replaced code that may have run (src/serialise).
//  - All or nothing: if any write fails, the ranges already written are rolled back
//    (traps into fresh memory, the saved old bytes elsewhere), the allocations are given
//    back, and the error is returned; other CPUs are serialised if live code was touched
//    meanwhile. Rolled-back bytes are exact "as far as the writer allows", the promise of
//    a failed jit_update.
// Invariants:
//  - Every Alloc's Transit belongs to the batch until commit publishes it or abort / a
//    failed commit gives it back; nothing else can reach that memory.
//  - Runs never overlap one another; each lies inside one chunk; a run's bytes are what
//    its range must hold after the commit.
//  - Live updates never overlap one another (checked when they are added): live_ is
//    sorted by address.
// The library is built without exceptions: all memory is taken with malloc-style calls
// that can fail (ENOMEM), never through throwing containers.
// A batch is used by one thread at a time; other threads may use the arena meanwhile.
#pragma once

#include "arena/arena.h"

#include <jitalloc/jitalloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace jitalloc {

// A growable array of trivially copyable T whose growth reports failure instead of
// throwing.
template <class T>
class Vec {
    static_assert(std::is_trivially_copyable_v<T>);

public:
    Vec() = default;
    Vec(const Vec &) = delete;
    Vec &operator=(const Vec &) = delete;
    ~Vec() { std::free(data_); }

    bool reserve(size_t n) {
        if (n <= cap_)
            return true;
        size_t cap = cap_ ? cap_ : 8;
        while (cap < n)
            cap *= 2;
        void *p = std::realloc(data_, cap * sizeof(T));
        if (!p)
            return false;
        data_ = static_cast<T *>(p);
        cap_ = cap;
        return true;
    }
    // Grows by n elements (uninitialised); false (unchanged) if there is no memory.
    bool grow(size_t n) {
        if (!reserve(size_ + n))
            return false;
        size_ += n;
        return true;
    }
    bool push(const T &v) {
        if (!reserve(size_ + 1))
            return false;
        data_[size_++] = v;
        return true;
    }
    // Inserts v before position i (room must have been reserved).
    void insert_reserved(size_t i, const T &v) {
        std::memmove(data_ + i + 1, data_ + i, (size_ - i) * sizeof(T));
        data_[i] = v;
        size_++;
    }
    void shrink_to(size_t n) { size_ = n; }
    size_t capacity_bytes() const { return cap_ * sizeof(T); }
    void clear() { size_ = 0; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T *data() { return data_; }
    const T *data() const { return data_; }
    T &operator[](size_t i) { return data_[i]; }
    const T &operator[](size_t i) const { return data_[i]; }
    T *begin() { return data_; }
    T *end() { return data_ + size_; }
    T &back() { return data_[size_ - 1]; }

private:
    T *data_ = nullptr;
    size_t size_ = 0, cap_ = 0;
};

// log2 of the slots of a batch's run cache (jit_batch::run_ending_).
inline constexpr unsigned kRunCacheBits = 9;

}  // namespace jitalloc

struct jit_batch final : private jitalloc::FreeListener {
    explicit jit_batch(jit_arena *a) : arena(a) {}
    ~jit_batch();
    jit_batch(const jit_batch &) = delete;
    jit_batch &operator=(const jit_batch &) = delete;

    // Set when the batch is made, and again only while it is empty (batch/spare.h).
    jit_arena *arena;

    // Operations behind the C API (errno values). A call that fails leaves the batch
    // as it was.
    // align: a power of two from JIT_ALLOC_ALIGN to JIT_MAX_ALIGN (the C API checks it).
    int alloc(const void *code, size_t len, const char *name, void **out,
              size_t align = JIT_ALLOC_ALIGN);
    int update(void *dst, const void *src, size_t len);
    int commit();
    void abort();

    // src/patch's door. A step of a live-patching protocol is a batch of writes into
    // live code, made while the caller holds the arena's fork gate for the whole protocol
    // (it must not enter again: a fork waiting for the caller would wait for itself).
    // stage_raw_in_gate stages [dst, dst + len) of chunk c from src (read now) as live
    // code without update()'s check that it lies in one live allocation: a group of
    // sites may span several allocations and the bytes between them. The caller checked
    // the allocations holding its sites when the patch began (its callers leave them
    // alone meanwhile, jitalloc.h), tells observers itself, and holds the write gate
    // exclusively (poke/write_gate.h) whenever the range has bytes of other owners, which
    // src holds with their current values. ENOMEM with nothing changed.
    // commit_in_gate() is commit() without the final serialisation and without counting
    // updates in the arena's stats: the protocol serialises after each step itself (and
    // must know whether that failed) and counts one update per patch. It fails and rolls
    // back as commit() does. *replaces_code: a live update replaced code that may have
    // run (raw stages count as none: the protocol syncs regardless). With raw stages
    // only, it takes no lock of the library (write_gate.h: the exclusive holder must not).
    int stage_raw_in_gate(jitalloc::Chunk *c, uint8_t *dst, const uint8_t *src, size_t len);
    int commit_in_gate(bool *replaces_code);

    // Heap bytes the batch keeps between commits (its arrays' capacity).
    size_t retained_bytes() const;

private:
    struct Run {
        jitalloc::Chunk *chunk;
        uint8_t *dst;
        size_t bytes;        // staged bytes: what [dst, dst + bytes) must hold
        uint8_t *staged;     // malloc'ed, `room` bytes
        size_t room;
        bool live;           // holds bytes of published allocations (live updates)
        bool fresh;          // all of its range holds traps now (new, clean memory)
        bool restored;       // after a failed commit: its range is as before the commit
        uint8_t *end() const { return dst + bytes; }
    };
    struct Alloc {
        jitalloc::Transit t;
        size_t run;          // where its bytes are staged
        size_t at;           // offset of t.start in that run
        size_t name;         // offset into names_, or kNoName
        bool with_code;
    };
    struct LiveWrite {
        uint8_t *dst;
        size_t len;
        size_t run;          // where its bytes are staged
        uint8_t *alloc_start;  // of the live allocation it writes into (observers)
    };
    struct AllocAt {
        uint8_t *start;
        size_t index;        // into allocs_
    };
    // Units of a pack reserved by this batch (src/pack): its allocations up to
    // kPackMaxObject bytes are laid out in them back to back, from run.first.
    struct Reservation {
        jitalloc::PackRun pack_run;
        unsigned used;       // units handed out
        size_t run;          // the run its allocations are staged in, or kNoRun
    };
    static constexpr size_t kNoRun = SIZE_MAX;
    static constexpr size_t kNoName = SIZE_MAX;
    // 512 slots: with one open run per size class a batch of BPF-like sizes keeps ~20
    // runs growing at once; at 64 slots a quarter of the appends missed (a new run, an
    // extra malloc and an extra piece per kernel write).
    static constexpr size_t kRunCache = size_t{1} << jitalloc::kRunCacheBits;

    // Room for len more bytes at dst in chunk c: appended to the run ending at dst, or a
    // new run. The run's index in *run, the bytes at runs_[*run].staged + *at. ENOMEM
    // with nothing changed.
    int stage(jitalloc::Chunk *c, uint8_t *dst, size_t len, bool fresh, bool live, size_t *run,
              size_t *at);
    // update() inside the fork gate.
    int stage_update(void *dst, const void *src, size_t len);
    // Takes len bytes from the newest reservation, growing it or reserving another run.
    // ENOMEM (or the arena's errno) with nothing changed.
    int take_packed(size_t len, jitalloc::Transit &t);
    // The arena's take, inside its fork gate.
    int take(size_t len, bool with_code, jitalloc::Transit &t, size_t align);
    // stage() for an allocation take_packed made.
    int stage_packed(const jitalloc::Transit &t, size_t *run, size_t *at);
    // Publishes the allocations of each reservation and releases the rest of it.
    void publish_packed();
    // The allocation of this batch whose usable size contains p, or nullptr.
    Alloc *own_alloc(const uint8_t *p);
    // Gives every allocation back: free if its run's range is as before (traps, unless
    // it was taken stale), else quarantined (see jit_arena::give_back).
    void give_back_all();
    void clear();

    jitalloc::Vec<Run> runs_;
    // Direct-mapped cache: run index + 1 by a hash of the address it ends at (0: none).
    // A miss only costs a merge at staging time; adjacent runs still merge at commit.
    // An entry counts only in the generation it was made in: clear() starts a new one
    // instead of zeroing 512 slots (4 KiB) after every batch, a live patch's step or a
    // one-function jitalloc::JitRuntime load.
    struct RunCacheEntry {
        uint32_t generation;
        uint32_t run;  // index + 1
    };
    RunCacheEntry run_ending_[kRunCache] = {};
    uint32_t cache_generation_ = 1;
    // The run ending at the address of slot, + 1 (0: none); and setting it.
    uint32_t cached_run(size_t slot) const {
        return run_ending_[slot].generation == cache_generation_ ? run_ending_[slot].run : 0;
    }
    void cache_run(size_t slot, size_t run_plus_1) {
        run_ending_[slot] = {cache_generation_, static_cast<uint32_t>(run_plus_1)};
    }
    jitalloc::Vec<Alloc> allocs_;
    jitalloc::Vec<AllocAt> alloc_index_;  // allocs_[0, alloc_index_.size()) by address
    jitalloc::Vec<LiveWrite> live_;       // by address, none overlapping; changed with
                                          // the free watch's lock held while watching_
    jitalloc::Vec<Reservation> reserved_;  // the newest last: allocations come from it
    jitalloc::Vec<char> names_;           // NUL-terminated names (observed arenas)
    size_t own_updates_ = 0;              // updates into allocations of this batch

    // The arena's free watch (arena/free_watch.h) tells the batch of every free while it
    // has live updates staged: a commit refuses them if an updated allocation was freed
    // since, even when another allocation now starts at the same address.
    void freed(const void *start) override;  // the watch's lock held
    bool watching_ = false;                  // on the arena's free watch (live_ not empty)
    bool target_freed_ = false;              // guarded by the watch's lock

    // Commit's scratch, kept for the next commit.
    jitalloc::Vec<size_t> order_;          // run indices by address
    jitalloc::Vec<jitalloc::Writer::Piece> pieces_;  // one per run, in address order
    jitalloc::Vec<jitalloc::PackObject> pack_objects_;  // one reservation's allocations
};
