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

int choose_writer(const jit_arena_options &o, const Writer **out, WriterProbes &probes) {
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
    if (want != JIT_WRITER_AUTO) {
        const Writer *w = writer_for(want);
        int rc = probe_writer(*w);
        probes.add(want, rc);
        if (rc)
            return rc;
        *out = w;
        return 0;
    }
    int rc = ENOSYS;
    for (jit_writer k : kAutoOrder) {
        const Writer *w = writer_for(k);
        rc = probe_writer(*w);
        probes.add(k, rc);
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

// arena_create without the report; probes says what writer selection tried.
static int create_arena(const jit_arena_options *user, WriterProbes &probes, jit_arena **out) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    if (user) {
        // Shorter than version 0.1 would leave fields the caller set unread.
        if (user->struct_size < JIT_ARENA_OPTIONS_MIN_SIZE || user->struct_size > sizeof o)
            return EINVAL;
        std::memcpy(&o, user, user->struct_size);
        o.struct_size = sizeof o;
    }
    if (int rc = validate(o))
        return rc;
    const Writer *w = nullptr;
    if (int rc = choose_writer(o, &w, probes))
        return rc;
    auto *a = new (std::nothrow) jit_arena();
    if (!a)
        return ENOMEM;
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
    {
        std::lock_guard<std::mutex> g(g_registry_lock);
        a->id = ++g_last_id;
        a->next_arena = g_registry;
        g_registry = a;
    }
    *out = a;
    return 0;
}

int arena_create(const jit_arena_options *user, jit_arena **out) {
    if (fork_in_progress_here())
        return EDEADLK;  // from an atfork handler inside the fork window: see locks.h
    ensure_fork_handlers();
    WriterProbes probes;
    int rc = create_arena(user, probes, out);
    report_arena_created(rc ? nullptr : *out, probes, rc);
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
