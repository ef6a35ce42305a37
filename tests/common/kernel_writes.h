// Counts the kernel writes of a test that links the shared library: an interposer for
// pwritev(2), the one call jitalloc's strict writers write code with (src/os), so what
// is counted is what the library asks the kernel to write. The core and reliability
// tests link the library statically and count through the fault seam (os::set_fault);
// this is for the integration tests (asmjit, ORC), which see only the public API.
//
// Include in exactly one source file of an executable, and export the definition to
// the shared libraries: link with -Wl,--export-dynamic-symbol=pwritev.
#pragma once

#include <dlfcn.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace jt_kernel_writes {

inline std::atomic<uint64_t> g_calls{0};
inline std::atomic<int> g_fail_next{0};  // errno for the next call (0: none), then cleared

// pwritev calls made so far.
inline uint64_t count() { return g_calls.load(); }
// Makes the next pwritev fail with err, without writing.
inline void fail_next(int err) { g_fail_next.store(err); }

// Kernel writes fn makes.
template <class Fn>
uint64_t made_by(Fn &&fn) {
    uint64_t before = count();
    fn();
    return count() - before;
}

}  // namespace jt_kernel_writes

extern "C" ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    using Real = ssize_t (*)(int, const struct iovec *, int, off_t);
    static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pwritev"));
    jt_kernel_writes::g_calls.fetch_add(1);
    if (int err = jt_kernel_writes::g_fail_next.exchange(0)) {
        errno = err;
        return -1;
    }
    return real(fd, iov, iovcnt, offset);
}
