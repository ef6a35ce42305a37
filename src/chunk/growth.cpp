// Chunk growth policy (see growth.h): how much of a chunk to expose, and when to grow it.
// The mapping work itself is the writer's (poke: Writer::map / Writer::expose).
#include "chunk/growth.h"

#include "os/os.h"

#include <algorithm>

namespace jitalloc {

size_t first_step() { return std::max(kGrowStep, os::page_size()); }

namespace {

// The first exposure of the doubling steps from `from` on that covers need bytes.
size_t step_covering(size_t from, size_t need, size_t size) {
    size_t next = from;
    while (next < need)
        next = next * 2 <= kGrowWholeAfter ? next * 2 : size;
    return next;
}

}  // namespace

size_t initial_exposure(size_t size, bool arena_has_chunks, size_t need) {
    if (size != kChunkSize || arena_has_chunks)
        return size;
    return step_covering(first_step(), need, size);
}

int chunk_cover(const Writer &w, Chunk *c, unsigned end_page) {
    size_t need = size_t{end_page} << kPageShift;
    size_t have = c->mapping.exposed;
    if (need <= have)
        return 0;
    return w.expose(c->mapping, step_covering(have, need, c->size));
}

}  // namespace jitalloc
