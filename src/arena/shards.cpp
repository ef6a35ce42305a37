// The thread -> shard assignment (see shards.h).
#include "arena/shards.h"

namespace jitalloc {

namespace {

std::atomic<unsigned> g_next_shard{0};
thread_local unsigned t_shard = ~0u;

}  // namespace

unsigned this_thread_shard() {
    unsigned s = t_shard;
    if (s == ~0u) [[unlikely]]
        t_shard = s = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
    return s;
}

}  // namespace jitalloc
