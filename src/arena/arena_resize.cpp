// Shrinking a live allocation (jit_shrink_alloc): a JIT that reserved too much gives the
// unused tail back.
//
// The tail [p+len, end) is trap-filled first (up to the allocation's code end: past it it
// holds traps already, slab.h), while the allocation stays live and whole,
// so no byte of it can be handed out before it holds traps; then, under the lock that
// owns the allocation's layout, what the layout allows is given back:
//   - pack object (src/pack): the whole 16-byte units past round_up(len, 16) are freed;
//     jit_size becomes that rounded length.
//   - slab object: keeps its size (objects of a slab are all one size); only its
//     requested length shrinks. The tail holds traps; jit_size is unchanged.
//   - page run: the whole pages past round_up(len, 4 KiB) go back to the buddy, free for
//     any allocation; jit_size becomes that rounded length.
//   - large allocation (its own 2 MiB chunks): keeps its chunks; the tail holds traps.
// A failed trap fill changes nothing (writes land whole or not at all). Shrinking and a
// concurrent update or free of the same allocation is a caller race, as for jit_update.
// Observers let go of the bytes before the tail is filled and hear of the new length
// after (observe.h).
#include "arena/arena.h"

#include <cerrno>

using namespace jitalloc;

namespace {

size_t round_up_pages(size_t v) { return (v + kPageSize - 1) / kPageSize * kPageSize; }

}  // namespace

int jit_arena::shrink_alloc(void *p, size_t len) {
    if (!p || len == 0)
        return EINVAL;
    GateGuard op(gate);
    if (!op)
        return EDEADLK;
    if (!observed)
        return shrink_live(p, len);
    auto shrink = [&] { return shrink_live(p, len); };
    return observed_rewrite(p, ArenaStep::of(shrink), len);
}

int jit_arena::shrink_live(void *p, size_t len) {
    Located loc;
    if (!locate(p, true, loc) || len > loc.usable)
        return EINVAL;
    auto *start = static_cast<uint8_t *>(p);
    // Past its code end the allocation holds traps already (slab.h, `wide`).
    if (len < loc.fill_len()) {
        if (int rc = write_traps(loc.chunk, start + len, loc.fill_len() - len))
            return rc;
    }
    Chunk *c = loc.chunk;
    if (loc.pack)
        return shrink_packed(loc, len);
    if (loc.slab) {
        SlabClass &k = class_of(*loc.slab);
        std::lock_guard<WordLock> g(k.lock);
        return k.set_requested(loc.slab, loc.index, static_cast<uint32_t>(len));
    }
    std::lock_guard<std::mutex> b(buddy_lock);
    if (!owns_locked(c, p))
        return EINVAL;
    if (c->large) {
        if (!c->live || p != c->base)
            return EINVAL;
        large_requested = large_requested - c->requested + len;
        c->requested = len;
        return 0;
    }
    PageDesc &head = c->pages[loc.index];
    if (head.state.load(std::memory_order_relaxed) != PageState::pages_head)
        return EINVAL;
    unsigned npages = head.npages;
    auto keep = static_cast<unsigned>(round_up_pages(len) / kPageSize);
    page_runs_requested = page_runs_requested - head.requested + len;
    if (keep < npages) {
        page_runs_pages -= npages - keep;
        buddy.free(c, loc.index + keep, npages - keep);  // the head stays: never wholly free
        head.npages = static_cast<uint16_t>(keep);
    }
    head.requested = static_cast<uint32_t>(len);
    head.wide = false;  // everything past len holds traps now
    return 0;
}
