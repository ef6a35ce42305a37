// x86-64 facts for the architecture seam (see arch.h). Included only through arch.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitalloc::arch {

inline constexpr const char kName[] = "x86-64";

// int3: one byte, so any byte boundary is an instruction boundary of the fill.
inline constexpr size_t kTrapInsnSize = 1;
inline constexpr uint8_t kTrapInsn[kTrapInsnSize] = {0xCC};
inline constexpr size_t kInsnAlign = 1;

// The kernel's rule (text_poke_copy for fresh BPF images syncs nobody; text_poke_bp for
// live code syncs every CPU): a CPU cannot hold stale instructions for bytes it never
// fetched to execute, and the pointer is published with a release store.
inline constexpr bool kFreshCodeNeedsCpuSync = false;

// call/jmp rel32.
inline constexpr size_t kDirectBranchReach = size_t{2} << 30;

// 4-level paging: user space ends at 2^47 (5-level paging hands out higher addresses
// only to mmap hints above it, which jitalloc never gives).
inline constexpr unsigned kUserAddressBits = 47;

// Instruction fetch is coherent with stores on x86-64; cross-modifying code running on
// other CPUs is serialised separately (membarrier SYNC_CORE).
inline void sync_icache(void *, size_t) {}

}  // namespace jitalloc::arch
