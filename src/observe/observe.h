// Observers of allocations for profilers and debuggers: the door the arena and batches
// call them through. The observers (perf_map, gdb_register) hear of code when it is
// written, not when memory is reserved: an allocation made with its code is announced at
// once, one reserved without code (code == NULL) at the first write of code into it —
// whichever path writes it (jit_update, a batch commit; the C++ JitRuntime and the ORC
// memory manager write through those). A pending `break f` in GDB resolves only once f's
// bytes are there, and no breakpoint is ever put into bytes about to change.
//
// The observers keep their own table of live allocations (records.h), guarded by the
// process-wide observer lock (process/locks.h). Lock order: the observer lock, then arena
// locks (only inside the commit observe_free runs); it is taken inside arena operations,
// so nobody may wait for an arena's fork gate while holding it. No arena lock is held
// when the arena calls in here.
//
// Enabled per arena with JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT, or for every arena
// that does not set JIT_ARENA_IGNORE_ENV by the environment:
//   JITALLOC_PERF_MAP=1     /tmp/perf-PID.map, entries removed on free (file rewritten)
//   JITALLOC_PERF_MAP=keep  the same, append-only: freed entries stay (see README)
//   JITALLOC_GDB_JIT=1      GDB JIT interface registration
//   JITALLOC_JITDUMP=1      perf jitdump (jit-PID.dump in JITALLOC_JITDUMP_DIR or /tmp)
#pragma once

#include <cstddef>
#include <cstdint>

struct jit_arena;
struct jit_descriptor;

namespace jitalloc {

// A new live allocation of len bytes at code. written: its code is in place (announced
// now); else it is a reservation, announced at its first code write (observe_rewritten).
void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name, bool written);

// Bytes of the live allocation starting at start are about to change: an update, the
// trap fill of a free, the trap-filled tail of a shrink. Debuggers let go of the old
// bytes first: a breakpoint GDB keeps inserted in them would be overwritten (and never
// hit), and at GDB's next stop the byte it saved would be written back over the new
// bytes. Every call is followed by observe_rewritten, or by a successful free.
void observe_rewriting(jit_arena *a, const void *start);
// The write announced by observe_rewriting is over. code_written: it wrote code (the
// first code of a reservation, or an update), which is announced now; else (the write
// failed, or only traps went past the code) the allocation is announced again if it had
// been. new_len (0: unchanged): the allocation's length after a shrink.
void observe_rewritten(jit_arena *a, const void *start, bool code_written, size_t new_len = 0);

// One step of an arena operation that an observer runs at the right moment: 0, or an
// errno with nothing changed.
struct ArenaStep {
    int (*fn)(void *ctx);
    void *ctx;
    int operator()() const { return fn(ctx); }
    template <class F>
    static ArenaStep of(F &f) {
        return {[](void *p) { return (*static_cast<F *>(p))(); }, &f};
    }
};
// The last step of a free: gives the memory back to the allocator (0, or an errno with
// the allocation still live). Observers hear of a free only once it succeeded, and
// before the memory can be handed out again: commit runs with the observer lock held,
// and the record of the allocation at code is dropped if and only if commit returned 0.
// Returns commit's result.
int observe_free(jit_arena *a, const void *code, const ArenaStep &commit);

// Observer flags (JIT_ARENA_PERF_MAP / _GDB_JIT / _JITDUMP) requested by the environment.
unsigned observe_env_flags();
// The arena is being destroyed: drop every record of its allocations.
void observe_arena_destroyed(jit_arena *a);
// jitalloc's own GDB JIT descriptor (exported as __jit_debug_descriptor), for tests.
const jit_descriptor &observe_gdb_descriptor();
// The name an observer recorded for the allocation starting at code; false if none.
bool observe_name(const void *code, char *buf, size_t buf_len);

}  // namespace jitalloc
