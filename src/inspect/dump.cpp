// jit_dump: a text snapshot of every arena (see include/jitalloc/dump.h).
//
// Locking: the registry lock is held for the whole dump (no arena is destroyed under
// us). Per arena: stats() first (it takes the arena's locks itself); then every class
// lock in index order and the buddy lock, as fork_prepare does (class locks before
// the buddy lock), while chunk, slab and allocation records and code bytes are copied
// into ordinary memory; then all arena locks are dropped before names are looked up
// (the observer lock) and anything is written.
#include "arena/arena.h"
#include "observe/observe.h"

#include <jitalloc/dump.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

using namespace jitalloc;

namespace {

constexpr size_t kMaxCodeBytes = size_t{1} << 20;

struct ChunkRec {
    uintptr_t base;
    size_t size;
    bool large;
    unsigned free_pages;
};
struct SlabRec {
    uintptr_t base, chunk;
    uint32_t object_size, objects, live, avail;
};
struct AllocRec {
    uintptr_t addr;
    size_t usable, requested;
    const char *kind;
    std::vector<uint8_t> code;
};
struct Snapshot {
    std::vector<ChunkRec> chunks;
    std::vector<SlabRec> slabs;
    std::vector<AllocRec> allocs;
};

void add_alloc(Snapshot &s, const uint8_t *p, size_t usable, size_t requested, const char *kind,
               bool code) {
    AllocRec r{reinterpret_cast<uintptr_t>(p), usable, requested, kind, {}};
    if (code) {
        size_t n = requested < kMaxCodeBytes ? requested : kMaxCodeBytes;
        r.code.assign(p, p + n);
    }
    s.allocs.push_back(std::move(r));
}

// All of a's class locks and its buddy lock held.
void walk_locked(jit_arena *a, Snapshot &s, bool code) {
    for (Chunk *c = a->chunks; c; c = c->next) {
        s.chunks.push_back({reinterpret_cast<uintptr_t>(c->base), c->size, c->large, c->free_pages});
        if (c->large) {
            if (c->live)
                add_alloc(s, c->base, c->size, c->requested, "large", code);
            continue;
        }
        for (unsigned pg = 0; pg < kPagesPerChunk; pg++) {
            const PageDesc &d = c->pages[pg];
            PageState st = d.state.load(std::memory_order_relaxed);
            if (st == PageState::pages_head) {
                add_alloc(s, c->page_addr(pg), size_t{d.npages} * kPageSize, d.requested, "pages",
                          code);
                continue;
            }
            if (st == PageState::pack) {
                auto *pk = static_cast<const Pack *>(d.owner.load(std::memory_order_relaxed));
                if (!pk || pk->first_page != pg)
                    continue;  // a later page of a pack already recorded
                for (unsigned u = 0; u < kPackUnits; u++)
                    if (pk->is_live(u))
                        add_alloc(s, pk->unit_addr(u), pk->extent(u) * kPackUnit, pk->requested_of(u),
                                  "pack", code);
                continue;
            }
            if (st != PageState::slab)
                continue;
            auto *sl = static_cast<const Slab *>(d.owner.load(std::memory_order_relaxed));
            if (!sl || sl->first_page != pg)
                continue;  // a later page of a slab already recorded
            s.slabs.push_back({reinterpret_cast<uintptr_t>(sl->base), reinterpret_cast<uintptr_t>(c->base),
                               sl->size, sl->nobj, sl->nlive, sl->navail});
            for (unsigned i = 0; i < sl->nobj; i++)
                if (sl->is_live(i))
                    add_alloc(s, sl->object(i), sl->size, sl->requested_of(i), "slab", code);
        }
    }
}

void snapshot(jit_arena *a, Snapshot &s, bool code) {
    // Closing the arena's gate waits for every operation in flight and holds new ones
    // off: the arena is quiescent, with no lock held, for the length of the walk.
    // (Taking all 65 locks instead would trip ThreadSanitizer's 64-lock limit.)
    a->gate.close();
    walk_locked(a, s, code);
    a->gate.open();
}

void print_arena(FILE *f, jit_arena *a, const struct jit_stats &st, const Snapshot &s) {
    std::fprintf(f, "arena %lx writer %s flags 0x%x strict_wx %u sync_core %u name %s\n",
                 static_cast<unsigned long>(reinterpret_cast<uintptr_t>(a)), st.writer_name,
                 a->opts.flags, st.strict_wx, st.sync_core, a->name.empty() ? "-" : a->name.c_str());
    std::fprintf(f,
                 "stats chunks_mapped %llu bytes_mapped %llu bytes_resident %llu bytes_requested %llu"
                 " bytes_in_use %llu bytes_cached %llu bytes_metadata %llu allocations %llu"
                 " total_allocs %llu total_frees %llu total_updates %llu chunks_released %llu\n",
                 (unsigned long long)st.chunks_mapped, (unsigned long long)st.bytes_mapped,
                 (unsigned long long)st.bytes_resident, (unsigned long long)st.bytes_requested,
                 (unsigned long long)st.bytes_in_use, (unsigned long long)st.bytes_cached,
                 (unsigned long long)st.bytes_metadata, (unsigned long long)st.allocations,
                 (unsigned long long)st.total_allocs, (unsigned long long)st.total_frees,
                 (unsigned long long)st.total_updates, (unsigned long long)st.chunks_released);
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++)
        std::fprintf(f, "order %u free %llu cached %llu released %llu\n", o,
                     (unsigned long long)st.order_free[o], (unsigned long long)st.order_cached[o],
                     (unsigned long long)st.order_released[o]);
    for (unsigned i = 0; i < st.nr_classes; i++) {
        const jit_class_stats &c = st.classes[i];
        if (c.slabs == 0)
            continue;
        std::fprintf(f, "class %u pages %u per_slab %u slabs %llu in_use %llu free %llu\n",
                     c.object_size, c.slab_pages, c.objects_per_slab, (unsigned long long)c.slabs,
                     (unsigned long long)c.objects_in_use, (unsigned long long)c.objects_free);
    }
    for (const ChunkRec &c : s.chunks)
        std::fprintf(f, "chunk %lx size %zu kind %s free_pages %u\n", static_cast<unsigned long>(c.base),
                     c.size, c.large ? "large" : "small", c.free_pages);
    for (const SlabRec &sl : s.slabs)
        std::fprintf(f, "slab %lx chunk %lx object_size %u objects %u live %u avail %u\n",
                     static_cast<unsigned long>(sl.base), static_cast<unsigned long>(sl.chunk),
                     sl.object_size, sl.objects, sl.live, sl.avail);
    char name[256];
    for (const AllocRec &r : s.allocs) {
        if (!observe_name(reinterpret_cast<const void *>(r.addr), name, sizeof name))
            std::snprintf(name, sizeof name, "-");
        std::fprintf(f, "alloc %lx usable %zu requested %zu kind %s name %s\n",
                     static_cast<unsigned long>(r.addr), r.usable, r.requested, r.kind, name);
        if (!r.code.empty()) {
            std::fprintf(f, "code %lx ", static_cast<unsigned long>(r.addr));
            for (uint8_t b : r.code)
                std::fprintf(f, "%02x", b);
            std::fputc('\n', f);
        }
    }
    std::fprintf(f, "end-arena\n");
}

}  // namespace

extern "C" int jit_dump(FILE *f, unsigned flags) {
    if (!f || (flags & ~JIT_DUMP_FLAGS_ALL)) {
        errno = EINVAL;
        return -1;
    }
    if (fork_in_progress_here()) {  // the registry lock is this thread's (process/locks.h)
        errno = EDEADLK;
        return -1;
    }
    std::fprintf(f, "jitalloc-dump 1 pid %ld\n", static_cast<long>(getpid()));
    for_each_arena([&](jit_arena *a) {
        struct jit_stats st;
        if (a->stats(&st) != 0)
            return;
        Snapshot s;
        snapshot(a, s, flags & JIT_DUMP_CODE);
        print_arena(f, a, st, s);
    });
    std::fprintf(f, "end\n");
    if (std::fflush(f) != 0 || std::ferror(f))
        return -1;
    return 0;
}

extern "C" int jit_dump_file(const char *path, unsigned flags) {
    if (!path) {
        errno = EINVAL;
        return -1;
    }
    std::string tmp = std::string(path) + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "we");
    if (!f)
        return -1;
    int rc = jit_dump(f, flags);
    int err = errno;
    if (std::fclose(f) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    if (rc == 0 && std::rename(tmp.c_str(), path) != 0) {
        rc = -1;
        err = errno;
    }
    if (rc != 0) {
        std::remove(tmp.c_str());
        errno = err;
    }
    return rc;
}
