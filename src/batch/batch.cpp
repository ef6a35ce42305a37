// Batches (see batch.h): staging of allocations and live updates in runs of consecutive
// addresses, and the all-or-nothing commit.
#include "batch/batch.h"

#include "arch/arch.h"
#include "observe/observe.h"
#include "serialise/serialise.h"

#include <algorithm>
#include <cerrno>

using namespace jitalloc;

namespace {

size_t cache_slot(const uint8_t *end) {
    auto a = reinterpret_cast<uintptr_t>(end) >> 4;  // allocations are 16-byte aligned
    return static_cast<size_t>((a * 0x9E3779B97F4A7C15ull) >> (64 - kRunCacheBits));
}

// One kernel write: the runs order[first, last) of one chunk, back to back.
struct Range {
    size_t first, last;
    uint8_t *dst;
    size_t len;
    bool fresh;    // every byte holds traps now: rolled back with traps
    bool live;     // holds updates of published allocations
    uint8_t *old;  // not fresh: the bytes before the write (malloc'ed), to roll back with
};

// Owns the ranges' copies of old bytes.
struct Ranges : Vec<Range> {
    ~Ranges() {
        for (Range &g : *this)
            std::free(g.old);
    }
};

}  // namespace

jit_batch::~jit_batch() { abort(); }

// ---------------------------------------------------------------- staging

int jit_batch::stage(Chunk *c, uint8_t *dst, size_t len, bool fresh, bool live, size_t *run,
                     size_t *at) {
    size_t slot = cache_slot(dst);
    if (size_t cached = cached_run(slot)) {
        Run &r = runs_[cached - 1];
        if (r.chunk == c && r.end() == dst) {
            if (r.bytes + len > r.room) {
                size_t room = std::max(r.room * 2, r.bytes + len);
                void *p = std::realloc(r.staged, room);
                if (!p)
                    return ENOMEM;
                r.staged = static_cast<uint8_t *>(p);
                r.room = room;
            }
            *run = cached - 1;
            *at = r.bytes;
            r.bytes += len;
            r.fresh = r.fresh && fresh;
            r.live = r.live || live;
            cache_run(slot, 0);
            cache_run(cache_slot(r.end()), cached);
            return 0;
        }
    }
    if (!runs_.reserve(runs_.size() + 1) || runs_.size() >= UINT32_MAX)
        return ENOMEM;
    // New code: a page to start with, as such a run usually grows over a slab's
    // consecutive objects and doubling from less costs a realloc (and a copy) every few
    // appends. An update of live code (a patch site, a relocation) seldom grows: a small
    // buffer, which malloc hands out and takes back from its per-thread cache where a
    // page-sized one goes through its bins (a third of a live patch's instructions).
    size_t room = std::max<size_t>(len, live ? 256 : 4096);
    auto *staged = static_cast<uint8_t *>(std::malloc(room));
    if (!staged)
        return ENOMEM;
    runs_.push(Run{c, dst, len, staged, room, live, fresh, true});
    cache_run(cache_slot(dst + len), runs_.size());
    *run = runs_.size() - 1;
    *at = 0;
    return 0;
}

jit_batch::Alloc *jit_batch::own_alloc(const uint8_t *p) {
    auto contains = [p](const Alloc &a) { return p >= a.t.start && p < a.t.start + a.t.usable; };
    if (allocs_.empty())
        return nullptr;
    if (contains(allocs_.back()))  // the usual case: relocations of what was just added
        return &allocs_.back();
    // Index the allocations by address once enough of them are not indexed yet; without
    // memory for the index the unindexed ones are searched one by one.
    size_t indexed = alloc_index_.size();
    if (allocs_.size() - indexed > 32 && alloc_index_.reserve(allocs_.size())) {
        for (size_t i = indexed; i < allocs_.size(); i++)
            alloc_index_.push(AllocAt{allocs_[i].t.start, i});
        std::sort(alloc_index_.begin(), alloc_index_.end(),
                  [](const AllocAt &a, const AllocAt &b) { return a.start < b.start; });
        indexed = allocs_.size();
    }
    const AllocAt *it = std::upper_bound(alloc_index_.begin(), alloc_index_.end(), p,
                                         [](const uint8_t *q, const AllocAt &a) { return q < a.start; });
    if (it != alloc_index_.begin() && contains(allocs_[(it - 1)->index]))
        return &allocs_[(it - 1)->index];
    for (size_t i = indexed; i < allocs_.size(); i++)
        if (contains(allocs_[i]))
            return &allocs_[i];
    return nullptr;
}

int jit_batch::alloc(const void *code, size_t len, const char *name, void **out, size_t align) {
    if (len == 0 || len > JIT_MAX_ALLOC_SIZE || !out)
        return EINVAL;
    // What can fail before the memory is taken, so a failure changes nothing.
    if (!allocs_.reserve(allocs_.size() + 1))
        return ENOMEM;
    const size_t names_before = names_.size();
    size_t name_at = kNoName;
    if (arena->observed && name) {
        size_t n = std::strlen(name) + 1;
        if (!names_.grow(n))
            return ENOMEM;
        std::memcpy(names_.data() + names_before, name, n);
        name_at = names_before;
    }
    Transit t;
    const bool packed = len <= kPackMaxObject && align <= kPackUnit;
    int rc = packed ? take_packed(len, t) : take(len, code != nullptr, t, align);
    // No pack has room and none can be made (a new pack is 512 KiB of free pages in a
    // row: the max_bytes cap, or an arena whose free pages are scattered): a slab object,
    // as jit_arena_alloc would take, rather than an ENOMEM it would not give.
    if (packed && rc == ENOMEM)
        rc = take(len, code != nullptr, t, align);
    if (rc) {
        names_.shrink_to(names_before);
        return rc;
    }
    // The whole usable size is staged — code, then the trap tail — so the next object of
    // the slab continues the same range (and a stale object is overwritten whole).
    size_t run, at;
    if (int rc = t.pack ? stage_packed(t, &run, &at)
                        : stage(t.chunk, t.start, t.usable, !t.stale, false, &run, &at)) {
        if (t.pack) {
            reserved_.back().used -= static_cast<unsigned>(t.usable / kPackUnit);  // the last taken
        } else {
            GateGuard op(arena->gate);
            arena->give_back(t, !t.stale);  // nothing was written
        }
        names_.shrink_to(names_before);
        return rc;
    }
    uint8_t *to = runs_[run].staged + at;
    size_t n = code ? len : 0;
    if (n)
        std::memcpy(to, code, n);  // read now: memmove semantics
    // Trap instructions in the phase of their destination (arch.h).
    poke_detail::copy_source(to + n, poke_detail::trap_source(), t.usable - n,
                             reinterpret_cast<uintptr_t>(t.start) + n);
    allocs_.push(Alloc{t, run, at, name_at, code != nullptr});  // reserved: cannot fail
    *out = t.start;
    return 0;
}

int jit_batch::take(size_t len, bool with_code, Transit &t, size_t align) {
    GateGuard op(arena->gate);
    return op ? arena->take(len, with_code, t, align) : EDEADLK;
}

// Only a reservation that has no room left takes the fork gate: handing out its units is
// the batch's own business (a batch is one thread's), as staging is.
int jit_batch::take_packed(size_t len, Transit &t) {
    const auto need = static_cast<unsigned>((len + kPackUnit - 1) >> kPackUnitShift);
    Reservation *r = reserved_.empty() ? nullptr : &reserved_.back();
    if (!r || r->pack_run.units - r->used < need) {
        GateGuard op(arena->gate);
        if (!op)
            return EDEADLK;
        if (!r || !arena->pack_extend(r->pack_run, need - (r->pack_run.units - r->used))) {
            if (!reserved_.reserve(reserved_.size() + 1))
                return ENOMEM;
            PackRun fresh;
            if (int rc = arena->pack_reserve(need, fresh))
                return rc;
            reserved_.push(Reservation{fresh, 0, kNoRun});
            r = &reserved_.back();
        }
    }
    const unsigned u = r->pack_run.first + r->used;
    r->used += need;
    t.chunk = r->pack_run.pack->chunk;
    t.slab = nullptr;
    t.pack = r->pack_run.pack;
    t.index = u;
    t.start = r->pack_run.pack->unit_addr(u);
    t.usable = size_t{need} << kPackUnitShift;
    t.requested = static_cast<uint32_t>(len);
    t.length = len;
    t.stale = false;
    t.held_code = false;
    return 0;
}

// The allocations of a reservation are consecutive: each is appended to the run its
// predecessor was staged in, without the run cache.
int jit_batch::stage_packed(const Transit &t, size_t *run, size_t *at) {
    Reservation &r = reserved_.back();
    if (r.run != kNoRun && runs_[r.run].end() == t.start) {
        Run &into = runs_[r.run];
        if (into.bytes + t.usable > into.room) {
            size_t room = std::max(into.room * 2, into.bytes + t.usable);
            void *p = std::realloc(into.staged, room);
            if (!p)
                return ENOMEM;
            into.staged = static_cast<uint8_t *>(p);
            into.room = room;
        }
        *run = r.run;
        *at = into.bytes;
        into.bytes += t.usable;
        return 0;
    }
    int rc = stage(t.chunk, t.start, t.usable, true, false, run, at);
    if (!rc)
        r.run = *run;
    return rc;
}

void jit_batch::publish_packed() {
    for (const Reservation &r : reserved_) {
        pack_objects_.clear();
        const unsigned end = r.pack_run.first + r.used;
        for (const Alloc &a : allocs_)
            if (a.t.pack == r.pack_run.pack && a.t.index >= r.pack_run.first && a.t.index < end)
                pack_objects_.push(PackObject{a.t.index, static_cast<unsigned>(a.t.usable / kPackUnit),
                                              a.t.requested, a.with_code});  // reserved: cannot fail
        arena->pack_publish(r.pack_run, pack_objects_.data(), pack_objects_.size(), end);
    }
}

int jit_batch::update(void *dst, const void *src, size_t len) {
    GateGuard op(arena->gate);
    if (!op)
        return EDEADLK;
    return stage_update(dst, src, len);
}

int jit_batch::stage_update(void *dst, const void *src, size_t len) {
    if (!dst || !src || len == 0 || len > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    auto *p = static_cast<uint8_t *>(dst);
    if (Alloc *a = own_alloc(p)) {
        // Inside an allocation of this batch: straight into its staged bytes.
        size_t off = static_cast<size_t>(p - a->t.start);
        if (len > a->t.usable - off)
            return EINVAL;
        std::memmove(runs_[a->run].staged + a->at + off, src, len);
        a->with_code = true;
        a->t.wide = a->t.wide || off + len > a->t.requested;  // code past the requested length
        own_updates_++;
        return 0;
    }
    Located loc;
    if (!arena->locate(p, false, loc))  // no write_len: marks nothing yet
        return EINVAL;
    if (len > loc.usable - static_cast<size_t>(p - loc.start))
        return EINVAL;
    // Each byte is written at most once per batch: overlapping live updates are refused.
    const LiveWrite *next = std::lower_bound(live_.begin(), live_.end(), p,
                                             [](const LiveWrite &w, const uint8_t *q) { return w.dst < q; });
    size_t i = static_cast<size_t>(next - live_.begin());
    if (i < live_.size() && live_[i].dst < p + len)
        return EINVAL;
    if (i > 0 && live_[i - 1].dst + live_[i - 1].len > p)
        return EINVAL;
    // Growing may move the array a freeing thread reads (freed(), under the watch's lock).
    auto grow = [&] { return live_.reserve(live_.size() + 1); };
    if (!(watching_ ? arena->free_watch.with_lock(grow) : grow()))
        return ENOMEM;
    size_t run, at;
    if (int rc = stage(loc.chunk, p, len, false, true, &run, &at))
        return rc;
    std::memmove(runs_[run].staged + at, src, len);  // read now: memmove semantics
    if (!watching_) {
        arena->free_watch.join(this);
        watching_ = true;
    }
    arena->free_watch.with_lock([&] { live_.insert_reserved(i, LiveWrite{p, len, run, loc.start}); });
    return 0;
}

void jit_batch::freed(const void *start) {
    // An allocation's updates all lie at or past its start, so the first update at or
    // past start is one of them if it has any.
    auto *s = static_cast<const uint8_t *>(start);
    const LiveWrite *w = std::lower_bound(live_.begin(), live_.end(), s,
                                          [](const LiveWrite &x, const uint8_t *q) { return x.dst < q; });
    if (w != live_.end() && w->alloc_start == s)
        target_freed_ = true;
}

int jit_batch::stage_raw_in_gate(Chunk *c, uint8_t *dst, const uint8_t *src, size_t len) {
    size_t run, at;
    if (int rc = stage(c, dst, len, false, true, &run, &at))
        return rc;
    std::memcpy(runs_[run].staged + at, src, len);
    return 0;
}

// ---------------------------------------------------------------- commit

int jit_batch::commit() {
    if (runs_.empty()) {
        abort();  // reservations whose only allocation failed to stage
        return 0;
    }
    GateGuard op(arena->gate);
    if (!op)
        return EDEADLK;
    const size_t updates = live_.size() + own_updates_;
    bool replaces_code = false;
    if (int rc = commit_in_gate(&replaces_code))
        return rc;
    arena->total_updates.fetch_add(updates, std::memory_order_relaxed);
    // One serialisation for the whole batch, and only if code that may have run was
    // rewritten (on x86-64; see src/serialise for other architectures).
    after_code_write(replaces_code ? Replaces::live_code : Replaces::unrun, arena->sync_core);
    return 0;
}

int jit_batch::commit_in_gate(bool *replaces_code_out) {
    *replaces_code_out = false;
    if (runs_.empty())
        return 0;
    int rc = 0;
    bool replaces_code = false;  // a live update rewrites code that may have run
    // Live updates are checked again: the allocation must still be live, in the chunk
    // staged for it. From here on it counts as holding code (even if the commit fails).
    for (const LiveWrite &w : live_) {
        Located loc;
        if (!arena->locate(w.dst, false, loc, w.len) || loc.chunk != runs_[w.run].chunk ||
            loc.start != w.alloc_start) {
            rc = EINVAL;
            break;
        }
        replaces_code = replaces_code || loc.held_code;
    }
    // Looked up after every target: a free that happened before the lookups that found
    // them live again has been told (free_watch.h).
    if (!rc && watching_ && arena->free_watch.with_lock([this] { return target_freed_; }))
        rc = EINVAL;
    // Observers let go of the bytes of live code before they change (observe.h).
    const bool tell_observers = !rc && arena->observed;
    if (tell_observers)
        for (const LiveWrite &w : live_)
            observe_rewriting(arena, w.alloc_start);

    // Ranges: runs in address order, adjacent ones of one chunk merged. Everything that
    // needs memory is done before the first write.
    Ranges ranges;
    if (!rc && (!order_.reserve(runs_.size()) || !pieces_.reserve(runs_.size()) ||
                !ranges.reserve(runs_.size()) || !pack_objects_.reserve(allocs_.size())))
        rc = ENOMEM;
    if (!rc) {
        order_.clear();
        pieces_.clear();
        for (size_t i = 0; i < runs_.size(); i++)
            order_.push(i);
        std::sort(order_.begin(), order_.end(),
                  [this](size_t a, size_t b) { return runs_[a].dst < runs_[b].dst; });
        for (size_t i = 0; i < order_.size(); i++) {
            const Run &r = runs_[order_[i]];
            pieces_.push({{r.staged, 0}, r.bytes});
            bool joins = i > 0 && runs_[order_[i - 1]].chunk == r.chunk &&
                         runs_[order_[i - 1]].end() == r.dst;
            if (!joins)
                ranges.push(Range{i, i, r.dst, 0, true, false, nullptr});
            Range &g = ranges.back();
            g.last = i + 1;
            g.len += r.bytes;
            g.fresh = g.fresh && r.fresh;
            g.live = g.live || r.live;
        }
        for (Range &g : ranges) {
            if (g.fresh) {
                // Trailing trap bytes over memory that holds traps need no writing.
                Writer::Piece &tail = pieces_[g.last - 1];
                while (tail.len > 0 && tail.src.data[tail.len - 1] ==
                                           arch::trap_byte_at(reinterpret_cast<uintptr_t>(g.dst) + g.len - 1)) {
                    tail.len--;
                    g.len--;
                }
            } else if (!(g.old = static_cast<uint8_t *>(std::malloc(g.len)))) {
                rc = ENOMEM;
                break;
            } else {
                std::memcpy(g.old, g.dst, g.len);
            }
        }
    }

    size_t touched = 0;  // ranges [0, touched) may have been written (the last one failed)
    bool touched_live = false;
    if (!rc) {
        for (size_t i = 0; i < ranges.size(); i++) {
            Range &g = ranges[i];
            if (g.len == 0)
                continue;
            touched = i + 1;
            touched_live = touched_live || g.live;
            rc = poke_pieces(*arena->writer, runs_[order_[g.first]].chunk->mapping, g.dst,
                             pieces_.data() + g.first, g.last - g.first, g.len, Undo::none);
            if (rc)
                break;
        }
    }

    if (rc) {
        // Roll back every range touched, the failed one included: traps into fresh
        // memory, the old bytes elsewhere.
        for (size_t i = 0; i < touched; i++) {
            Range &g = ranges[i];
            if (g.len == 0)
                continue;
            const Writer::Piece undo = g.fresh ? Writer::Piece{poke_detail::trap_source(), g.len}
                                               : Writer::Piece{{g.old, 0}, g.len};
            bool ok = poke_pieces(*arena->writer, runs_[order_[g.first]].chunk->mapping, g.dst,
                                  &undo, 1, g.len, Undo::none) == 0;
            for (size_t k = g.first; k < g.last; k++)
                runs_[order_[k]].restored = ok;
        }
        if (touched_live)
            after_code_write(replaces_code ? Replaces::live_code : Replaces::unrun,
                             arena->sync_core);
        if (tell_observers)
            for (const LiveWrite &w : live_)
                observe_rewritten(arena, w.alloc_start, false);
        give_back_all();
        clear();
        return rc;
    }

    // Reservations without code are announced at their first code write.
    publish_packed();
    for (const Alloc &a : allocs_) {
        if (!a.t.pack)
            arena->publish(a.t, a.with_code);
        if (arena->observed)
            observe_alloc(arena, a.t.start, a.t.length,
                          a.name == kNoName ? nullptr : names_.data() + a.name, a.with_code);
    }
    if (tell_observers)
        for (const LiveWrite &w : live_)
            observe_rewritten(arena, w.alloc_start, true);
    arena->total_allocs.fetch_add(allocs_.size(), std::memory_order_relaxed);
    *replaces_code_out = replaces_code;
    clear();
    return 0;
}

// ---------------------------------------------------------------- abort

void jit_batch::give_back_all() {
    // Memory as before holds traps, unless it was taken stale (lazy trap fill).
    for (const Alloc &a : allocs_)
        if (!a.t.pack)
            arena->give_back(a.t, !a.t.stale && runs_[a.run].restored);
    // A reservation goes back whole: it holds traps unless a run inside it could not be
    // rolled back.
    for (const Reservation &r : reserved_) {
        bool traps = true;
        for (const Run &run : runs_)
            if (run.chunk == r.pack_run.pack->chunk && run.dst < r.pack_run.end() &&
                run.end() > r.pack_run.begin())
                traps = traps && run.restored;
        arena->pack_give_back(r.pack_run, traps);
    }
}

void jit_batch::abort() {
    if (!allocs_.empty() || !reserved_.empty() || watching_) {
        GateGuard op(arena->gate);  // the watch's lock is taken inside the gate only
        give_back_all();
        clear();
        return;
    }
    clear();
}

size_t jit_batch::retained_bytes() const {
    return runs_.capacity_bytes() + allocs_.capacity_bytes() + alloc_index_.capacity_bytes() +
           live_.capacity_bytes() + reserved_.capacity_bytes() + names_.capacity_bytes() +
           order_.capacity_bytes() + pieces_.capacity_bytes() + pack_objects_.capacity_bytes();
}

void jit_batch::clear() {
    for (Run &r : runs_)
        std::free(r.staged);
    runs_.clear();
    if (++cache_generation_ == 0) {  // wrapped: entries of generation 1 could come back
        std::memset(run_ending_, 0, sizeof run_ending_);
        cache_generation_ = 1;
    }
    allocs_.clear();
    alloc_index_.clear();
    if (watching_) {
        arena->free_watch.leave(this);
        watching_ = false;
        target_freed_ = false;  // no free can tell the batch any more
    }
    live_.clear();
    reserved_.clear();
    names_.clear();
    own_updates_ = 0;
}
