// jit_patch / jit_patch_batch: validation, the patch lock, the thread's signal mask,
// the table of sites in flight, and all-or-nothing around the architecture's protocol
// (invariants in patch.h).
#include "patch/patch.h"

#include "arch/live_patch.h"
#include "arena/arena.h"
#include "observe/observe.h"
#include "patch/patch_run.h"
#include "patch/trap.h"
#include "poke/write_gate.h"
#include "serialise/serialise.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace jitalloc {

namespace {

std::mutex g_patch_lock;

// Blocks asynchronous signals and cancellation on this thread for its lifetime. The
// synchronous faults stay open: raised while blocked, the kernel would kill the process.
class QuietThread {
public:
    QuietThread() {
        sigset_t all;
        sigfillset(&all);
        for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGTRAP})
            sigdelset(&all, s);
        pthread_sigmask(SIG_BLOCK, &all, &old_mask_);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_cancel_);
    }
    ~QuietThread() {
        pthread_setcancelstate(old_cancel_, nullptr);
        pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    }
    QuietThread(const QuietThread &) = delete;
    QuietThread &operator=(const QuietThread &) = delete;

private:
    sigset_t old_mask_;
    int old_cancel_ = 0;
};

// membarrier SYNC_CORE must be registered before use; an arena created with
// JIT_ARENA_NO_SYNC_CORE has not done it, and live patching cannot do without it.
int need_sync_core(const jit_arena *a) {
    if (a->sync_core)
        return 0;
    int rc = register_sync_core();
    return rc == EINVAL || rc == ENOSYS ? EOPNOTSUPP : rc;
}

}  // namespace

int live_patch(jit_arena *a, const jit_patch_site *sites, size_t n) {
    if (!a || !sites || n == 0)
        return EINVAL;
    QuietThread quiet;
    GateGuard op(a->gate);
    if (!op)
        return EDEADLK;
    std::lock_guard<std::mutex> one_at_a_time(g_patch_lock);
    PatchRun run(a);
    if (int rc = run.prepare(sites, n))
        return rc;
    // Valid input; can it be done here?
    if (!arch::kHasLivePatch || a->writer->kind() == JIT_WRITER_MPROTECT)
        return EOPNOTSUPP;  // mprotect: the page would not be executable during a write
    if (run.empty())
        return 0;
    if (int rc = need_sync_core(a))
        return rc;
    if (arch::kPatchUsesTraps) {
        if (int rc = patch_trap::install())
            return rc;
        patch_trap::publish(run.addresses(), run.size());
    }
    // Observers (a debugger's breakpoints) let go of the sites' allocations once, before
    // the first step (the steps stage raw: jit_batch::stage_raw_in_gate).
    if (a->observed)
        run.for_each_allocation([a](const uint8_t *start) { observe_rewriting(a, start); });
    int rc;
    {
        // Groups that write other owners' bytes back: no other write meanwhile. Taken
        // before the first int3 is written, held without any library lock (write_gate.h).
        WriteGateExclusive others_wait(run.spans_foreign());
        rc = arch::patch_transition(run, PatchImage::new_bytes);
        if (rc) {
            // Back to the old bytes by the same protocol (a second attempt if the first
            // undo fails too). If both fail, a site may be left holding its int3: a thread
            // reaching it then gets SIGTRAP, as with any trap byte.
            for (int attempt = 0; attempt < 2; attempt++)
                if (arch::patch_transition(run, PatchImage::old_bytes) == 0)
                    break;
        }
    }
    if (arch::kPatchUsesTraps)
        patch_trap::retire();
    if (a->observed)
        run.for_each_allocation(
            [a, rc](const uint8_t *start) { observe_rewritten(a, start, rc == 0); });
    if (!rc)
        a->total_updates.fetch_add(1, std::memory_order_relaxed);
    return rc;
}

}  // namespace jitalloc
