// Observers of allocations for profilers and debuggers (perf map, GDB JIT interface).
// Called by the arena after an allocation is written, outside the arena's locks, and
// around the step that completes a free (below). The observers keep their own table of
// live named allocations, guarded by one global observer lock. Lock order: the observer
// lock, then arena locks (only inside observe_free's commit); it is taken inside arena
// operations, so nobody may wait for an arena's fork gate while holding it.
//
// Enabled per arena with JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT, or for every arena
// that does not set JIT_ARENA_IGNORE_ENV by the environment:
//   JITALLOC_PERF_MAP=1     /tmp/perf-PID.map, entries removed on free (file rewritten)
//   JITALLOC_PERF_MAP=keep  the same, append-only: freed entries stay (see README)
//   JITALLOC_GDB_JIT=1      GDB JIT interface registration
#pragma once

#include <cstddef>
#include <cstdint>

struct jit_arena;
struct jit_descriptor;

namespace jitalloc {

void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name);

// The last step of a free: gives the memory back to the allocator. 0, or an errno with
// the allocation still live.
struct FreeCommit {
    int (*fn)(void *ctx);
    void *ctx;
    int operator()() const { return fn(ctx); }
};
// Observers hear of a free only once it succeeded, and before the memory can be handed
// out again: commit runs with the observer lock held, and the record of the allocation
// at code is dropped if and only if commit returned 0. Returns commit's result.
int observe_free(jit_arena *a, const void *code, const FreeCommit &commit);

// Observer flags (JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT) requested by the environment.
unsigned observe_env_flags();
// The arena is being destroyed: drop every record of its allocations.
void observe_arena_destroyed(jit_arena *a);
// jitalloc's own GDB JIT descriptor (exported as __jit_debug_descriptor), for tests.
const jit_descriptor &observe_gdb_descriptor();
// The name an observer recorded for the allocation starting at code; false if none.
bool observe_name(const void *code, char *buf, size_t buf_len);

}  // namespace jitalloc
