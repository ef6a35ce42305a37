// Linux implementation of the platform seam, with the fault-injection hook in front of
// every call. When no fault is set the hook costs one relaxed atomic load.
#include "os/os.h"

#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace jitalloc::os {

namespace {

struct FaultState {
    std::atomic<bool> armed{false};
    std::atomic<uint64_t> nth{0};
    std::atomic<uint64_t> seen{0};
    std::atomic<uint64_t> injected{0};
    std::atomic<uint64_t> bytes{0};  // asked of matching pwrite calls
    std::atomic<int> error{0};
    std::atomic<uint32_t> mask{0};
    std::atomic<bool> sticky{false};
    std::atomic<bool> short_io{false};
    std::atomic<void (*)(Call)> pause{nullptr};
};
FaultState g_fault;

enum class Inject { none, fail, short_io };

// Decides whether this call fails; sets errno when it does.
Inject inject(Call c) {
    if (!g_fault.armed.load(std::memory_order_relaxed))
        return Inject::none;
    if (!(g_fault.mask.load(std::memory_order_relaxed) & mask_of(c)))
        return Inject::none;
    uint64_t n = g_fault.seen.fetch_add(1, std::memory_order_relaxed) + 1;
    uint64_t nth = g_fault.nth.load(std::memory_order_relaxed);
    bool hit = nth != 0 && (n == nth || (n > nth && g_fault.sticky.load(std::memory_order_relaxed)));
    if (!hit)
        return Inject::none;
    if (auto pause = g_fault.pause.load(std::memory_order_relaxed)) {
        pause(c);
        return Inject::none;
    }
    g_fault.injected.fetch_add(1, std::memory_order_relaxed);
    if (g_fault.short_io.load(std::memory_order_relaxed) && (c == Call::pwrite || c == Call::read))
        return Inject::short_io;
    errno = g_fault.error.load(std::memory_order_relaxed);
    return Inject::fail;
}

}  // namespace

const char *call_name(Call c) {
    static const char *const names[] = {"mmap",  "munmap", "mprotect", "madvise",
                                        "memfd_create", "ftruncate", "open", "close",
                                        "read",  "pwrite", "membarrier", "mincore",
                                        "fstat", "fcntl", "sigaction", "read_memory"};
    unsigned i = static_cast<unsigned>(c);
    return i < static_cast<unsigned>(Call::count) ? names[i] : "?";
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (inject(Call::mmap) == Inject::fail)
        return MAP_FAILED;
    return ::mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) {
    if (inject(Call::munmap) == Inject::fail)
        return -1;
    return ::munmap(addr, len);
}

int mprotect(void *addr, size_t len, int prot) {
    if (inject(Call::mprotect) == Inject::fail)
        return -1;
    return ::mprotect(addr, len, prot);
}

int madvise(void *addr, size_t len, int advice) {
    if (inject(Call::madvise) == Inject::fail)
        return -1;
    return ::madvise(addr, len, advice);
}

int memfd_create(const char *name, unsigned flags) {
    if (inject(Call::memfd_create) == Inject::fail)
        return -1;
    return static_cast<int>(::syscall(SYS_memfd_create, name, flags));
}

int ftruncate(int fd, off_t len) {
    if (inject(Call::ftruncate) == Inject::fail)
        return -1;
    return ::ftruncate(fd, len);
}

int open(const char *path, int flags) {
    if (inject(Call::open) == Inject::fail)
        return -1;
    return ::open(path, flags);
}

int close(int fd) {
    // A close is never failed by injection: Linux releases the descriptor even when
    // close reports an error, so there is nothing to recover; counting it still lets
    // tests see it.
    (void)inject(Call::close);
    return ::close(fd);
}

ssize_t read(int fd, void *buf, size_t len) {
    Inject r = inject(Call::read);
    if (r == Inject::fail)
        return -1;
    if (r == Inject::short_io && len > 1)
        len /= 2;
    return ::read(fd, buf, len);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off) {
    Inject r = inject(Call::pwrite);
    if (g_fault.armed.load(std::memory_order_relaxed) &&
        (g_fault.mask.load(std::memory_order_relaxed) & mask_of(Call::pwrite)))
        for (int i = 0; i < iovcnt; i++)
            g_fault.bytes.fetch_add(iov[i].iov_len, std::memory_order_relaxed);
    if (r == Inject::fail)
        return -1;
    if (r == Inject::short_io) {
        // Write half of the first vector only.
        size_t half = iov[0].iov_len > 1 ? iov[0].iov_len / 2 : iov[0].iov_len;
        return ::pwrite(fd, iov[0].iov_base, half, off);
    }
    // One vector is a plain pwrite: the kernel then copies no iovec array in (about an
    // eighth of a 64-byte /proc/self/mem write, bench update/floor).
    if (iovcnt == 1)
        return ::pwrite(fd, iov[0].iov_base, iov[0].iov_len, off);
    return ::pwritev(fd, iov, iovcnt, off);
}

int membarrier(int cmd, unsigned flags) {
    if (inject(Call::membarrier) == Inject::fail)
        return -1;
    return static_cast<int>(::syscall(SYS_membarrier, cmd, flags, 0));
}

int mincore(void *addr, size_t len, unsigned char *vec) {
    if (inject(Call::mincore) == Inject::fail)
        return -1;
    return ::mincore(addr, len, vec);
}

size_t page_size() {
    // Cached in an atomic, not a function-local static: a static's guard is a lock, and a
    // child forked while another thread initialises it would wait for it forever.
    // Racing first callers compute the same value.
    static constinit std::atomic<size_t> cached{0};
    size_t size = cached.load(std::memory_order_relaxed);
    if (!size) [[unlikely]] {
        unsigned long v = getauxval(AT_PAGESZ);
        size = v ? static_cast<size_t>(v) : static_cast<size_t>(sysconf(_SC_PAGESIZE));
        cached.store(size, std::memory_order_relaxed);
    }
    return size;
}

int fstat(int fd, struct stat *st) {
    (void)inject(Call::fstat);  // counted only: see os.h
    return ::fstat(fd, st);
}

int dup_at_least(int fd, int min) {
    if (inject(Call::fcntl) == Inject::fail)
        return -1;
    return ::fcntl(fd, F_DUPFD_CLOEXEC, min);
}

long descriptor_limit() {
    struct rlimit r;
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return 1024;
    return static_cast<long>(r.rlim_cur);
}

pid_t getpid() { return ::getpid(); }

int sigaction(int sig, const struct ::sigaction *act, struct ::sigaction *old) {
    if (inject(Call::sigaction) == Inject::fail)
        return -1;
    return ::sigaction(sig, act, old);
}

ssize_t read_memory(void *out, const void *addr, size_t len) {
    if (inject(Call::read_memory) == Inject::fail)
        return -1;
    struct iovec local = {out, len};
    struct iovec remote = {const_cast<void *>(addr), len};
    return ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
}

void set_fault(const Fault &f) {
    g_fault.armed.store(false, std::memory_order_relaxed);
    g_fault.seen.store(0, std::memory_order_relaxed);
    g_fault.injected.store(0, std::memory_order_relaxed);
    g_fault.bytes.store(0, std::memory_order_relaxed);
    g_fault.nth.store(f.nth, std::memory_order_relaxed);
    g_fault.error.store(f.error, std::memory_order_relaxed);
    g_fault.mask.store(f.mask, std::memory_order_relaxed);
    g_fault.sticky.store(f.sticky, std::memory_order_relaxed);
    g_fault.short_io.store(f.short_io, std::memory_order_relaxed);
    g_fault.pause.store(f.pause, std::memory_order_relaxed);
    g_fault.armed.store(true, std::memory_order_release);
}

void clear_fault() {
    g_fault.armed.store(false, std::memory_order_relaxed);
    g_fault.pause.store(nullptr, std::memory_order_relaxed);
    g_fault.nth.store(0, std::memory_order_relaxed);
    g_fault.seen.store(0, std::memory_order_relaxed);
}

uint64_t fault_calls() { return g_fault.seen.load(std::memory_order_relaxed); }
uint64_t faults_injected() { return g_fault.injected.load(std::memory_order_relaxed); }
uint64_t fault_bytes() { return g_fault.bytes.load(std::memory_order_relaxed); }

}  // namespace jitalloc::os
