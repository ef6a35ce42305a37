// temp_alias (and persistent_alias) where pwrite is refused (issue 10, item 9): the alias
// writers fill new memfd chunks with traps and copy them for a fork() child through RW
// mappings, so they need no pwrite at all, and AUTO falls back to temp_alias.
//  - the fault seam refusing every pwritev (EPERM);
//  - a seccomp filter refusing pwrite64 / pwritev / pwritev2 for real (EPERM).
// Each case runs in a forked child; exit status 0 ok, else the line of the failed check.
#include "process_common.h"
#include "../common/trap_fill.h"

#include "os/os.h"

#include <gtest/gtest.h>

#include <sys/prctl.h>

namespace os = jitalloc::os;

namespace {

// Makes every pwrite-family call fail with EPERM in this process. false if seccomp is
// not available.
bool refuse_pwrite() {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pwrite64, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pwritev, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pwritev2, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

jit_arena *arena(jit_writer w) {
    return rel::make_arena(w, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_IGNORE_ENV, JIT_DEFAULT_RETAIN_BYTES);
}

// Allocations of every kind, updates, a fork (the child's copy and writes stay its own),
// frees; 0 or the failed line.
int exercise(jit_arena *a) {
    std::vector<uint8_t> A(5000, 0x11), B(5000, 0x22), C(5000, 0x33);
    A.back() = B.back() = C.back() = 0xC3;
    const size_t sizes[] = {100, 5000, (size_t{2} << 20) + 4096};
    std::vector<std::pair<uint8_t *, size_t>> allocs;
    for (size_t n : sizes) {
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, n));
        PREQ(p != nullptr);
        PREQ(jt_traps::all_traps(p, n));
        size_t k = std::min(n, A.size());
        PREQ(jit_update(p, A.data(), k) == 0);
        PREQ(std::memcmp(p, A.data(), k) == 0);
        allocs.push_back({p, k});
    }
    auto *fn = static_cast<uint8_t *>(jit_arena_alloc(a, proc::kRet42.data(), proc::kRet42.size()));
    PREQ(fn && proc::call(fn) == 42);
    PREQ(jit_free(fn) == 0);
    int to_child[2];
    PREQ(pipe(to_child) == 0);
    std::fflush(nullptr);
    pid_t pid = fork();
    PREQ(pid >= 0);
    if (pid == 0) {
        char c;
        (void)!::read(to_child[0], &c, 1);  // the parent has written B
        for (auto &[p, k] : allocs)
            if (std::memcmp(p, A.data(), k) != 0)
                _exit(10);  // the parent's write reached the child
        for (auto &[p, k] : allocs)
            if (jit_update(p, C.data(), k) != 0 || std::memcmp(p, C.data(), k) != 0)
                _exit(11);
        _exit(rel::check(a).empty() ? 0 : 12);
    }
    for (auto &[p, k] : allocs)
        PREQ(jit_update(p, B.data(), k) == 0);
    PREQ(::write(to_child[1], "x", 1) == 1);
    int st = 0;
    PREQ(waitpid(pid, &st, 0) == pid);
    ::close(to_child[0]);
    ::close(to_child[1]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        std::fprintf(stderr, "fork child: status %#x\n", st);
    PREQ(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (auto &[p, k] : allocs)
        PREQ(std::memcmp(p, B.data(), k) == 0);  // the child's writes stayed in the child
    for (auto &[p, k] : allocs)
        PREQ(jit_free(p) == 0);
    PREQ(rel::check(a).empty());
    PREQ(rel::find_wx().empty());
    return 0;
}

// The alias writers and AUTO, with pwrite refused by `refuse` (already in force).
int alias_writers_without_pwrite() {
    for (jit_writer w : {JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS}) {
        jit_arena *a = arena(w);
        if (!a)
            std::fprintf(stderr, "%s: %s\n", jit_writer_name(w), std::strerror(errno));
        PREQ(a != nullptr);
        if (int e = exercise(a))
            return e;
        PREQ(jit_arena_destroy(a) == 0);
    }
    for (jit_writer w : {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD}) {
        errno = 0;
        PREQ(arena(w) == nullptr && errno == EPERM);  // they need pwrite
    }
    jit_arena *a = arena(JIT_WRITER_AUTO);
    PREQ(a != nullptr);
    PREQ(rel::stats(a).writer == JIT_WRITER_TEMP_ALIAS && rel::stats(a).strict_wx == 1);
    if (int e = exercise(a))
        return e;
    PREQ(jit_arena_destroy(a) == 0);
    return 0;
}

TEST(NoPwrite, FaultSeamRefusesPwritev) {
    int rc = proc::scenario(120, [] {
        os::set_fault({1, EPERM, os::mask_of(os::Call::pwrite), true, false});
        int e = alias_writers_without_pwrite();
        os::clear_fault();
        return e;
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

TEST(NoPwrite, SeccompRefusesPwrite) {
    int rc = proc::scenario(120, [] {
        if (!refuse_pwrite())
            return 77;
        return alias_writers_without_pwrite();
    });
    if (rc == 77)
        GTEST_SKIP() << "seccomp not available";
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

}  // namespace
