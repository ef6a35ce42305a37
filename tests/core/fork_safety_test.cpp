// fork() while another thread is inside the library's one-time set-up: the child must
// not inherit a lock held by a thread it does not have (process/locks.h). A function-
// local static with a dynamic initialiser is such a lock (its guard); the report
// settings read at the first arena creation were one, and a child forked while another
// thread read them waited for the guard forever.
//
// This test holds another thread inside that first read — in the environment lookup of
// JITALLOC_STATS, which this executable intercepts — while the main thread forks; the
// child then makes an arena of its own and must finish. Each test here needs a process
// in which no arena was made yet: ctest runs every test in a process of its own.
#include "helpers.h"

#include <jitalloc/jitalloc.h>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

extern char **environ;

namespace {

std::atomic<bool> g_armed{false};    // hold the next lookup of JITALLOC_STATS
std::atomic<bool> g_inside{false};   // a thread is held there
std::atomic<bool> g_release{false};  // let it go on
pid_t g_parent = 0;

const char *lookup(const char *name) {
    size_t n = std::strlen(name);
    for (char **e = environ; e && *e; e++)
        if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return nullptr;
}

}  // namespace

// Every getenv of this executable and of the library linked into it (not libc's own).
extern "C" char *getenv(const char *name) {
    if (g_armed.load() && getpid() == g_parent && std::strcmp(name, "JITALLOC_STATS") == 0 &&
        g_armed.exchange(false)) {
        g_inside = true;
        for (int i = 0; i < 500 && !g_release.load(); i++)  // 5 s at most
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return const_cast<char *>(lookup(name));
}

namespace {

// The child's status, or -1 if it had not finished after 20 s (then killed).
int wait_bounded(pid_t pid) {
    for (int i = 0; i < 2000; i++) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
}

TEST(ForkSafety, ChildOfAForkDuringTheFirstArenaCreationMakesArenas) {
    g_parent = getpid();
    g_armed = true;
    jit_arena *first = nullptr;
    std::thread maker([&] { first = jit_arena_create(nullptr); });
    for (int i = 0; i < 500 && !g_inside.load(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(g_inside.load()) << "the first arena creation never read JITALLOC_STATS";
    pid_t pid = fork();
    if (pid == 0) {
        jit_arena *a = jit_arena_create(nullptr);
        const uint8_t ret = 0xc3;
        void *p = a ? jit_arena_alloc(a, &ret, 1) : nullptr;
        int rc = !a ? 1 : !p ? 2 : jit_arena_destroy(a) != 0 ? 3 : 0;
        _exit(rc);
    }
    ASSERT_GT(pid, 0);
    g_release = true;
    maker.join();
    EXPECT_EQ(wait_bounded(pid), 0) << "-1: the child hung (a lock of the parent's other thread)";
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(jit_arena_destroy(first), 0);
}

}  // namespace
