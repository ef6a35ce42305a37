// Placement: find 2 MiB-aligned address space for a chunk, inside a window around an
// address when the arena asks for one (so generated code reaches host code with rel32).
// A range is always claimed with MAP_FIXED_NOREPLACE, so a racing mmap elsewhere in the
// process is never clobbered. Before reading the free gaps from /proc/self/maps (its
// whole text: hundreds of microseconds in a fresh process, more in a big one), likely
// free ranges are tried, one system call each: the last chunk placed (free again once
// that chunk was released: address space is reused rather than spread), right below it
// (chunks pile up downwards), and right below the program or library that holds the
// window's centre (the space below a PIE program or a freshly loaded library is usually
// free).
#include "chunk/chunk.h"

#include "os/os.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace jitalloc {

namespace {

constexpr uintptr_t kUserBottom = kChunkSize;  // stays clear of mmap_min_addr
constexpr int kReserveFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

uintptr_t align_down(uintptr_t v) { return v & ~(kChunkSize - 1); }
uintptr_t align_up(uintptr_t v) { return (v + kChunkSize - 1) & ~(kChunkSize - 1); }
uintptr_t distance(uintptr_t a, uintptr_t b) { return a > b ? a - b : b - a; }

uint8_t *reserve_anywhere(size_t size) {
    size_t span = size + kChunkSize;
    void *p = os::mmap(nullptr, span, PROT_NONE, kReserveFlags, -1, 0);
    if (p == MAP_FAILED)
        return nullptr;
    auto start = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = align_up(start);
    uintptr_t tail = start + span - (aligned + size);
    // Trim the alignment slack; a trim the kernel refuses twice would leak the slack, so
    // give the whole span back instead.
    auto trim = [](uintptr_t at, size_t len) {
        return len == 0 || os::munmap(reinterpret_cast<void *>(at), len) == 0 ||
               os::munmap(reinterpret_cast<void *>(at), len) == 0;
    };
    if (!trim(start, aligned - start)) {
        int e = errno;
        os::munmap(p, span);
        errno = e;
        return nullptr;
    }
    if (!trim(aligned + size, tail)) {
        int e = errno;
        os::munmap(reinterpret_cast<void *>(aligned), span - (aligned - start));
        errno = e;
        return nullptr;
    }
    return reinterpret_cast<uint8_t *>(aligned);
}

// Streams /proc/self/maps and keeps the best aligned start inside a gap.
struct GapSearch {
    const Placement &where;
    size_t size;
    uintptr_t best = 0;
    bool found = false;

    void gap(uintptr_t start, uintptr_t end) {
        uintptr_t lo = align_up(start > where.lo ? start : where.lo);
        uintptr_t top = end < where.hi ? end : where.hi;
        if (top < size || lo > top - size)
            return;
        uintptr_t hi = align_down(top - size);
        if (lo > hi)
            return;
        uintptr_t want = where.near > size / 2 ? align_down(where.near - size / 2) : 0;
        uintptr_t a = want < lo ? lo : want > hi ? hi : want;
        if (!found || distance(a + size / 2, where.near) < distance(best + size / 2, where.near)) {
            best = a;
            found = true;
        }
    }
};

// Returns false if /proc/self/maps could not be read (errno set).
bool scan_maps(GapSearch &s) {
    int fd = os::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[8192];
    size_t have = 0;
    uintptr_t prev_end = kUserBottom;
    bool ok = true;
    for (;;) {
        ssize_t n = os::read(fd, buf + have, sizeof buf - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ok = false;
            break;
        }
        have += static_cast<size_t>(n);
        size_t line_start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\n')
                continue;
            buf[i] = 0;
            char *end = nullptr;
            uintptr_t a = std::strtoull(buf + line_start, &end, 16);
            uintptr_t b = (end && *end == '-') ? std::strtoull(end + 1, nullptr, 16) : a;
            if (a > prev_end)
                s.gap(prev_end, a);
            if (b > prev_end)
                prev_end = b;
            line_start = i + 1;
        }
        std::memmove(buf, buf + line_start, have - line_start);
        have -= line_start;
        if (n == 0)
            break;
        if (have == sizeof buf) {  // a line longer than the buffer: skip it
            have = 0;
        }
    }
    int e = errno;
    os::close(fd);
    if (!ok) {
        errno = e;
        return false;
    }
    if (prev_end < kUserTop)
        s.gap(prev_end, kUserTop);
    return true;
}

std::atomic<uintptr_t> g_last_placed{0};  // base of the last range placed in a window

// Claims [at, at+size) if it lies in the window and nothing is mapped there. nullptr with
// errno EEXIST if it is outside the window or taken, another errno if mmap failed.
uint8_t *claim(const Placement &where, uintptr_t at, size_t size) {
    errno = EEXIST;
    if (at < kUserBottom || at < where.lo || at > where.hi || where.hi - at < size)
        return nullptr;
    void *want = reinterpret_cast<void *>(at);
    void *p = os::mmap(want, size, PROT_NONE, kReserveFlags | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == want)
        return static_cast<uint8_t *>(p);
    if (p != MAP_FAILED) {  // a kernel without MAP_FIXED_NOREPLACE took it as a hint
        os::munmap(p, size);
        errno = EEXIST;
    }
    return nullptr;
}

// The likely free ranges (see the top of the file), without reading /proc/self/maps.
// nullptr with errno EEXIST if all are taken.
uint8_t *claim_likely(const Placement &where, size_t size) {
    uintptr_t last = g_last_placed.load(std::memory_order_relaxed);
    if (last) {
        if (uint8_t *p = claim(where, last, size); p || errno != EEXIST)
            return p;
        // Ranges start 2 MiB aligned whatever their size (a data mapping smaller than a
        // chunk too: below a chunk by its size alone would not even be page aligned on a
        // 16 KiB-page kernel).
        if (last > size)
            if (uint8_t *p = claim(where, align_down(last - size), size); p || errno != EEXIST)
                return p;
    }
    Dl_info info;
    if (dladdr(reinterpret_cast<const void *>(where.near), &info) && info.dli_fbase) {
        uintptr_t below = align_down(reinterpret_cast<uintptr_t>(info.dli_fbase));
        if (below > size)
            return claim(where, align_down(below - size), size);
    }
    errno = EEXIST;
    return nullptr;
}

uint8_t *placed(uint8_t *p) {
    if (p)
        g_last_placed.store(reinterpret_cast<uintptr_t>(p), std::memory_order_relaxed);
    return p;
}

}  // namespace

uint8_t *reserve_range(const Placement &where, size_t size) {
    if (where.anywhere)
        return reserve_anywhere(size);
    if (uint8_t *p = claim_likely(where, size))
        return placed(p);
    if (errno != EEXIST)
        return nullptr;
    // Another thread may map into the gap between our scan and our claim: rescan.
    for (int attempt = 0; attempt < 8; attempt++) {
        GapSearch s{where, size};
        if (!scan_maps(s))
            return nullptr;
        if (!s.found) {
            errno = ENOMEM;
            return nullptr;
        }
        if (uint8_t *p = claim(where, s.best, size))
            return placed(p);
        if (errno != EEXIST)
            return nullptr;
    }
    errno = ENOMEM;
    return nullptr;
}

uint8_t *map_in_window(const Placement &where, size_t size, int prot) {
    uint8_t *p = reserve_range(where, size);
    if (!p || prot == PROT_NONE)
        return p;
    if (os::mprotect(p, size, prot) != 0) {
        int e = errno;
        os::munmap(p, size);
        errno = e;
        return nullptr;
    }
    return p;
}

}  // namespace jitalloc
