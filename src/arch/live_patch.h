// The architecture seam of live patching (src/patch): what changes from one CPU to the
// next is here, what does not (validation, locking, the table of sites in flight, the
// SIGTRAP handler's chaining) is in src/patch.
//
//   x86-64 (live_patch_x86_64.cpp, trap_context_x86_64.h): variable-length instructions
//     of up to 15 bytes, no single write is atomic for a whole instruction, so the
//     breakpoint protocol of text_poke_bp(): int3 on the first byte, sync, the rest,
//     sync, the first byte, sync. Threads that hit the int3 meanwhile trap (SIGTRAP) and
//     are restarted.
//   arm64 (not implemented: jit_patch fails with EOPNOTSUPP). B, BL, NOP, BRK, SVC, HVC,
//     SMC and ISB may be swapped for one another while other CPUs execute them (ARM ARM,
//     "Concurrent modification and execution of instructions"; the kernel's
//     aarch64_insn_patch_text_nosync relies on it), provided the new word lands by one
//     single-copy-atomic aligned 32-bit store. So the protocol would be: check that old
//     and new instruction are both on that list (patch_site_ok: 4-byte aligned, len 4),
//     one write of the whole instruction (PatchPart::whole), cache maintenance to the
//     point of unification (the writers do it), one sync (membarrier SYNC_CORE: a
//     context synchronisation on every CPU); no trap, kPatchUsesTraps = false. What is
//     missing is the atomic store: the strict writers write through the kernel
//     (/proc/self/mem, memfd pwrite), whose copy_to_user_page / memcpy promises no
//     single-copy atomicity, so a fetch could see a torn word; it needs a writer that
//     stores the word itself (the alias writers can: an aligned str through the RW view)
//     or a kernel copy known to store 32 bits at once. Other instructions need a trap
//     protocol like x86-64's (BRK on the word, sync, the new word, sync) and a SIGTRAP
//     handler reading the arm64 trap context (trap_context.h).
//
// "sync" is PatchRun::sync() (src/serialise): every CPU running another thread of this
// process executes a serialising instruction before it returns.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace jitalloc {

class PatchRun;
enum class PatchImage : uint8_t;

namespace arch {

#if defined(__x86_64__)
inline constexpr bool kHasLivePatch = true;
inline constexpr bool kPatchUsesTraps = true;  // threads may trap on a site in flight
inline constexpr size_t kMaxPatchLen = 15;     // the longest x86-64 instruction
inline constexpr uint8_t kPatchBreakpoint = 0xCC;  // int3, planted on a site's first byte
#else
inline constexpr bool kHasLivePatch = false;   // jit_patch: EOPNOTSUPP
inline constexpr bool kPatchUsesTraps = false;
inline constexpr size_t kMaxPatchLen = 4;
inline constexpr uint8_t kPatchBreakpoint = 0;  // no trap protocol here (kPatchUsesTraps)
#endif

#if defined(__x86_64__)
// Whether a site of len bytes at dst can be patched on this architecture (alignment,
// instruction size). len is already within 1 .. kMaxPatchLen.
bool patch_site_ok(const uint8_t *dst, size_t len);

// Takes every site of run from whatever it holds now (the old code, or any state a
// failed transition left behind) to `to`, so that a thread executing a site meanwhile
// runs its complete old or complete new instruction, or traps (kPatchUsesTraps). 0, or
// the errno of the failed write or sync (the run is then in some intermediate state
// from which another transition starts).
int patch_transition(PatchRun &run, PatchImage to);
#else
// No protocol for this architecture yet: jit_patch reports EOPNOTSUPP before these run.
inline bool patch_site_ok(const uint8_t *, size_t) { return true; }
inline int patch_transition(PatchRun &, PatchImage) { return EOPNOTSUPP; }
#endif

}  // namespace arch
}  // namespace jitalloc
