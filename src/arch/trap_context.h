// The architecture's trap facts for src/patch/trap.cpp (see src/arch/live_patch.h):
// JITALLOC_ARCH_PATCH_TRAPS is 1 where live patching uses breakpoint traps, and then
// arch::breakpoint_address / restart_at / breakpoint_still_there are defined.
#pragma once

#include "arch/live_patch.h"

#if defined(__x86_64__)
#include "arch/trap_context_x86_64.h"
#define JITALLOC_ARCH_PATCH_TRAPS 1
#else
#define JITALLOC_ARCH_PATCH_TRAPS 0
#endif

static_assert(jitalloc::arch::kPatchUsesTraps == (JITALLOC_ARCH_PATCH_TRAPS == 1));
