// Size classes made on first use (see class_table.h).
#include "arena/class_table.h"

#include <new>

namespace jitalloc {

SlabClass *ClassTable::make(unsigned shard, unsigned cls) {
    auto *fresh = new (std::nothrow) Line();
    if (!fresh)
        return nullptr;
    Line *none = nullptr;
    if (slots_[shard * kNumClasses + cls].compare_exchange_strong(none, fresh, std::memory_order_acq_rel,
                                                   std::memory_order_acquire))
        return &fresh->k;
    delete fresh;  // another thread made it first; nobody saw this one
    return &none->k;
}

ClassTable::~ClassTable() {
    for (std::atomic<Line *> &slot : slots_)
        delete slot.load(std::memory_order_relaxed);
}

}  // namespace jitalloc
