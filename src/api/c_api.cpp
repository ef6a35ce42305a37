// The C API: argument checks, errno, and the default arena. All the work is in
// jit_arena (src/arena).
#include <jitalloc/jitalloc.h>

#include "arena/arena.h"
#include "batch/batch.h"
#include "batch/spare.h"
#include "patch/patch.h"

#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>

using namespace jitalloc;

static_assert(JIT_MAX_ALIGN == kPageSize, "aligned allocations rely on page-aligned slabs and runs");

namespace {

// Guards creation of g_default; process/locks.h orders it before the registry.
constinit std::mutex &g_default_lock = process_lock(ProcessLock::default_arena);
std::atomic<jit_arena *> g_default{nullptr};

// errno-style result to the C convention.
int ret(int rc) {
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

void *ret_ptr(int rc, void *p) {
    if (rc) {
        errno = rc;
        return nullptr;
    }
    return p;
}

// The default arena's options.
void default_options(jit_arena_options &o) {
    jit_arena_options_init(&o);
    o.name = "default";
}

// The arena p's chunk was bound to a moment ago: a hint, which that arena confirms
// under its own locks before it trusts p.
jit_arena *arena_of_ptr(const void *p) {
    Chunk *c = p ? chunk_lookup(p) : nullptr;
    return c ? c->arena.load(std::memory_order_acquire) : nullptr;
}

}  // namespace

extern "C" {

void jit_arena_options_init(struct jit_arena_options *o) {
    if (!o)
        return;
    std::memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->writer = JIT_WRITER_AUTO;
    o->placement = JIT_PLACE_NEAR_LIBRARY;
    o->near_range = JIT_DEFAULT_NEAR_RANGE;
    o->retain_bytes = JIT_DEFAULT_RETAIN_BYTES;
}

jit_arena *jit_arena_create(const struct jit_arena_options *opts) {
    jit_arena *a = nullptr;
    int rc = arena_create(opts, &a);
    return static_cast<jit_arena *>(ret_ptr(rc, a));
}

int jit_arena_destroy(jit_arena *a) {
    if (!a || a == g_default.load(std::memory_order_acquire))
        return ret(EINVAL);
    return ret(arena_destroy(a));
}

jit_arena *jit_default_arena(void) {
    jit_arena *a = g_default.load(std::memory_order_acquire);
    if (a)
        return a;
    if (fork_in_progress_here()) {  // this thread holds g_default_lock (see locks.h)
        errno = EDEADLK;
        return nullptr;
    }
    std::lock_guard<std::mutex> g(g_default_lock);
    a = g_default.load(std::memory_order_acquire);
    if (!a) {
        jit_arena_options o;
        default_options(o);
        int rc = arena_create(&o, &a);
        if (rc) {
            errno = rc;
            return nullptr;
        }
        g_default.store(a, std::memory_order_release);
    }
    return a;
}

uint64_t jit_arena_id(const jit_arena *a) { return a ? a->id : 0; }

jit_arena *jit_arena_by_id(uint64_t id) {
    if (fork_in_progress_here())  // this thread holds the registry lock (see locks.h)
        return static_cast<jit_arena *>(ret_ptr(EDEADLK, nullptr));
    jit_arena *a = id ? arena_with_id(id) : nullptr;
    return static_cast<jit_arena *>(ret_ptr(a ? 0 : EINVAL, a));
}

void *jit_arena_alloc_named(jit_arena *a, const void *code, size_t len, const char *name) {
    if (!a)
        return ret_ptr(EINVAL, nullptr);
    void *p = nullptr;
    int rc = a->alloc(code, len, name, &p);
    return ret_ptr(rc, p);
}

void *jit_arena_alloc(jit_arena *a, const void *code, size_t len) {
    return jit_arena_alloc_named(a, code, len, nullptr);
}

void *jit_alloc(const void *code, size_t len) {
    jit_arena *a = g_default.load(std::memory_order_acquire);
    if (a)
        return jit_arena_alloc_named(a, code, len, nullptr);
    // The process's first jit_alloc: the default arena is created by this allocation,
    // which proves its writer (arena_create_allocating). Bad arguments take the ordinary
    // way: the arena is created, the allocation refused.
    if (len != 0 && len <= JIT_MAX_ALLOC_SIZE && !fork_in_progress_here()) {
        std::unique_lock<std::mutex> g(g_default_lock);
        if (!(a = g_default.load(std::memory_order_acquire))) {
            jit_arena_options o;
            default_options(o);
            void *p = nullptr;
            int rc = arena_create_allocating(&o, code, len, &a, &p);
            if (rc)
                return ret_ptr(rc, nullptr);
            g_default.store(a, std::memory_order_release);
            return p;
        }
    }
    a = a ? a : jit_default_arena();
    return a ? jit_arena_alloc_named(a, code, len, nullptr) : nullptr;
}

// The alignment an aligned allocation asks the arena or batch for; 0 for a bad one (not a
// power of two up to JIT_MAX_ALIGN).
static size_t checked_align(size_t align) {
    if (align == 0 || (align & (align - 1)) != 0 || align > JIT_MAX_ALIGN)
        return 0;
    return align < JIT_ALLOC_ALIGN ? JIT_ALLOC_ALIGN : align;
}

void *jit_arena_alloc_aligned(jit_arena *a, const void *code, size_t len, size_t align,
                              const char *name) {
    const size_t at = checked_align(align);
    if (!a || !at)
        return ret_ptr(EINVAL, nullptr);
    void *p = nullptr;
    int rc = a->alloc(code, len, name, &p, at);  // before p is read
    return ret_ptr(rc, p);
}

void *jit_alloc_aligned(const void *code, size_t len, size_t align) {
    jit_arena *a = jit_default_arena();
    return a ? jit_arena_alloc_aligned(a, code, len, align, nullptr) : nullptr;
}

int jit_shrink_alloc(void *p, size_t len) {
    jit_arena *a = arena_of_ptr(p);
    return ret(a ? a->shrink_alloc(p, len) : EINVAL);
}

int jit_arena_shrink_alloc(jit_arena *a, void *p, size_t len) {
    return ret(a ? a->shrink_alloc(p, len) : EINVAL);
}

int jit_update(void *dst, const void *src, size_t len) {
    jit_arena *a = arena_of_ptr(dst);
    return ret(a ? a->update(dst, src, len) : EINVAL);
}

int jit_arena_update(jit_arena *a, void *dst, const void *src, size_t len) {
    return ret(a ? a->update(dst, src, len) : EINVAL);
}

int jit_arena_patch(jit_arena *a, void *dst, const void *src, size_t len) {
    const jit_patch_site site{dst, src, len};
    return ret(live_patch(a, &site, 1));
}

int jit_patch(void *dst, const void *src, size_t len) {
    return jit_arena_patch(arena_of_ptr(dst), dst, src, len);
}

int jit_arena_patch_batch(jit_arena *a, const struct jit_patch_site *sites, size_t n) {
    return ret(live_patch(a, sites, n));
}

int jit_patch_batch(const struct jit_patch_site *sites, size_t n) {
    return jit_arena_patch_batch(sites && n ? arena_of_ptr(sites[0].dst) : nullptr, sites, n);
}

int jit_free(void *p) {
    jit_arena *a = arena_of_ptr(p);
    return ret(a ? a->free(p) : EINVAL);
}

int jit_arena_free(jit_arena *a, void *p) { return ret(a ? a->free(p) : EINVAL); }

size_t jit_size(const void *p) {
    jit_arena *a = arena_of_ptr(p);
    return a ? a->usable_size(p) : 0;
}

jit_arena *jit_arena_of(const void *p) {
    jit_arena *a = arena_of_ptr(p);
    return a && a->usable_size(p) ? a : nullptr;
}

int jit_arena_stats(jit_arena *a, struct jit_stats *out) {
    if (!a || !out)
        return ret(EINVAL);
    return ret(a->stats(out));
}

int jit_stats(struct jit_stats *out) {
    jit_arena *a = jit_default_arena();
    return a ? jit_arena_stats(a, out) : -1;
}

size_t jit_arena_shrink(jit_arena *a) { return a ? a->shrink() : 0; }

size_t jit_shrink(void) {
    size_t released = 0;
    if (fork_in_progress_here())
        return 0;
    for_each_arena([&](jit_arena *a) { released += a->shrink(); });
    return released;
}

int jit_arena_window(jit_arena *a, struct jit_window *out) {
    if (!a || !out)
        return ret(EINVAL);
    window_of(a->placement, a->opts.placement, out);
    return 0;
}

int jit_arena_reaches(jit_arena *a, const void *target) {
    if (!a)
        return ret(EINVAL);
    return window_reaches(a->placement, reinterpret_cast<uintptr_t>(target)) ? 1 : 0;
}

void *jit_arena_map_near(jit_arena *a, size_t len, int prot) {
    constexpr int kDataProt = PROT_READ | PROT_WRITE;
    if (!a || len == 0 || len % kPageSize != 0 || len > JIT_MAX_ALLOC_SIZE ||
        (prot & ~kDataProt) != 0 || prot == PROT_WRITE)
        return ret_ptr(EINVAL, nullptr);
    uint8_t *p = map_in_window(a->placement, len, prot);
    return ret_ptr(p ? 0 : errno, p);
}

jit_batch *jit_batch_create(jit_arena *a) {
    if (!a && !(a = jit_default_arena()))
        return nullptr;
    jit_batch *b = batch_create(a);
    return static_cast<jit_batch *>(ret_ptr(b ? 0 : ENOMEM, b));
}

void *jit_batch_alloc(jit_batch *b, const void *code, size_t len, const char *name) {
    void *p = nullptr;
    int rc = b ? b->alloc(code, len, name, &p) : EINVAL;
    return ret_ptr(rc, p);
}

void *jit_batch_alloc_aligned(jit_batch *b, const void *code, size_t len, size_t align,
                              const char *name) {
    const size_t at = checked_align(align);
    if (!b || !at)
        return ret_ptr(EINVAL, nullptr);
    void *p = nullptr;
    int rc = b->alloc(code, len, name, &p, at);  // before p is read
    return ret_ptr(rc, p);
}

int jit_batch_update(jit_batch *b, void *dst, const void *src, size_t len) {
    return ret(b ? b->update(dst, src, len) : EINVAL);
}

int jit_batch_commit(jit_batch *b) { return ret(b ? b->commit() : EINVAL); }

void jit_batch_abort(jit_batch *b) {
    if (b)
        b->abort();
}

void jit_batch_destroy(jit_batch *b) {
    if (b)
        batch_destroy(b);
}

int jit_arena_check(jit_arena *a, char *msg, size_t msg_len) {
    if (!a)
        return ret(EINVAL);
    if (fork_in_progress_here())
        return ret(EDEADLK);
    std::string why;
    if (a->check(why))
        return 0;
    if (msg && msg_len)
        std::snprintf(msg, msg_len, "%s", why.c_str());
    return ret(EUCLEAN);
}

int jit_stats_print(FILE *f, const struct jit_stats *s) {
    if (!s)
        return ret(EINVAL);
    if (!f)
        f = stdout;
    auto kib = [](uint64_t b) { return b / 1024; };
    std::fprintf(f, "jitalloc: writer %s (%s W^X%s)\n", s->writer_name,
                 s->strict_wx ? "strict" : "NOT strict", s->sync_core ? ", sync-core" : "");
    std::fprintf(f,
                 "  chunks %" PRIu64 "  mapped %" PRIu64 " KiB  resident %" PRIu64
                 " KiB  cached %" PRIu64 " KiB  metadata %" PRIu64 " KiB\n",
                 s->chunks_mapped, kib(s->bytes_mapped), kib(s->bytes_resident),
                 kib(s->bytes_cached), kib(s->bytes_metadata));
    std::fprintf(f,
                 "  live %" PRIu64 "  requested %" PRIu64 " B  in use %" PRIu64
                 " B  allocs %" PRIu64 "  frees %" PRIu64 "  updates %" PRIu64
                 "  chunks released %" PRIu64 "\n",
                 s->allocations, s->bytes_requested, s->bytes_in_use, s->total_allocs,
                 s->total_frees, s->total_updates, s->chunks_released);
    std::fprintf(f, "  %-10s", "order");
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++)
        std::fprintf(f, "%7u", o);
    const char *rows[] = {"Free:", "Cached:", "Released:"};
    const uint64_t *vals[] = {s->order_free, s->order_cached, s->order_released};
    for (int r = 0; r < 3; r++) {
        std::fprintf(f, "\n  %-10s", rows[r]);
        for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++)
            std::fprintf(f, "%7" PRIu64, vals[r][o]);
    }
    std::fprintf(f, "\n  %8s %6s %8s %8s %10s %10s\n", "class", "pages", "obj/slab", "slabs",
                 "in use", "free");
    for (uint32_t i = 0; i < s->nr_classes && i < JIT_MAX_SIZE_CLASSES; i++) {
        const jit_class_stats &c = s->classes[i];
        if (!c.slabs)
            continue;
        std::fprintf(f, "  %8u %6u %8u %8" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
                     c.object_size, c.slab_pages, c.objects_per_slab, c.slabs, c.objects_in_use,
                     c.objects_free);
    }
    return 0;
}

}  // extern "C"
