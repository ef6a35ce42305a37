// Counts the kernel writes of a test that links the shared library: interposers for
// pwritev(2) and pwrite(2), the calls jitalloc's strict writers write code with (src/os:
// pwrite for a write of one vector), so what is counted is what the library asks the
// kernel to write. The core and reliability
// tests link the library statically and count through the fault seam (os::set_fault);
// this is for the integration tests (asmjit, ORC), which see only the public API.
//
// Include in exactly one source file of an executable, and export the definition to
// the shared libraries: link with -Wl,--export-dynamic-symbol=pwritev and the same for
// pwrite and pwrite64.
#pragma once

#include <dlfcn.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace jt_kernel_writes {

inline std::atomic<uint64_t> g_calls{0};
inline std::atomic<int> g_fail_next{0};  // errno for the next call (0: none), then cleared

// pwritev and pwrite calls made so far.
inline uint64_t count() { return g_calls.load(); }
// Makes the next pwritev or pwrite fail with err, without writing.
inline void fail_next(int err) { g_fail_next.store(err); }

// Kernel writes fn makes.
template <class Fn>
uint64_t made_by(Fn &&fn) {
    uint64_t before = count();
    fn();
    return count() - before;
}

}  // namespace jt_kernel_writes

namespace jt_kernel_writes {
// Counts a call; false (errno set) if it is to fail.
inline bool counted() {
    g_calls.fetch_add(1);
    if (int err = g_fail_next.exchange(0)) {
        errno = err;
        return false;
    }
    return true;
}
}  // namespace jt_kernel_writes

extern "C" ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    using Real = ssize_t (*)(int, const struct iovec *, int, off_t);
    static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pwritev"));
    return jt_kernel_writes::counted() ? real(fd, iov, iovcnt, offset) : -1;
}

extern "C" ssize_t pwrite(int fd, const void *buf, size_t len, off_t offset) {
    using Real = ssize_t (*)(int, const void *, size_t, off_t);
    static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pwrite"));
    return jt_kernel_writes::counted() ? real(fd, buf, len, offset) : -1;
}

extern "C" ssize_t pwrite64(int fd, const void *buf, size_t len, off_t offset) {
    using Real = ssize_t (*)(int, const void *, size_t, off_t);
    static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pwrite64"));
    return jt_kernel_writes::counted() ? real(fd, buf, len, offset) : -1;
}
