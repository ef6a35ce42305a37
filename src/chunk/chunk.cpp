// Chunk life cycle: reserve address space, let the writer map it trap-filled and ROX,
// register it; and the reverse. Chunk metadata is recycled through a process-wide pool
// so it stays type-stable (see chunk.h).
#include "chunk/chunk.h"
#include "process/locks.h"

#include <sched.h>

#include "chunk/chunk_map.h"
#include "os/os.h"

#include <sys/mman.h>

#include <cerrno>
#include <mutex>
#include <new>

namespace jitalloc {

namespace {

constinit std::mutex &g_pool_lock = process_lock(ProcessLock::chunk_pool);  // the pool below
Chunk *g_pool = nullptr; // recycled metadata, linked through next
size_t g_meta_count = 0; // Chunk objects ever created (live + pooled)

// Bytes one Chunk's own mapping takes (whole OS pages).
size_t meta_map_size() { return os::page_span(0, sizeof(Chunk), os::page_size()).len; }

Chunk *meta_new() {
    {
        std::lock_guard<std::mutex> g(g_pool_lock);
        if (g_pool) {
            Chunk *c = g_pool;
            g_pool = c->next;
            c->next = nullptr;
            return c;
        }
    }
    // Straight from the kernel, zero-filled, and not populated: all-zero descriptors are
    // in their reset state (PageDesc), so only the header and the descriptors the buddy
    // and the slabs use are touched, each page at its first use (a fresh process's first
    // jit_alloc touches three of the seven; populating all of them cost more). Never
    // unmapped: the pool keeps it (type-stable).
    void *m = os::mmap(nullptr, meta_map_size(), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return nullptr;
    // Default-initialised: the header's members get their initializers, the descriptors
    // (trivial, no initializers) keep the zeros they have.
    Chunk *c = new (m) Chunk;
    std::lock_guard<std::mutex> g(g_pool_lock);
    g_meta_count++;
    return c;
}

void bind(Chunk *c, uint8_t *base, size_t size, jit_arena *arena) {
    std::lock_guard<WordLock> g(c->bind_lock);
    c->base = base;
    c->size = size;
    c->large = size > kChunkSize;
    c->arena.store(arena, std::memory_order_relaxed);
}

// Everything but the binding is the owner's alone: a lookup reads it only after finding
// the chunk bound to its arena.
void meta_reset(Chunk *c) {
    bind(c, nullptr, 0, nullptr);
    c->live = false;
    c->requested = 0;
    c->held_code = false;
    c->mapping = ChunkMapping{};
    c->next = c->prev = nullptr;
    c->free_pages = 0;
    // The reset state is all-zero bytes (PageDesc); field by field, since lookups may
    // read state, owner and slab_key of a recycled chunk at any time (atomically).
    for (unsigned i = 0; i < kPagesPerChunk; i++) {
        PageDesc &d = c->pages[i];
        d.next = d.prev = nullptr;
        d.chunk = nullptr;
        d.owner.store(nullptr, std::memory_order_relaxed);
        d.state.store(PageState::free, std::memory_order_relaxed);
        d.slab_key.store(kNoSlab, std::memory_order_relaxed);
        d.set_free_order(kNoOrder);
        d.held_code = false;
        d.index = 0;
        d.head = 0;
        d.npages = 0;
        d.requested = 0;
    }
}

void meta_recycle(Chunk *c) {
    meta_reset(c);
    std::lock_guard<std::mutex> g(g_pool_lock);
    c->next = g_pool;
    g_pool = c;
}

}  // namespace

Chunk *chunk_create(const Writer &w, const Placement &where, size_t size, size_t exposed,
                    bool huge, jit_arena *arena, const Writer::Piece *first) {
    Chunk *c = meta_new();  // in its reset state: fresh, or reset when it was recycled
    if (!c)
        return nullptr;  // errno from mmap
    uint8_t *at = reserve_range(where, size);
    if (!at) {
        int e = errno;
        meta_recycle(c);
        errno = e;
        return nullptr;
    }
    int rc = w.map(c->mapping, at, size, exposed, huge, first);
    if (rc) {
        os::munmap(at, size);
        meta_recycle(c);
        errno = rc;
        return nullptr;
    }
    bind(c, at, size, arena);
    if (!chunk_map_insert(c)) {
        if (w.unmap(c->mapping) != 0)
            os::munmap(at, size);
        meta_recycle(c);
        errno = ENOMEM;
        return nullptr;
    }
    return c;
}

// Out of the map before the range is unmapped: once it is, another arena may map the
// same addresses and register them, which a later erase would undo.
int chunk_destroy(const Writer &w, Chunk *c) {
    chunk_map_erase(c);
    // Out of the map no new update can find the chunk; let those in flight finish (one
    // kernel write each).
    while (c->writes_in_flight.load(std::memory_order_acquire) != 0)
        sched_yield();
    int rc = w.unmap(c->mapping);
    if (rc) {
        (void)chunk_map_insert(c);  // the slots' leaves exist: cannot fail
        return rc;
    }
    meta_recycle(c);
    return 0;
}

void chunk_abandon(Chunk *c) {
    chunk_map_erase(c);
    if (c->mapping.rw_alias)
        os::munmap(c->mapping.rw_alias, c->size);
    os::munmap(c->base, c->size);
    poke_detail::close_memfd(c->mapping.fd, c->mapping.fd_id);
    meta_recycle(c);
}

size_t chunk_metadata_bytes() {
    std::lock_guard<std::mutex> g(g_pool_lock);
    return g_meta_count * meta_map_size();
}

}  // namespace jitalloc
