// Arena operations: alloc / free / update / size over the slab, buddy and chunk layers.
// The locking rules are in arena.h; each function below says which locks it takes.
#include "arena/arena.h"

#include "observe/observe.h"
#include "serialise/serialise.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

using namespace jitalloc;

namespace {

// Hysteresis against slab thrash: a class keeps one empty slab if its slabs are small.
// A big empty slab (up to 512 KiB) goes straight back to the buddy, where its pages stay
// mapped and trap-filled for any class.
unsigned keep_empty_slabs(unsigned cls) { return size_class(cls).pages <= 16 ? 1 : 0; }

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

// ---------------------------------------------------------------- fork gate

void ForkGate::enter() {
    for (;;) {
        inflight_.fetch_add(1, std::memory_order_seq_cst);
        if (!closing_.load(std::memory_order_seq_cst))
            return;
        inflight_.fetch_sub(1, std::memory_order_seq_cst);
        std::lock_guard<std::mutex> wait_for_fork(lock_);
    }
}

void ForkGate::close() {
    lock_.lock();
    closing_.store(true, std::memory_order_seq_cst);
    while (inflight_.load(std::memory_order_seq_cst) != 0)
        sched_yield();
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

int jit_arena::grow_locked() {
    if (!room_for_locked(kChunkSize))
        return ENOMEM;
    bool huge = !(opts.flags & JIT_ARENA_NO_HUGE_PAGES);
    Chunk *c = chunk_create(*writer, placement, kChunkSize, huge, this);
    if (!c)
        return errno;
    link_chunk_locked(c);
    buddy.add_chunk(c);
    return 0;
}

PageDesc *jit_arena::pages_locked(unsigned npages, int &err) {
    PageDesc *d = buddy.alloc(npages);
    if (!d) {
        err = grow_locked();
        if (err)
            return nullptr;
        d = buddy.alloc(npages);
    }
    return d;
}

void jit_arena::free_pages_locked(Chunk *c, unsigned first, unsigned npages) {
    if (buddy.free(c, first, npages))
        release_locked(opts.retain_bytes, nullptr);
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

// ---------------------------------------------------------------- alloc

int jit_arena::alloc(const void *code, size_t len, const char *name, void **out, size_t align) {
    if (len == 0 || len > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    GateGuard op(gate);
    int cls = class_index(len, align);  // page runs and large chunks are page-aligned
    int rc = cls >= 0               ? alloc_small(static_cast<unsigned>(cls), code, len, out)
             : len <= kChunkSize    ? alloc_pages(code, len, out)
                                    : alloc_large(code, len, out);
    if (!rc) {
        // Fresh code: other CPUs need a context synchronisation only where the
        // architecture says so (arch.h: arm64 yes, x86-64 no).
        if (code)
            after_code_write(Replaces::unrun, sync_core);
        total_allocs.fetch_add(1, std::memory_order_relaxed);
        if (observed)
            observe_alloc(this, *out, len, name);
    }
    return rc;
}

int jit_arena::alloc_small(unsigned cls, const void *code, size_t len, void **out) {
    SlabClass &k = classes[cls];
    Slab *s = nullptr;
    uint8_t *p;
    {
        std::lock_guard<std::mutex> g(k.lock);
        p = k.take(static_cast<uint32_t>(len), code != nullptr, &s);
        if (!p) {
            const SizeClass &sc = size_class(cls);
            int err = 0;
            std::lock_guard<std::mutex> b(buddy_lock);
            PageDesc *d = pages_locked(sc.pages, err);
            if (!d)
                return err;
            Slab *fresh = slab_new(cls, d->chunk, d->index);
            if (!fresh) {
                free_pages_locked(d->chunk, d->index, sc.pages);
                return ENOMEM;
            }
            slab_meta_bytes += slab_metadata_bytes(cls);
            k.add(fresh);
            p = k.take(static_cast<uint32_t>(len), code != nullptr, &s);
        }
    }
    if (code) {
        int rc = poke_fresh(*writer, s->chunk->mapping, p, code, len);  // object holds traps
        if (rc) {
            // The object is still ours: make sure it holds traps, then give it back.
            bool clean = write_traps(s->chunk, p, s->size) == 0;
            auto i = static_cast<unsigned>(s->index_of(p));
            std::lock_guard<std::mutex> g(k.lock);
            k.begin_free(s, i);
            if (clean)  // else quarantined: neither live nor free, never handed out again
                release_slab_if_empty(k.finish_free(s, i, keep_empty_slabs(cls)));
            return rc;
        }
    }
    *out = p;
    return 0;
}

void jit_arena::release_slab_if_empty(Slab *dead) {
    if (!dead)
        return;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        slab_meta_bytes -= slab_metadata_bytes(dead->cls);
        free_pages_locked(dead->chunk, dead->first_page, static_cast<unsigned>(dead->pages()));
    }
    slab_delete(dead);
}

int jit_arena::alloc_pages(const void *code, size_t len, void **out) {
    unsigned npages = static_cast<unsigned>(round_up(len, kPageSize) / kPageSize);
    PageDesc *d;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        int err = 0;
        d = pages_locked(npages, err);
        if (!d)
            return err;
        d->requested = static_cast<uint32_t>(len);
        d->held_code = code != nullptr;
        page_runs_live++;
        page_runs_requested += len;
        page_runs_pages += npages;
    }
    Chunk *c = d->chunk;
    uint8_t *p = c->page_addr(d->index);
    if (code) {
        int rc = poke_fresh(*writer, c->mapping, p, code, len);  // free pages hold traps
        if (rc) {
            bool clean = write_traps(c, p, npages * kPageSize) == 0;
            std::lock_guard<std::mutex> b(buddy_lock);
            page_runs_live--;
            page_runs_requested -= len;
            page_runs_pages -= npages;
            if (clean)
                free_pages_locked(c, d->index, npages);
            else
                d->state.store(PageState::freeing, std::memory_order_release);  // quarantined
            return rc;
        }
    }
    *out = p;
    return 0;
}

int jit_arena::alloc_large(const void *code, size_t len, void **out) {
    size_t size = round_up(len, kChunkSize);
    Chunk *c;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        if (!room_for_locked(size))
            return ENOMEM;
        c = chunk_create(*writer, placement, size, !(opts.flags & JIT_ARENA_NO_HUGE_PAGES), this);
        if (!c)
            return errno;
        c->live = true;
        c->requested = len;
        c->held_code = code != nullptr;
        link_chunk_locked(c);
        large_live++;
        large_requested += len;
        large_bytes += size;
    }
    if (code) {
        int rc = poke_fresh(*writer, c->mapping, c->base, code, len);  // fresh chunk
        if (rc) {
            std::lock_guard<std::mutex> b(buddy_lock);
            (void)release_large_locked(c);  // never observed: no commit_free
            return rc;
        }
    }
    *out = c->base;
    return 0;
}

// ---------------------------------------------------------------- lookup
//
// chunk_lookup() may hand back a chunk that another thread is releasing, or that has
// been bound since to another arena (a stale pointer). Nothing read from it is trusted
// until its binding is confirmed under bind_lock (see Chunk) with the lock held that
// orders its release in this arena: the buddy lock, or for a slab page the class lock.

bool jit_arena::owns_locked(const Chunk *c, const void *p) const {
    std::lock_guard<std::mutex> g(c->bind_lock);
    return c->bound_to(this, p);
}

// Locks the class of the slab page p is on (per the chunk the map holds for p) and checks
// that the page still belongs to a slab of that class in a chunk of this arena. Returns
// the slab (class lock held, in *held) or nullptr (no lock held).
Slab *jit_arena::lock_slab(Chunk *c, const void *p, SlabClass **held) {
    PageDesc &d = c->page_in_slot(p);
    uint8_t cls = d.slab_class.load(std::memory_order_acquire);
    if (cls >= kNumClasses)
        return nullptr;
    SlabClass &k = classes[cls];
    k.lock.lock();
    Slab *s = nullptr;
    {
        // Read under bind_lock: the page is this arena's, so a slab of class cls on it
        // was made under k, which we hold.
        std::lock_guard<std::mutex> g(c->bind_lock);
        if (c->bound_to(this, p) && !c->large &&
            d.state.load(std::memory_order_acquire) == PageState::slab &&
            d.slab_class.load(std::memory_order_acquire) == cls)
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

bool jit_arena::locate(const void *p, bool exact, Located &out, size_t write_len) {
    Chunk *c = chunk_lookup(p);
    if (!c)
        return false;
    PageDesc &d = c->page_in_slot(p);
    if (d.state.load(std::memory_order_acquire) == PageState::slab) {
        SlabClass *k = nullptr;
        Slab *s = lock_slab(c, p, &k);
        if (!s)
            return false;
        int i = exact ? s->index_of(p) : s->index_containing(p);
        auto idx = static_cast<unsigned>(i);
        bool ok = i >= 0 && s->is_live(idx) && fits(p, write_len, s->object(idx), s->size);
        if (ok) {
            bool held = write_len > 0 ? s->mark_code(idx) : s->held_code(idx);
            out = {c, s, idx, s->object(idx), s->size, held};
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
    h.held_code |= write_len > 0;
    return true;
}

size_t jit_arena::usable_size(const void *p) {
    GateGuard op(gate);
    Located loc;
    return p && locate(p, true, loc) ? loc.usable : 0;
}

// ---------------------------------------------------------------- update

int jit_arena::update(void *dst, const void *src, size_t len) {
    if (!dst || !src || len == 0 || len > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    GateGuard op(gate);
    // From here on the allocation counts as live code, even if this write fails (at
    // worst a later update serialises once too often).
    Located loc;
    if (!locate(dst, false, loc, len))
        return EINVAL;
    int rc = write(loc.chunk, static_cast<uint8_t *>(dst), src, len);
    if (rc)
        return rc;
    // An allocation that has held code may be running on other CPUs: they must refetch
    // it. The first write into a reservation (only traps so far) needs nothing.
    after_code_write(loc.held_code ? Replaces::live_code : Replaces::unrun, sync_core);
    total_updates.fetch_add(1, std::memory_order_relaxed);
    return 0;
}

// ---------------------------------------------------------------- free

// A free is a small state machine: the allocation leaves every list (in transit, so
// nobody else can free or reuse it), is trap-filled (may fail: it becomes live again),
// then commits (the memory goes back to the slab or buddy, or the large chunk is
// unmapped). Observers hear of it only at the commit, with their lock held across it.
template <class Commit>
int jit_arena::commit_free(void *p, Commit &&commit) {
    if (!observed)
        return commit();
    using Fn = std::remove_reference_t<Commit>;
    return observe_free(this, p, {[](void *fn) { return (*static_cast<Fn *>(fn))(); }, &commit});
}

int jit_arena::free(void *p) {
    if (!p)
        return EINVAL;
    GateGuard op(gate);
    Chunk *c = chunk_lookup(p);
    if (!c)
        return EINVAL;
    // Each path confirms under its lock that c is this arena's and p a live start.
    PageState st = c->page_in_slot(p).state.load(std::memory_order_acquire);
    int rc = st == PageState::slab         ? free_small(c, p)
             : st == PageState::pages_head ? free_pages(c, p)
                                           : free_large(c, p);
    if (!rc)
        total_frees.fetch_add(1, std::memory_order_relaxed);
    return rc;
}

int jit_arena::free_small(Chunk *c, void *p) {
    SlabClass *k = nullptr;
    Slab *s = lock_slab(c, p, &k);
    if (!s)
        return EINVAL;
    int i = s->index_of(p);
    if (i < 0 || k->begin_free(s, static_cast<unsigned>(i)) != 0) {
        k->lock.unlock();
        return EINVAL;
    }
    auto index = static_cast<unsigned>(i);
    uint32_t requested = s->requested_of(index);
    k->lock.unlock();

    // The object is in transit: no list holds it, so the slab stays put while we write.
    if (int rc = write_traps(c, static_cast<uint8_t *>(p), s->size)) {
        std::lock_guard<std::mutex> g(k->lock);
        k->abort_free(s, index, requested);
        return rc;
    }
    return commit_free(p, [&] {
        std::lock_guard<std::mutex> g(k->lock);
        release_slab_if_empty(k->finish_free(s, index, keep_empty_slabs(s->cls)));
        return 0;
    });
}

int jit_arena::free_pages(Chunk *c, void *p) {
    unsigned pg = Chunk::page_in_slot_index(p);
    PageDesc &d = c->pages[pg];
    unsigned npages;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        if (!owns_locked(c, p) || c->large ||
            d.state.load(std::memory_order_relaxed) != PageState::pages_head || c->page_addr(pg) != p)
            return EINVAL;
        d.state.store(PageState::freeing, std::memory_order_release);
        npages = d.npages;
    }
    if (int rc = write_traps(c, static_cast<uint8_t *>(p), npages * kPageSize)) {
        std::lock_guard<std::mutex> b(buddy_lock);
        d.state.store(PageState::pages_head, std::memory_order_release);
        return rc;
    }
    return commit_free(p, [&] {
        std::lock_guard<std::mutex> b(buddy_lock);
        page_runs_live--;
        page_runs_requested -= d.requested;
        page_runs_pages -= npages;
        free_pages_locked(c, pg, npages);
        return 0;
    });
}

// Unmapping is the trap fill and the commit at once: nothing of the old code stays
// reachable, and the address range is free for anyone to map.
int jit_arena::free_large(Chunk *c, void *p) {
    return commit_free(p, [&] {
        std::lock_guard<std::mutex> b(buddy_lock);
        if (!owns_locked(c, p) || !c->large || !c->live || p != c->base)
            return EINVAL;
        return release_large_locked(c);
    });
}

int jit_arena::release_large_locked(Chunk *c) {
    unlink_chunk_locked(c);
    size_t size = c->size;
    uint64_t requested = c->requested;
    int rc = chunk_destroy(*writer, c);
    if (rc) {
        link_chunk_locked(c);
        return rc;
    }
    large_live--;
    large_requested -= requested;
    large_bytes -= size;
    chunks_released += size / kChunkSize;
    return 0;
}

// ---------------------------------------------------------------- shrink / destroy

size_t jit_arena::shrink() {
    GateGuard op(gate);
    for (SlabClass &k : classes) {
        std::lock_guard<std::mutex> g(k.lock);
        while (Slab *s = k.pop_empty())
            release_slab_if_empty(s);
    }
    size_t released = 0;
    std::lock_guard<std::mutex> b(buddy_lock);
    release_locked(0, &released);
    return released;
}

void jit_arena::destroy_all() {
    for (SlabClass &k : classes) {
        std::lock_guard<std::mutex> g(k.lock);
        while (Slab *s = k.pop_any())
            slab_delete(s);
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    while (Chunk *c = chunks) {
        unlink_chunk_locked(c);
        if (!c->large)
            buddy.forget_chunk(c);
        if (chunk_destroy(*writer, c) != 0)
            chunk_abandon(c);
    }
}
