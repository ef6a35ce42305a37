// Helpers for the tests of fork(), atfork handlers, children made without fork handlers
// and descriptors closed behind the library (issue 10, items 2, 3, 4, 6, 8):
//  - scenario(): run a case in a fresh forked process with a deadline, so a hang is a
//    failure with a message rather than a stuck test;
//  - SyscallHold: hold one thread inside a chosen system call (seccomp user
//    notification) — a library lock it holds there stays held, deterministically;
//  - ForkWatch: release such a holder once the forking thread is blocked waiting for it
//    (a fixed library) or fork() has returned (the child then inherited the held lock);
//  - the inode behind each mapping, to tell whose memfd a child maps.
#pragma once

#include "rel_common.h"
#include "../common/host_code.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstddef>
#include <set>
#include <thread>
#include <vector>

namespace proc {

// The child's REQ: report the failed line through the exit status (1..250).
#define PREQ(cond)                                                                 \
    do {                                                                           \
        if (!(cond)) {                                                             \
            std::fprintf(stderr, "child %d: %s:%d: %s (errno %s)\n", getpid(),     \
                         __FILE__, __LINE__, #cond, std::strerror(errno));          \
            return __LINE__ % 250 + 1;                                             \
        }                                                                          \
    } while (0)

constexpr int kHung = 128 + SIGALRM;

// A function returning 42 in the host's instruction set (tests/common/host_code.h); the
// result is the low byte of the little-endian word at kRetImm, so writing one byte there
// changes it. call() runs such a function.
inline const std::vector<uint8_t> kRet42 = jt_code::ret_imm(42);
inline constexpr size_t kRetImm = jt_code::kRetImmOff;
inline int call(const uint8_t *p) {
    return reinterpret_cast<int (*)()>(const_cast<uint8_t *>(p))();
}

// Runs fn in a forked child that is killed by SIGALRM after `seconds`: returns fn's
// result, kHung if it hung, 128+signal if it crashed.
inline int scenario(unsigned seconds, const std::function<int()> &fn) {
    return rel::in_child([&] {
        alarm(seconds);
        return fn();
    });
}

inline const char *describe(int status) {
    if (status == 0)
        return "ok";
    if (status == kHung)
        return "hung (killed by its deadline)";
    if (status > 128)
        return "killed by a signal";
    return "a check failed (see the child's message)";
}

// An arena of writer w with a ret-42 function fn in it.
struct WriterCase {
    jit_writer w;
    jit_arena *a;
    uint8_t *fn;
};

// One WriterCase per writer, each having written once (an update) so that every writer's
// descriptors exist. 0 or the failed line.
inline int cases_of_every_writer(std::vector<WriterCase> &cases) {
    for (jit_writer w : rel::kWriters) {
        jit_arena *a = rel::make_arena(w);
        PREQ(a != nullptr);
        auto *fn = static_cast<uint8_t *>(jit_arena_alloc(a, kRet42.data(), kRet42.size()));
        PREQ(fn != nullptr);
        uint8_t v = 42;
        PREQ(jit_update(fn + kRetImm, &v, 1) == 0);
        cases.push_back({w, a, fn});
    }
    return 0;
}

inline pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The system call thread `tid` of this process is blocked in, -1 if it is running.
inline long blocked_in(pid_t tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[64] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9')
        return -1;  // "running"
    return std::strtol(buf, nullptr, 10);
}

// True if thread tid sleeps in the kernel waiting for another thread: a futex (a lock)
// or a nanosleep (ForkGate::close backing off while an operation is in flight).
inline bool waiting_for_another_thread(pid_t tid) {
    long nr = blocked_in(tid);
    return nr == SYS_futex || nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
}

// Releases a held thread (release()) once thread `forker` has entered fork() and is
// either waiting for another thread or has come back from fork(). Call entered() from
// an atfork prepare handler that runs before the library's, returned() after fork().
class ForkWatch {
public:
    explicit ForkWatch(std::function<void()> release) : release_(std::move(release)) {}
    void start(pid_t forker) {
        forker_ = forker;
        thread_ = std::thread([this] {
            while (!entered_.load())
                std::this_thread::yield();
            while (!returned_.load() && !waiting_for_another_thread(forker_))
                usleep(100);
            waited_ = !returned_.load();
            release_();
            // Stay until fork() is over: a thread exiting while another forks is what
            // some sanitizer runtimes cannot take.
            while (!returned_.load())
                usleep(100);
        });
    }
    void entered() { entered_.store(true); }
    void returned() { returned_.store(true); }
    // After join(): true if fork() waited for the held thread (the library took the lock).
    bool fork_waited() const { return waited_; }
    void join() {
        if (thread_.joinable())
            thread_.join();
    }

private:
    std::function<void()> release_;
    pid_t forker_ = 0;
    std::atomic<bool> entered_{false}, returned_{false};
    bool waited_ = false;
    std::thread thread_;
};

// One argument test of a seccomp filter: (args[index] & mask) == value, low 32 bits.
struct ArgIs {
    unsigned index;
    uint32_t value;
    uint32_t mask = ~0u;
};

// Holds the thread that installs it in its next system call `nr` whose arguments match,
// until release(); later matching calls pass at once. Only that thread is filtered
// (no TSYNC); a forked child of another thread carries no filter.
class SyscallHold {
public:
    // In the thread to be held. false if seccomp user notification is not available.
    bool install(long nr, std::initializer_list<ArgIs> args) {
        std::vector<sock_filter> f;
        f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
        std::vector<size_t> to_allow;  // jumps whose false branch allows
        to_allow.push_back(f.size());
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 0));
        for (const ArgIs &a : args) {
            f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                 static_cast<uint32_t>(offsetof(struct seccomp_data, args) +
                                                       a.index * sizeof(uint64_t))));
            if (a.mask != ~0u)
                f.push_back(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, a.mask));
            to_allow.push_back(f.size());
            f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, a.value, 0, 0));
        }
        f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
        size_t allow = f.size();
        f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        for (size_t j : to_allow)
            f[j].jf = static_cast<uint8_t>(allow - j - 1);
        struct sock_fprog prog = {static_cast<unsigned short>(f.size()), f.data()};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            return false;
        int fd = static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                          SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
        if (fd < 0)
            return false;
        listener_.store(fd);
        return true;
    }
    // In another thread: waits until the filtered thread is held (false: none came in
    // time). Then serves the notification (continue the call) when release() is called,
    // and every later one until stop().
    bool wait_held(int timeout_ms) {
        int fd = listener_.load();
        if (fd < 0)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) != 1)
            return false;
        struct seccomp_notif req;
        std::memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            return false;
        held_id_ = req.id;
        server_ = std::thread([this, fd] {
            while (!released_.load())
                usleep(50);
            answer(held_id_);
            while (!stop_.load()) {
                struct pollfd q = {fd, POLLIN, 0};
                if (poll(&q, 1, 10) != 1)
                    continue;
                // POLLHUP without POLLIN: the held thread has exited, so no notification
                // can come, and a RECV would block for good (seen in the arm64 guest:
                // stop() then waited on this thread until the scenario's deadline).
                if (!(q.revents & POLLIN))
                    break;
                struct seccomp_notif r;
                std::memset(&r, 0, sizeof r);
                if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &r) == 0)
                    answer(r.id);
            }
        });
        return true;
    }
    void release() { released_.store(true); }
    // After the held thread is done with every filtered call.
    void stop() {
        released_.store(true);
        stop_.store(true);
        if (server_.joinable())
            server_.join();
        int fd = listener_.exchange(-1);
        if (fd >= 0)
            ::close(fd);
    }
    ~SyscallHold() { stop(); }

private:
    void answer(uint64_t id) {
        struct seccomp_notif_resp resp;
        std::memset(&resp, 0, sizeof resp);
        resp.id = id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        (void)ioctl(listener_.load(), SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    std::atomic<int> listener_{-1};
    uint64_t held_id_ = 0;
    std::atomic<bool> released_{false}, stop_{false};
    std::thread server_;
};

// Inode of the file mapped over [start, end), 0 for anonymous memory; reads
// /proc/self/maps.
struct MappedFile {
    uintptr_t start, end;
    unsigned long inode;
    char perms[5];
};
inline std::vector<MappedFile> mapped_files() {
    std::vector<MappedFile> out;
    FILE *f = std::fopen("/proc/self/maps", "re");
    if (!f)
        return out;
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
        MappedFile m{};
        unsigned long long s = 0, e = 0, off = 0;
        unsigned dmaj = 0, dmin = 0;
        if (std::sscanf(line, "%llx-%llx %4s %llx %x:%x %lu", &s, &e, m.perms, &off, &dmaj, &dmin,
                        &m.inode) == 7) {
            m.start = s;
            m.end = e;
            out.push_back(m);
        }
    }
    std::fclose(f);
    return out;
}

// Inodes of the files mapped anywhere in [p, p+len).
inline std::set<unsigned long> inodes_under(const void *p, size_t len) {
    std::set<unsigned long> out;
    auto a = reinterpret_cast<uintptr_t>(p);
    for (const MappedFile &m : mapped_files())
        if (m.start < a + len && a < m.end && m.inode)
            out.insert(m.inode);
    return out;
}

}  // namespace proc
