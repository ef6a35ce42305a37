// x86-64 live patching: the breakpoint protocol of the Linux kernel's text_poke_bp() /
// text_poke_bp_batch(), over every site of a run at once.
//
// Why it is safe: x86-64 gives no atomicity for a kernel copy of several bytes (the
// strict writers' copy is `rep movsb`), so a thread may never fetch a site whose bytes
// are half old, half new. The protocol changes, under running threads, only what a
// thread can fetch whole:
//   1. the first byte of every site becomes int3 (one byte: old or int3, never torn);
//      sync: no CPU still holds a prefetched copy of the old instruction's start;
//   2. the rest of the bytes: no thread can reach them, every entry is the int3 (the
//      caller guarantees nobody is inside the range, see jitalloc.h); sync;
//   3. the first byte of the new instruction; sync: every CPU fetches the new one.
// A thread reaching a site between 1 and 3 executes int3 and is restarted at the site
// by the SIGTRAP handler (src/patch/trap.cpp) once the run is finished.
// The same three steps undo a failed transition: they start from any state a failed
// write can leave (each write lands whole or not at all, per group of sites).
#include "arch/live_patch.h"

#include "patch/patch_run.h"

#if defined(__x86_64__)

namespace jitalloc::arch {

bool patch_site_ok(const uint8_t *, size_t) { return true; }  // any byte may start one

int patch_transition(PatchRun &run, PatchImage to) {
    // 1. int3 on every first byte (a rollback may find them there already).
    if (run.changes(PatchPart::head, PatchImage::trap)) {
        if (int rc = run.write(PatchPart::head, PatchImage::trap))
            return rc;
        if (int rc = run.sync())
            return rc;
    }
    // 2. The tails, behind the int3s; as the kernel does, no sync when none changed
    //    (a 1-byte instruction, or a new opcode with the same operand bytes).
    if (run.changes(PatchPart::tail, to)) {
        if (int rc = run.write(PatchPart::tail, to))
            return rc;
        if (int rc = run.sync())
            return rc;
    }
    // 3. The first bytes.
    if (int rc = run.write(PatchPart::head, to))
        return rc;
    return run.sync();
}

}  // namespace jitalloc::arch

#endif
