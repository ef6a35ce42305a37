// AArch64 facts for the architecture seam (see arch.h). Included only through arch.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitalloc::arch {

inline constexpr const char kName[] = "aarch64";

// brk #0x100, the kernel's AARCH64_BREAK_FAULT (what its BPF JIT fills images with); in
// user space any brk raises SIGTRAP, and #0x100 is not GDB's breakpoint (brk #0).
// Little-endian bytes of 0xd4202000; instructions are 4 bytes, 4-byte aligned.
inline constexpr size_t kTrapInsnSize = 4;
inline constexpr uint8_t kTrapInsn[kTrapInsnSize] = {0x00, 0x20, 0x20, 0xd4};
inline constexpr size_t kInsnAlign = 4;

// The architecture asks every PE that runs modified instructions to execute a context
// synchronisation event (ISB) after the cache maintenance completes, also for code it
// never ran (ARM ARM, "Concurrent modification and execution of instructions"; the
// kernel's flush_icache_range kicks all CPUs for fresh BPF images). jitalloc cannot put
// an ISB in the caller's thread, so it runs membarrier SYNC_CORE (an exception return on
// each CPU running the process) for fresh code too.
inline constexpr bool kFreshCodeNeedsCpuSync = true;

// bl / b: imm26 words, +-128 MiB.
inline constexpr size_t kDirectBranchReach = size_t{128} << 20;

// 48-bit VA (4 KiB and 16 KiB pages; with 52-bit VA the kernel hands out addresses
// above 2^48 only to mmap hints above it). PIE and shared libraries load near 2^48, so
// the x86-64 value of 47 bits would miss most of the address space.
inline constexpr unsigned kUserAddressBits = 48;

// Clean the data cache and invalidate the instruction cache to the point of
// unification over the range, DSB ISH (reaches every CPU's caches), ISB on this CPU:
// libgcc's __aarch64_sync_cache_range, which reads CTR_EL0 and skips what IDC/DIC make
// unnecessary. Other CPUs' pipelines need SYNC_CORE (see kFreshCodeNeedsCpuSync).
inline void sync_icache(void *p, size_t len) {
    auto *b = static_cast<char *>(p);
    __builtin___clear_cache(b, b + len);
}

}  // namespace jitalloc::arch
