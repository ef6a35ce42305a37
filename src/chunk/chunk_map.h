// Address -> chunk map (see chunk_map.cpp). chunk_lookup is declared in chunk.h.
#pragma once

#include "chunk/chunk.h"

namespace jitalloc {

// Registers every 2 MiB slot of c. false (nothing registered) if metadata is short.
bool chunk_map_insert(Chunk *c);
void chunk_map_erase(Chunk *c);

}  // namespace jitalloc
