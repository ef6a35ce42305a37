// Process-wide set-up that is cheap while the process has one thread and dear once it has
// more, done when the library is loaded (process/fork.cpp's constructor) instead of at
// the first jit_alloc.
//
// Measured on the 2-core KVM guest (Linux 6.18), a process with one other thread asleep:
// its first jit_alloc took 22-29 ms of wall time (CPU 100-170 µs): membarrier's
// REGISTER_PRIVATE_EXPEDITED_SYNC_CORE took 9-15 ms and the F_DUPFD_CLOEXEC that moves the
// first descriptor to a high number 15 ms, both waiting for the other CPUs (the register
// syncs every runqueue running the mm; growing a descriptor table shared by threads
// waits for an RCU grace period). With a single thread each is a few µs.
//
// Invariants:
//  - Only done while __libc_single_threaded says the process has one thread (a library
//    loaded by dlopen into a threaded process skips it: the costs then stay where they
//    were, at the first arena and the first kept descriptor).
//  - Nothing here is required: each step is a wish whose failure changes nothing (an
//    arena registers SYNC_CORE itself, keep_fd moves its descriptor itself).
#pragma once

namespace jitalloc {

void prepare_while_single_threaded();

}  // namespace jitalloc
