// Allocation observers: perf map files and the GDB JIT interface.
//
// One table (address -> record) holds every live allocation of an observed arena,
// guarded by g_lock. observe_alloc is called outside the arena's locks; observe_free
// holds g_lock around the arena's commit of the free (which takes arena locks), and
// nothing else here calls back into the allocator, so g_lock comes first whenever it
// nests with arena locks (the inspector takes it only after dropping them).
//
// perf map (/tmp/perf-PID.map, "START SIZE name" per line, hex): perf reads the file
// when `perf report` / `perf script` runs, with no notion of time, so the file should
// describe the code that was sampled. Two modes:
//  - default: the file lists the live allocations. A new allocation is appended (one
//    write(2) with O_APPEND); a free rewrites the file from the table into a new
//    perf-PID.map.XXXXXX (created exclusively, mode 0644) and renames it over the map
//    (O(live) per free), so perf never sees a half-written file, a reused address never
//    carries a stale name, and nothing planted in /tmp is followed.
//  - JITALLOC_PERF_MAP=keep: append-only; freed entries stay, which keeps names for
//    code that was freed before `perf report` ran. When an address is reused, the map
//    then has two entries at one start address and perf keeps only one of them.
// This file does its own open/write/rename: it is not part of the allocator's memory
// path (os.h's seam covers code memory and its bookkeeping).
//
// GDB: each allocation gets a small in-memory ELF64 relocatable object whose .text
// section is SHT_NOBITS at the code's address, with one global STT_FUNC symbol named
// after the allocation; it is linked into jitalloc's descriptor list and announced
// through its register function, where GDB keeps a breakpoint (see "GDB's symbols").
#include "observe/observe.h"
#include "process/locks.h"

#include "arena/arena.h"
#include "observe/gdb_symfile.h"

#include <jitalloc/gdb_jit.h>
#include <jitalloc/jitalloc.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

// ---------------------------------------------------------------- GDB's symbols
//
// GDB looks __jit_debug_register_code and __jit_debug_descriptor up in each object file
// and keeps one descriptor per object file, so several JIT runtimes in one process
// (libLLVM defines both names too) each announce code in their own. libjitalloc.so
// exports the two names (JITALLOC_0, src/api/exports.map: GDB wants a global data symbol,
// and one that survives stripping) as aliases of the hidden definitions below, and this
// file only ever uses the hidden names: jitalloc's accesses never go through the dynamic
// linker, so they reach its own descriptor whichever library the linker searches first,
// and versioned references of other runtimes (libLLVM's are __jit_debug_descriptor@LLVM_16)
// never bind to jitalloc's. The aliases are weak so that a static link with another
// definer keeps the other's (GDB then sees only that one in the executable; see README).

extern "C" {
__attribute__((visibility("hidden"))) jit_descriptor jitalloc_gdb_descriptor = {
    1, JIT_NOACTION, nullptr, nullptr};

// GDB sets a breakpoint here; the asm keeps the call, and the stores before it, in place.
__attribute__((visibility("hidden"), noinline, used)) void jitalloc_gdb_register_code(void) noexcept {
    __asm__ volatile("" ::: "memory");
}

extern jit_descriptor __jit_debug_descriptor
    __attribute__((weak, alias("jitalloc_gdb_descriptor"), visibility("default")));
void __jit_debug_register_code(void) noexcept
    __attribute__((weak, alias("jitalloc_gdb_register_code"), visibility("default")));
}

namespace jitalloc {
namespace {

struct Record {
    jit_arena *arena = nullptr;
    size_t len = 0;
    std::string name;
    bool perf = false;
    jit_code_entry *gdb = nullptr;  // with its ELF image right behind it
};

constinit std::mutex &g_lock = process_lock(ProcessLock::observers);
std::map<uintptr_t, Record> g_records;  // guarded by g_lock

// perf map state, guarded by g_lock.
int g_perf_fd = -1;
pid_t g_perf_pid = 0;
bool g_perf_keep = false;

bool env_on(const char *var) {
    const char *v = std::getenv(var);
    return v && *v && std::strcmp(v, "0") != 0;
}

std::string perf_path(pid_t pid) { return "/tmp/perf-" + std::to_string(pid) + ".map"; }

void append_line(std::string &out, uintptr_t addr, const Record &r) {
    char head[64];
    std::snprintf(head, sizeof head, "%lx %zx ", static_cast<unsigned long>(addr), r.len);
    out += head;
    out += r.name;
    out += '\n';
}

bool write_all(int fd, const std::string &s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t w = ::write(fd, s.data() + done, s.size() - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        done += static_cast<size_t>(w);
    }
    return true;
}

// Writes every perf record to a fresh file and renames it over the map; the new file
// becomes the one appended to. g_lock held.
void perf_rewrite() {
    pid_t pid = getpid();
    std::string path = perf_path(pid);
    // /tmp is shared: the temporary file gets a fresh name and is created exclusively
    // (O_EXCL: a name planted there, symlink or not, is never opened), and rename()
    // replaces whatever sits at the map's own path without following it.
    std::string tmp = path + ".XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)::fchmod(fd, 0644);  // mkostemp makes it 0600; perf may run as another user
    std::string text;
    for (const auto &[addr, r] : g_records)
        if (r.perf)
            append_line(text, addr, r);
    if (!write_all(fd, text) || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return;
    }
    if (g_perf_fd >= 0)
        ::close(g_perf_fd);
    g_perf_fd = fd;
    g_perf_pid = pid;
}

// Appends one record; the first use in a process (or in a forked child) starts the
// file afresh from the table. g_lock held.
void perf_add(uintptr_t addr, const Record &r) {
    if (g_perf_fd < 0 || g_perf_pid != getpid()) {
        g_perf_keep = [] {
            const char *v = std::getenv("JITALLOC_PERF_MAP");
            return v && std::strcmp(v, "keep") == 0;
        }();
        perf_rewrite();  // includes r: it is already in the table
        return;
    }
    std::string line;
    append_line(line, addr, r);
    (void)write_all(g_perf_fd, line);
}

// g_lock held for both.
void gdb_register(jit_code_entry *e) {
    e->prev_entry = nullptr;
    e->next_entry = jitalloc_gdb_descriptor.first_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e;
    jitalloc_gdb_descriptor.first_entry = e;
    jitalloc_gdb_descriptor.relevant_entry = e;
    jitalloc_gdb_descriptor.action_flag = JIT_REGISTER_FN;
    jitalloc_gdb_register_code();
}

void gdb_unregister(jit_code_entry *e) {
    if (e->prev_entry)
        e->prev_entry->next_entry = e->next_entry;
    else
        jitalloc_gdb_descriptor.first_entry = e->next_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e->prev_entry;
    jitalloc_gdb_descriptor.relevant_entry = e;
    jitalloc_gdb_descriptor.action_flag = JIT_UNREGISTER_FN;
    jitalloc_gdb_register_code();
    jitalloc_gdb_descriptor.relevant_entry = nullptr;
    jitalloc_gdb_descriptor.action_flag = JIT_NOACTION;
    std::free(e);
}

// Drops one record; true if the perf map needs a rewrite. g_lock held.
bool drop_locked(std::map<uintptr_t, Record>::iterator it) {
    bool perf = it->second.perf;
    if (it->second.gdb)
        gdb_unregister(it->second.gdb);
    g_records.erase(it);
    return perf && !g_perf_keep;
}

}  // namespace

unsigned observe_env_flags() {
    unsigned f = 0;
    if (env_on("JITALLOC_PERF_MAP"))
        f |= JIT_ARENA_PERF_MAP;
    if (env_on("JITALLOC_GDB_JIT"))
        f |= JIT_ARENA_GDB_JIT;
    return f;
}

void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name) {
    const unsigned flags = a->opts.flags;
    const auto addr = reinterpret_cast<uintptr_t>(code);
    Record r;
    r.arena = a;
    r.len = len;
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
    r.perf = flags & JIT_ARENA_PERF_MAP;
    jit_code_entry *e = (flags & JIT_ARENA_GDB_JIT) ? gdb_symfile_entry(addr, len, r.name.data(), r.name.size()) : nullptr;

    std::lock_guard<std::mutex> g(g_lock);
    auto [it, fresh] = g_records.insert_or_assign(addr, std::move(r));
    (void)fresh;
    if (it->second.perf)
        perf_add(addr, it->second);
    if (e) {
        it->second.gdb = e;
        gdb_register(e);
    }
}

int observe_free(jit_arena *, const void *code, const FreeCommit &commit) {
    std::lock_guard<std::mutex> g(g_lock);
    if (int rc = commit())
        return rc;
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    if (it != g_records.end() && drop_locked(it))
        perf_rewrite();
    return 0;
}

void observe_arena_destroyed(jit_arena *a) {
    std::lock_guard<std::mutex> g(g_lock);
    bool rewrite = false;
    for (auto it = g_records.begin(); it != g_records.end();) {
        auto next = std::next(it);
        if (it->second.arena == a)
            rewrite |= drop_locked(it);
        it = next;
    }
    if (rewrite)
        perf_rewrite();
}

const jit_descriptor &observe_gdb_descriptor() { return jitalloc_gdb_descriptor; }

bool observe_name(const void *code, char *buf, size_t buf_len) {
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    if (it == g_records.end() || buf_len == 0)
        return false;
    std::snprintf(buf, buf_len, "%s", it->second.name.c_str());
    return true;
}

}  // namespace jitalloc
