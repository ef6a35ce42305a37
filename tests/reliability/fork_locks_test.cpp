// fork() from a multi-threaded parent (issue 10, item 3): every process-wide lock of the
// library is taken by its fork handlers (src/process/locks.h), so a child never inherits
// a lock that another thread of the parent held, and the child's next call that needs it
// completes.
//
// Each case runs in a fresh process (proc::scenario): another thread is made to hold a
// lock — inside a real library path, stopped in a system call by a seccomp user
// notification (SyscallHold), or by locking it directly — then the main thread forks.
// ForkWatch lets the holder go once fork() is seen waiting for it or has returned; the
// child runs the path that takes the lock under an alarm and must finish.
//   a) another thread creating the default arena (the process's first jit_alloc);
//   b) another thread inside jit_arena_create running the mprotect writer's probe;
//   c) another thread destroying a perf-map arena (observer lock across the rewrite);
//   d) each lock of the table held directly, with the paths that take it.
#include "process_common.h"

#include "process/locks.h"

#include <gtest/gtest.h>

#include <pthread.h>
#include <sys/mman.h>

namespace {

constexpr unsigned kScenarioSeconds = 60;
constexpr unsigned kChildSeconds = 10;

proc::ForkWatch *g_watch = nullptr;
void watch_prepare() {
    if (g_watch)
        g_watch->entered();
}
void watch_parent() {
    if (g_watch)
        g_watch->returned();
}

using proc::kRet42;
using proc::kRetImm;

// alloc + call + update + free in a; 0 or the failed line.
int round_trip(jit_arena *a) {
    auto *p = static_cast<uint8_t *>(a ? jit_arena_alloc(a, kRet42.data(), kRet42.size()) : jit_alloc(kRet42.data(), kRet42.size()));
    PREQ(p != nullptr);
    PREQ(proc::call(p) == 42);
    uint8_t seven = 7;
    PREQ(jit_update(p + kRetImm, &seven, 1) == 0);
    PREQ(proc::call(p) == 7);
    PREQ(jit_free(p) == 0);
    return 0;
}

jit_arena *arena(jit_writer w, unsigned flags = 0) {
    return rel::make_arena(w, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_IGNORE_ENV | flags,
                           JIT_DEFAULT_RETAIN_BYTES);
}

void remove_perf_map() {
    char path[64];
    std::snprintf(path, sizeof path, "/tmp/perf-%d.map", static_cast<int>(getpid()));
    ::unlink(path);
}

// Holds `holder` (a thread doing `work`) in the system call described by nr/args, forks
// from this thread and runs `in_child` there. 0, 77 (seccomp notification unavailable)
// or the failed line.
int fork_while_held(long nr, std::initializer_list<proc::ArgIs> args,
                    const std::function<void()> &work, const std::function<int()> &in_child) {
    proc::SyscallHold hold;
    proc::ForkWatch watch([&] { hold.release(); });
    std::atomic<int> installed{0};
    std::atomic<bool> forked{false};
    std::thread holder([&] {
        if (!hold.install(nr, args)) {
            installed = -1;
            return;
        }
        installed = 1;
        work();
        while (!forked.load())  // no allocation while the other thread forks
            usleep(100);
    });
    while (installed.load() == 0)
        std::this_thread::yield();
    if (installed.load() < 0) {
        holder.join();
        return 77;
    }
    if (!hold.wait_held(10000)) {
        forked = true;
        hold.stop();
        holder.join();
        std::fprintf(stderr, "the holder never reached its system call\n");
        return 200;
    }
    g_watch = &watch;
    watch.start(proc::gettid_());
    int st = rel::in_child([&] {
        alarm(kChildSeconds);
        return in_child();
    });
    watch.returned();
    forked = true;
    watch.join();
    holder.join();
    hold.stop();
    g_watch = nullptr;
    if (st != 0)
        std::fprintf(stderr, "child: %s (status %d)\n", proc::describe(st), st);
    PREQ(st == 0);
    PREQ(watch.fork_waited());  // fork() waited for the holder: its lock is in the order
    return 0;
}

void run(const std::function<int()> &fn) {
    int rc = proc::scenario(kScenarioSeconds, [&] {
        pthread_atfork(watch_prepare, watch_parent, nullptr);
        return fn();
    });
    if (rc == 77)
        GTEST_SKIP() << "seccomp user notification not available";
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

// (a) The first jit_alloc of the process creates the default arena; another thread
// forks meanwhile. The holder stops in the proc_mem probe's mmap of its read-only page.
TEST(ForkLocks, DefaultArenaBeingCreated) {
    run([] {
        return fork_while_held(
            SYS_mmap,
            {{1, 4096}, {2, PROT_READ}, {3, MAP_PRIVATE | MAP_ANONYMOUS}},
            [] { (void)jit_default_arena(); },
            [] { return round_trip(nullptr); });
    });
}

// (b) Another thread creates an mprotect arena; its probe flips a page RW under the
// mprotect writer's lock. The child then writes with an mprotect arena made before.
TEST(ForkLocks, MprotectProbeInAnotherThread) {
    run([] {
        jit_arena *m = arena(JIT_WRITER_MPROTECT);
        PREQ(m != nullptr);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(m, kRet42.data(), kRet42.size()));
        PREQ(p != nullptr);
        return fork_while_held(
            SYS_mprotect, {{2, PROT_READ | PROT_WRITE}},
            [] {
                jit_arena *other = arena(JIT_WRITER_MPROTECT);
                if (other)
                    (void)jit_arena_destroy(other);
            },
            [m] { return round_trip(m); });
    });
}

// (c) Another thread destroys a perf-map arena; the observer lock is held across the
// perf map rewrite (stopped at its open of the temporary file). The child allocates in
// another observed arena.
TEST(ForkLocks, PerfMapArenaBeingDestroyed) {
    run([] {
        jit_arena *doomed = arena(JIT_WRITER_PROC_MEM, JIT_ARENA_PERF_MAP);
        jit_arena *observed = arena(JIT_WRITER_PROC_MEM, JIT_ARENA_PERF_MAP);
        PREQ(doomed && observed);
        for (int i = 0; i < 3; i++)
            PREQ(jit_arena_alloc_named(doomed, kRet42.data(), kRet42.size(), "doomed") != nullptr);
        int rc = fork_while_held(
            SYS_openat, {{2, O_CREAT, O_CREAT}}, [doomed] { (void)jit_arena_destroy(doomed); },
            [observed] {
                int r = round_trip(observed);
                remove_perf_map();
                return r;
            });
        remove_perf_map();
        return rc;
    });
}

// (d) Every lock of the table, held directly by another thread at fork(); the child runs
// every path that takes one of them.
int every_path_in_child(jit_arena *pm, jit_arena *mp, jit_arena *observed) {
    if (int e = round_trip(nullptr))  // creates the default arena: default_arena, registry
        return e;
    if (int e = round_trip(pm))  // a new /proc/self/mem descriptor: proc_mem
        return e;
    if (int e = round_trip(mp))  // mprotect
        return e;
    if (int e = round_trip(observed))  // observers
        return e;
    remove_perf_map();
    // a new arena and chunk (registry, chunk_pool) in a part of the address space no
    // chunk used yet (a new leaf of the chunk map: chunk_map)
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_IGNORE_ENV;
    o.writer = JIT_WRITER_PROC_MEM;
    o.placement = JIT_PLACE_NEAR_ADDRESS;
    // 64 GiB from the library's code: another 32 GiB leaf than the chunks near it, and
    // still application memory under the sanitizers' layouts
    o.near = reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(&jit_alloc) + (uintptr_t{64} << 30));
    o.near_range = size_t{64} << 20;
    jit_arena *far = jit_arena_create(&o);
    PREQ(far != nullptr);
    if (int e = round_trip(far))
        return e;
    PREQ(jit_arena_destroy(far) == 0);
    (void)jit_shrink();
    return 0;
}

TEST(ForkLocks, EveryProcessLockHeldByAnotherThread) {
    for (unsigned li = 0; li < static_cast<unsigned>(jitalloc::ProcessLock::count); li++) {
        SCOPED_TRACE("lock #" + std::to_string(li));
        int rc = proc::scenario(kScenarioSeconds, [li] {
            pthread_atfork(watch_prepare, watch_parent, nullptr);
            jit_arena *pm = arena(JIT_WRITER_PROC_MEM);
            jit_arena *mp = arena(JIT_WRITER_MPROTECT);
            jit_arena *observed = arena(JIT_WRITER_PROC_MEM, JIT_ARENA_PERF_MAP);
            PREQ(pm && mp && observed);
            std::mutex &lock = jitalloc::process_lock(static_cast<jitalloc::ProcessLock>(li));
            std::atomic<bool> held{false}, release{false}, forked{false};
            proc::ForkWatch watch([&] { release = true; });
            std::thread holder([&] {
                lock.lock();
                held = true;
                while (!release.load())
                    usleep(50);
                lock.unlock();
                while (!forked.load())
                    usleep(100);
            });
            while (!held.load())
                std::this_thread::yield();
            g_watch = &watch;
            watch.start(proc::gettid_());
            int st = rel::in_child([&] {
                alarm(kChildSeconds);
                return every_path_in_child(pm, mp, observed);
            });
            watch.returned();
            forked = true;
            watch.join();
            holder.join();
            g_watch = nullptr;
            remove_perf_map();
            if (st != 0)
                std::fprintf(stderr, "child: %s (status %d)\n", proc::describe(st), st);
            PREQ(st == 0);
            PREQ(watch.fork_waited());
            return 0;
        });
        EXPECT_EQ(rc, 0) << proc::describe(rc);
    }
}

}  // namespace
