// The SIGTRAP handler of live patching and its table of sites in flight (invariants in
// trap.h). The architecture's part (where the trap was, how to restart) is in
// src/arch/<arch>/trap_context.h.
#include "patch/trap.h"

#include "arch/live_patch.h"
#include "chunk/chunk.h"
#include "os/os.h"

#include "arch/trap_context.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

namespace jitalloc::patch_trap {

#if JITALLOC_ARCH_PATCH_TRAPS

namespace {

// ---- the set in flight ----
// publish() fills g_set, then makes g_current point at it; a handler counts itself in
// g_readers before loading g_current and out after its lookup; retire() clears
// g_current and waits for g_readers to reach 0 before the caller may reuse the memory.
// g_epoch is odd while a set is in flight, and moves on at retire().
struct InflightSet {
    const uintptr_t *addrs;
    size_t n;
    uint64_t epoch;
};
InflightSet g_set;
std::atomic<const InflightSet *> g_current{nullptr};
std::atomic<unsigned> g_readers{0};
std::atomic<uint64_t> g_epoch{0};
std::atomic<uint64_t> g_restarts{0};  // threads restarted at a site (tests, stats)

// If site is in flight: its set's epoch (odd); else 0.
uint64_t epoch_in_flight(uintptr_t site) {
    g_readers.fetch_add(1, std::memory_order_seq_cst);
    const InflightSet *s = g_current.load(std::memory_order_seq_cst);
    uint64_t epoch = 0;
    if (s && std::binary_search(s->addrs, s->addrs + s->n, site))
        epoch = s->epoch;
    g_readers.fetch_sub(1, std::memory_order_release);
    return epoch;
}

// ---- the handler ----
struct sigaction g_prev;                 // the action before ours (set before ours runs)
std::atomic<bool> g_prev_reset{false};   // its SA_RESETHAND has been used up
std::atomic<bool> g_installed{false};
std::mutex g_install_lock;

// Whether a thread trapped at `site` should simply re-execute it.
bool restart_site(uintptr_t site) {
    const bool jit_code = chunk_lookup(reinterpret_cast<const void *>(site)) != nullptr;
    for (;;) {
        uint64_t before = g_epoch.load(std::memory_order_seq_cst);
        if (uint64_t epoch = epoch_in_flight(site)) {
            // The patch is under way: wait for its last step, then run the new code.
            while (g_epoch.load(std::memory_order_acquire) == epoch)
                sched_yield();
            return true;
        }
        // Not in flight. If its int3 is gone from jitalloc code, a patch finished after
        // this thread trapped (its handler ran late): re-execute, as if it came later.
        if (jit_code && !arch::breakpoint_still_there(site))
            return true;
        // The int3 is there and no patch started or ended while we looked: no patch put
        // it there (a patch's int3s are gone before its epoch moves on). Otherwise a
        // patch may have put it back meanwhile: look again.
        if (g_epoch.load(std::memory_order_seq_cst) == before)
            return false;
    }
}

// The default action of SIGTRAP (terminate with a core dump), as without us.
void default_action(ucontext_t *uc) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)os::sigaction(SIGTRAP, &dfl, nullptr);
    // Pending now, delivered (and fatal) as soon as the handler returns and the
    // interrupted thread's mask, without SIGTRAP, is back.
    sigdelset(&uc->uc_sigmask, SIGTRAP);
    raise(SIGTRAP);
}

// Delivers the signal to the action that was installed before ours.
void chain(int sig, siginfo_t *info, ucontext_t *uc) {
    struct sigaction prev = g_prev;
    if ((prev.sa_flags & SA_RESETHAND) && g_prev_reset.exchange(true)) {
        prev.sa_handler = SIG_DFL;
        prev.sa_flags = 0;
    }
    if (!(prev.sa_flags & SA_SIGINFO) && (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)) {
        // A trap the kernel raised cannot be ignored: it would have forced the default.
        bool from_kernel = info->si_code > 0;
        if (prev.sa_handler == SIG_IGN && !from_kernel)
            return;
        default_action(uc);
        return;
    }
    // The mask the kernel would have set for that handler.
    sigset_t mask = uc->uc_sigmask;
    sigorset(&mask, &mask, &prev.sa_mask);
    if (!(prev.sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    if (prev.sa_flags & SA_SIGINFO)
        prev.sa_sigaction(sig, info, uc);
    else
        prev.sa_handler(sig);
}

void on_sigtrap(int sig, siginfo_t *info, void *ctx) {
    int saved_errno = errno;
    auto *uc = static_cast<ucontext_t *>(ctx);
    uintptr_t site = arch::breakpoint_address(info, uc);
    if (site && restart_site(site)) {
        g_restarts.fetch_add(1, std::memory_order_relaxed);
        arch::restart_at(uc, site);
    } else {
        chain(sig, info, uc);
    }
    errno = saved_errno;
}

void after_fork_child() {
    // Only the forking thread lives on: no handler is reading the table any more (no
    // set is in flight across fork: jit_patch runs inside the arena's fork gate).
    g_readers.store(0, std::memory_order_relaxed);
}

}  // namespace

int install() {
    if (g_installed.load(std::memory_order_acquire))
        return 0;
    std::lock_guard<std::mutex> g(g_install_lock);
    if (g_installed.load(std::memory_order_relaxed))
        return 0;
    struct sigaction prev {};
    if (os::sigaction(SIGTRAP, nullptr, &prev) != 0)
        return errno;
    g_prev = prev;  // before ours can run
    struct sigaction sa {};
    sa.sa_sigaction = on_sigtrap;
    // SA_ONSTACK: a thread's sigaltstack, if it has one. SIGTRAP itself stays blocked in
    // the handler; so do all asynchronous signals (their handlers run after ours), but
    // not the synchronous faults, which must never arrive blocked.
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | (prev.sa_flags & SA_RESTART);
    sigfillset(&sa.sa_mask);
    for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS})
        sigdelset(&sa.sa_mask, s);
    struct sigaction replaced {};
    if (os::sigaction(SIGTRAP, &sa, &replaced) != 0)
        return errno;
    if (replaced.sa_sigaction != prev.sa_sigaction || replaced.sa_flags != prev.sa_flags)
        g_prev = replaced;  // changed by another thread in between
    static std::once_flag atfork;
    std::call_once(atfork, [] { pthread_atfork(nullptr, nullptr, after_fork_child); });
    g_installed.store(true, std::memory_order_release);
    return 0;
}

bool installed() { return g_installed.load(std::memory_order_acquire); }
uint64_t restarts() { return g_restarts.load(std::memory_order_relaxed); }

void publish(const uintptr_t *addrs, size_t n) {
    uint64_t epoch = g_epoch.load(std::memory_order_relaxed) + 1;  // odd
    g_set = {addrs, n, epoch};
    g_epoch.store(epoch, std::memory_order_seq_cst);
    // Before the first int3 is written: a thread that fetches one finds the set.
    g_current.store(&g_set, std::memory_order_seq_cst);
}

void retire() {
    g_epoch.store(g_set.epoch + 1, std::memory_order_seq_cst);
    g_current.store(nullptr, std::memory_order_seq_cst);
    while (g_readers.load(std::memory_order_acquire) != 0)
        sched_yield();
}

#else  // no architecture here patches with traps (arch::kPatchUsesTraps)

int install() { return EOPNOTSUPP; }
bool installed() { return false; }
uint64_t restarts() { return 0; }
void publish(const uintptr_t *, size_t) {}
void retire() {}

#endif

}  // namespace jitalloc::patch_trap
