// Helpers shared by the reliability tests: what the process has mapped (read from
// /proc/self/maps), open descriptors, resident memory, arena shortcuts and a way to run a
// check in a forked child.
#pragma once

#include <jitalloc/jitalloc.h>

#include "../common/trap_fill.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace rel {

// Sanitizer builds run fewer rounds: their runtimes make each operation many times dearer.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

struct Vma {
    uintptr_t start = 0, end = 0;
    char perms[5] = {};
    std::string path;
    size_t size() const { return end - start; }
    bool r() const { return perms[0] == 'r'; }
    bool w() const { return perms[1] == 'w'; }
    bool x() const { return perms[2] == 'x'; }
    bool shared() const { return perms[3] == 's'; }
    bool none() const { return !r() && !w() && !x(); }
    bool anon() const { return path.empty(); }
    bool memfd() const { return path.rfind("/memfd:jitalloc", 0) == 0; }
};

// Reads /proc/self/maps with raw syscalls only (no stdio buffering surprises, usable in a
// monitor thread and in forked children).
inline std::vector<Vma> read_maps() {
    std::vector<Vma> out;
    int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return out;
    std::string text;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos)
            eol = text.size();
        std::string line = text.substr(pos, eol - pos);
        pos = eol + 1;
        Vma v;
        char *end = nullptr;
        v.start = std::strtoull(line.c_str(), &end, 16);
        if (!end || *end != '-')
            continue;
        v.end = std::strtoull(end + 1, &end, 16);
        while (*end == ' ')
            end++;
        std::memcpy(v.perms, end, 4);
        // path: the sixth field onwards
        int field = 0;
        const char *q = line.c_str();
        while (*q && field < 5) {
            while (*q && *q != ' ')
                q++;
            while (*q == ' ')
                q++;
            field++;
        }
        v.path = q;
        out.push_back(v);
    }
    return out;
}

// A summary of everything jitalloc could have left mapped. Sanitizer runtimes and malloc
// make noise in anonymous read-write memory, so the fingerprint counts what only code
// memory looks like: executable anonymous or memfd mappings, any memfd:jitalloc mapping,
// PROT_NONE reservations (small ones: runtimes reserve terabytes once and keep them),
// and 2 MiB-aligned anonymous read-write mappings of whole 2 MiB (a chunk caught before
// it was made executable).
struct Footprint {
    uint64_t exec_bytes = 0;    // x, anonymous or memfd
    uint64_t memfd_bytes = 0;   // memfd:jitalloc, any protection
    uint64_t memfd_rw_bytes = 0;
    uint64_t none_bytes = 0;    // ---p anonymous, each < 256 MiB
    uint64_t rw_chunk_bytes = 0;
    uint64_t wx_bytes = 0;      // writable and executable at once (must stay 0)
    bool operator==(const Footprint &) const = default;
    std::string str() const {
        char b[256];
        std::snprintf(b, sizeof b,
                      "exec %" PRIu64 " memfd %" PRIu64 " memfd_rw %" PRIu64 " none %" PRIu64
                      " rw_chunk %" PRIu64 " wx %" PRIu64,
                      exec_bytes, memfd_bytes, memfd_rw_bytes, none_bytes, rw_chunk_bytes,
                      wx_bytes);
        return b;
    }
};

inline Footprint footprint() {
    Footprint f;
    for (const Vma &v : read_maps()) {
        if (v.w() && v.x())
            f.wx_bytes += v.size();
        if (v.x() && (v.anon() || v.memfd()))
            f.exec_bytes += v.size();
        if (v.memfd()) {
            f.memfd_bytes += v.size();
            if (v.w())
                f.memfd_rw_bytes += v.size();
        }
        if (v.anon() && v.none() && v.size() < (uint64_t{256} << 20))
            f.none_bytes += v.size();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
        // (sanitizer allocators map such regions themselves: checked in plain builds)
        constexpr uintptr_t k2M = uintptr_t{2} << 20;
        if (v.anon() && v.w() && !v.x() && !v.shared() && v.start % k2M == 0 && v.size() % k2M == 0 &&
            v.size() <= (uint64_t{64} << 20))
            f.rw_chunk_bytes += v.size();
#endif
    }
    return f;
}

// Any mapping writable and executable at once, as "start-end perms path"; empty if none.
inline std::string find_wx() {
    for (const Vma &v : read_maps())
        if (v.w() && v.x()) {
            char b[96];
            std::snprintf(b, sizeof b, "%" PRIxPTR "-%" PRIxPTR " %s ", v.start, v.end, v.perms);
            return b + v.path;
        }
    return {};
}

inline int count_fds() {
    int n = 0;
    if (DIR *d = opendir("/proc/self/fd")) {
        while (dirent *e = readdir(d))
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
    }
    return n - 1;  // the directory's own descriptor
}

// Resident set size of the process, bytes.
inline uint64_t rss_bytes() {
    long pages = 0, resident = 0;
    if (FILE *f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        std::fclose(f);
    }
    return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

inline jit_arena *make_arena(jit_writer w, jit_placement place = JIT_PLACE_NEAR_LIBRARY,
                             unsigned flags = JIT_ARENA_IGNORE_ENV, size_t retain = 0) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = w;
    o.placement = place;
    o.flags = flags;
    o.retain_bytes = retain;
    return jit_arena_create(&o);
}

// "" if the arena's invariants hold, else the reason.
inline std::string check(jit_arena *a) {
    char msg[256] = {};
    if (jit_arena_check(a, msg, sizeof msg) == 0)
        return {};
    return msg[0] ? msg : "jit_arena_check failed";
}

inline struct jit_stats stats(jit_arena *a) {
    struct jit_stats s;
    std::memset(&s, 0, sizeof s);
    jit_arena_stats(a, &s);
    return s;
}

using jt_traps::all_traps;
using jt_traps::trap_at;
using jt_traps::trap_bytes;

// True if all n bytes at p equal b.
inline bool all_bytes(const void *p, size_t n, uint8_t b) {
    // memcmp against a filled block: one range check under sanitizers, not one per byte
    uint8_t block[4096];
    std::memset(block, b, sizeof block);
    auto *q = static_cast<const uint8_t *>(p);
    for (size_t done = 0; done < n; done += sizeof block) {
        size_t k = n - done < sizeof block ? n - done : sizeof block;
        if (std::memcmp(q + done, block, k) != 0)
            return false;
    }
    return true;
}

// Runs fn in a forked child; returns the child's exit status (fn's result), or 128+signal.
// The child never returns into the test framework.
inline int in_child(const std::function<int()> &fn) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int rc = fn();
        std::fflush(nullptr);
        _exit(rc);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

// Strategies that can be asked for explicitly.
inline constexpr jit_writer kWriters[] = {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                          JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS,
                                          JIT_WRITER_MPROTECT};

}  // namespace rel
