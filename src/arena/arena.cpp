// Arena operations: alloc / free / update / size over the slab, buddy and chunk layers.
// The locking rules are in arena.h; each function below says which locks it takes.
#include "arena/arena.h"

#include "chunk/growth.h"
#include "observe/observe.h"
#include "serialise/serialise.h"

#include <sched.h>
#include <time.h>

#include <cerrno>
#include <cstring>

using namespace jitalloc;

namespace {

// Hysteresis against slab thrash: a class keeps one empty slab if its slabs are small.
// A big empty slab (up to 512 KiB) goes straight back to the buddy, where its pages stay
// mapped and trap-filled for any class.
unsigned keep_empty_slabs(unsigned cls) { return size_class(cls).pages <= 16 ? 1 : 0; }

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

// ---------------------------------------------------------------- fork gate

bool ForkGate::enter(unsigned shard) {
    std::atomic<int> &mine = inflight_[shard].n;
    for (;;) {
        mine.fetch_add(1, std::memory_order_seq_cst);
        if (!closing_.load(std::memory_order_seq_cst))
            return true;
        mine.fetch_sub(1, std::memory_order_seq_cst);
        if (fork_in_progress_here())
            return false;  // this thread closed the gate: waiting would never end
        std::lock_guard<std::mutex> wait_for_fork(lock_);
    }
}

bool ForkGate::any_inflight() const {
    for (const Stripe &s : inflight_)
        if (s.n.load(std::memory_order_seq_cst) != 0)
            return true;
    return false;
}

void ForkGate::close() {
    lock_.lock();
    closing_.store(true, std::memory_order_seq_cst);
    for (unsigned spins = 0; any_inflight(); spins++) {
        if (spins < 64) {
            sched_yield();
        } else {
            // An operation is blocked in the kernel (a page fault, a slow write): wait
            // without keeping a CPU busy.
            struct timespec pause = {0, 50 * 1000};
            nanosleep(&pause, nullptr);
        }
    }
}

void ForkGate::open() {
    closing_.store(false, std::memory_order_seq_cst);
    lock_.unlock();
}

// ---------------------------------------------------------------- writes

int jit_arena::write(Chunk *c, uint8_t *dst, const void *src, size_t len) {
    return poke(*writer, c->mapping, dst, src, len);
}

int jit_arena::write_traps(Chunk *c, uint8_t *dst, size_t len) {
    return poke_traps(*writer, c->mapping, dst, len);
}

// ---------------------------------------------------------------- chunks (buddy_lock)

bool jit_arena::room_for_locked(size_t bytes) const {
    return opts.max_bytes == 0 || chunks_mapped * kChunkSize + bytes <= opts.max_bytes;
}

void jit_arena::link_chunk_locked(Chunk *c) {
    c->prev = nullptr;
    c->next = chunks;
    if (chunks)
        chunks->prev = c;
    chunks = c;
    chunks_mapped += c->size / kChunkSize;
}

void jit_arena::unlink_chunk_locked(Chunk *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = nullptr;
    chunks_mapped -= c->size / kChunkSize;
}

// The new chunk is made with buddy_lock dropped: mapping, trap-filling and collapsing
// 2 MiB takes milliseconds (a fresh huge page faulted in, or for a memfd the kernel's
// copy into a huge folio), and other threads' slabs and page runs must not wait for it.
// Only the caller's class lock (if any) stays held. The chunk is bound to this arena and
// in the chunk map before it is linked here; until then a lookup that finds it sees only
// free pages (no live allocation), and nothing releases it. Chunks being made count
// against max_bytes (growing).
//
// A chunk made for an allocation with code (first) is born holding it at its base,
// written with the chunk's trap fill before anything of it is executable (Writer::map):
// the first code write of an arena, or of a new chunk, costs no kernel write, alias or
// mapping change of its own (issue 16). That code must never lie in free memory: the run
// holding it is taken from the buddy here, under the same hold of buddy_lock that adds
// the chunk, so no other thread ever sees those pages free.
int jit_arena::grow_locked(unsigned npages, std::unique_lock<std::mutex> &b,
                           const Writer::Piece *first, PageDesc **carved) {
    if (!room_for_locked(kChunkSize * (1 + growing)))
        return ENOMEM;
    bool huge = !(opts.flags & JIT_ARENA_NO_HUGE_PAGES);
    size_t exposed = initial_exposure(kChunkSize, chunks_mapped != 0 || growing != 0,
                                      size_t{npages} << kPageShift);
    growing++;
    b.unlock();
    Chunk *c = chunk_create(*writer, placement, kChunkSize, exposed, huge, this, first);
    int err = c ? 0 : errno;
    b.lock();
    growing--;
    if (!c)
        return err;
    link_chunk_locked(c);
    buddy.add_chunk(c);
    if (first)
        *carved = buddy.alloc_first(c, npages);  // a fresh chunk: never nullptr
    return 0;
}

PageDesc *jit_arena::pages_locked(unsigned npages, int &err, std::unique_lock<std::mutex> &b,
                                  const Writer::Piece *first, bool *holds_first) {
    PageDesc *d = buddy.alloc(npages);
    if (!d && first) {
        // A chunk made for this run, holding its code: covered from its creation.
        err = grow_locked(npages, b, first, &d);
        if (holds_first)
            *holds_first = d != nullptr;
        return err ? nullptr : d;
    }
    // Other threads may take the new chunk's pages while the lock is dropped: try again
    // (a few times; then the arena is short of memory for all of them).
    for (int attempt = 0; !d && attempt < 3; attempt++) {
        err = grow_locked(npages, b);
        if (err)
            return nullptr;
        d = buddy.alloc(npages);
    }
    if (!d) {
        err = ENOMEM;
        return nullptr;
    }
    // The run may reach past the part of its chunk made into code memory so far.
    if (int e = chunk_cover(*writer, d->chunk, d->index + npages)) {
        free_pages_locked(d->chunk, d->index, npages);
        err = e;
        return nullptr;
    }
    return d;
}

void jit_arena::free_pages_locked(Chunk *c, unsigned first, unsigned npages, size_t *released) {
    if (buddy.free(c, first, npages))
        release_locked(opts.retain_bytes, released);
}

// Gives wholly free chunks back to the OS until at most keep_bytes of them remain.
void jit_arena::release_locked(size_t keep_bytes, size_t *released) {
    while (buddy.nr_free(kMaxOrder) * kChunkSize > keep_bytes) {
        Chunk *c = buddy.any_free_chunk();
        buddy.remove_chunk(c);
        unlink_chunk_locked(c);
        if (chunk_destroy(*writer, c) != 0) {
            // Still mapped and trap-filled: keep it cached, try again at the next shrink.
            link_chunk_locked(c);
            buddy.undo_remove_chunk(c);
            return;
        }
        chunks_released++;
        if (released)
            *released += kChunkSize;
    }
}

// ---------------------------------------------------------------- transit

// Memory for an allocation moves free -> transit (take) -> live (publish), and back
// live -> transit (begin_free) -> free (finish_free). In transit it is on no free list and
// not live: it is written then, with no lock held. jit_alloc, jit_free and batches
// (src/batch) are sequences of these steps around the writes.

int jit_arena::take(size_t len, bool with_code, Transit &out, size_t align,
                    const Writer::Piece *first, unsigned shard) {
    int cls = class_index(len, align);  // page runs and large chunks are page-aligned
    out.stale = false;
    out.born_with_code = false;
    if (!with_code || (first && first->len > len))
        first = nullptr;
    int rc = cls >= 0            ? take_small(static_cast<unsigned>(cls), shard, !with_code, out, first)
             : len <= kChunkSize ? take_pages(len, out, first)
                                 : take_large(len, out, first);
    out.requested = static_cast<uint32_t>(len < UINT32_MAX ? len : UINT32_MAX);
    out.length = len;
    return rc;
}

int jit_arena::take_small(unsigned cls, unsigned shard, bool prefer_clean, Transit &out,
                          const Writer::Piece *first) {
    SlabClass *made = classes.get(shard, cls);
    if (!made)
        return ENOMEM;
    SlabClass &k = *made;
    Slab *s = nullptr;
    unsigned index = 0;
    std::lock_guard<WordLock> g(k.lock);
    // A stale object's code_end bounds what its reuse must overwrite (write_taken).
    uint8_t *p = k.take(&s, &index, prefer_clean, &out.stale, &out.code_end);
    if (!p) {
        const SizeClass &sc = size_class(cls);
        int err = 0;
        std::unique_lock<std::mutex> b(buddy_lock);
        // A chunk made for this slab holds `first` at the slab's start: its first object,
        // which k.take below hands out (k's lock is held throughout, so the new slab is
        // the class's only one with a free object, and its lowest free object is 0).
        bool holds_first = false;
        PageDesc *d = pages_locked(sc.pages, err, b, first, &holds_first);
        if (!d)
            return err;
        Slab *fresh = slab_new(cls, shard, d->chunk, d->index);
        if (!fresh) {
            // Pages holding code never go back free: quarantined (in transit for good).
            if (holds_first)
                d->state.store(PageState::transit, std::memory_order_release);
            else
                free_pages_locked(d->chunk, d->index, sc.pages);
            return ENOMEM;
        }
        slab_meta_bytes += slab_metadata_bytes(cls);
        k.add(fresh);
        p = k.take(&s, &index, prefer_clean, &out.stale);
        out.born_with_code = holds_first && p == d->chunk->base;
    }
    out.chunk = s->chunk;
    out.slab = s;
    out.index = index;
    out.start = p;
    out.usable = s->size;
    return 0;
}

int jit_arena::take_pages(size_t len, Transit &out, const Writer::Piece *first) {
    unsigned npages = static_cast<unsigned>(round_up(len, kPageSize) / kPageSize);
    std::unique_lock<std::mutex> b(buddy_lock);
    int err = 0;
    bool holds_first = false;
    PageDesc *d = pages_locked(npages, err, b, first, &holds_first);
    if (!d)
        return err;
    out.born_with_code = holds_first;
    d->state.store(PageState::transit, std::memory_order_release);
    out.chunk = d->chunk;
    out.slab = nullptr;
    out.index = d->index;
    out.start = d->chunk->page_addr(d->index);
    out.usable = size_t{npages} * kPageSize;
    return 0;
}

int jit_arena::take_large(size_t len, Transit &out, const Writer::Piece *first) {
    size_t size = round_up(len, kChunkSize);
    std::lock_guard<std::mutex> b(buddy_lock);
    if (!room_for_locked(size))
        return ENOMEM;
    // The chunk is the allocation: it is born holding the code (grow_locked).
    Chunk *c = chunk_create(*writer, placement, size, size, !(opts.flags & JIT_ARENA_NO_HUGE_PAGES),
                            this, first);
    if (!c)
        return errno;
    link_chunk_locked(c);  // not live until published: lookups reject it
    out.born_with_code = first != nullptr;
    out.chunk = c;
    out.slab = nullptr;
    out.index = 0;
    out.start = c->base;
    out.usable = size;
    return 0;
}

// Pack objects are published and given back a reservation at a time (pack_publish,
// pack_give_back), never through these two.
void jit_arena::publish(const Transit &t, bool with_code) {
    if (t.slab) {
        SlabClass &k = class_of(*t.slab);
        std::lock_guard<WordLock> g(k.lock);
        k.publish(t.slab, t.index, t.requested, with_code, t.wide);
        return;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    Chunk *c = t.chunk;
    if (c->large) {
        c->requested = t.length;
        c->held_code = with_code;
        c->live = true;
        large_live++;
        large_requested += t.length;
        large_bytes += c->size;
        return;
    }
    PageDesc &d = c->pages[t.index];
    d.requested = t.requested;
    d.held_code = with_code;
    d.wide = t.wide;
    d.state.store(PageState::pages_head, std::memory_order_release);
    page_runs_live++;
    page_runs_requested += t.requested;
    page_runs_pages += d.npages;
}

void jit_arena::give_back(const Transit &t, bool holds_traps) {
    // Memory that may hold code (a failed write could not be undone) stays in transit for
    // good: quarantined, neither live nor free, never handed out again — except a slab
    // object of a lazily filled arena, which goes back stale, overwritten whole on reuse
    // (a failed write may have left bytes anywhere in it).
    if (t.slab) {
        if (holds_traps || lazy_fill)
            finish_slab_free(t, !holds_traps, /*unknown_end=*/!holds_traps);
        return;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    Chunk *c = t.chunk;
    if (c->large) {
        // Unmapping is the trap fill. If the kernel refuses, the chunk stays linked, not
        // live, until the arena is destroyed.
        unlink_chunk_locked(c);
        if (chunk_destroy(*writer, c) != 0)
            link_chunk_locked(c);
        else
            chunks_released += t.usable / kChunkSize;
        return;
    }
    if (holds_traps)
        free_pages_locked(c, t.index, c->pages[t.index].npages);
}

void jit_arena::finish_slab_free(const Transit &t, bool stale, bool unknown_end) {
    SlabClass &k = class_of(*t.slab);
    std::unique_lock<WordLock> g(k.lock);
    retire_slab(k, k.finish_free(t.slab, t.index, keep_empty_slabs(t.slab->cls), stale, unknown_end),
                g);
}

void jit_arena::retire_slab(SlabClass &k, Slab *dead, std::unique_lock<WordLock> &g,
                            size_t *released) {
    if (!dead)
        return;
    // Free pages hold only traps: stale objects (lazy trap fill) are filled first, with the
    // class lock dropped (no code is written under a lock). The slab is on no list, so no
    // one takes from it meanwhile; lookups find no live object in it.
    uint8_t *lo, *hi;
    if (dead->stale_span(&lo, &hi)) {
        g.unlock();
        const Writer::Piece traps{poke_detail::trap_source(), static_cast<size_t>(hi - lo)};
        int rc = poke_pieces(*writer, dead->chunk->mapping, lo, &traps, 1, traps.len, Undo::none);
        g.lock();
        if (rc) {
            k.add(dead);  // cached as an empty slab, stale objects and all
            return;
        }
    }
    release_slab_if_empty(dead, released);
}

void jit_arena::release_slab_if_empty(Slab *dead, size_t *released) {
    if (!dead)
        return;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        slab_meta_bytes -= slab_metadata_bytes(dead->cls);
        free_pages_locked(dead->chunk, dead->first_page, static_cast<unsigned>(dead->pages()),
                          released);
    }
    slab_delete(dead);
}

// ---------------------------------------------------------------- alloc

int jit_arena::write_taken(const Transit &t, const void *code, size_t len) {
    // Written with its chunk's trap fill (grow_locked): only read back here. Should it
    // differ, the write below makes it (it holds code or traps, no copy needed to undo).
    if (t.born_with_code && code && std::memcmp(t.start, code, len) == 0)
        return 0;
    if (!t.stale) {
        // Memory handed out holds traps: no copy of the old bytes is needed to undo.
        return code ? poke_fresh(*writer, t.chunk->mapping, t.start, code, len) : 0;
    }
    // A stale object (lazy trap fill) still holds freed code: the new code and the trap
    // tail go in one write, over the object up to the old code's end (t.code_end, see
    // slab.h: past it the object holds traps). Nothing to undo: on failure it stays
    // stale, its bounds as they were, and a stale object is always overwritten up to them.
    // An empty piece is left out: one piece goes to the kernel straight from the
    // caller's buffer, two are first gathered into one (poke/writers.cpp).
    const size_t n = code ? len : 0;
    const size_t total = std::max(n, t.fill_len());
    const Writer::Piece pieces[2] = {{{static_cast<const uint8_t *>(code), 0}, n},
                                     {poke_detail::trap_source(), total - n}};
    const Writer::Piece *first = code ? pieces : pieces + 1;
    const size_t count = (code ? 1 : 0) + (total > n ? 1 : 0);
    return poke_pieces(*writer, t.chunk->mapping, t.start, first, count, total, Undo::none);
}

int jit_arena::alloc(const void *code, size_t len, const char *name, void **out, size_t align) {
    if (len == 0 || len > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    GateGuard op(gate);
    if (!op)
        return EDEADLK;
    Transit t;
    // If a chunk is made for it, the code goes in with that chunk's trap fill; the write
    // below then only verifies it (take, grow_locked).
    const Writer::Piece first{{static_cast<const uint8_t *>(code), 0}, len};
    if (int rc = take(len, code != nullptr, t, align, code ? &first : nullptr, op.shard()))
        return rc;
    if (int rc = write_taken(t, code, len)) {
        // A stale object goes back stale; anything else must hold traps again.
        give_back(t, !t.stale && write_traps(t.chunk, t.start, t.usable) == 0);
        return rc;
    }
    if (code)
        after_code_write(Replaces::unrun, sync_core);  // fresh code: arch.h decides
    publish(t, code != nullptr);
    *out = t.start;
    total_allocs.add_on(op.shard(), 1);
    if (observed)
        observe_alloc(this, *out, len, name, code != nullptr);
    return 0;
}

// ---------------------------------------------------------------- lookup
//
// chunk_lookup() may hand back a chunk that another thread is releasing, or that has
// been bound since to another arena (a stale pointer). Nothing read from it is trusted
// until its binding is confirmed under bind_lock (see Chunk) with the lock held that
// orders its release in this arena: the buddy lock, or for a slab page the class lock.

bool jit_arena::owns_locked(const Chunk *c, const void *p) const {
    std::lock_guard<WordLock> g(c->bind_lock);
    return c->bound_to(this, p);
}

// Locks the class of the slab page p is on (per the chunk the map holds for p) and checks
// that the page still belongs to a slab of that class in a chunk of this arena. Returns
// the slab (class lock held, in *held) or nullptr (no lock held).
Slab *jit_arena::lock_slab(Chunk *c, const void *p, SlabClass **held) {
    PageDesc &d = c->page_in_slot(p);
    uint16_t key = d.slab_key.load(std::memory_order_acquire);
    if (key == kNoSlab || key > kShards * kNumClasses)
        return nullptr;
    SlabClass *made = classes.find_key(key);
    if (!made)
        return nullptr;  // no slab of that class was ever made: p is no slab object
    SlabClass &k = *made;
    k.lock.lock();
    Slab *s = nullptr;
    {
        // Read under bind_lock: the page is this arena's, so a slab with this key on it
        // was made under k, which we hold.
        std::lock_guard<WordLock> g(c->bind_lock);
        if (c->bound_to(this, p) && !c->large &&
            d.state.load(std::memory_order_acquire) == PageState::slab &&
            d.slab_key.load(std::memory_order_acquire) == key)
            s = static_cast<Slab *>(d.owner.load(std::memory_order_acquire));
    }
    if (!s) {
        k.lock.unlock();
        return nullptr;
    }
    *held = &k;
    return s;
}

namespace {
// A write of len bytes at p fits in [start, start + usable).
bool fits(const void *p, size_t len, const uint8_t *start, size_t usable) {
    return len <= usable - static_cast<size_t>(static_cast<const uint8_t *>(p) - start);
}
}  // namespace

bool jit_arena::locate(const void *p, bool exact, Located &out, size_t write_len, bool pin) {
    Chunk *c = chunk_lookup(p);
    if (!c)
        return false;
    PageDesc &d = c->page_in_slot(p);
    const PageState state = d.state.load(std::memory_order_acquire);
    if (state == PageState::pack)
        return locate_packed(c, p, exact, out, write_len, pin);
    if (state == PageState::slab) {
        SlabClass *k = nullptr;
        Slab *s = lock_slab(c, p, &k);
        if (!s)
            return false;
        int i = exact ? s->index_of(p) : s->index_containing(p);
        auto idx = static_cast<unsigned>(i);
        bool ok = i >= 0 && s->is_live(idx) && fits(p, write_len, s->object(idx), s->size);
        if (ok) {
            const size_t end = static_cast<size_t>(static_cast<const uint8_t *>(p) - s->object(idx)) + write_len;
            bool held = write_len > 0 ? s->mark_written(idx, end) : s->held_code(idx);
            out = {c, s, idx, s->object(idx), s->size, held};
            out.code_end = s->code_end(idx);
            if (pin)
                c->writes_in_flight.fetch_add(1, std::memory_order_seq_cst);
        }
        k->lock.unlock();
        return ok;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    if (!owns_locked(c, p))
        return false;
    if (c->large) {
        if (!c->live || (exact && p != c->base) || !fits(p, write_len, c->base, c->size))
            return false;
        out = {c, nullptr, 0, c->base, c->size, c->held_code};
        c->held_code |= write_len > 0;
        if (pin)
            c->writes_in_flight.fetch_add(1, std::memory_order_seq_cst);
        return true;
    }
    PageState st = d.state.load(std::memory_order_relaxed);
    unsigned pg = c->page_of(p);
    unsigned head = st == PageState::pages_head ? pg : st == PageState::pages_tail ? d.head : ~0u;
    if (head == ~0u || c->pages[head].state.load(std::memory_order_relaxed) != PageState::pages_head)
        return false;
    uint8_t *start = c->page_addr(head);
    if (exact && p != start)
        return false;
    PageDesc &h = c->pages[head];
    size_t usable = size_t{h.npages} * kPageSize;
    if (!fits(p, write_len, start, usable))
        return false;
    out = {c, nullptr, head, start, usable, h.held_code};
    if (write_len > 0) {
        h.held_code = true;
        h.wide = h.wide || static_cast<size_t>(static_cast<const uint8_t *>(p) - start) + write_len > h.requested;
    }
    out.code_end = h.code_end();
    if (pin)
        c->writes_in_flight.fetch_add(1, std::memory_order_seq_cst);
    return true;
}

size_t jit_arena::usable_size(const void *p) {
    GateGuard op(gate);
    if (!op)
        return 0;
    Located loc;
    return p && locate(p, true, loc) ? loc.usable : 0;
}

// ---------------------------------------------------------------- update

int jit_arena::update(void *dst, const void *src, size_t len) {
    if (!dst || !src || len == 0 || len > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    GateGuard op(gate);
    if (!op)
        return EDEADLK;
    if (!observed)
        return write_code(dst, src, len, op.shard());
    auto write = [&] { return write_code(dst, src, len, op.shard()); };
    return observed_rewrite(dst, ArenaStep::of(write));
}

int jit_arena::write_code(void *dst, const void *src, size_t len, unsigned shard) {
    // From here on the allocation counts as live code, even if this write fails (at
    // worst a later update serialises once too often).
    Located loc;
    if (!locate(dst, false, loc, len, /*pin=*/true))
        return EINVAL;
    int rc = write(loc.chunk, static_cast<uint8_t *>(dst), src, len);
    loc.chunk->writes_in_flight.fetch_sub(1, std::memory_order_release);
    if (rc)
        return rc;
    // An allocation that has held code may be running on other CPUs: they must refetch
    // it. The first write into a reservation (only traps so far) needs nothing.
    after_code_write(loc.held_code ? Replaces::live_code : Replaces::unrun, sync_core);
    total_updates.add_on(shard, 1);
    return 0;
}

// ---------------------------------------------------------------- free

// Observers (observe.h) hear of a write into a live allocation before the bytes change
// and after: they are found by the allocation's start, looked up first without pinning
// its chunk — the observer lock is never waited for with a chunk pinned, since a free's
// commit holds it while a chunk is destroyed, which waits for pinned writes.
int jit_arena::observed_rewrite(const void *p, const ArenaStep &write, size_t new_len) {
    Located loc;
    if (!locate(p, false, loc))
        return write();  // not live: the write fails as it would unobserved
    observe_rewriting(this, loc.start);
    int rc = write();
    observe_rewritten(this, loc.start, rc == 0 && new_len == 0, rc == 0 ? new_len : 0);
    return rc;
}

// A free is a small state machine: the allocation leaves every list (in transit, so
// nobody else can free or reuse it), is trap-filled (may fail: it becomes live again),
// then commits (the memory goes back to the slab or buddy, or the large chunk is
// unmapped). Observers let go of its bytes before the trap fill (observe_rewriting) and
// hear of the free only at the commit, with their lock held across it.
template <class Commit>
int jit_arena::commit_free(void *p, Commit &&commit) {
    return observed ? observe_free(this, p, ArenaStep::of(commit)) : commit();
}

int jit_arena::free(void *p) {
    if (!p)
        return EINVAL;
    GateGuard op(gate);
    if (!op)
        return EDEADLK;
    Transit t;
    // Nothing to write and no one to tell: a slab object of a lazily filled arena is freed
    // whole inside begin_free, under one hold of its class lock.
    if (int rc = begin_free(p, t, /*finish_stale=*/lazy_fill && !observed))
        return rc;
    if (t.freed) {
        total_frees.add_on(op.shard(), 1);
        free_watch.note_free(p);
        return 0;
    }
    // In transit no list holds the allocation, so it stays put while it is trap-filled.
    // A large chunk is unmapped instead (finish_free); a slab object of a lazily filled
    // arena keeps its bytes until it is reused. Observers hear of the free only at its
    // commit.
    bool lazy = lazy_fill && t.slab;
    if (observed)
        observe_rewriting(this, p);
    // Past its code end the allocation holds traps already: only the bytes before it.
    int rc = t.chunk->large || lazy ? 0 : write_traps(t.chunk, t.start, t.fill_len());
    if (!rc)
        rc = commit_free(p, [&] {
            if (!lazy)
                return finish_free(t);
            finish_slab_free(t, /*stale=*/true);
            return 0;
        });
    if (rc) {
        abort_free(t);
        if (observed)
            observe_rewritten(this, p, false);
        return rc;
    }
    total_frees.add_on(op.shard(), 1);
    free_watch.note_free(p);
    return 0;
}

// Each path confirms under its lock that the chunk the map holds for p is this arena's
// and p the start of a live allocation.
int jit_arena::begin_free(void *p, Transit &out, bool finish_stale) {
    Chunk *c = chunk_lookup(p);
    if (!c)
        return EINVAL;
    const PageState state = c->page_in_slot(p).state.load(std::memory_order_acquire);
    if (state == PageState::pack)
        return begin_free_packed(c, p, out);
    if (state == PageState::slab) {
        SlabClass *k = nullptr;
        Slab *s = lock_slab(c, p, &k);
        if (!s)
            return EINVAL;
        int i = s->index_of(p);
        if (i < 0 || k->begin_free(s, static_cast<unsigned>(i)) != 0) {
            k->lock.unlock();
            return EINVAL;
        }
        if (finish_stale) {
            // finish_slab_free(stale) without letting go of the class lock in between.
            std::unique_lock<WordLock> g(k->lock, std::adopt_lock);
            out.freed = true;
            retire_slab(*k, k->finish_free(s, static_cast<unsigned>(i), keep_empty_slabs(s->cls), true),
                        g);
            return 0;
        }
        out.chunk = c;
        out.slab = s;
        out.index = static_cast<unsigned>(i);
        out.start = static_cast<uint8_t *>(p);
        out.usable = s->size;
        out.requested = s->requested_of(out.index);
        out.length = out.requested;
        out.held_code = s->held_code(out.index);
        out.code_end = s->code_end(out.index);
        k->lock.unlock();
        return 0;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    if (!owns_locked(c, p))
        return EINVAL;
    if (c->large) {
        if (!c->live || p != c->base)
            return EINVAL;
        c->live = false;
        out.chunk = c;
        out.slab = nullptr;
        out.index = 0;
        out.start = c->base;
        out.usable = c->size;
        out.length = c->requested;
        out.held_code = c->held_code;
        return 0;
    }
    unsigned pg = Chunk::page_in_slot_index(p);
    PageDesc &d = c->pages[pg];
    if (d.state.load(std::memory_order_relaxed) != PageState::pages_head || c->page_addr(pg) != p)
        return EINVAL;
    d.state.store(PageState::transit, std::memory_order_release);
    out.chunk = c;
    out.slab = nullptr;
    out.index = pg;
    out.start = static_cast<uint8_t *>(p);
    out.usable = size_t{d.npages} * kPageSize;
    out.requested = d.requested;
    out.length = d.requested;
    out.held_code = d.held_code;
    out.code_end = d.code_end();
    return 0;
}

void jit_arena::abort_free(const Transit &t) {
    if (t.pack) {
        abort_free_packed(t);
        return;
    }
    if (t.slab) {
        SlabClass &k = class_of(*t.slab);
        std::lock_guard<WordLock> g(k.lock);
        k.abort_free(t.slab, t.index, t.requested);
        return;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    if (t.chunk->large)
        t.chunk->live = true;
    else
        t.chunk->pages[t.index].state.store(PageState::pages_head, std::memory_order_release);
}

int jit_arena::finish_free(const Transit &t) {
    if (t.pack)
        return finish_free_packed(t);
    if (t.slab) {
        finish_slab_free(t, false);
        return 0;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    Chunk *c = t.chunk;
    if (c->large) {
        unlink_chunk_locked(c);
        // Unmapping is the trap fill: nothing of the old code stays reachable.
        if (int rc = chunk_destroy(*writer, c)) {
            link_chunk_locked(c);
            return rc;
        }
        large_live--;
        large_requested -= t.length;
        large_bytes -= t.usable;
        chunks_released += t.usable / kChunkSize;
        return 0;
    }
    page_runs_live--;
    page_runs_requested -= t.requested;
    page_runs_pages -= t.usable / kPageSize;
    free_pages_locked(c, t.index, static_cast<unsigned>(t.usable / kPageSize));
    return 0;
}

// ---------------------------------------------------------------- shrink / destroy

size_t jit_arena::shrink() {
    GateGuard op(gate);
    if (!op)
        return 0;
    // Chunks a retired slab or pack frees wholly are released at once past retain_bytes:
    // counted too, as is every chunk released below.
    size_t released = 0;
    // Every shard's empty slabs, whichever threads used them (and whether they still run).
    classes.for_each([&](unsigned, unsigned, SlabClass &k) {
        std::unique_lock<WordLock> g(k.lock);
        // Bounded: a slab whose stale objects cannot be trap-filled is cached again.
        for (uint64_t n = k.empty_slabs(); n; n--)
            if (Slab *s = k.pop_empty())
                retire_slab(k, s, g, &released);
    });
    shrink_packs(&released);  // empty packs' pages go to the buddy, released below
    std::lock_guard<std::mutex> b(buddy_lock);
    release_locked(0, &released);
    return released;
}

void jit_arena::destroy_all() {
    classes.for_each([](unsigned, unsigned, SlabClass &k) {
        std::lock_guard<WordLock> g(k.lock);
        while (Slab *s = k.pop_any())
            slab_delete(s);
    });
    destroy_packs();
    std::lock_guard<std::mutex> b(buddy_lock);
    while (Chunk *c = chunks) {
        unlink_chunk_locked(c);
        if (!c->large)
            buddy.forget_chunk(c);
        if (chunk_destroy(*writer, c) != 0)
            chunk_abandon(c);
    }
}
