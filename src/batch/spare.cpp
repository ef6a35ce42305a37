// Spare batches (invariants in spare.h).
#include "batch/spare.h"

#include <new>

namespace jitalloc {

namespace {

thread_local jit_batch *t_spare = nullptr;  // trivial: readable after the holder's end
thread_local bool t_exited = false;

// Frees the parked batch at thread exit.
struct SpareHolder {
    bool armed = false;
    ~SpareHolder() {
        delete t_spare;
        t_spare = nullptr;
        t_exited = true;
    }
};
thread_local SpareHolder t_holder;

}  // namespace

jit_batch *batch_create(jit_arena *a) {
    jit_batch *b = t_spare;
    if (b) {
        t_spare = nullptr;
        b->arena = a;
    } else if (!(b = new (std::nothrow) jit_batch(a))) {
        return nullptr;
    }
    a->open_batches.fetch_add(1, std::memory_order_relaxed);
    return b;
}

void batch_destroy(jit_batch *b) {
    b->abort();
    b->arena->open_batches.fetch_sub(1, std::memory_order_release);
    if (t_spare || t_exited || b->retained_bytes() > kMaxParkedBytes) {
        delete b;
        return;
    }
    b->arena = nullptr;
    t_holder.armed = true;  // its first use on this thread registers its destructor
    t_spare = b;
}

}  // namespace jitalloc
