// Chunk growth policy (see growth.h): how much of a chunk to expose, and when to grow it.
// The mapping work itself is the writer's (poke: Writer::map / Writer::expose).
#include "chunk/growth.h"

namespace jitalloc {

size_t initial_exposure(size_t size, bool arena_has_chunks) {
    return size == kChunkSize && !arena_has_chunks ? kGrowStep : size;
}

int chunk_cover(const Writer &w, Chunk *c, unsigned end_page) {
    size_t need = size_t{end_page} << kPageShift;
    size_t have = c->mapping.exposed;
    if (need <= have)
        return 0;
    size_t next = have;
    while (next < need)
        next = next * 2 <= kGrowWholeAfter ? next * 2 : c->size;
    return w.expose(c->mapping, next);
}

}  // namespace jitalloc
