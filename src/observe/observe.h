// Observers of allocations for profilers and debuggers (perf map, GDB JIT interface).
// Called by the arena after an allocation is written and before it is freed, outside
// the arena's locks.
#pragma once

#include <cstddef>

struct jit_arena;

namespace jitalloc {

void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name);
void observe_free(jit_arena *a, const void *code);

}  // namespace jitalloc
