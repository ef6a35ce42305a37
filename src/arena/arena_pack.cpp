// The arena's door to its packs (src/pack): batches' reservations, and lookups, frees and
// shrinks of pack objects.
//
// Locking: packs.lock guards every pack; it is taken before buddy_lock (a new pack's pages,
// a retired pack's pages) and never with a class lock. A pack's pages leave state pack
// only with packs.lock held (retire_pack), so a lookup that finds, under packs.lock and
// the chunk's bind_lock, a pack page of a chunk bound to this arena has a pack that stays
// until it lets go of packs.lock — the same rule as lock_slab's.
// No code memory is written under packs.lock: reservations are written by their batch
// and freed objects trap-filled in transit, with no lock held.
#include "arena/arena.h"

#include <cerrno>

using namespace jitalloc;

namespace {

unsigned units_for(size_t bytes) {
    return static_cast<unsigned>((bytes + kPackUnit - 1) >> kPackUnitShift);
}

}  // namespace

int jit_arena::pack_reserve(unsigned need, PackRun &out) {
    if (need == 0 || need > kPackUnits)
        return EINVAL;
    const unsigned want = need > kPackReserveUnits ? need : kPackReserveUnits;
    std::lock_guard<std::mutex> g(packs.lock);
    if (packs.reserve(need, want, out))
        return 0;
    int err = 0;
    Pack *fresh = nullptr;
    {
        std::unique_lock<std::mutex> b(buddy_lock);
        PageDesc *d = pages_locked(kPackPages, err, b);
        if (!d)
            return err;
        fresh = pack_new(d->chunk, d->index);
        if (!fresh) {
            free_pages_locked(d->chunk, d->index, kPackPages);
            return ENOMEM;
        }
        slab_meta_bytes += kPackMetadataBytes;
    }
    packs.add(fresh);
    return packs.reserve(need, want, out) ? 0 : ENOMEM;  // a new pack has room: never fails
}

bool jit_arena::pack_extend(PackRun &r, unsigned need) {
    std::lock_guard<std::mutex> g(packs.lock);
    return packs.extend(r, need, need > kPackReserveUnits ? need : kPackReserveUnits);
}

void jit_arena::pack_publish(const PackRun &r, const PackObject *objs, size_t n, unsigned end) {
    std::lock_guard<std::mutex> g(packs.lock);
    retire_pack(packs.publish(r, objs, n, end));
}

void jit_arena::pack_give_back(const PackRun &r, bool holds_traps) {
    if (!holds_traps)
        return;  // quarantined: used, never live, never handed out again
    std::lock_guard<std::mutex> g(packs.lock);
    retire_pack(packs.release(r.pack, r.first, r.units));
}

void jit_arena::retire_pack(Pack *dead, size_t *released) {
    if (!dead)
        return;
    {
        std::lock_guard<std::mutex> b(buddy_lock);
        slab_meta_bytes -= kPackMetadataBytes;
        free_pages_locked(dead->chunk, dead->first_page, kPackPages, released);
    }
    pack_delete(dead);
}

Pack *jit_arena::lock_pack(Chunk *c, const void *p) {
    packs.lock.lock();
    Pack *found = nullptr;
    {
        std::lock_guard<WordLock> g(c->bind_lock);
        const PageDesc &d = c->page_in_slot(p);
        if (c->bound_to(this, p) && !c->large &&
            d.state.load(std::memory_order_acquire) == PageState::pack)
            found = static_cast<Pack *>(d.owner.load(std::memory_order_acquire));
    }
    if (!found)
        packs.lock.unlock();
    return found;
}

namespace {
// The live object at or containing p (exact: starting at p), as its start unit, or -1.
int live_object_at(const Pack &pk, const void *p, bool exact) {
    int u = pk.unit_of(p);
    if (u < 0 || (exact && pk.unit_addr(static_cast<unsigned>(u)) != p))
        return -1;
    return pk.live_object(static_cast<unsigned>(u), exact);
}
}  // namespace

bool jit_arena::locate_packed(Chunk *c, const void *p, bool exact, Located &out, size_t write_len,
                              bool pin) {
    Pack *pk = lock_pack(c, p);
    if (!pk)
        return false;
    std::lock_guard<std::mutex> g(packs.lock, std::adopt_lock);
    int u = live_object_at(*pk, p, exact);
    if (u < 0)
        return false;
    auto unit = static_cast<unsigned>(u);
    uint8_t *start = pk->unit_addr(unit);
    size_t usable = pk->extent(unit) * kPackUnit;
    if (write_len > usable - static_cast<size_t>(static_cast<const uint8_t *>(p) - start))
        return false;
    bool held = write_len > 0 ? packs.mark_code(pk, unit) : pk->held_code(unit);
    out = Located{c, nullptr, unit, start, usable, held, pk};
    if (pin)
        c->writes_in_flight.fetch_add(1, std::memory_order_seq_cst);
    return true;
}

int jit_arena::begin_free_packed(Chunk *c, void *p, Transit &out) {
    Pack *pk = lock_pack(c, p);
    if (!pk)
        return EINVAL;
    std::lock_guard<std::mutex> g(packs.lock, std::adopt_lock);
    int u = live_object_at(*pk, p, true);
    if (u < 0)
        return EINVAL;
    auto unit = static_cast<unsigned>(u);
    out.chunk = c;
    out.slab = nullptr;
    out.pack = pk;
    out.index = unit;
    out.start = static_cast<uint8_t *>(p);
    out.usable = pk->extent(unit) * kPackUnit;
    out.requested = pk->requested_of(unit);
    out.length = out.requested;
    out.held_code = pk->held_code(unit);
    out.stale = false;
    return packs.begin_free(pk, unit);
}

void jit_arena::abort_free_packed(const Transit &t) {
    std::lock_guard<std::mutex> g(packs.lock);
    packs.abort_free(t.pack, t.index, t.requested, t.held_code);
}

int jit_arena::finish_free_packed(const Transit &t) {
    std::lock_guard<std::mutex> g(packs.lock);
    retire_pack(packs.finish_free(t.pack, t.index, units_for(t.usable)));
    return 0;
}

int jit_arena::shrink_packed(const Located &loc, size_t len) {
    // Looked up again: loc was found under a lock since let go of.
    Pack *pk = lock_pack(loc.chunk, loc.start);
    if (!pk)
        return EINVAL;
    std::lock_guard<std::mutex> g(packs.lock, std::adopt_lock);
    if (pk != loc.pack || live_object_at(*pk, loc.start, true) != static_cast<int>(loc.index))
        return EINVAL;
    return packs.shrink(pk, loc.index, units_for(len), static_cast<uint32_t>(len));
}

size_t jit_arena::shrink_packs(size_t *released) {
    size_t n = 0;
    std::lock_guard<std::mutex> g(packs.lock);
    while (Pack *p = packs.pop_empty()) {
        retire_pack(p, released);
        n++;
    }
    return n;
}

void jit_arena::destroy_packs() {
    std::lock_guard<std::mutex> g(packs.lock);
    while (Pack *p = packs.pop_any())
        pack_delete(p);  // its chunk is unmapped next (destroy_all)
}
