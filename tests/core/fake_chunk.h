// A chunk for unit tests of the metadata layers (slabs, packs): its 2 MiB are heap memory
// filled with the trap pattern (the checkers read free memory to verify it holds traps),
// its descriptors reset as a new chunk's are. Nothing is mapped ROX.
#pragma once

#include "chunk/chunk.h"

#include "../common/trap_fill.h"

#include <cstdlib>
#include <memory>

namespace jt {

struct FakeChunk {
    std::unique_ptr<jitalloc::Chunk> chunk = std::make_unique<jitalloc::Chunk>();
    uint8_t *mem = static_cast<uint8_t *>(std::aligned_alloc(jitalloc::kChunkSize, jitalloc::kChunkSize));

    FakeChunk() {
        if (!mem)
            return;  // tests check mem
        jt_traps::fill_traps(mem, jitalloc::kChunkSize);
        chunk->base = mem;
        chunk->size = jitalloc::kChunkSize;
        for (unsigned i = 0; i < jitalloc::kPagesPerChunk; i++) {
            chunk->pages[i].chunk = chunk.get();
            chunk->pages[i].index = static_cast<uint16_t>(i);
        }
    }
    ~FakeChunk() { std::free(mem); }
    FakeChunk(const FakeChunk &) = delete;
    FakeChunk &operator=(const FakeChunk &) = delete;
};

}  // namespace jt
