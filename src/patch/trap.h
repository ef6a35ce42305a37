// The SIGTRAP side of live patching: a lock-free table of the sites in flight and the
// process-wide handler that restarts threads which hit one of their int3s.
//
// Invariants:
//  - At most one set of sites is in flight (the caller holds the patch lock from
//    publish to retire). While it is, a thread that traps at one of its addresses waits
//    in the handler until retire() and then re-executes that address, which by then
//    holds the complete new (or, after a failed patch, old) instruction.
//  - A breakpoint trap at an address not in flight whose int3 has since gone from jitalloc
//    code memory (a patch finished between the thread's trap and its handler) also
//    re-executes the address: the thread behaves as if it arrived a moment later.
//  - Every other SIGTRAP goes to the action installed before ours, as the kernel would
//    have delivered it (its mask, SA_NODEFER, SA_RESETHAND; SIG_DFL / SIG_IGN: the
//    default action, which for a trap ends the process with SIGTRAP).
//  - The handler is async-signal-safe: atomics, sched_yield, sigprocmask, sigaction,
//    process_vm_readv; errno is preserved.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitalloc::patch_trap {

// Installs the handler (once per process; a failed attempt is retried next time).
// 0 or the errno of sigaction.
int install();

// Whether the handler is installed; how many trapped threads it restarted at a site
// (in flight, or whose int3 was gone by the time the handler ran).
bool installed();
uint64_t restarts();

// Makes traps at addrs[0..n) (sorted, owned by the caller until retire returns) wait.
void publish(const uintptr_t *addrs, size_t n);
// Ends the set in flight: waiting threads re-execute their site; returns once no
// handler still reads the table.
void retire();

}  // namespace jitalloc::patch_trap
