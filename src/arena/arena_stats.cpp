// Arena statistics and the whole-arena invariant check.
#include "arena/arena.h"

#include "chunk/growth.h"
#include "os/os.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

using namespace jitalloc;

int jit_arena::stats(struct jit_stats *out) {
    GateGuard op(gate);
    if (!op)
        return EDEADLK;
    std::memset(out, 0, sizeof *out);
    out->writer = writer->kind();
    out->writer_name = jit_writer_name(out->writer);
    out->strict_wx = writer->strict_wx();
    out->sync_core = sync_core;
    out->nr_classes = kNumClasses;
    for (unsigned i = 0; i < kNumClasses; i++) {
        const SizeClass &sc = size_class(i);
        jit_class_stats &cs = out->classes[i];
        cs.object_size = sc.size;
        cs.slab_pages = sc.pages;
        cs.objects_per_slab = sc.objects;
        // A class's figures are the sums over the shards (shards.h): every object is in
        // exactly one shard's slabs.
        for (unsigned shard = 0; shard < kShards; shard++) {
            SlabClass *made = classes.find(shard, i);
            if (!made)
                continue;  // never used: no slabs
            SlabClass &k = *made;
            std::lock_guard<WordLock> g(k.lock);
            cs.slabs += k.slabs();
            cs.objects_in_use += k.objects_live();
            cs.objects_free += k.objects_avail();
            out->bytes_requested += k.requested();
        }
        out->allocations += cs.objects_in_use;
        out->bytes_in_use += cs.objects_in_use * sc.size;
    }
    {
        std::lock_guard<std::mutex> g(packs.lock);
        out->allocations += packs.objects_live();
        out->bytes_in_use += packs.bytes_live();
        out->bytes_requested += packs.requested();
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    out->allocations += page_runs_live + large_live;
    out->bytes_in_use += page_runs_pages * kPageSize + large_bytes;
    out->bytes_requested += page_runs_requested + large_requested;
    out->chunks_mapped = chunks_mapped;
    // Mapped means exposed (growth.h): a chunk's unexposed part is reserved address space,
    // neither code memory nor cached, though the buddy lists its pages as free.
    uint64_t exposed = 0, unexposed = 0;
    for (Chunk *c = chunks; c; c = c->next) {
        exposed += c->mapping.exposed;
        unexposed += c->size - c->mapping.exposed;
    }
    out->bytes_mapped = exposed;
    out->bytes_cached = buddy.free_pages() * kPageSize - unexposed;
    out->chunks_released = chunks_released;
    uint64_t nchunks = 0;
    std::vector<unsigned char> vec;
    const size_t os_page = os::page_size();  // mincore reports OS pages, not buddy pages
    for (Chunk *c = chunks; c; c = c->next) {
        nchunks++;
        vec.resize(c->size / os_page);
        if (os::mincore(c->base, c->size, vec.data()) != 0)
            continue;  // resident is an estimate: skip what cannot be read
        for (unsigned char v : vec)
            out->bytes_resident += (v & 1) * os_page;
    }
    out->bytes_metadata = nchunks * sizeof(Chunk) + slab_meta_bytes;
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++) {
        out->order_free[o] = buddy.nr_free(o);
        out->order_cached[o] = buddy.nr_cached(o);
        out->order_released[o] = buddy.nr_released(o);
    }
    out->total_allocs = total_allocs.load(std::memory_order_relaxed);
    out->total_frees = total_frees.load(std::memory_order_relaxed);
    out->total_updates = total_updates.load(std::memory_order_relaxed);
    return 0;
}

bool jit_arena::check(std::string &msg) {
    GateGuard op(gate);
    if (!op) {
        msg = "called from an atfork handler inside the fork window";
        return false;
    }
    for (unsigned s = 0; s < kShards; s++) {
        for (unsigned i = 0; i < kNumClasses; i++) {
            SlabClass *k = classes.find(s, i);
            if (!k)
                continue;  // never used: no slab can name it (SlabClass::check of the
                           // classes that exist checks every slab page's key)
            std::lock_guard<WordLock> g(k->lock);
            if (!k->check(s, i, msg, lazy_fill))
                return false;
        }
    }
    {
        std::lock_guard<std::mutex> g(packs.lock);
        if (!packs.check(msg))
            return false;
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    uint64_t mapped = 0;
    for (Chunk *c = chunks; c; c = c->next) {
        mapped += c->size / kChunkSize;
        if (c->arena.load(std::memory_order_relaxed) != this || chunk_lookup(c->base) != c ||
            chunk_lookup(c->base + c->size - 1) != c) {
            msg = "chunk: not registered in the chunk map";
            return false;
        }
        if (reinterpret_cast<uintptr_t>(c->base) & (kChunkSize - 1)) {
            msg = "chunk: base not 2 MiB aligned";
            return false;
        }
        if (c->large ? c->size % kChunkSize != 0 : c->size != kChunkSize) {
            msg = "chunk: bad size";
            return false;
        }
        if (!placement.anywhere && (reinterpret_cast<uintptr_t>(c->base) < placement.lo ||
                                    reinterpret_cast<uintptr_t>(c->base) + c->size > placement.hi)) {
            msg = "chunk: outside the placement window";
            return false;
        }
        // Free pages hold only traps; pages not exposed yet (growth.h) are free and
        // unreadable.
        if (c->mapping.exposed > c->size || c->mapping.exposed % kPageSize ||
            (c->large && c->mapping.exposed != c->size)) {
            msg = "chunk: bad exposed size";
            return false;
        }
        if (!c->large) {
            for (unsigned i = 0; i < kPagesPerChunk; i++) {
                const PageDesc &d = c->pages[i];
                if (d.state.load() != PageState::free) {
                    if (i >= exposed_pages(c)) {
                        msg = "chunk: allocated page past the exposed part";
                        return false;
                    }
                    // A live page run holds only traps past its code end (slab.h, `wide`).
                    const size_t usable = size_t{d.npages} * kPageSize;
                    if (d.state.load() == PageState::pages_head &&
                        !holds_only_traps(c->page_addr(i) + d.code_end(), usable - d.code_end())) {
                        msg = "chunk: page run holds non-trap bytes past its code end";
                        return false;
                    }
                    continue;
                }
                if (i < exposed_pages(c) && !holds_only_traps(c->page_addr(i), kPageSize)) {
                    msg = "chunk: free page holds non-trap bytes";
                    return false;
                }
            }
        }
    }
    if (mapped != chunks_mapped) {
        msg = "chunk: chunks_mapped disagrees with the chunk list";
        return false;
    }
    return buddy.check(chunks, msg);
}
