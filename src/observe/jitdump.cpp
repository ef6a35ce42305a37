// perf jitdump files (see jitdump.h).
#include "observe/jitdump.h"

#include "diag/diag.h"
#include "observe/host_elf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace jitalloc {
namespace {

// The format's structures, as perf reads them (host byte order).
constexpr uint32_t kMagic = 0x4A695444;  // "JiTD" read as a little-endian word
constexpr uint32_t kVersion = 1;
enum : uint32_t { kCodeLoad = 0 };

struct Header {
    uint32_t magic, version, total_size, elf_mach, pad1, pid;
    uint64_t timestamp, flags;
};
struct Prefix {
    uint32_t id, total_size;
    uint64_t timestamp;
};
struct CodeLoad {
    Prefix p;
    uint32_t pid, tid;
    uint64_t vma, code_addr, code_size, code_index;
    // then the name, NUL-terminated, then code_size bytes of code
};
static_assert(sizeof(Header) == 40 && sizeof(CodeLoad) == 56);

// Guarded by the observer lock.
int g_fd = -1;          // the dump being appended to, or -1
pid_t g_pid = 0;        // the process g_fd (or the failure to open it) belongs to
uint64_t g_index = 0;   // code index of the next load record (unique per file)

uint64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

bool write_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = ::writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        auto done = static_cast<size_t>(w);
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = static_cast<char *>(iov->iov_base) + done;
            iov->iov_len -= done;
        }
    }
    return true;
}

void append_load(uintptr_t addr, const Record &r) {
    CodeLoad rec{};
    rec.p.id = kCodeLoad;
    rec.p.total_size = static_cast<uint32_t>(sizeof rec + r.name.size() + 1 + r.len);
    rec.p.timestamp = now_ns();
    rec.pid = static_cast<uint32_t>(g_pid);
    rec.tid = static_cast<uint32_t>(::syscall(SYS_gettid));
    rec.vma = rec.code_addr = addr;
    rec.code_size = r.len;
    rec.code_index = g_index++;
    struct iovec iov[3] = {{&rec, sizeof rec},
                           {const_cast<char *>(r.name.c_str()), r.name.size() + 1},
                           {reinterpret_cast<void *>(addr), r.len}};  // code memory is readable
    (void)write_all(g_fd, iov, 3);
}

// Opens this process's dump (header and marker mapping); false if it cannot.
bool open_dump(pid_t pid) {
    const char *dir = std::getenv("JITALLOC_JITDUMP_DIR");
    std::string path = std::string(dir && *dir ? dir : "/tmp") + "/jit-" + std::to_string(pid) + ".dump";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        diag_line("jitdump: cannot create %s (%s): no jitdump is written", path.c_str(), std::strerror(errno));
        return false;
    }
    Header h{kMagic, kVersion, sizeof(Header), kHostElfMachine, 0, static_cast<uint32_t>(pid), now_ns(), 0};
    struct iovec iov = {&h, sizeof h};
    long page = ::sysconf(_SC_PAGESIZE);
    void *marker = write_all(fd, &iov, 1) ? ::mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_EXEC,
                                                    MAP_PRIVATE, fd, 0)
                                          : MAP_FAILED;
    if (marker == MAP_FAILED) {
        diag_line("jitdump: cannot write or map %s (%s): no jitdump is written", path.c_str(), std::strerror(errno));
        ::close(fd);
        ::unlink(path.c_str());
        return false;
    }
    // The marker stays mapped for the life of the process: perf may read the file
    // through it at any time, and unmapping it would tell perf nothing useful.
    g_fd = fd;
    return true;
}

}  // namespace

void jitdump_load(const RecordTable &table, uintptr_t addr, const Record &r) {
    pid_t pid = ::getpid();
    if (g_pid != pid) {
        // First record of this process (or of a forked child: the parent's descriptor
        // is not ours to append to).
        if (g_fd >= 0)
            ::close(g_fd);
        g_fd = -1;
        g_pid = pid;
        g_index = 0;
        if (!open_dump(pid))
            return;
        for (const auto &[a, other] : table)
            if (a != addr && other.in_jitdump)
                append_load(a, other);
    }
    if (g_fd >= 0)
        append_load(addr, r);
}

}  // namespace jitalloc
