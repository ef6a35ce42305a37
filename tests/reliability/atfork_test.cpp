// A program's own pthread_atfork handlers calling jitalloc (issue 10, item 4).
//
// POSIX runs prepare handlers in reverse order of registration, parent and child handlers
// in order of registration. jitalloc registers its handlers when it is loaded (an ELF
// constructor), so:
//  - a handler registered later (from main(), before or after any arena exists) runs its
//    prepare before the library closes its gates and its parent / child handler after
//    the library has reopened them: every call works (AfterLoad);
//  - a handler registered earlier (another library's constructor that ran first; here a
//    constructor with priority 101) runs inside the library's fork window: every call
//    fails at once with EDEADLK (or returns 0 / NULL), changes nothing, never waits
//    (BeforeLoad).
// Each case runs in a fresh process with a deadline: a hang is a failure.
#include "process_common.h"

#include <jitalloc/dump.h>

#include <gtest/gtest.h>

#include <pthread.h>

namespace {

constexpr unsigned kScenarioSeconds = 30;
using proc::kRet42;
using proc::kRetImm;

// State the handlers work on (set up by the scenario before it forks).
struct Target {
    jit_arena *arena = nullptr;
    uint8_t *live = nullptr;     // an allocation the handlers update
    uint8_t *to_free = nullptr;  // freed by the "after load" prepare handler
    jit_arena *spare = nullptr;  // destroyed (or not) by a handler
};
Target g_target;
std::atomic<bool> g_armed_after{false}, g_armed_before{false};

// Results, one bit per failed check (0: all good), per handler.
struct Results {
    unsigned prepare = 0, parent = 0, child = 0;
    bool prepare_ran = false, parent_ran = false, child_ran = false;
};
Results g_results;

// ---- handlers registered after load: every call works ----

unsigned works(uint8_t imm) {
    unsigned bad = 0;
    void *q = jit_arena_alloc(g_target.arena, kRet42.data(), kRet42.size());
    if (!q)
        bad |= 1;
    else if (jit_free(q) != 0)
        bad |= 2;
    if (jit_update(g_target.live + kRetImm, &imm, 1) != 0 || g_target.live[kRetImm] != imm)
        bad |= 4;
    void *d = jit_alloc(kRet42.data(), kRet42.size());  // the default arena, created if need be
    if (!d || jit_free(d) != 0)
        bad |= 8;
    if (jit_size(g_target.live) == 0)
        bad |= 16;
    struct jit_stats s;
    if (jit_arena_stats(g_target.arena, &s) != 0)
        bad |= 32;
    return bad;
}

void after_prepare() {
    if (!g_armed_after)
        return;
    g_results.prepare_ran = true;
    g_results.prepare = works(1);
    if (jit_free(g_target.to_free) != 0)
        g_results.prepare |= 64;
    g_target.to_free = nullptr;
    jit_arena *a = jit_arena_create(nullptr);
    if (!a || jit_arena_destroy(a) != 0)
        g_results.prepare |= 128;
}
void after_parent() {
    if (!g_armed_after)
        return;
    g_results.parent_ran = true;
    g_results.parent = works(2);
}
void after_child() {
    if (!g_armed_after)
        return;
    g_results.child_ran = true;
    g_results.child = works(3);
}

// ---- handlers registered before the library's: every call fails at once ----

// Each call in the fork window: fails with EDEADLK (or returns 0 / NULL) and changes
// nothing.
unsigned refused() {
    unsigned bad = 0;
    auto edeadlk = [](bool failed) { return failed && errno == EDEADLK; };
    uint8_t before = g_target.live[kRetImm];
    uint8_t imm = static_cast<uint8_t>(before + 1);
    errno = 0;
    if (!edeadlk(jit_update(g_target.live + kRetImm, &imm, 1) != 0) || g_target.live[kRetImm] != before)
        bad |= 1;
    errno = 0;
    if (!edeadlk(jit_free(g_target.live) != 0))
        bad |= 2;
    errno = 0;
    if (!edeadlk(jit_arena_alloc(g_target.arena, kRet42.data(), kRet42.size()) == nullptr))
        bad |= 4;
    errno = 0;
    if (!edeadlk(jit_alloc(kRet42.data(), kRet42.size()) == nullptr))
        bad |= 8;
    errno = 0;
    if (!edeadlk(jit_arena_create(nullptr) == nullptr))
        bad |= 16;
    errno = 0;
    if (!edeadlk(jit_arena_destroy(g_target.spare) != 0))
        bad |= 32;
    struct jit_stats s;
    errno = 0;
    if (!edeadlk(jit_arena_stats(g_target.arena, &s) != 0))
        bad |= 64;
    errno = 0;
    if (!edeadlk(jit_arena_check(g_target.arena, nullptr, 0) != 0))
        bad |= 128;
    if (jit_size(g_target.live) != 0 || jit_arena_of(g_target.live) != nullptr)
        bad |= 256;
    if (jit_shrink() != 0 || jit_arena_shrink(g_target.arena) != 0)
        bad |= 512;
    FILE *f = std::tmpfile();
    errno = 0;
    if (!f || !edeadlk(jit_dump(f, 0) != 0))
        bad |= 1024;
    if (f)
        std::fclose(f);
    errno = 0;
    if (!edeadlk(jit_arena_by_id(jit_arena_id(g_target.arena)) == nullptr))
        bad |= 2048;
    errno = 0;
    if (!edeadlk(jit_shrink_alloc(g_target.live, 1) != 0))
        bad |= 4096;
    jit_batch *b = jit_batch_create(g_target.arena);
    errno = 0;
    if (!b || !edeadlk(jit_batch_alloc(b, kRet42.data(), kRet42.size(), nullptr) == nullptr))
        bad |= 8192;
    jit_batch_destroy(b);
    errno = 0;
    if (!edeadlk(jit_patch(g_target.live + kRetImm, &imm, 1) != 0) || g_target.live[kRetImm] != before)
        bad |= 16384;
    return bad;
}

void before_prepare() {
    if (!g_armed_before)
        return;
    g_results.prepare_ran = true;
    g_results.prepare = refused();
}
void before_parent() {
    if (!g_armed_before)
        return;
    g_results.parent_ran = true;
    g_results.parent = refused();
}
void before_child() {
    if (!g_armed_before)
        return;
    g_results.child_ran = true;
    g_results.child = refused();
}

// Registered before the library's own handlers: this constructor runs before every
// constructor of default priority, the library's included.
__attribute__((constructor(101))) void register_before_the_library() {
    pthread_atfork(before_prepare, before_parent, before_child);
}

int set_up_target() {
    g_target.arena = rel::make_arena(JIT_WRITER_PROC_MEM, JIT_PLACE_NEAR_LIBRARY,
                                     JIT_ARENA_IGNORE_ENV, JIT_DEFAULT_RETAIN_BYTES);
    PREQ(g_target.arena != nullptr);
    g_target.live = static_cast<uint8_t *>(jit_arena_alloc(g_target.arena, kRet42.data(), kRet42.size()));
    g_target.to_free = static_cast<uint8_t *>(jit_arena_alloc(g_target.arena, kRet42.data(), kRet42.size()));
    g_target.spare = jit_arena_create(nullptr);
    PREQ(g_target.live && g_target.to_free && g_target.spare);
    return 0;
}

// Forks; the child reports its handler's results. 0 or the failed line.
int fork_and_check(bool expect_live_freed) {
    int st = rel::in_child([] {
        PREQ(g_results.child_ran);
        if (g_results.child)
            std::fprintf(stderr, "child handler: checks failed, mask %#x\n", g_results.child);
        PREQ(g_results.child == 0);
        // the library works in the child after the handlers
        void *q = jit_arena_alloc(g_target.arena, kRet42.data(), kRet42.size());
        PREQ(q && jit_free(q) == 0);
        PREQ(rel::check(g_target.arena).empty());
        return 0;
    });
    PREQ(st == 0);
    PREQ(g_results.prepare_ran && g_results.parent_ran);
    if (g_results.prepare || g_results.parent)
        std::fprintf(stderr, "prepare / parent handler: checks failed, masks %#x %#x\n",
                     g_results.prepare, g_results.parent);
    PREQ(g_results.prepare == 0 && g_results.parent == 0);
    PREQ(jit_size(g_target.live) > 0);  // nothing the refused calls did stuck
    if (expect_live_freed)
        PREQ(jit_arena_destroy(g_target.spare) == 0);
    PREQ(rel::check(g_target.arena).empty());
    return 0;
}

TEST(AtforkHandlers, RegisteredAfterLoadCallsWork) {
    int rc = proc::scenario(kScenarioSeconds, [] {
        // Registered before any arena exists (a program's main() doing this first).
        pthread_atfork(after_prepare, after_parent, after_child);
        if (int e = set_up_target())
            return e;
        g_armed_after = true;
        return fork_and_check(true);
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

TEST(AtforkHandlers, RegisteredBeforeTheLibraryFailFastWithEdeadlk) {
    int rc = proc::scenario(kScenarioSeconds, [] {
        if (int e = set_up_target())
            return e;
        g_armed_before = true;
        return fork_and_check(true);
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

}  // namespace
