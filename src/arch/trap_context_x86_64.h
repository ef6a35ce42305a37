// x86-64 facts the SIGTRAP handler of src/patch/trap.cpp needs: where the trapping int3
// was, how to restart a thread at an address, and whether an int3 is still in memory.
// Everything here is async-signal-safe.
#pragma once

#include "os/os.h"
#include "poke/writer.h"

#include <signal.h>
#include <ucontext.h>

#include <cerrno>
#include <cstdint>

namespace jitalloc::arch {

// The address of the breakpoint instruction that raised this SIGTRAP, or 0 when the
// signal is not a breakpoint trap (kill/raise, single-step, hardware breakpoints).
// int3 (and int $3) arrive as si_code SI_KERNEL with RIP just past the instruction.
inline uintptr_t breakpoint_address(const siginfo_t *info, const ucontext_t *uc) {
    if (info->si_code != SI_KERNEL)
        return 0;
    return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]) - 1;
}

// Resume the interrupted thread at pc.
inline void restart_at(ucontext_t *uc, uintptr_t pc) {
    uc->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(pc);
}

// True unless the breakpoint at `at` (from breakpoint_address, inside jitalloc code) is
// known to be gone: the byte there is neither int3 nor the 03 of `int $3` (CD 03).
// Read without faulting (the chunk may be unmapped by now: then "still there"); where
// process_vm_readv is not allowed (a seccomp filter), read directly: `at` was mapped
// when it trapped, and only a concurrent free of that code could unmap it.
inline bool breakpoint_still_there(uintptr_t at) {
    uint8_t b[2] = {0, 0};  // the byte before (for CD 03) and the byte itself
    const bool same_page = (at & 4095) != 0;
    const auto *from = reinterpret_cast<const uint8_t *>(same_page ? at - 1 : at);
    const size_t n = same_page ? 2 : 1;
    if (os::read_memory(b + 2 - n, from, n) != static_cast<ssize_t>(n)) {
        if (errno == EFAULT)
            return true;
        for (size_t i = 0; i < n; i++)
            b[2 - n + i] = reinterpret_cast<const volatile uint8_t *>(from)[i];
    }
    return b[1] == kPatchBreakpoint || (b[1] == 0x03 && b[0] == 0xCD);
}

}  // namespace jitalloc::arch
