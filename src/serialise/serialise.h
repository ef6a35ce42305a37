// Cross-CPU serialisation of instruction fetch: after which writes into code memory the
// other threads of the process must execute a core-serialising instruction, and doing it.
// This is the one place that decides; docs/GUARANTEES.md ("Other threads and new code")
// argues why the rules are safe.
//
// Rules (x86-64):
//  - A write into bytes no thread can be running needs no cross-CPU serialisation: the
//    code of a new allocation, the first write into a reservation (an allocation that has
//    held no code since it was handed out), the trap fill of a freed allocation. This is
//    the kernel's text_poke_copy() for new BPF images: the code becomes reachable only
//    when the caller publishes its address after the write returns, and x86 keeps
//    instruction caches coherent with every store.
//  - A write into code other threads may be running (an allocation that has held code)
//    is followed by membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE), the user-space
//    form of text_poke_bp()'s text_poke_sync(): every running thread of the process
//    executes a serialising instruction before the call returns.
//  - While the process has a single thread nothing is serialised: no other thread can
//    have fetched anything, and a thread created later starts after the write.
// arm64: every write that another thread will run needs a context synchronisation event
// on that thread's CPU as well as cache maintenance to the point of unification (the
// kernel's arm64 text copy for new BPF images IPIs every CPU through flush_icache_range),
// so there even writes into fresh memory are serialised when the process has threads.
#pragma once

#include <cstdint>

#include "arch/arch.h"

namespace jitalloc {

// What a write into code memory replaces, as far as other CPUs can have fetched it.
enum class Replaces : uint8_t {
    unrun,      // bytes no thread can be running: an allocation that has held no code
                // since it was handed out, or memory being freed or not yet published
    live_code,  // code of a published allocation that other threads may be running
};

// Whether a write replacing r must be followed by serialising the other CPUs.
// Fresh code needs it only where the architecture says so (arch.h: arm64 yes, x86-64 no).
constexpr bool needs_core_sync(Replaces r) {
    return r == Replaces::live_code || arch::kFreshCodeNeedsCpuSync;
}

// True while the process certainly has one thread: glibc's __libc_single_threaded, which
// turns false before the first pthread_create / thrd_create (also those made inside libc,
// e.g. timer_create with SIGEV_THREAD) and is never set back (glibc 2.36: not even after
// the threads exit or in a forked child). Threads made with a raw clone() bypass it.
// Without glibc: always false.
bool process_single_threaded();

// Registers the process for membarrier SYNC_CORE (registration is per process; doing it
// again is harmless). 0, or the errno (EINVAL / ENOSYS: the kernel cannot do it).
int register_sync_core();

// Makes every other running thread of the process execute a core-serialising instruction
// (membarrier SYNC_CORE) before returning; nothing while the process is single-threaded
// or when the arena could not register for SYNC_CORE (registered == false). 0, or the
// errno of a failed membarrier. Writers of code absorb a failure (the write itself
// succeeded); a live-patching protocol (src/patch), whose next step is safe only once
// this one is, checks it.
int serialise_other_cpus(bool registered);

// After a successful write that replaced r: serialises the other CPUs if r needs it.
inline void after_code_write(Replaces r, bool registered) {
    if (needs_core_sync(r))
        (void)serialise_other_cpus(registered);
}

}  // namespace jitalloc
