// Free watch: lets whatever keeps addresses of live allocations from one call to a later
// one (a batch's staged updates of live code) hear of each free, so that it does not take
// a new allocation handed out at the same start for the one it meant.
//
// A lookup by address cannot tell the two apart: jit_free(L), then a jit_alloc that gets
// L's memory, and L's address is again the start of a live allocation of the same size.
// The arena tells its listeners of every free instead; with none (the common case) a free
// pays one load of a counter that only join() and leave() write.
//
// Invariants:
//  - A listener is on the list from its join() to its leave(); freed() runs on the
//    freeing thread, with lock_ held, after the free succeeded. A free that
//    happened-before a listener's check (with_lock) has been told by then: the free told
//    before it returned, and whatever made the free happen-before the check makes its
//    unlock of lock_ happen-before the check's lock.
//  - A listener that joined before a free happened-before it is told of it: the free
//    reads watchers_ (acquire) after join's release.
//  - lock_ is a leaf: nothing else is taken under it (freed() only reads the listener's
//    own data and sets its flags), and it is taken only inside the arena's fork gate, so
//    fork() never copies it held.
#pragma once

#include "process/thread_shard.h"

#include <atomic>
#include <mutex>

namespace jitalloc {

class FreeListener {
public:
    // start: of the allocation just freed. Called with the watch's lock held.
    virtual void freed(const void *start) = 0;

protected:
    ~FreeListener() = default;

private:
    friend class FreeWatch;
    FreeListener *prev_ = nullptr, *next_ = nullptr;
};

class FreeWatch {
public:
    // After a successful free of the allocation starting at start.
    void note_free(const void *start) {
        if (watchers_.load(std::memory_order_acquire) != 0)
            tell(start);
    }
    // l is told of every later free until leave(l). Inside the arena's fork gate.
    void join(FreeListener *l);
    void leave(FreeListener *l);
    // f() with the lock held: a listener changes what freed() reads, or reads what it set.
    template <class F>
    auto with_lock(F &&f) {
        std::lock_guard<std::mutex> g(lock_);
        return f();
    }

private:
    void tell(const void *start);

    alignas(kCacheLine) std::atomic<unsigned> watchers_{0};  // listeners on the list
    std::mutex lock_;
    FreeListener *first_ = nullptr;  // guarded by lock_
};

}  // namespace jitalloc
