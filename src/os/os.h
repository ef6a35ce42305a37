// The platform seam: every system call jitalloc makes goes through here.
//
// Invariants:
//  - No other file calls mmap, munmap, mprotect, madvise, memfd_create, ftruncate, open,
//    close, read, pwrite(v), membarrier, mincore, fstat, fcntl, sigaction or process_vm_readv
//    directly. One exception, outside the
//    allocator: src/observe writes the perf map (/tmp/perf-PID.map), a profiler's side
//    file, with plain open/write/rename; it never touches code memory.
//  - Each function has the system call's contract (result, errno), so callers read like
//    ordinary POSIX code, and tests can make any call fail (fault injection) without the
//    allocator logic knowing.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/uio.h>

struct stat;

#include <cstddef>
#include <cstdint>

namespace jitalloc::os {

enum class Call : unsigned {
    mmap,
    munmap,
    mprotect,
    madvise,
    memfd_create,
    ftruncate,
    open,
    close,
    read,
    pwrite,
    membarrier,
    mincore,
    fstat,
    fcntl,
    sigaction,
    read_memory,
    count
};
const char *call_name(Call c);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int munmap(void *addr, size_t len);
int mprotect(void *addr, size_t len, int prot);
int madvise(void *addr, size_t len, int advice);
int memfd_create(const char *name, unsigned flags);
int ftruncate(int fd, off_t len);
int open(const char *path, int flags);
int close(int fd);
ssize_t read(int fd, void *buf, size_t len);
// pwritev: one call (pwrite for one vector); may write less than asked (callers loop).
ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off);
int membarrier(int cmd, unsigned flags);
int mincore(void *addr, size_t len, unsigned char *vec);
// fstat: identifies a descriptor (process/descriptors.h). Counted, never failed by
// injection: on a descriptor it fails only with EBADF, which is what the identity checks
// look for, and the foreign-descriptor tests make that happen for real.
int fstat(int fd, struct stat *st);
// fcntl(F_DUPFD_CLOEXEC): a copy of fd at the lowest free number >= min.
int dup_at_least(int fd, int min);
// Not injected (queries, no resource): RLIMIT_NOFILE's soft limit; getpid().
long descriptor_limit();
pid_t getpid();
// sigaction(2) (src/patch installs its SIGTRAP handler with it).
int sigaction(int sig, const struct ::sigaction *act, struct ::sigaction *old);
// Copies len bytes of this process's memory at addr into out without faulting on an
// unmapped address (process_vm_readv on the calling process): bytes copied, or -1 with
// errno (EFAULT: not mapped). Async-signal-safe: the SIGTRAP handler reads code with it.
ssize_t read_memory(void *out, const void *addr, size_t len);

// The kernel's page size (AT_PAGESZ: 4, 16 or 64 KiB on arm64), read once at load. No
// system call, so no fault injection. Everything that changes protections or mappings
// rounds to it; the buddy and slabs keep their own 4 KiB granule (chunk.h).
size_t page_size();

// The whole pages of size `page` (a power of two) that cover [at, at+len): what an
// mprotect, an alias mmap (file offsets) or a mincore of that range has to name.
struct PageSpan {
    uintptr_t start;
    size_t len;
};
constexpr PageSpan page_span(uintptr_t at, size_t len, size_t page) {
    uintptr_t start = at & ~(uintptr_t{page} - 1);
    uintptr_t end = (at + len + page - 1) & ~(uintptr_t{page} - 1);
    return {start, static_cast<size_t>(end - start)};
}

// ---- Fault injection (tests) ----
// Calls matching `mask` (bit i = Call i) are counted from 1 after set_fault; the call
// numbered `nth` fails with `error` (and every later one too if `sticky`). With
// `short_io`, a failing pwritev/read instead transfers half (at least 1 byte) of what
// was asked, to exercise partial-write handling. With `pause`, the numbered call does
// not fail: pause(call) runs first (in the calling thread), then the call is made — a
// test stops an operation at a known point inside it.
struct Fault {
    uint64_t nth = 0;  // 0: off
    int error = 0;
    uint32_t mask = ~0u;
    bool sticky = false;
    bool short_io = false;
    void (*pause)(Call) = nullptr;
};
void set_fault(const Fault &f);
void clear_fault();
// Number of matching calls seen since set_fault / clear_fault (all calls when off).
uint64_t fault_calls();
// How many calls have been failed by injection since set_fault.
uint64_t faults_injected();
// Bytes the pwrite calls seen since set_fault asked to write (when the mask has pwrite).
uint64_t fault_bytes();
constexpr uint32_t mask_of(Call c) { return 1u << static_cast<unsigned>(c); }

}  // namespace jitalloc::os
