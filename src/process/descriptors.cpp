// See descriptors.h: high numbers and identity checks for the library's descriptors.
#include "process/descriptors.h"

#include "os/os.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace jitalloc {

namespace {

constexpr int kHighest = 512;  // never above: the kernel's descriptor table grows to fit

bool identify(int fd, FileId &id) {
    struct stat st;
    if (os::fstat(fd, &st) != 0)
        return false;
    id.dev = static_cast<uint64_t>(st.st_dev);
    id.ino = static_cast<uint64_t>(st.st_ino);
    return true;
}

}  // namespace

int keep_fd(int fd, FileId &id) {
    if (!identify(fd, id)) {
        int e = errno;
        os::close(fd);
        errno = e;
        return -1;
    }
    if (fd >= kHighest)
        return fd;
    // kHighest is in the upper half wherever RLIMIT_NOFILE is 1024 or more (the default):
    // try it first, with no getrlimit (one system call fewer on a process's first
    // jit_alloc). The kernel refuses it (EINVAL) only under a lower limit, or (EMFILE)
    // when no number from it up is free: then the upper half of the limit.
    int high = os::dup_at_least(fd, kHighest);
    if (high < 0) {
        long limit = os::descriptor_limit();
        int floor = static_cast<int>(std::min<long>(limit / 2, kHighest));
        if (fd >= floor)
            return fd;
        high = os::dup_at_least(fd, floor);
        if (high < 0)
            return fd;  // no high number free: the low one serves (still identified)
    }
    os::close(fd);
    return high;
}

void presize_descriptor_table() {
    // Any open descriptor serves as the source; the standard ones usually are.
    for (int fd = 0; fd <= 2; fd++) {
        int high = os::dup_at_least(fd, kHighest);
        if (high >= 0) {
            os::close(high);
            return;
        }
    }
}

bool still_ours(int fd, const FileId &id) {
    FileId now;
    return fd >= 0 && identify(fd, now) && now == id;
}

void close_if_ours(int fd, const FileId &id) {
    if (still_ours(fd, id))
        os::close(fd);
}

}  // namespace jitalloc
