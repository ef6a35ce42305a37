// Allocation observers: none are wired up yet (perf map and GDB JIT registration come
// with the profiling work), so these only mark where they hook in.
#include "observe/observe.h"

namespace jitalloc {

void observe_alloc(jit_arena *, const void *, size_t, const char *) {}
void observe_free(jit_arena *, const void *) {}

}  // namespace jitalloc
