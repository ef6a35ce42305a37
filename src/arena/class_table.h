// An arena's size classes, one SlabClass per shard and class (arena/shards.h), each made
// the first time a thread of that shard allocates from that class.
//
// Made whole at arena creation, the table was 320 classes (36 KiB, nine pages) that a
// process's first jit_alloc zeroed while it used one of them: every page a fresh process
// touches is a page fault, most of the first allocation's cost (issue 16). Now the arena
// holds a table of pointers and each class is one cache-line-aligned object of its own.
//
// Invariants:
//  - A slot goes from null to its class once and never back; the class lives as long as
//    the table (the arena), so a pointer read from the table stays valid.
//  - A slab of (shard, class) exists only after its class was made (take_small makes the
//    class before it makes a slab): find() on a slab's key never returns null.
// Locking: none. get() publishes a new class with a compare-exchange (release) and
// find() reads with acquire, so whoever finds a class sees it constructed; a thread that
// loses the race deletes its own copy, which nobody else saw.
#pragma once

#include "arena/shards.h"
#include "slab/slab.h"

#include <atomic>

namespace jitalloc {

class ClassTable {
public:
    ClassTable() = default;
    ~ClassTable();
    ClassTable(const ClassTable &) = delete;
    ClassTable &operator=(const ClassTable &) = delete;

    // The class if it was ever used, else nullptr.
    SlabClass *find(unsigned shard, unsigned cls) const { return at(shard * kNumClasses + cls); }
    // find() by a slab page's key (slab_key_of), 1..kShards * kNumClasses.
    SlabClass *find_key(uint16_t key) const { return at(key - 1u); }
    // The class, made now if it was never used; nullptr if there is no memory for it.
    SlabClass *get(unsigned shard, unsigned cls) {
        SlabClass *k = find(shard, cls);
        return k ? k : make(shard, cls);
    }
    // fn(shard, cls, SlabClass &) for every class made so far.
    template <class Fn>
    void for_each(Fn &&fn) const {
        for (unsigned s = 0; s < kShards; s++)
            for (unsigned i = 0; i < kNumClasses; i++)
                if (SlabClass *k = find(s, i))
                    fn(s, i, *k);
    }

private:
    // A class on cache lines of its own: two shards' classes never share one.
    struct alignas(kCacheLine) Line {
        SlabClass k;
    };
    SlabClass *make(unsigned shard, unsigned cls);
    // Slot of (shard, cls): shard * kNumClasses + cls, slab_key_of(shard, cls) - 1.
    SlabClass *at(unsigned slot) const {
        Line *l = slots_[slot].load(std::memory_order_acquire);
        return l ? &l->k : nullptr;
    }
    std::atomic<Line *> slots_[kShards * kNumClasses] = {};
};

}  // namespace jitalloc
