// Free watch (see free_watch.h).
#include "arena/free_watch.h"

namespace jitalloc {

void FreeWatch::join(FreeListener *l) {
    std::lock_guard<std::mutex> g(lock_);
    l->prev_ = nullptr;
    l->next_ = first_;
    if (first_)
        first_->prev_ = l;
    first_ = l;
    watchers_.fetch_add(1, std::memory_order_release);
}

void FreeWatch::leave(FreeListener *l) {
    std::lock_guard<std::mutex> g(lock_);
    if (l->prev_)
        l->prev_->next_ = l->next_;
    else
        first_ = l->next_;
    if (l->next_)
        l->next_->prev_ = l->prev_;
    l->prev_ = l->next_ = nullptr;
    watchers_.fetch_sub(1, std::memory_order_relaxed);
}

void FreeWatch::tell(const void *start) {
    std::lock_guard<std::mutex> g(lock_);
    for (FreeListener *l = first_; l; l = l->next_)
        l->freed(start);
}

}  // namespace jitalloc
