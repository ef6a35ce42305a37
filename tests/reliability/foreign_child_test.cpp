// Children made without fork handlers (issue 10, item 6): _Fork() and a raw clone()
// run none of the library's pthread_atfork handlers, so the child inherits the
// /proc/self/mem descriptor that addresses the parent and memfd-backed chunks shared
// with the parent. The library notices it runs in another process before its first
// write (process/identity.h):
//  - proc_mem and mprotect arenas (private anonymous chunks, copied by the kernel)
//    work in the child; its writes change the child's code only, never the parent's;
//  - memfd-backed chunks made before stay shared with the parent (no handler copied
//    them): the child's writes into them fail with EIO and reach nobody; the parent's
//    later writes show through in the child; a new arena in the child works.
#include "process_common.h"

#include <gtest/gtest.h>

#include <sched.h>

namespace {

using proc::call;
using proc::kRet42;
using proc::kRetImm;


using Case = proc::WriterCase;

// Runs in the child: 0 or a check number.
int in_foreign_child(const std::vector<Case> &cases) {
    for (const Case &c : cases) {
        jit_writer w = c.w;
        uint8_t seven = 7;
        errno = 0;
        int rc = jit_update(c.fn + kRetImm, &seven, 1);
        if (w == JIT_WRITER_PROC_MEM || w == JIT_WRITER_MPROTECT) {
            if (rc != 0 || call(c.fn) != 7)
                return 20 + static_cast<int>(w);  // the child's own code changes
        } else if (rc == 0 || errno != EIO || call(c.fn) != 42) {
            return 30 + static_cast<int>(w);  // shared with the parent: refused
        }
    }
    // A new arena of every kind works in the child.
    for (jit_writer w : rel::kWriters) {
        jit_arena *a = rel::make_arena(w);
        if (!a)
            return 40 + static_cast<int>(w);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, kRet42.data(), kRet42.size()));
        uint8_t nine = 9;
        if (!p || jit_update(p + kRetImm, &nine, 1) != 0 || call(p) != 9 || jit_free(p) != 0)
            return 50 + static_cast<int>(w);
        if (jit_arena_destroy(a) != 0)
            return 60 + static_cast<int>(w);
    }
    return rel::find_wx().empty() ? 0 : 70;
}

// Makes a child with `spawn` (no fork handlers), checks it, then that the parent's code
// is untouched. 0 or the failed line.
int run(const std::function<pid_t()> &spawn) {
    std::vector<Case> cases;
    if (int e = proc::cases_of_every_writer(cases))
        return e;
    std::fflush(nullptr);
    pid_t pid = spawn();
    PREQ(pid >= 0);
    if (pid == 0)
        _exit(in_foreign_child(cases));
    int st = 0;
    PREQ(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        std::fprintf(stderr, "child status %#x (exit %d)\n", st, WEXITSTATUS(st));
    PREQ(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (const Case &c : cases) {
        PREQ(call(c.fn) == 42);  // nothing the child did reached the parent
        uint8_t eight = 8;
        PREQ(jit_update(c.fn + kRetImm, &eight, 1) == 0 && call(c.fn) == 8);  // parent unaffected
        PREQ(jit_free(c.fn) == 0);
        PREQ(rel::check(c.a).empty());
        PREQ(jit_arena_destroy(c.a) == 0);
    }
    return 0;
}

TEST(ForeignChild, UnderscoreFork) {
    int rc = proc::scenario(60, [] { return run([] { return _Fork(); }); });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

TEST(ForeignChild, RawClone) {
    int rc = proc::scenario(60, [] {
        return run([] {
            return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
        });
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

}  // namespace
