// Arena creation and destruction, the arena registry, writer selection and fork().
//
// The registry lists every live arena; the registry lock (process/locks.h) guards it and
// is taken before any arena's gate: by the fork handlers, jit_shrink, jit_dump and
// destruction. An arena being destroyed stays registered until its chunks are gone, and
// the destruction runs inside the arena's gate, so fork() waits for it: a child never
// inherits an arena half torn down nor a lock its destroyer held. Each arena gets an
// id at registration, one more than the last: an id names one arena for the life of the
// process, so a handle holding an id can tell a destroyed arena from a new one at the
// same address (jit_arena_by_id).
#include "arena/arena.h"

#include "diag/diag.h"
#include "observe/observe.h"
#include "os/os.h"
#include "report/report.h"
#include "serialise/serialise.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>

using namespace jitalloc;

namespace {

constinit std::mutex &g_registry_lock = process_lock(ProcessLock::registry);
jit_arena *g_registry = nullptr;  // guarded by g_registry_lock
uint64_t g_last_id = 0;           // guarded by g_registry_lock; ids are never reused

constexpr size_t kMaxNearRange = size_t{2} << 30;
static_assert(JIT_DEFAULT_NEAR_RANGE < arch::kDirectBranchReach,
              "the default window keeps code within direct-call reach of the library");
static_assert(JIT_ALLOC_ALIGN % arch::kInsnAlign == 0);

// JITALLOC_WRITER: the writer names of jit_writer_name ("auto", "proc_mem", ...). The spellings of
// earlier versions (procmem, alias, persistent) still work, with a line on stderr
// naming the current one; they are not documented and will go. -1 if unknown.
int parse_writer(const char *s) {
    for (int w = JIT_WRITER_AUTO; w < JIT_WRITER_COUNT; w++)
        if (std::strcmp(s, jit_writer_name(static_cast<jit_writer>(w))) == 0)
            return w;
    struct Old {
        const char *name;
        jit_writer w;
    };
    static const Old old_names[] = {
        {"procmem", JIT_WRITER_PROC_MEM},
        {"alias", JIT_WRITER_TEMP_ALIAS},
        {"persistent", JIT_WRITER_PERSISTENT_ALIAS},
    };
    static std::atomic<bool> told_old{false};
    for (const Old &o : old_names) {
        if (std::strcmp(s, o.name) == 0) {
            diag_once(told_old, "JITALLOC_WRITER=%s is an old spelling: use JITALLOC_WRITER=%s", s,
                      jit_writer_name(o.w));
            return o.w;
        }
    }
    return -1;
}

// The writers an arena may get, in the order to try them: the one asked for (options or
// JITALLOC_WRITER), else AUTO's order. 0, or EINVAL for a bad JITALLOC_WRITER.
struct Candidates {
    jit_writer list[std::size(kAutoOrder)];
    unsigned count = 0;
};

int writer_candidates(const jit_arena_options &o, Candidates &out, WriterProbes &probes) {
    jit_writer want = o.writer;
    probes.asked = want == JIT_WRITER_AUTO ? WriterProbes::Asked::auto_order : WriterProbes::Asked::options;
    if (want == JIT_WRITER_AUTO && !(o.flags & JIT_ARENA_IGNORE_ENV)) {
        if (const char *env = std::getenv("JITALLOC_WRITER"); env && *env) {
            int w = parse_writer(env);
            if (w < 0) {
                // Every arena that honours the variable fails; say why, once.
                static std::atomic<bool> told_bad{false};
                diag_once(told_bad,
                          "JITALLOC_WRITER=%.64s is not a writer (auto, proc_mem, memfd, temp_alias, "
                          "persistent_alias, mprotect): creating arenas fails with EINVAL",
                          env);
                return EINVAL;
            }
            want = static_cast<jit_writer>(w);
            if (want != JIT_WRITER_AUTO)
                probes.asked = WriterProbes::Asked::environment;
        }
    }
    out.count = 0;
    if (want != JIT_WRITER_AUTO)
        out.list[out.count++] = want;
    else
        for (jit_writer k : kAutoOrder)
            out.list[out.count++] = k;
    return 0;
}

// The first candidate whose probe works. 0 or the last probe's errno.
int choose_writer(const Candidates &c, const Writer **out, WriterProbes &probes) {
    int rc = ENOSYS;
    for (unsigned i = 0; i < c.count; i++) {
        const Writer *w = writer_for(c.list[i]);
        rc = probe_writer(*w);
        probes.add(c.list[i], rc);
        if (rc == 0) {
            *out = w;
            return 0;
        }
    }
    return rc;
}

// The integer a C caller stored in an enum field. Any value may arrive; loading one
// outside the enumerators' range as the C++ enum type is undefined behaviour.
template <class E>
long long raw_enum(const E &e) {
    std::underlying_type_t<E> v;
    std::memcpy(&v, &e, sizeof v);
    return static_cast<long long>(v);
}

// Every field a caller can set, against what the arena can work with. Nothing has been
// created yet, so a rejection changes nothing.
int validate(const jit_arena_options &o) {
    long long writer = raw_enum(o.writer), placement = raw_enum(o.placement);
    if (writer < JIT_WRITER_AUTO || writer >= JIT_WRITER_COUNT)
        return EINVAL;
    if (placement < JIT_PLACE_NEAR_LIBRARY || placement > JIT_PLACE_NEAR_ADDRESSES)
        return EINVAL;
    auto user_address = [](const void *p) {
        return p && reinterpret_cast<uintptr_t>(p) < kUserTop;
    };
    if (o.placement == JIT_PLACE_NEAR_ADDRESS && !user_address(o.near))
        return EINVAL;
    if (o.placement == JIT_PLACE_NEAR_ADDRESSES) {
        if (!o.near_addresses || o.near_count == 0 || o.near_count > JIT_MAX_NEAR_ADDRESSES)
            return EINVAL;
        for (size_t i = 0; i < o.near_count; i++)
            if (!user_address(o.near_addresses[i]))
                return EINVAL;
    }
    if (o.near_range > kMaxNearRange)
        return EINVAL;
    if (o.placement != JIT_PLACE_ANYWHERE && o.near_range && o.near_range < kChunkSize)
        return EINVAL;
    if (!window_has_room(make_placement(o)))  // also: targets too far apart for one window
        return EINVAL;
    if (o.max_bytes && o.max_bytes < kChunkSize)  // could never map a chunk
        return EINVAL;
    if (o.flags & ~JIT_ARENA_FLAGS_ALL)
        return EINVAL;
    return 0;
}

}  // namespace

namespace jitalloc {

jit_arena *arena_registry_head() { return g_registry; }

jit_arena *arena_with_id(uint64_t id) {
    std::lock_guard<std::mutex> g(g_registry_lock);
    for (jit_arena *a = g_registry; a; a = a->next_arena)
        if (a->id == id)
            return a;
    return nullptr;
}

void arenas_fork_prepare() {
    for (jit_arena *a = g_registry; a; a = a->next_arena)
        a->fork_prepare();
}

void arenas_fork_parent() {
    for (jit_arena *a = g_registry; a; a = a->next_arena)
        a->fork_parent();
}

void arenas_fork_child() {
    for (jit_arena *a = g_registry; a; a = a->next_arena)
        a->fork_child();
}

namespace {

// The caller's options, checked, in the library's own struct. 0 or EINVAL.
int read_options(const jit_arena_options *user, jit_arena_options &o) {
    jit_arena_options_init(&o);
    if (user) {
        // Shorter than version 0.1 would leave fields the caller set unread.
        if (user->struct_size < JIT_ARENA_OPTIONS_MIN_SIZE || user->struct_size > sizeof o)
            return EINVAL;
        std::memcpy(&o, user, user->struct_size);
        o.struct_size = sizeof o;
    }
    return validate(o);
}

// A new arena with writer w, not yet registered (nobody else can reach it). nullptr if
// there is no memory.
jit_arena *new_arena(const jit_arena_options &o, const Writer *w) {
    auto *a = new (std::nothrow) jit_arena();
    if (!a)
        return nullptr;
    a->opts = o;
    if (o.name)
        a->name = o.name;
    a->opts.name = nullptr;  // the copy in a->name is the one kept
    a->writer = w;
    a->opts.writer = w->kind();
    a->placement = make_placement(o);
    a->opts.near_addresses = nullptr;  // the window is all that is kept of them
    a->opts.near_count = 0;
    if (!(o.flags & JIT_ARENA_IGNORE_ENV))
        a->opts.flags |= observe_env_flags();
    a->observed = a->opts.flags & (JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT | JIT_ARENA_JITDUMP);
    a->lazy_fill = a->opts.flags & JIT_ARENA_LAZY_TRAP_FILL;
    if (!(o.flags & JIT_ARENA_NO_SYNC_CORE))
        a->sync_core = register_sync_core() == 0;
    return a;
}

void register_arena(jit_arena *a) {
    std::lock_guard<std::mutex> g(g_registry_lock);
    a->id = ++g_last_id;
    a->next_arena = g_registry;
    g_registry = a;
}

// The options, checked, and the writers to try. 0 or EINVAL.
int read_request(const jit_arena_options *user, jit_arena_options &o, Candidates &c,
                 WriterProbes &probes) {
    if (int rc = read_options(user, o))
        return rc;
    return writer_candidates(o, c, probes);
}

// arena_create without the report; probes says what writer selection tried.
int create_arena(const jit_arena_options *user, WriterProbes &probes, jit_arena **out) {
    jit_arena_options o;
    Candidates c;
    if (int rc = read_request(user, o, c, probes))
        return rc;
    const Writer *w = nullptr;
    if (int rc = choose_writer(c, &w, probes))
        return rc;
    jit_arena *a = new_arena(o, w);
    if (!a)
        return ENOMEM;
    register_arena(a);
    *out = a;
    return 0;
}

// The first allocation landed as a probe would have: its code was read back by poke()
// (or, all traps, compared before the write was skipped); what the writer's fill put
// behind it is read back here (all of a reservation is fill). Up to 64 bytes: enough to
// tell a fill that never landed (zeros of a fresh page or memfd hole) from traps.
bool fill_landed(const jit_arena *a, const uint8_t *p, const void *code, size_t len) {
    const uint8_t *from = p + (code ? len : 0);
    for (const Chunk *c = a->chunks; c; c = c->next) {
        const uint8_t *end = c->mapping.base + c->mapping.exposed;
        if (p < c->mapping.base || p >= end)
            continue;
        size_t n = from < end ? std::min<size_t>(64, static_cast<size_t>(end - from)) : 0;
        return holds_only_traps(from, n);
    }
    return false;
}

// create_arena and a first allocation in one: each candidate writer is proven by the
// arena's first chunk and allocation instead of a probe of its own (issue 16). A
// candidate that fails anywhere is taken down with everything it mapped, and the next
// one is tried, as after a failed probe; the error is the last candidate's.
int create_arena_allocating(const jit_arena_options *user, const void *code, size_t len,
                            WriterProbes &probes, jit_arena **out, void **p) {
    jit_arena_options o;
    Candidates c;
    if (int rc = read_request(user, o, c, probes))
        return rc;
    int rc = ENOSYS;
    for (unsigned i = 0; i < c.count; i++) {
        jit_arena *a = new_arena(o, writer_for(c.list[i]));
        if (!a)
            return ENOMEM;
        // Tools hear of the allocation once the arena is certain (the caller tells them).
        const bool observed = a->observed;
        a->observed = false;
        rc = a->alloc(code, len, nullptr, p);
        if (!rc && !fill_landed(a, static_cast<const uint8_t *>(*p), code, len))
            rc = EIO;
        probes.add(c.list[i], rc);
        if (!rc) {
            a->observed = observed;
            register_arena(a);
            *out = a;
            return 0;
        }
        // Never registered nor published: nobody else saw it.
        a->destroy_all();
        delete a;
    }
    return rc;
}

}  // namespace

int arena_create(const jit_arena_options *user, jit_arena **out) {
    if (fork_in_progress_here())
        return EDEADLK;  // from an atfork handler inside the fork window: see locks.h
    ensure_fork_handlers();
    WriterProbes probes;
    int rc = create_arena(user, probes, out);
    report_arena_created(rc ? nullptr : *out, probes, rc);
    return rc;
}

int arena_create_allocating(const jit_arena_options *user, const void *code, size_t len,
                            jit_arena **out, void **p) {
    if (fork_in_progress_here())
        return EDEADLK;
    ensure_fork_handlers();
    WriterProbes probes;
    int rc = create_arena_allocating(user, code, len, probes, out, p);
    report_arena_created(rc ? nullptr : *out, probes, rc);
    if (!rc && (*out)->observed)
        observe_alloc(*out, *p, len, nullptr, code != nullptr);
    return rc;
}

int arena_destroy(jit_arena *a) {
    if (fork_in_progress_here())
        return EDEADLK;
    {
        std::lock_guard<std::mutex> g(g_registry_lock);
        jit_arena *p = g_registry;
        while (p && p != a)
            p = p->next_arena;
        if (!p || a->dying)
            return EINVAL;  // unknown, or another thread is destroying it
        if (a->open_batches.load(std::memory_order_acquire) != 0)
            return EBUSY;
        a->dying = true;
    }
    report_arena_destroyed(a);
    {
        GateGuard op(a->gate);  // cannot fail: this thread is not forking
        if (a->observed)
            observe_arena_destroyed(a);
        a->destroy_all();
    }
    {
        std::lock_guard<std::mutex> g(g_registry_lock);
        jit_arena **pp = &g_registry;
        while (*pp != a)
            pp = &(*pp)->next_arena;
        *pp = a->next_arena;
    }
    delete a;
    return 0;
}

}  // namespace jitalloc

// ---------------------------------------------------------------- fork, per arena

void jit_arena::fork_prepare() {
    // With the gate closed no operation is in flight, so no lock is held and nothing is
    // half-written. Memfd-backed code is shared memory: make the child's private copy now.
    // A failure here leaves that chunk unwritable in the child, never shared.
    gate.close();
    for (Chunk *c = chunks; c; c = c->next)
        (void)writer->fork_prepare(c->mapping);
}

void jit_arena::fork_parent() {
    for (Chunk *c = chunks; c; c = c->next)
        writer->fork_parent(c->mapping);
    gate.open();
}

void jit_arena::fork_child() {
    for (Chunk *c = chunks; c; c = c->next)
        (void)writer->fork_child(c->mapping);
    gate.open();
}
