// poke(): the checked, all-or-nothing write every code change goes through, and the
// pieces the writer strategies share (trap source, pwritev loop, chunk mapping).
// Sources have memmove semantics: one that lies in code memory (overlapping the
// destination or not) is copied before the write, whatever the writer.
#include "poke/writer.h"
#include "poke/write_gate.h"
#include "process/locks.h"

#include "arch/arch.h"
#include "chunk/chunk.h"
#include "os/os.h"
#include "process/identity.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
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

namespace {
// Constant-initialised: no guard variable, so no lock a thread could hold across fork().
struct alignas(kTrapPage) TrapPageBytes {
    uint8_t bytes[kTrapPage];
};
constexpr TrapPageBytes make_trap_page() {
    TrapPageBytes p{};
    for (size_t i = 0; i < kTrapPage; i++)
        p.bytes[i] = arch::trap_byte_at(i);
    return p;
}
constexpr TrapPageBytes kTrapPageBytes = make_trap_page();
}  // namespace

const uint8_t *trap_page() { return kTrapPageBytes.bytes; }

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

void copy_source(uint8_t *dst, Writer::Source src, size_t len, uintptr_t pos) {
    if (!src.period) {
        std::memcpy(dst, src.data, len);
        return;
    }
    for_each_period_piece(src, pos, len, [&](size_t at, const uint8_t *from, size_t n) {
        std::memcpy(dst + at, from, n);
        return true;
    });
}

void copy_pieces(uint8_t *dst, const Writer::Piece *pieces, size_t n, uintptr_t pos) {
    for (size_t i = 0; i < n; i++) {
        copy_source(dst, pieces[i].src, pieces[i].len, pos);
        dst += pieces[i].len;
        pos += pieces[i].len;
    }
}

size_t pieces_len(const Writer::Piece *pieces, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += pieces[i].len;
    return len;
}

// One pwritev, retried when a signal interrupts it: the bytes written, or -1 (errno).
static ssize_t pwritev_once(int fd, const struct iovec *iov, int cnt, uint64_t off) {
    ssize_t w;
    do
        w = os::pwritev(fd, iov, cnt, static_cast<off_t>(off));
    while (w < 0 && errno == EINTR);
    return w;
}

// One plain piece (an update, most new code): no vector to lay out.
static int pwrite_plain(int fd, const uint8_t *data, size_t len, uint64_t off) {
    for (size_t done = 0; done < len;) {
        const struct iovec one = {const_cast<uint8_t *>(data + done), len - done};
        ssize_t w = pwritev_once(fd, &one, 1, off + done);
        if (w <= 0)
            return w < 0 ? errno : EIO;
        done += static_cast<size_t>(w);
    }
    return 0;
}

int pwrite_pieces(int fd, const Writer::Piece *pieces, size_t n, uint64_t off) {
    if (n == 1 && !pieces[0].src.period)
        return pwrite_plain(fd, pieces[0].src.data, pieces[0].len, off);
    // 64 entries (1 KiB of stack) gather a 256 KiB trap fill per system call. Deeper
    // frames cost page faults: a fresh thread's stack grows a page at a time.
    constexpr int kMaxIov = 64;
    struct iovec iov[kMaxIov];
    size_t piece = 0, in_piece = 0;  // where the next byte to write comes from
    uint64_t done = 0;
    for (;;) {
        while (piece < n && in_piece == pieces[piece].len) {
            piece++;
            in_piece = 0;
        }
        if (piece == n)
            return 0;
        int cnt = 0;
        // Fill the vector from the cursor on. A repeating source is laid out by
        // destination: its phase at file offset o is o % period (see Source).
        uint64_t at_off = off + done;
        for (size_t i = piece, at = in_piece; i < n && cnt < kMaxIov; i++, at = 0) {
            const Writer::Piece &p = pieces[i];
            while (at < p.len && cnt < kMaxIov) {
                size_t phase = p.src.period ? at_off % p.src.period : 0;
                size_t k = p.src.period ? std::min(p.src.period - phase, p.len - at) : p.len - at;
                const uint8_t *from = p.src.period ? p.src.data + phase : p.src.data + at;
                iov[cnt++] = {const_cast<uint8_t *>(from), k};
                at += k;
                at_off += k;
            }
        }
        ssize_t w = pwritev_once(fd, iov, cnt, off + done);
        if (w <= 0)
            return w < 0 ? errno : EIO;
        done += static_cast<uint64_t>(w);
        for (auto left = static_cast<size_t>(w); left;) {
            size_t k = std::min(left, pieces[piece].len - in_piece);
            in_piece += k;
            left -= k;
            if (in_piece == pieces[piece].len && left) {
                piece++;
                in_piece = 0;
            }
        }
    }
}

int write_through_alias(int fd, const Writer::Piece *pieces, size_t n, uint64_t off) {
    // mmap offsets are whole OS pages: map those covering the write.
    os::PageSpan pages = os::page_span(static_cast<uintptr_t>(off), pieces_len(pieces, n),
                                       os::page_size());
    uint64_t first = pages.start;
    size_t span = pages.len;
    // MAP_POPULATE: the pages are written at once, so they are faulted in by this call
    // instead of one user page fault each (the trap fill of a growth step is many pages).
    void *rw = os::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                        static_cast<off_t>(first));
    if (rw == MAP_FAILED)
        return errno;
    // The alias is page-aligned, so its addresses have the phase of the file offsets.
    copy_pieces(static_cast<uint8_t *>(rw) + (off - first), pieces, n);
    // The writable alias must not outlive the write: retry, and if the kernel still
    // refuses, take its write permission away.
    for (int tries = 0; os::munmap(rw, span) != 0; ++tries) {
        if (tries == 2) {
            int e = errno;
            (void)os::mprotect(rw, span, PROT_NONE);
            return e;
        }
    }
    return 0;
}

namespace {

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

// Once the whole chunk is exposed: huge-page advice, then a synchronous collapse of its
// 4 KiB pages into a huge page. Both are wishes: a kernel without MADV_COLLAPSE (before
// 6.1), or one that finds no free huge page, leaves 4 KiB pages (khugepaged may still
// collapse them later, the advice stays).
void collapse_if_whole(const ChunkMapping &m) {
    if (!m.huge || m.exposed != m.size)
        return;
    (void)os::madvise(m.base, m.size, MADV_HUGEPAGE);
    (void)os::madvise(m.base, m.size, MADV_COLLAPSE);
}

// What a new part of len bytes holds: the first object's code at its start (if any, and
// if it fits), traps behind it. The pieces in out, their number returned.
size_t new_part_pieces(Writer::Piece (&out)[2], size_t len, const Writer::Piece *first) {
    if (!first || first->len == 0 || first->len > len || first->src.period) {
        out[0] = {trap_source(), len};
        return 1;
    }
    out[0] = *first;
    out[1] = {trap_source(), len - first->len};
    return out[1].len ? 2 : 1;
}

// The first object's code went in through a data path (a copy, or a kernel write into a
// memfd's page cache): instruction fetch must see it (arch.h; nothing on x86-64).
void sync_first(const uint8_t *at, const Writer::Piece *first, size_t len) {
    if (first && first->len && first->len <= len && !first->src.period)
        arch::sync_icache(const_cast<uint8_t *>(at), first->len);
}

}  // namespace

int map_anon_chunk(const Writer &w, ChunkMapping &m, uint8_t *at, size_t size, size_t exposed,
                   bool huge, const Writer::Piece *first) {
    if (exposed == size) {
        // All at once: one fresh RW mapping, so the first touch can fault a huge page in.
        void *p = os::mmap(at, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED)
            return errno;
        // Huge pages are a wish, not a requirement: a refused madvise leaves 4 KiB pages.
        if (huge)
            (void)os::madvise(at, size, MADV_HUGEPAGE);
        Writer::Piece part[2];
        copy_pieces(at, part, new_part_pieces(part, size, first));
        // The chunk was writable but never executable; from here on it is never writable.
        if (os::mprotect(at, size, PROT_READ | PROT_EXEC) != 0)
            return errno;
        sync_first(at, first, size);
        m.base = at;
        m.size = m.exposed = size;
        m.huge = huge;
        return 0;
    }
    // In steps: the reservation itself becomes the chunk. No huge page may be faulted in
    // before the chunk is whole (THP "always" would zero 2 MiB on the first touch, and
    // the first mprotect would split it again). Advice again: refused, it costs time only.
    // An arena that never wants huge pages gives no advice at all.
    if (huge)
        (void)os::madvise(at, size, MADV_NOHUGEPAGE);
    m.base = at;
    m.size = size;
    m.exposed = 0;
    m.huge = huge;
    return expose_anon_chunk(w, m, exposed, first);
}

int expose_anon_chunk(const Writer &w, ChunkMapping &m, size_t upto, const Writer::Piece *first) {
    if (upto <= m.exposed)
        return 0;
    uint8_t *dst = m.base + m.exposed;
    size_t len = upto - m.exposed;
    // Filled while still not executable, then turned RX: the new part merges with the
    // exposed one into one read+execute mapping. A failure leaves it PROT_NONE. The first
    // object's code, if any, goes in with the fill (one kernel write for proc_mem).
    Writer::Piece part[2];
    if (int rc = w.write(m, dst, part, new_part_pieces(part, len, first)))
        return rc;
    if (os::mprotect(dst, len, PROT_READ | PROT_EXEC) != 0)
        return errno;
    if (!w.kernel_syncs_icache())
        sync_first(dst, first, len);
    __atomic_store_n(&m.exposed, upto, __ATOMIC_RELEASE);  // read unlocked by poke_pieces
    collapse_if_whole(m);
    return 0;
}

// A new memfd of the library, at a high number, identified (process/descriptors.h).
static int new_memfd(FileId &id) {
    // MFD_EXEC: with vm.memfd_noexec=1 a memfd is otherwise created non-executable.
    int fd = os::memfd_create("jitalloc", MFD_CLOEXEC | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)  // kernels before 6.3 reject MFD_EXEC
        fd = os::memfd_create("jitalloc", MFD_CLOEXEC);
    if (fd >= 0)
        fd = keep_fd(fd, id);
    return fd < 0 ? -errno : fd;
}

void close_memfd(int &fd, const FileId &id) {
    if (fd >= 0)
        close_if_ours(fd, id);
    fd = -1;
}

int map_memfd_chunk(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
                    FileWrite fill, bool fill_in_view, const Writer::Piece *first) {
    FileId id;
    int fd = new_memfd(id);
    if (fd < 0)
        return -fd;
    ChunkMapping n;
    n.base = at;
    n.size = size;
    n.fd = fd;
    n.fd_id = id;
    n.generation = process_generation();
    n.huge = huge;
    // The file has the chunk's whole size from the start (a hole where nothing is exposed
    // yet), so every step maps the next part at its own offset.
    int rc = os::ftruncate(fd, static_cast<off_t>(size)) != 0 ? errno : 0;
    if (!rc)
        rc = expose_memfd_chunk(n, exposed, fill, fill_in_view, first);
    if (rc) {
        os::close(fd);
        return rc;
    }
    m = n;
    return 0;
}

namespace {

// The new part [off, off+len) of a memfd chunk's view, mapped read-write (never
// executable yet), trap-filled (the first object's code, if any, copied in with the
// traps), then turned read+execute: two system calls where an alias (map, copy, unmap)
// and then the view took three, and no unmap of a populated alias (a TLB flush). A
// failure leaves the part inaccessible again, never writable, code and all gone.
int fill_in_new_view(ChunkMapping &m, size_t off, size_t len, const Writer::Piece *first) {
    uint8_t *at = m.base + off;
    if (os::mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, m.fd,
                 static_cast<off_t>(off)) == MAP_FAILED)
        return errno;
    Writer::Piece part[2];
    copy_pieces(at, part, new_part_pieces(part, len, first));  // the view has the file's phase
    if (os::mprotect(at, len, PROT_READ | PROT_EXEC) == 0)
        return 0;
    int rc = errno;
    if (os::mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
                 0) == MAP_FAILED &&
        os::mprotect(at, len, PROT_NONE) != 0)
        (void)os::munmap(at, len);  // not writable in any case
    return rc;
}

}  // namespace

int expose_memfd_chunk(ChunkMapping &m, size_t upto, FileWrite fill, bool fill_in_view,
                       const Writer::Piece *first) {
    if (upto <= m.exposed)
        return 0;
    size_t off = m.exposed, len = upto - m.exposed;
    int rc = 0;
    if (fill_in_view) {
        rc = fill_in_new_view(m, off, len, first);
    } else {
        Writer::Piece part[2];
        rc = fill(m.fd, part, new_part_pieces(part, len, first), off);
        // MAP_POPULATE: one pass over the page cache now instead of a fault per page later.
        if (!rc && os::mmap(m.base + off, len, PROT_READ | PROT_EXEC,
                            MAP_SHARED | MAP_FIXED | MAP_POPULATE, m.fd, static_cast<off_t>(off)) ==
                       MAP_FAILED)
            rc = errno;
    }
    if (rc)
        return rc;
    sync_first(m.base + off, first, len);
    __atomic_store_n(&m.exposed, upto, __ATOMIC_RELEASE);  // read unlocked by poke_pieces
    collapse_if_whole(m);
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
    close_memfd(m.fd, m.fd_id);
    m = ChunkMapping{};
    return 0;
}

namespace {

// A new memfd holding the chunk's bytes, for a fork() child. 0 or an errno.
int copy_into_new_memfd(ChunkMapping &m, FileWrite fill) {
    FileId id;
    int fd = new_memfd(id);
    if (fd < 0)
        return -fd;
    int rc = 0;
    if (os::ftruncate(fd, static_cast<off_t>(m.size)) != 0)
        rc = errno;
    if (!rc) {
        // Only the exposed part holds bytes; the rest is a hole in both files.
        const Writer::Piece bytes{{m.base, 0}, m.exposed};
        rc = fill(fd, &bytes, 1, 0);
    }
    if (rc) {
        os::close(fd);
        return rc;
    }
    m.fork_fd = fd;
    m.fork_fd_id = id;
    return 0;
}

}  // namespace

int memfd_fork_prepare(ChunkMapping &m, FileWrite fill) {
    if (m.poisoned)
        return 0;
    int rc = copy_into_new_memfd(m, fill);
    if (rc) {
        // No memfd for the child: a private anonymous snapshot of the bytes instead,
        // taken now, while no write is in flight (the child inherits it copy-on-write;
        // it could not take one itself: the parent may write before the child's handler
        // runs). Without memory even for that, the child gets no view (memfd_fork_child).
        void *snap = os::mmap(nullptr, m.exposed, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (snap != MAP_FAILED) {
            std::memcpy(snap, m.base, m.exposed);
            m.fork_snapshot = static_cast<uint8_t *>(snap);
        }
    }
    return rc;
}

namespace {

void drop_snapshot(ChunkMapping &m) {
    if (m.fork_snapshot && os::munmap(m.fork_snapshot, m.exposed) != 0)
        (void)os::munmap(m.fork_snapshot, m.exposed);
    m.fork_snapshot = nullptr;
}

// Takes write permission away from a mapping for good: unmapped, or failing that
// inaccessible. The persistent alias of a chunk whose memfd is shared with the parent.
void drop_alias(uint8_t *&alias, size_t size) {
    if (!alias)
        return;
    if (os::munmap(alias, size) != 0 && os::munmap(alias, size) != 0)
        (void)os::mprotect(alias, size, PROT_NONE);
    alias = nullptr;
}

// The child has no private memfd: its view of the chunk is still the parent's memfd.
// Replace it by the private snapshot the parent took (ROX), or, without one, by an
// inaccessible reservation: never a view the parent can write. Writes fail from now on.
void keep_private_snapshot(ChunkMapping &m) {
    drop_alias(m.rw_alias, m.size);
    bool copied = false;
    if (m.fork_snapshot) {
        copied = os::mmap(m.base, m.exposed, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
        if (copied) {
            std::memcpy(m.base, m.fork_snapshot, m.exposed);
            copied = os::mprotect(m.base, m.exposed, PROT_READ | PROT_EXEC) == 0;
        }
    }
    if (!copied &&
        os::mmap(m.base, m.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                 -1, 0) == MAP_FAILED &&
        os::mprotect(m.base, m.size, PROT_NONE) != 0)
        (void)os::munmap(m.base, m.size);  // the range is then free; the chunk keeps its size
    drop_snapshot(m);
    // The descriptor addresses the parent's memfd: no write may go through it.
    close_memfd(m.fd, m.fd_id);
    m.poisoned = true;
}

// Switches the chunk to the private memfd prepared by the parent. 0 or an errno;
// view_private tells whether the code view is the child's own afterwards (if not, the
// caller snapshots it).
int adopt_private_copy(ChunkMapping &m, bool &view_private) {
    int rc = 0;
    view_private = false;
    if (os::mmap(m.base, m.exposed, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, m.fork_fd, 0) ==
        MAP_FAILED) {
        rc = errno;
        close_memfd(m.fork_fd, m.fork_fd_id);
        return rc;
    }
    // The code view is the child's own now; the parent's memfd goes.
    view_private = true;
    close_memfd(m.fd, m.fd_id);
    m.fd = m.fork_fd;
    m.fd_id = m.fork_fd_id;
    m.fork_fd = -1;
    m.generation = process_generation();
    if (m.rw_alias &&
        os::mmap(m.rw_alias, m.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m.fd, 0) ==
            MAP_FAILED) {
        rc = errno;
        drop_alias(m.rw_alias, m.size);  // still the parent's memory
        m.poisoned = true;               // the persistent alias writer writes through it
    }
    return rc;
}

}  // namespace

int memfd_fork_child(ChunkMapping &m) {
    if (m.poisoned)
        return EIO;  // already a private snapshot (an earlier generation's failed copy)
    if (m.fork_fd >= 0) {
        bool view_private;
        int rc = adopt_private_copy(m, view_private);
        if (view_private)
            return rc;
    }
    keep_private_snapshot(m);
    return EIO;
}

void memfd_fork_parent(ChunkMapping &m) {
    close_memfd(m.fork_fd, m.fork_fd_id);
    drop_snapshot(m);
}

}  // namespace poke_detail

// ---- /proc/self/mem descriptor ----

namespace {
constinit std::mutex &g_proc_mem_lock = process_lock(ProcessLock::proc_mem);  // changes of:
int g_proc_mem_fd = -1;  // read without the lock (atomic builtins)
FileId g_proc_mem_id;    // what g_proc_mem_fd is
}  // namespace

int proc_mem_fd() {
    int fd = __atomic_load_n(&g_proc_mem_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0)
        return fd;
    std::lock_guard<std::mutex> g(g_proc_mem_lock);
    if (g_proc_mem_fd < 0) {
        FileId id;
        fd = os::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        if (fd >= 0)
            fd = keep_fd(fd, id);
        if (fd < 0)
            return -1;
        g_proc_mem_id = id;
        __atomic_store_n(&g_proc_mem_fd, fd, __ATOMIC_RELEASE);
    }
    return g_proc_mem_fd;
}

bool proc_mem_lost(int fd) {
    std::lock_guard<std::mutex> g(g_proc_mem_lock);
    if (g_proc_mem_fd != fd)
        return true;  // another thread replaced it already
    if (still_ours(fd, g_proc_mem_id))
        return false;
    // Closed behind the library's back, perhaps re-used by the program: forget the
    // number without closing it.
    __atomic_store_n(&g_proc_mem_fd, -1, __ATOMIC_RELEASE);
    return true;
}

void proc_mem_forget_parent() {
    // No lock: in a _Fork() child it may be held by a thread the child does not have.
    // The process is new and has not written yet (process/identity.h), so nothing races.
    int fd = __atomic_exchange_n(&g_proc_mem_fd, -1, __ATOMIC_ACQ_REL);
    if (fd >= 0)
        close_if_ours(fd, g_proc_mem_id);
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
// path), else on the heap. 1 KiB: poke_pieces holds two, and every stack page a write
// reaches for the first time is a page fault (a fresh process's first jit_alloc).
class Copy {
public:
    // Room for len bytes, or nullptr if the heap has none.
    uint8_t *room(size_t len) {
        if (len <= sizeof small_)
            return small_;
        big_.reset(new (std::nothrow) uint8_t[len]);
        return big_.get();
    }
    // The copy of [from, from+len), or nullptr if the heap has no room.
    const uint8_t *of(const uint8_t *from, size_t len) {
        uint8_t *to = room(len);
        if (to)
            std::memcpy(to, from, len);
        return to;
    }

private:
    uint8_t small_[1024];
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

bool any_source_in_code(const ChunkMapping &m, const Writer::Piece *pieces, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!pieces[i].src.period && source_in_code(m, pieces[i].src.data, pieces[i].len))
            return true;
    return false;
}

bool matches(const uint8_t *dst, const Writer::Piece *pieces, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!matches(dst, pieces[i].src, pieces[i].len))
            return false;
        dst += pieces[i].len;
    }
    return true;
}

}  // namespace

int poke_pieces(const Writer &w, const ChunkMapping &m, uint8_t *dst, const Writer::Piece *pieces,
                size_t n, size_t len, Undo undo) {
    // A new process (no fork handler ran: _Fork, clone) is noticed here, before any write.
    uint64_t generation = process_generation();
    if (m.poisoned)
        return EIO;
    // A memfd of an older generation is shared with another process: writing it would
    // change that process's code too.
    if (m.fd >= 0 && m.generation != generation)
        return EIO;
    // Unlocked: another thread may be exposing the next step of this chunk (growth.h).
    // Its store follows the fill and the mapping, so what this load sees is mapped.
    const size_t exposed = __atomic_load_n(&m.exposed, __ATOMIC_ACQUIRE);
    if (dst < m.base || len > exposed || dst + len > m.base + exposed)
        return EINVAL;
    // memmove semantics: if any source lies in code memory, all pieces are gathered into
    // one copy before anything is written, and the write is checked against that copy.
    Copy staged;
    Writer::Piece gathered{{nullptr, 0}, len};
    if (any_source_in_code(m, pieces, n)) {
        uint8_t *to = staged.room(len);
        if (!to)
            return ENOMEM;
        poke_detail::copy_pieces(to, pieces, n, reinterpret_cast<uintptr_t>(dst));
        gathered.src.data = to;
        pieces = &gathered;
        n = 1;
    }
    // A write that changes nothing costs a system call on most writers: skip it (e.g. the
    // trap fill of a reservation never written). A memcpy is cheaper than the check.
    if (!w.infallible() && matches(dst, pieces, n))
        return 0;
    // What a failed write is undone with. No copy of the old bytes when the caller knows
    // them (traps), when they do not matter, or when the writer cannot stop part-way
    // (persistent alias: a plain memcpy).
    // From the copy of the old bytes to the undo: no patch rewrites these bytes with
    // values it read before (write_gate.h).
    WriteGateShare no_stale_rewrite(!w.infallible());
    Copy kept;
    Writer::Piece old{{nullptr, 0}, len};
    bool restore = undo == Undo::traps || (undo == Undo::copy_old && !w.infallible());
    if (undo == Undo::traps)
        old.src = poke_detail::trap_source();
    else if (restore && !(old.src.data = kept.of(dst, len)))
        return ENOMEM;
    int rc = w.write(m, dst, pieces, n);
    // Read back what went through the kernel or a flip; a memcpy into a shared alias of
    // the same memfd lands by construction.
    if (!rc && !w.infallible() && !matches(dst, pieces, n))
        rc = EIO;
    if (rc) {
        if (restore && !matches(dst, &old, 1))
            (void)w.write(m, dst, &old, 1);
        return rc;
    }
    if (!w.kernel_syncs_icache())
        arch::sync_icache(dst, len);
    return 0;
}

bool holds_only_traps(const uint8_t *p, size_t len) {
    return matches(p, poke_detail::trap_source(), len);
}

int poke(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len) {
    const Writer::Piece code{{static_cast<const uint8_t *>(src), 0}, len};
    return poke_pieces(w, m, dst, &code, 1, len, Undo::copy_old);
}

int poke_fresh(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len) {
    const Writer::Piece code{{static_cast<const uint8_t *>(src), 0}, len};
    return poke_pieces(w, m, dst, &code, 1, len, Undo::traps);
}

int poke_traps(const Writer &w, const ChunkMapping &m, uint8_t *dst, size_t len) {
    const Writer::Piece traps{poke_detail::trap_source(), len};
    return poke_pieces(w, m, dst, &traps, 1, len, Undo::copy_old);
}

int probe_writer(const Writer &w) { return w.probe(); }

int probe_proc_mem() {
    static std::atomic<uint8_t *> page{nullptr};
    static std::atomic<uint32_t> round{0};
    const size_t page_len = os::page_size();
    int fd = proc_mem_fd();
    if (fd < 0)
        return errno;
    uint8_t *p = page.load(std::memory_order_acquire);
    if (!p) {
        void *m = os::mmap(nullptr, page_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return errno;
        uint8_t *none = nullptr;
        if (!page.compare_exchange_strong(none, static_cast<uint8_t *>(m),
                                          std::memory_order_acq_rel))
            os::munmap(m, page_len);  // another thread's page won
        p = page.load(std::memory_order_acquire);
    }
    // Chunks of this writer are made read+execute with mprotect: a process that may not
    // call it cannot use proc_mem. Asking for the protection the page has costs no TLB
    // flush (the kernel sees nothing to change) but still goes through the filter.
    if (os::mprotect(p, page_len, PROT_READ) != 0)
        return errno;
    // A value no earlier probe wrote, so the read-back proves this write.
    uint8_t v[16] = {0x55, 0x48, 0x89, 0xe5, 0x31, 0xc0, 0x5d, 0xc3};
    uint32_t n = round.fetch_add(1, std::memory_order_relaxed) + 1;
    std::memcpy(v + 8, &n, sizeof n);
    uint8_t *dst = p + 64 * (n % 32);  // probes on other threads use other slots
    if (int rc = poke_detail::pwrite_all(fd, {v, 0}, sizeof v, reinterpret_cast<uintptr_t>(dst)))
        return rc;
    return std::memcmp(dst, v, sizeof v) == 0 ? 0 : EIO;
}

int Writer::probe() const {
    const Writer &w = *this;
    const size_t kSize = os::page_size();
    void *at = os::mmap(nullptr, kSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    if (at == MAP_FAILED)
        return errno;
    ChunkMapping m;
    int rc = w.map(m, static_cast<uint8_t *>(at), kSize, kSize, false, nullptr);
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
        poke_detail::close_memfd(m.fd, m.fd_id);
    }
    return rc;
}

}  // namespace jitalloc
