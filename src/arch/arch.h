// The architecture seam: everything jitalloc needs to know about the instruction set it
// hands out memory for. Nothing outside src/arch/ tests __x86_64__ / __aarch64__ in the
// allocator; each fact below has one definition per architecture (arch_x86_64.h,
// arch_aarch64.h) with the reason for its value.
//
// What an architecture provides (all constexpr, so the x86-64 paths cost what they did):
//  - kTrapInsn / kTrapInsnSize: the trap instruction code memory is filled with. Fresh,
//    freed and tail memory hold whole trap instructions laid out from a chunk's base, so
//    the byte expected at any address is trap_byte_at(address).
//  - kInsnAlign: alignment of an instruction. JIT_ALLOC_ALIGN and every internal fill
//    granule are multiples of it, so an allocation starts (and a trap fill starts and
//    ends) on an instruction boundary.
//  - kFreshCodeNeedsCpuSync: whether other CPUs must be context-synchronised before they
//    may run code written into memory that held only traps (live code always needs it).
//  - kDirectBranchReach: reach of the direct call instruction (x86-64 rel32, arm64 bl);
//    the default placement window follows it.
//  - kUserAddressBits: width of the user address space the kernel hands out by default.
//  - sync_icache(p, len): makes instructions stored into [p, p+len) by this process (a
//    memcpy through an alias or a flipped page, or a kernel write into a memfd's page
//    cache) visible to instruction fetch on every CPU. Writers whose kernel path already
//    does this (see Writer::kernel_syncs_icache) skip it.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)
#include "arch/arch_x86_64.h"
#elif defined(__aarch64__)
#include "arch/arch_aarch64.h"
#else
#error "jitalloc: unsupported architecture (x86-64 and AArch64 are supported)"
#endif

namespace jitalloc::arch {

static_assert(kTrapInsnSize > 0 && (kTrapInsnSize & (kTrapInsnSize - 1)) == 0,
              "trap fills repeat in power-of-two periods");
static_assert(kInsnAlign % kTrapInsnSize == 0 || kTrapInsnSize % kInsnAlign == 0);

// The trap-fill byte at address (or chunk offset) a: fills are laid out from 2 MiB
// aligned chunk bases, so the phase of the pattern is the address's.
constexpr uint8_t trap_byte_at(uintptr_t a) { return kTrapInsn[a % kTrapInsnSize]; }

}  // namespace jitalloc::arch
