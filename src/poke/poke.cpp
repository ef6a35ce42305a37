// poke(): the checked, all-or-nothing write every code change goes through, and the
// pieces the writer strategies share (trap source, pwritev loop, chunk mapping).
// Sources have memmove semantics: one that lies in code memory (overlapping the
// destination or not) is copied before the write, whatever the writer.
#include "poke/writer.h"

#include "arch/arch.h"
#include "chunk/chunk.h"
#include "os/os.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace jitalloc {

namespace poke_detail {

static_assert(kTrapPage % arch::kTrapInsnSize == 0);

const uint8_t *trap_page() {
    alignas(kTrapPage) static const auto page = [] {
        struct Page {
            uint8_t bytes[kTrapPage];
        } p;
        for (size_t i = 0; i < kTrapPage; i++)
            p.bytes[i] = arch::trap_byte_at(i);
        return p;
    }();
    return page.bytes;
}

// Calls piece(at, from, n) for consecutive pieces of a repeating source laid over
// [pos, pos+len): each piece is the source bytes from `from` for destination position
// `at`, never crossing the end of the period.
template <class Piece>
static void for_each_period_piece(Writer::Source src, uintptr_t pos, size_t len, Piece &&piece) {
    for (size_t done = 0; done < len;) {
        size_t phase = (pos + done) % src.period;
        size_t n = std::min(src.period - phase, len - done);
        if (!piece(done, src.data + phase, n))
            return;
        done += n;
    }
}

void copy_source(uint8_t *dst, Writer::Source src, size_t len) {
    if (!src.period) {
        std::memcpy(dst, src.data, len);
        return;
    }
    for_each_period_piece(src, reinterpret_cast<uintptr_t>(dst), len,
                          [&](size_t at, const uint8_t *from, size_t n) {
                              std::memcpy(dst + at, from, n);
                              return true;
                          });
}

int pwrite_all(int fd, Writer::Source src, size_t len, uint64_t off) {
    constexpr int kMaxIov = 256;
    struct iovec iov[kMaxIov];
    size_t done = 0;
    while (done < len) {
        int cnt = 0;
        size_t batch = 0;
        if (!src.period) {
            iov[cnt++] = {const_cast<uint8_t *>(src.data) + done, len - done};
            batch = len - done;
        } else {
            // The file offset has the destination address's phase (see Source).
            for_each_period_piece(src, off + done, len - done,
                                  [&](size_t, const uint8_t *from, size_t n) {
                                      iov[cnt++] = {const_cast<uint8_t *>(from), n};
                                      batch += n;
                                      return cnt < kMaxIov;
                                  });
        }
        ssize_t w = os::pwritev(fd, iov, cnt, static_cast<off_t>(off + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        done += static_cast<size_t>(w);
    }
    return 0;
}

int map_anon_chunk(ChunkMapping &m, uint8_t *at, size_t size, bool huge) {
    void *p = os::mmap(at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                       -1, 0);
    if (p == MAP_FAILED)
        return errno;
    // Huge pages are a wish, not a requirement: a refused madvise leaves 4 KiB pages.
    if (huge)
        (void)os::madvise(at, size, MADV_HUGEPAGE);
    copy_source(at, trap_source(), size);
    // The chunk was writable but never executable; from here on it is never writable.
    if (os::mprotect(at, size, PROT_READ | PROT_EXEC) != 0)
        return errno;
    m.base = at;
    m.size = size;
    return 0;
}

static int new_memfd() {
    // MFD_EXEC: with vm.memfd_noexec=1 a memfd is otherwise created non-executable.
    int fd = os::memfd_create("jitalloc", MFD_CLOEXEC | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)  // kernels before 6.3 reject MFD_EXEC
        fd = os::memfd_create("jitalloc", MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int map_memfd_chunk(ChunkMapping &m, uint8_t *at, size_t size, bool huge) {
    int fd = new_memfd();
    if (fd < 0)
        return -fd;
    int rc = 0;
    if (os::ftruncate(fd, static_cast<off_t>(size)) != 0)
        rc = errno;
    if (!rc)
        rc = pwrite_all(fd, trap_source(), size, 0);
    // MAP_POPULATE: one pass over the page cache now instead of a fault per page later.
    if (!rc && os::mmap(at, size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
                        0) == MAP_FAILED)
        rc = errno;
    if (rc) {
        os::close(fd);
        return rc;
    }
    if (huge)
        (void)os::madvise(at, size, MADV_HUGEPAGE);
    m.base = at;
    m.size = size;
    m.fd = fd;
    return 0;
}

int unmap_memfd_chunk(ChunkMapping &m) {
    // The code view first: if that fails nothing has changed and the chunk stays usable.
    if (os::munmap(m.base, m.size) != 0)
        return errno;
    // The chunk is gone now; its writable alias must go too, or at least lose write
    // permission if the kernel refuses twice.
    if (m.rw_alias && os::munmap(m.rw_alias, m.size) != 0 && os::munmap(m.rw_alias, m.size) != 0)
        (void)os::mprotect(m.rw_alias, m.size, PROT_NONE);
    if (m.fd >= 0)
        os::close(m.fd);
    m = ChunkMapping{};
    return 0;
}

int memfd_fork_prepare(ChunkMapping &m) {
    if (m.poisoned)
        return 0;
    int fd = new_memfd();
    if (fd < 0)
        return -fd;
    int rc = 0;
    if (os::ftruncate(fd, static_cast<off_t>(m.size)) != 0)
        rc = errno;
    if (!rc)
        rc = pwrite_all(fd, {m.base, 0}, m.size, 0);
    if (rc) {
        os::close(fd);
        return rc;
    }
    m.fork_fd = fd;
    return 0;
}

int memfd_fork_child(ChunkMapping &m) {
    if (m.fork_fd < 0) {
        // No private copy could be made: never write into memory shared with the
        // parent. Drop the shared writable alias, refuse writes.
        if (m.rw_alias && os::munmap(m.rw_alias, m.size) == 0)
            m.rw_alias = nullptr;
        m.poisoned = true;
        return EIO;
    }
    int rc = 0;
    if (os::mmap(m.base, m.size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, m.fork_fd, 0) ==
        MAP_FAILED)
        rc = errno;
    if (!rc && m.rw_alias &&
        os::mmap(m.rw_alias, m.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m.fork_fd, 0) ==
            MAP_FAILED)
        rc = errno;
    if (rc) {
        m.poisoned = true;
        os::close(m.fork_fd);
        m.fork_fd = -1;
        return rc;
    }
    os::close(m.fd);
    m.fd = m.fork_fd;
    m.fork_fd = -1;
    return 0;
}

void memfd_fork_parent(ChunkMapping &m) {
    if (m.fork_fd >= 0)
        os::close(m.fork_fd);
    m.fork_fd = -1;
}

}  // namespace poke_detail

// ---- /proc/self/mem descriptor ----

namespace {
std::mutex g_proc_mem_lock;  // guards g_proc_mem_fd changes
int g_proc_mem_fd = -1;
}  // namespace

int proc_mem_fd() {
    int fd = __atomic_load_n(&g_proc_mem_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0)
        return fd;
    std::lock_guard<std::mutex> g(g_proc_mem_lock);
    if (g_proc_mem_fd < 0) {
        fd = os::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return -1;
        __atomic_store_n(&g_proc_mem_fd, fd, __ATOMIC_RELEASE);
    }
    return g_proc_mem_fd;
}

void proc_mem_after_fork_child() {
    // The inherited descriptor still addresses the parent's memory: writing through it
    // would patch the parent. Drop it; the child opens its own on first use.
    if (g_proc_mem_fd >= 0)
        os::close(g_proc_mem_fd);
    g_proc_mem_fd = -1;
    new (&g_proc_mem_lock) std::mutex();
}

// ---- poke ----

namespace {

bool matches(const uint8_t *dst, Writer::Source src, size_t len) {
    if (!src.period)
        return std::memcmp(dst, src.data, len) == 0;
    bool same = true;
    poke_detail::for_each_period_piece(src, reinterpret_cast<uintptr_t>(dst), len,
                                       [&](size_t at, const uint8_t *from, size_t n) {
                                           same = std::memcmp(dst + at, from, n) == 0;
                                           return same;
                                       });
    return same;
}

// A copy of some bytes: on the stack for most objects (no heap allocation on the write
// path), else on the heap.
class Copy {
public:
    // The copy of [from, from+len), or nullptr if the heap has no room.
    const uint8_t *of(const uint8_t *from, size_t len) {
        uint8_t *to = small_;
        if (len > sizeof small_) {
            big_.reset(new (std::nothrow) uint8_t[len]);
            if (!big_)
                return nullptr;
            to = big_.get();
        }
        std::memcpy(to, from, len);
        return to;
    }

private:
    uint8_t small_[4096];
    std::unique_ptr<uint8_t[]> big_;
};

bool overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    return b && a < b + blen && b < a + alen;
}

// Code memory can change under a source that lies in it: the write itself changes it
// when the ranges overlap (directly, or through this chunk's writable alias), and a
// writer reading it through another view of the same memory does not copy like memmove.
bool source_in_code(const ChunkMapping &m, const uint8_t *src, size_t len) {
    if (overlaps(src, len, m.base, m.size) || overlaps(src, len, m.rw_alias, m.size))
        return true;
    auto first = reinterpret_cast<uintptr_t>(src) & ~(kChunkSize - 1);
    for (uintptr_t slot = first; slot < reinterpret_cast<uintptr_t>(src) + len; slot += kChunkSize)
        if (chunk_lookup(reinterpret_cast<const void *>(slot)))
            return true;
    return false;
}

// undo: what dst holds now when the caller knows it (a fresh allocation holds traps);
// then no copy of the old bytes is made. Nor is one when the writer cannot stop
// part-way (persistent alias: a plain memcpy).
int poke_source(const Writer &w, const ChunkMapping &m, uint8_t *dst, Writer::Source src,
                size_t len, const Writer::Source *undo = nullptr) {
    if (m.poisoned)
        return EIO;
    if (dst < m.base || len > m.size || dst + len > m.base + m.size)
        return EINVAL;
    // memmove semantics: a source in code memory is read whole before anything is
    // written, and the write is checked (and undone) against that copy.
    Copy staged;
    if (!src.period && source_in_code(m, src.data, len) && !(src.data = staged.of(src.data, len)))
        return ENOMEM;
    // A write that changes nothing costs a system call on most writers: skip it (e.g. the
    // trap fill of a reservation never written). A memcpy is cheaper than the check.
    if (!w.infallible() && matches(dst, src, len))
        return 0;
    // Keep the old bytes so a failed write can be undone.
    Copy kept;
    Writer::Source old{nullptr, 0};
    if (undo)
        old = *undo;
    else if (!w.infallible() && !(old.data = kept.of(dst, len)))
        return ENOMEM;
    int rc = w.write(m, dst, src, len);
    // Read back what went through the kernel or a flip; a memcpy into a shared alias of
    // the same memfd lands by construction.
    if (!rc && !w.infallible() && !matches(dst, src, len))
        rc = EIO;
    if (rc) {
        if ((undo || !w.infallible()) && !matches(dst, old, len))
            (void)w.write(m, dst, old, len);
        return rc;
    }
    if (!w.kernel_syncs_icache())
        arch::sync_icache(dst, len);
    return 0;
}

}  // namespace

bool holds_only_traps(const uint8_t *p, size_t len) {
    return matches(p, poke_detail::trap_source(), len);
}

int poke(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len) {
    return poke_source(w, m, dst, {static_cast<const uint8_t *>(src), 0}, len);
}

int poke_fresh(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len) {
    const Writer::Source traps = poke_detail::trap_source();
    return poke_source(w, m, dst, {static_cast<const uint8_t *>(src), 0}, len, &traps);
}

int poke_traps(const Writer &w, const ChunkMapping &m, uint8_t *dst, size_t len) {
    return poke_source(w, m, dst, poke_detail::trap_source(), len);
}

int probe_writer(const Writer &w) {
    const size_t kSize = os::page_size();
    void *at = os::mmap(nullptr, kSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    if (at == MAP_FAILED)
        return errno;
    ChunkMapping m;
    int rc = w.map(m, static_cast<uint8_t *>(at), kSize, false);
    if (rc) {
        os::munmap(at, kSize);
        return rc;
    }
    static const uint8_t pattern[16] = {0x55, 0x48, 0x89, 0xe5, 0x31, 0xc0, 0x5d, 0xc3,
                                        0x0f, 0x1f, 0x44, 0x00, 0x00, 0x90, 0x90, 0xc3};
    rc = poke(w, m, m.base + 64, pattern, sizeof pattern);
    if (!rc && !holds_only_traps(m.base, 64))
        rc = EIO;
    if (w.unmap(m) != 0 && w.unmap(m) != 0) {
        // Unmap what is left piece by piece: no alias or descriptor may outlive the probe.
        if (m.rw_alias)
            os::munmap(m.rw_alias, m.size);
        os::munmap(at, kSize);
        if (m.fd >= 0)
            os::close(m.fd);
    }
    return rc;
}

}  // namespace jitalloc
