// An arena: one pool of code memory with its own options, tying the layers together.
//
//   jit_alloc  -> size class -> SlabClass (its lock) -> Buddy (buddy lock) -> chunk_create
//   jit_free   -> chunk_lookup -> page descriptor -> Slab / page run -> poke_traps -> commit
//                 (observers told before the trap fill and at the commit, see commit_free;
//                 a slab object of a lazily filled arena without observers: no write, the
//                 object goes from live to free under one hold of its class lock)
//
// Locking rules:
//  - SlabClass::lock guards one class's slabs; buddy_lock guards the buddy, the chunk
//    list and page-run descriptors. Order: class lock, then buddy lock; never reverse.
//    Class locks and chunks' bind_lock, taken on every allocation, free and update, are
//    WordLocks (process/word_lock.h); the others are std::mutex.
//    Growth drops buddy_lock while it maps a new chunk (grow_locked), so one thread's
//    growth (milliseconds) does not stall another shard's slabs and page runs.
//    Every size class has one SlabClass per shard (arena/shards.h): a thread takes new
//    objects from its own shard's class, and frees an object into the class holding its
//    slab (Slab::shard), whichever thread that is. No operation holds two class locks.
//    A chunk's bind_lock (chunk.h) is innermost: a lookup takes it under one of those to
//    confirm that a chunk from the lock-free map is still this arena's.
//  - packs.lock (src/pack, arena_pack.cpp) guards the packs batches lay their small
//    allocations out in; order: pack lock, then buddy lock; never with a class lock.
//  - No code memory is written under any of these locks: writes (poke) happen with the object
//    out of every free list (in transit).
//  - Every public operation runs inside the fork gate (shared, entered once, before any
//    lock). fork() closes the gate of every arena and waits for operations in flight, so
//    the child never inherits a half-done operation, a held lock or a half-written
//    allocation — without fork() having to take the dozens of per-class locks. The
//    process-wide locks and their order are in process/locks.h.
#pragma once

#include "buddy/buddy.h"
#include "chunk/chunk.h"
#include "chunk/window.h"
#include "observe/observe.h"
#include "pack/pack.h"
#include "poke/writer.h"
#include "arena/class_table.h"
#include "arena/free_watch.h"
#include "arena/shards.h"
#include "process/locks.h"
#include "slab/slab.h"

#include <jitalloc/jitalloc.h>

#include <atomic>
#include <mutex>
#include <string>

namespace jitalloc {

// Lets many operations run at once, and fork() wait for all of them and keep new ones
// out. Not reentrant: an operation enters once. enter() fails (false) only for the
// thread running the fork handlers while the gate is closed (an atfork handler calling
// the library inside the fork window): it would wait for itself.
// The count of operations in flight is striped over the shards (a thread counts on its
// own shard's cache line, so threads on different shards never share one here); close()
// waits until every stripe is zero. enter() adds to its stripe, then reads closing_;
// close() sets closing_, then reads the stripes: all seq_cst, so one of the two sees the
// other. shard: the caller's this_thread_shard(), the same for enter and its leave.
class ForkGate {
public:
    bool enter(unsigned shard);
    void leave(unsigned shard) { inflight_[shard].n.fetch_sub(1, std::memory_order_release); }
    void close();   // fork prepare
    void open();    // after fork, in parent and child

private:
    struct alignas(kCacheLine) Stripe {
        std::atomic<int> n{0};
    };
    bool any_inflight() const;
    Stripe inflight_[kShards];
    std::atomic<bool> closing_{false};
    std::mutex lock_;  // held by fork() between close() and open()
};

// Also carries the thread's shard, looked up once per operation (a thread-local read
// through a call, and in a shared library a TLS lookup) for everything the operation
// does on it: the gate stripe, the size class it takes from, its counters.
class GateGuard {
public:
    explicit GateGuard(ForkGate &g)
        : g_(g), shard_(this_thread_shard()), inside_(g.enter(shard_)) {}
    ~GateGuard() {
        if (inside_)
            g_.leave(shard_);
    }
    unsigned shard() const { return shard_; }
    GateGuard(const GateGuard &) = delete;
    GateGuard &operator=(const GateGuard &) = delete;
    // false: not entered (see ForkGate::enter); the operation fails with EDEADLK.
    explicit operator bool() const { return inside_; }

private:
    ForkGate &g_;
    unsigned shard_;
    bool inside_;
};

// Result of resolving a pointer to its allocation.
struct Located {
    Chunk *chunk = nullptr;
    Slab *slab = nullptr;   // slab object, else page run / large chunk
    unsigned index = 0;     // slab object index, or head page of a page run
    uint8_t *start = nullptr;
    size_t usable = 0;
    bool held_code = false;  // the allocation held code before (locate for a write)
    Pack *pack = nullptr;    // pack object (index: its start unit), see src/pack
    // Bytes from start past which the allocation holds only traps (slab objects and page
    // runs: their requested length, or more where an update wrote past it; 0: unknown,
    // usable). After locate for a write, the write is counted in.
    size_t code_end = 0;
    size_t fill_len() const { return code_end ? code_end : usable; }
};

// Memory of one allocation in transit: taken and not yet published, or being freed.
struct Transit : Located {
    uint32_t requested = 0;  // bytes asked for (slab objects and page runs)
    size_t length = 0;       // bytes asked for
    bool stale = false;      // taken: a freed slab object still holding its code (lazy
                             // trap fill), to be overwritten up to its code extent
    bool born_with_code = false;  // taken from a chunk made for it, which holds its code
                                  // already (take's `first`, grow_locked)
    bool freed = false;  // begin_free's finish_stale: the free is done, nothing in transit
    bool wide = false;   // publish: bytes past `requested` may hold code (a batch's update)
};

}  // namespace jitalloc

struct jit_arena {
    using Chunk = jitalloc::Chunk;

    jit_arena_options opts{};
    uint64_t id = 0;         // never reused (arena_setup.cpp); set before registration
    std::string name;
    const jitalloc::Writer *writer = nullptr;
    jitalloc::Placement placement;
    bool sync_core = false;  // membarrier SYNC_CORE registered and wanted (src/serialise)
    bool observed = false;   // profiler / debugger observers enabled (observe.h)
    bool lazy_fill = false;  // JIT_ARENA_LAZY_TRAP_FILL: freed slab objects stay stale

    // Each shard's size classes (see shards.h), made on first use (class_table.h).
    jitalloc::ClassTable classes;
    // The class holding slab s (made before s was).
    jitalloc::SlabClass &class_of(const jitalloc::Slab &s) { return *classes.find(s.shard, s.cls); }

    // Batches' objects (src/pack, arena_pack.cpp); its lock is taken before buddy_lock.
    jitalloc::PackSet packs;

    std::mutex buddy_lock;
    // --- guarded by buddy_lock ---
    jitalloc::Buddy buddy;
    jitalloc::Chunk *chunks = nullptr;  // small and large chunks
    uint64_t chunks_mapped = 0;         // in 2 MiB units
    uint64_t chunks_released = 0;
    uint64_t page_runs_live = 0, page_runs_requested = 0, page_runs_pages = 0;
    uint64_t large_live = 0, large_requested = 0, large_bytes = 0;
    uint64_t slab_meta_bytes = 0;
    uint64_t growing = 0;               // chunks being made, buddy_lock dropped (grow_locked)
    // --- end of buddy_lock ---

    jitalloc::StripedCounter total_allocs, total_frees, total_updates;
    jitalloc::ForkGate gate;
    jit_arena *next_arena = nullptr;  // global arena list (registry lock)
    bool dying = false;               // jit_arena_destroy under way (registry lock)
    // Batches made for this arena and not destroyed yet (batch/spare.cpp): while any is,
    // jit_arena_destroy fails with EBUSY instead of leaving them pointing at freed memory.
    std::atomic<size_t> open_batches{0};
    // Told of every successful free (free_watch.h): batches with staged updates of live
    // code listen, so that a commit can tell a freed target from a new allocation at the
    // same start.
    jitalloc::FreeWatch free_watch;

    // Operations behind the C API; errors as errno values.
    // align: a power of two up to kPageSize (the C API checks it).
    int alloc(const void *code, size_t len, const char *name, void **out,
              size_t align = JIT_ALLOC_ALIGN);
    // Trap-fills [p+len, end of the allocation) and gives back what the layout allows
    // (arena_resize.cpp).
    int shrink_alloc(void *p, size_t len);
    int free(void *p);
    int update(void *dst, const void *src, size_t len);
    size_t usable_size(const void *p);
    int stats(struct jit_stats *out);
    size_t shrink();
    bool check(std::string &msg);
    void destroy_all();

    // fork support (see arena_setup.cpp)
    void fork_prepare();
    void fork_parent();
    void fork_child();

    // The transit protocol (arena.cpp): every allocation and free, single or in a batch,
    // is made of these steps around the writes. Each takes the locks it needs; none writes
    // code memory. Errors as errno values.
    //   take: free -> transit (len bytes; nothing written yet, the memory holds traps)
    // with_code: code will be written (else a clean object is preferred: no write)
    // first: the code (with_code), written with the trap fill of a chunk made for this
    // allocation, if one is (chunk_create); out.born_with_code tells whether it was.
    // shard: the caller's (GateGuard::shard), whose size class a small allocation comes from.
    int take(size_t len, bool with_code, jitalloc::Transit &out,
             size_t align = JIT_ALLOC_ALIGN, const jitalloc::Writer::Piece *first = nullptr,
             unsigned shard = jitalloc::this_thread_shard());
    //   publish: transit -> live; with_code: it holds code now (see src/serialise)
    void publish(const jitalloc::Transit &t, bool with_code);
    //   give_back: transit -> free after a failed write; holds_traps false: quarantined
    void give_back(const jitalloc::Transit &t, bool holds_traps);
    //   begin_free: live -> transit (EINVAL unless p starts a live allocation)
    //   finish_stale: a slab object goes on to free at once, stale (lazy trap fill, no
    //   observers: nothing is written or told in between), out.freed set; only out.freed
    //   is then meaningful
    int begin_free(void *p, jitalloc::Transit &out, bool finish_stale = false);
    //   abort_free: transit -> live again (the trap fill failed)
    void abort_free(const jitalloc::Transit &t);
    //   finish_free: transit (trap-filled) -> free; a large chunk is unmapped here and
    //   may fail (then it is still in transit: abort_free)
    int finish_free(const jitalloc::Transit &t);

    // The live allocation starting at p (exact) or containing it. write_len > 0: a write
    // of write_len bytes at p is about to be made; it must fit in the allocation, which
    // counts as holding code from now on (out.held_code tells whether it did before).
    // Inside the fork gate; takes the locks it needs.
    // pin: on success the chunk counts a write in flight (Chunk::writes_in_flight) until
    // the caller drops it.
    bool locate(const void *p, bool exact, jitalloc::Located &out, size_t write_len = 0,
                bool pin = false);

    // Packs (arena_pack.cpp): a batch reserves a run of units, lays its objects out in
    // it, publishes them at its commit and releases the rest; see src/pack.
    //   pack_reserve: a new run of at least `need` units (ENOMEM: none to be had)
    int pack_reserve(unsigned need, jitalloc::PackRun &out);
    //   pack_extend: r grows in place by at least `need` units; false if it cannot
    bool pack_extend(jitalloc::PackRun &r, unsigned need);
    //   pack_publish: objs (consecutive from r.first) become live; [end, r's end) is free
    void pack_publish(const jitalloc::PackRun &r, const jitalloc::PackObject *objs, size_t n,
                      unsigned end);
    //   pack_give_back: nothing of r is published; holds_traps false: quarantined
    void pack_give_back(const jitalloc::PackRun &r, bool holds_traps);

    int write(Chunk *c, uint8_t *dst, const void *src, size_t len);
    int write_traps(Chunk *c, uint8_t *dst, size_t len);

private:
    int take_small(unsigned cls, unsigned shard, bool prefer_clean, jitalloc::Transit &out,
                   const jitalloc::Writer::Piece *first);
    // Writes what a taken allocation must hold before it is published: code (if any),
    // and for a stale object the trap tail too, in one write.
    int write_taken(const jitalloc::Transit &t, const void *code, size_t len);
    // Slab object in transit -> free (stale: still holding code, lazy fill); retires the
    // slab if it became empty and is not kept.
    // unknown_end: a stale object after a failed write, whose bytes are not known.
    void finish_slab_free(const jitalloc::Transit &t, bool stale, bool unknown_end = false);
    // A slab unlinked by finish_free / pop_empty (k.lock held in g) goes to the buddy,
    // stale objects trap-filled first with the lock dropped. released (shrink): adds the
    // bytes of chunks given back to the OS because of it.
    void retire_slab(jitalloc::SlabClass &k, jitalloc::Slab *dead, std::unique_lock<jitalloc::WordLock> &g,
                     size_t *released = nullptr);
    // Pack objects (arena_pack.cpp): the pack lock held on success of lock_pack.
    jitalloc::Pack *lock_pack(Chunk *c, const void *p);
    void retire_pack(jitalloc::Pack *dead, size_t *released = nullptr);  // pack lock held
    bool locate_packed(Chunk *c, const void *p, bool exact, jitalloc::Located &out,
                       size_t write_len, bool pin);
    int begin_free_packed(Chunk *c, void *p, jitalloc::Transit &out);
    void abort_free_packed(const jitalloc::Transit &t);
    int finish_free_packed(const jitalloc::Transit &t);
    int shrink_packed(const jitalloc::Located &loc, size_t len);
    size_t shrink_packs(size_t *released);
    void destroy_packs();
    int take_pages(size_t len, jitalloc::Transit &out, const jitalloc::Writer::Piece *first);
    int take_large(size_t len, jitalloc::Transit &out, const jitalloc::Writer::Piece *first);
    template <class Commit>
    int commit_free(void *p, Commit &&commit);
    // update's write and shrink_alloc's work, once inside the gate.
    int write_code(void *dst, const void *src, size_t len, unsigned shard);
    int shrink_live(void *p, size_t len);
    // Runs write (a write into the live allocation containing p) with the observers told
    // before and after; new_len > 0: a shrink to that length (only traps written).
    int observed_rewrite(const void *p, const jitalloc::ArenaStep &write, size_t new_len = 0);
    // buddy_lock held: c is bound to this arena and covers p (then it stays so).
    bool owns_locked(const Chunk *c, const void *p) const;
    jitalloc::Slab *lock_slab(Chunk *c, const void *p, jitalloc::SlabClass **held);
    // class lock of the slab held; takes buddy_lock:
    void release_slab_if_empty(jitalloc::Slab *dead, size_t *released = nullptr);
    // buddy_lock held:
    // npages from the buddy, growing the arena if none fit; b (holding buddy_lock) is
    // dropped while a chunk is made and held again on return. first: the code the run
    // starts with if a chunk is made for it (take); *holds_first tells whether one was.
    jitalloc::PageDesc *pages_locked(unsigned npages, int &err, std::unique_lock<std::mutex> &b,
                                     const jitalloc::Writer::Piece *first = nullptr,
                                     bool *holds_first = nullptr);
    // Pages back to the buddy; a chunk that becomes wholly free is released past
    // retain_bytes (its bytes added to *released, if given).
    void free_pages_locked(Chunk *c, unsigned first, unsigned npages, size_t *released = nullptr);
    // A new chunk, its exposure covering npages; made with b unlocked (arena.cpp). With
    // first, the chunk is born holding that code at its base and *carved is the run of
    // npages there, already taken from the buddy.
    int grow_locked(unsigned npages, std::unique_lock<std::mutex> &b,
                    const jitalloc::Writer::Piece *first = nullptr,
                    jitalloc::PageDesc **carved = nullptr);
    void release_locked(size_t keep_bytes, size_t *released);
    void link_chunk_locked(Chunk *c);
    void unlink_chunk_locked(Chunk *c);
    bool room_for_locked(size_t bytes) const;
};

namespace jitalloc {
// Creates and registers an arena (errno-style result). Used by the C API.
int arena_create(const jit_arena_options *opts, jit_arena **out);
// arena_create and the arena's first allocation (jit_arena::alloc(code, len)) in one, for
// the default arena created by a process's first jit_alloc: the writer is proven by that
// allocation (its chunk's trap fill and its code, read back) rather than by a probe
// beforehand; a writer that fails there is undone and the next one tried, as a failed
// probe is. *out and *p on success; else the errno of the last writer tried, and no
// arena exists.
int arena_create_allocating(const jit_arena_options *opts, const void *code, size_t len,
                            jit_arena **out, void **p);
int arena_destroy(jit_arena *a);
// Calls fn on every registered arena (but those being destroyed) with the registry lock
// held. Not from the fork window (fork_in_progress_here()): the caller checks.
template <class Fn>
void for_each_arena(Fn &&fn);
jit_arena *arena_registry_head();
// The registered arena with that id, or nullptr.
jit_arena *arena_with_id(uint64_t id);
// fork handlers (process/fork.cpp), registry lock held: every arena's fork_prepare /
// fork_parent / fork_child.
void arenas_fork_prepare();
void arenas_fork_parent();
void arenas_fork_child();
}  // namespace jitalloc

template <class Fn>
void jitalloc::for_each_arena(Fn &&fn) {
    std::lock_guard<std::mutex> g(process_lock(ProcessLock::registry));
    for (jit_arena *a = arena_registry_head(); a; a = a->next_arena)
        if (!a->dying)
            fn(a);
}
