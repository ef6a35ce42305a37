// The observers' door (observe.h): the record table, and which observer hears of what.
//
// g_records holds one record per live allocation of an observed arena, guarded by
// g_lock. The observers (perf_map.cpp, gdb_register.cpp) are called from here with
// g_lock held; nothing here calls back into the allocator except the commit of
// observe_free (run with g_lock held), so g_lock comes first whenever it nests with
// arena locks (the inspector takes it only after dropping them).
//
// A record's code is announced (announce_locked) when it is written: at the allocation,
// or at the first code write into a reservation. Before every later write (an update,
// a free's trap fill, a shrink's trap tail) GDB's entry leaves the list and GDB re-sets
// its breakpoints (gdb_reset_breakpoints), so it takes them out of the old bytes while
// they are still there; after the write the entry comes back and GDB puts them into the
// new bytes.
#include "observe/observe.h"

#include "arena/arena.h"
#include "observe/gdb_register.h"
#include "observe/gdb_symfile.h"
#include "observe/jitdump.h"
#include "observe/perf_map.h"
#include "observe/records.h"
#include "process/locks.h"

#include <jitalloc/jitalloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace jitalloc {
namespace {

constinit std::mutex &g_lock = process_lock(ProcessLock::observers);
RecordTable g_records;  // guarded by g_lock

bool env_on(const char *var) {
    const char *v = std::getenv(var);
    return v && *v && std::strcmp(v, "0") != 0;
}

// The code of r is in place: every observer of its arena hears of it. new_bytes: the
// bytes differ from those last announced (or were never announced). g_lock held.
void announce_locked(uintptr_t addr, Record &r, bool new_bytes) {
    r.written = true;
    if ((r.flags & JIT_ARENA_PERF_MAP) && !r.in_perf_map) {
        r.in_perf_map = true;
        perf_map_add(g_records, addr, r);
    }
    if ((r.flags & JIT_ARENA_JITDUMP) && (new_bytes || !r.in_jitdump)) {
        r.in_jitdump = true;
        jitdump_load(g_records, addr, r);
    }
    if (r.gdb && !r.gdb_linked) {
        r.gdb_linked = true;
        gdb_link(r.gdb);
    }
}

// Takes r's entry out of GDB's list; true if it was in. g_lock held.
bool unlink_from_gdb_locked(Record &r) {
    if (!r.gdb_linked)
        return false;
    r.gdb_linked = false;
    gdb_unlink(r.gdb);
    return true;
}

// Drops one record; true if the perf map listed it. *unlinked is set if GDB's list
// held it. g_lock held.
bool drop_locked(RecordTable::iterator it, bool *unlinked) {
    Record &r = it->second;
    bool listed = r.in_perf_map;
    *unlinked |= unlink_from_gdb_locked(r);
    std::free(r.gdb);
    g_records.erase(it);
    return listed;
}

// r's GDB symbol file for its current length; false (none) if out of memory.
bool make_symfile(uintptr_t addr, Record &r) {
    r.gdb = gdb_symfile_entry(addr, r.len, r.name.data(), r.name.size());
    return r.gdb != nullptr;
}

}  // namespace

unsigned observe_env_flags() {
    unsigned f = 0;
    if (env_on("JITALLOC_PERF_MAP"))
        f |= JIT_ARENA_PERF_MAP;
    if (env_on("JITALLOC_GDB_JIT"))
        f |= JIT_ARENA_GDB_JIT;
    if (env_on("JITALLOC_JITDUMP"))
        f |= JIT_ARENA_JITDUMP;
    return f;
}

void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name, bool written) {
    const auto addr = reinterpret_cast<uintptr_t>(code);
    Record r;
    r.arena = a;
    r.len = len;
    r.flags = a->opts.flags;
    if (name && *name) {
        // One line per entry in the perf map: no newlines in names.
        r.name = name;
        for (char &ch : r.name)
            if (ch == '\n' || ch == '\r')
                ch = ' ';
    } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "jit_%lx", static_cast<unsigned long>(addr));
        r.name = buf;
    }
    if (r.flags & JIT_ARENA_GDB_JIT)
        make_symfile(addr, r);

    std::lock_guard<std::mutex> g(g_lock);
    // A freed allocation's record is gone before its memory can be reused.
    auto it = g_records.insert_or_assign(addr, std::move(r)).first;
    if (written)
        announce_locked(addr, it->second, true);
}

void observe_rewriting(jit_arena *, const void *start) {
    const auto addr = reinterpret_cast<uintptr_t>(start);
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_records.find(addr);
    if (it != g_records.end() && unlink_from_gdb_locked(it->second))
        gdb_reset_breakpoints(addr, it->second.len);
}

void observe_rewritten(jit_arena *, const void *start, bool code_written, size_t new_len) {
    const auto addr = reinterpret_cast<uintptr_t>(start);
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_records.find(addr);  // still there: only its owner writes or frees it
    if (it == g_records.end())
        return;
    Record &r = it->second;
    bool resized = new_len && new_len != r.len;
    if (resized) {
        r.len = new_len;
        if (r.gdb) {  // not linked: observe_rewriting took it out
            std::free(r.gdb);
            make_symfile(addr, r);
        }
        if (r.in_perf_map)
            perf_map_changed(g_records, addr, r);
    }
    if (code_written || r.written)  // the new code, or the code still in place
        announce_locked(addr, r, code_written || resized);
}

int observe_free(jit_arena *, const void *code, const ArenaStep &commit) {
    std::lock_guard<std::mutex> g(g_lock);
    if (int rc = commit())
        return rc;
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    bool unlinked = false;  // stays false: observe_rewriting took it out before the fill
    if (it != g_records.end() && drop_locked(it, &unlinked))
        perf_map_dropped(g_records);
    return 0;
}

void observe_arena_destroyed(jit_arena *a) {
    std::lock_guard<std::mutex> g(g_lock);
    bool dropped_listed = false, unlinked = false;
    uintptr_t some_addr = 0;
    size_t some_len = 0;
    for (auto it = g_records.begin(); it != g_records.end();) {
        auto next = std::next(it);
        if (it->second.arena == a) {
            some_addr = it->first;
            some_len = it->second.len;
            dropped_listed |= drop_locked(it, &unlinked);
        }
        it = next;
    }
    // The arena's code is unmapped next: GDB's breakpoints leave it first (re-setting
    // them is global, so one placeholder range does for all of them).
    if (unlinked)
        gdb_reset_breakpoints(some_addr, some_len);
    if (dropped_listed)
        perf_map_dropped(g_records);
}

const jit_descriptor &observe_gdb_descriptor() { return gdb_descriptor(); }

bool observe_name(const void *code, char *buf, size_t buf_len) {
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    if (it == g_records.end() || buf_len == 0)
        return false;
    std::snprintf(buf, buf_len, "%s", it->second.name.c_str());
    return true;
}

}  // namespace jitalloc
