// Packs and an arena's set of them (see pack.h).
#include "pack/pack.h"

#include "poke/writer.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace jitalloc {

namespace {

constexpr uint64_t kAll = ~uint64_t{0};

// First unit >= from whose bit is set in (m[w] ^ flip[w]), or kPackUnits: a bitmap, its
// complement (flip all ones) or, with `either`, (a | ~b).
template <class Word>
unsigned find_next(unsigned from, Word word) {
    if (from >= kPackUnits)
        return kPackUnits;
    unsigned w = from / 64;
    uint64_t x = word(w) & (kAll << (from % 64));
    while (!x) {
        if (++w == kPackWords)
            return kPackUnits;
        x = word(w);
    }
    return w * 64 + static_cast<unsigned>(std::countr_zero(x));
}

// Last unit <= u whose bit is set in m, or -1.
int find_prev_set(const uint64_t *m, unsigned u) {
    unsigned w = u / 64;
    uint64_t x = m[w] & (kAll >> (63 - u % 64));
    while (!x) {
        if (w == 0)
            return -1;
        x = m[--w];
    }
    return static_cast<int>(w * 64 + 63 - static_cast<unsigned>(std::countl_zero(x)));
}

// Applies op(word, mask) to the bits [u, u + n) of m.
template <class Op>
void each_word(uint64_t *m, unsigned u, unsigned n, Op op) {
    while (n) {
        unsigned bit = u % 64, take = 64 - bit < n ? 64 - bit : n;
        uint64_t mask = (take == 64 ? kAll : ((uint64_t{1} << take) - 1)) << bit;
        op(m[u / 64], mask);
        u += take;
        n -= take;
    }
}
void set_range(uint64_t *m, unsigned u, unsigned n) {
    each_word(m, u, n, [](uint64_t &w, uint64_t mask) { w |= mask; });
}
void clear_range(uint64_t *m, unsigned u, unsigned n) {
    each_word(m, u, n, [](uint64_t &w, uint64_t mask) { w &= ~mask; });
}
void set_bit(uint64_t *m, unsigned u) { m[u / 64] |= uint64_t{1} << (u % 64); }
void clear_bit(uint64_t *m, unsigned u) { m[u / 64] &= ~(uint64_t{1} << (u % 64)); }

unsigned units_for(size_t bytes) { return static_cast<unsigned>((bytes + kPackUnit - 1) >> kPackUnitShift); }

void set_pad(Pack *p, unsigned u, unsigned pad) {
    uint8_t &b = p->pad[u / 2];
    b = u % 2 ? static_cast<uint8_t>((b & 0x0f) | pad << 4) : static_cast<uint8_t>((b & 0xf0) | pad);
}
unsigned pad_of(const Pack &p, unsigned u) { return (p.pad[u / 2] >> (u % 2 * 4)) & 0xf; }

}  // namespace

// ---------------------------------------------------------------- one pack

int Pack::unit_of(const void *p) const {
    auto *b = static_cast<const uint8_t *>(p);
    if (b < base || b >= base + kPackUnits * kPackUnit)
        return -1;
    return static_cast<int>(static_cast<size_t>(b - base) >> kPackUnitShift);
}

unsigned Pack::extent(unsigned u) const {
    unsigned end = find_next(u + 1, [this](unsigned w) { return start[w] | ~used[w]; });
    return end - u;
}

int Pack::live_object(unsigned u, bool exact) const {
    if (exact)
        return is_live(u) ? static_cast<int>(u) : -1;
    int s = find_prev_set(start, u);
    if (s < 0 || !is_live(static_cast<unsigned>(s)))
        return -1;
    return static_cast<unsigned>(s) + extent(static_cast<unsigned>(s)) > u ? s : -1;
}

uint32_t Pack::requested_of(unsigned u) const {
    return static_cast<uint32_t>(extent(u) * kPackUnit - pad_of(*this, u));
}

Pack *pack_new(Chunk *c, unsigned first_page) {
    void *mem = std::calloc(1, sizeof(Pack));  // every bitmap clear: all units free
    if (!mem)
        return nullptr;
    auto *p = new (mem) Pack{};
    p->chunk = c;
    p->base = c->page_addr(first_page);
    p->first_page = static_cast<uint16_t>(first_page);
    p->max_run = kPackUnits;
    for (unsigned pg = first_page; pg < first_page + kPackPages; pg++) {
        c->pages[pg].owner.store(p, std::memory_order_relaxed);
        c->pages[pg].state.store(PageState::pack, std::memory_order_release);
    }
    return p;
}

void pack_delete(Pack *p) {
    p->~Pack();
    std::free(p);
}

// ---------------------------------------------------------------- the set

void PackSet::link(Pack *p) {
    p->prev = nullptr;
    p->next = head_;
    if (head_)
        head_->prev = p;
    head_ = p;
    npacks_++;
}

void PackSet::unlink(Pack *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        head_ = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = nullptr;
    npacks_--;
    if (p->cached_empty) {
        p->cached_empty = false;
        empty_--;
    }
}

Pack *PackSet::settle(Pack *p) {
    if (p->nused != 0) {
        if (p->cached_empty) {
            p->cached_empty = false;
            empty_--;
        }
        return nullptr;
    }
    if (p->cached_empty)
        return nullptr;
    if (empty_ == 0) {  // hysteresis: one empty pack stays for the next batch
        p->cached_empty = true;
        empty_++;
        return nullptr;
    }
    unlink(p);
    return p;
}

void PackSet::take_units(Pack *p, unsigned u, unsigned n) {
    set_range(p->used, u, n);
    p->nused += n;
    used_ += n;
}

void PackSet::free_units(Pack *p, unsigned u, unsigned n) {
    clear_range(p->used, u, n);
    clear_range(p->start, u, n);
    p->nused -= n;
    used_ -= n;
    // The free run the units joined is at most a run on each side and the units: a bound
    // in O(1) (finding the run itself scans up to the whole pack), made exact by the next
    // reserve that scans this pack.
    uint64_t bound = uint64_t{p->max_run} * 2 + n;
    p->max_run = static_cast<uint32_t>(bound < kPackUnits ? bound : kPackUnits);
}

void PackSet::add(Pack *p) {
    link(p);
    p->cached_empty = true;  // the caller reserves from it next
    empty_++;
}

bool PackSet::reserve(unsigned need, unsigned want, PackRun &out) {
    Pack *best = nullptr;
    unsigned best_at = 0, best_len = 0;
    // First fit in list order, skipping packs whose longest free run (an upper bound,
    // made exact by each full scan) is too short: a batch of one function does not scan
    // every full pack.
    for (Pack *p = head_; p; p = p->next) {
        if (p->max_run < need)
            continue;
        const uint64_t *used = p->used;
        unsigned longest = 0;
        for (unsigned u = 0; u < kPackUnits;) {
            unsigned lo = find_next(u, [used](unsigned w) { return ~used[w]; });
            if (lo == kPackUnits)
                break;
            unsigned hi = find_next(lo, [used](unsigned w) { return used[w]; });
            if (hi - lo >= want) {
                best = p, best_at = lo;
                goto found;
            }
            if (hi - lo >= need && hi - lo > best_len)
                best = p, best_at = lo, best_len = hi - lo;
            longest = hi - lo > longest ? hi - lo : longest;
            u = hi;
        }
        p->max_run = longest;
    }
    if (!best)
        return false;
found:
    take_units(best, best_at, need);
    set_bit(best->start, best_at);
    settle(best);
    out = PackRun{best, best_at, need};
    return true;
}

bool PackSet::extend(PackRun &r, unsigned need, unsigned want) {
    Pack *p = r.pack;
    unsigned from = r.first + r.units;
    const uint64_t *used = p->used;
    unsigned hi = find_next(from, [used](unsigned w) { return used[w]; });
    unsigned room = hi - from;
    if (room < need)
        return false;
    unsigned n = room < want ? room : want;
    take_units(p, from, n);
    r.units += n;
    return true;
}

Pack *PackSet::publish(const PackRun &r, const PackObject *objs, size_t n, unsigned end) {
    Pack *p = r.pack;
    for (size_t i = 0; i < n; i++) {
        set_bit(p->start, objs[i].unit);
        make_live(p, objs[i]);
    }
    unsigned stop = r.first + r.units;
    if (end >= stop)
        return nullptr;
    return release(p, end, stop - end);
}

Pack *PackSet::release(Pack *p, unsigned u, unsigned n) {
    free_units(p, u, n);
    return settle(p);
}

void PackSet::make_live(Pack *p, const PackObject &o) {
    set_bit(p->live, o.unit);
    if (o.with_code)
        set_bit(p->code, o.unit);
    set_pad(p, o.unit, static_cast<unsigned>(o.units * kPackUnit - o.requested));
    p->nlive++;
    p->live_units += o.units;
    p->requested += o.requested;
    live_++;
    live_units_ += o.units;
    requested_ += o.requested;
}

int PackSet::begin_free(Pack *p, unsigned u) {
    if (!p->is_live(u))
        return EINVAL;
    const unsigned units = p->extent(u);
    const uint32_t req = p->requested_of(u);
    clear_bit(p->live, u);
    clear_bit(p->code, u);
    p->nlive--;
    p->live_units -= units;
    p->requested -= req;
    live_--;
    live_units_ -= units;
    requested_ -= req;
    return 0;
}

void PackSet::abort_free(Pack *p, unsigned u, uint32_t requested, bool held_code) {
    make_live(p, PackObject{u, p->extent(u), requested, held_code});
}

Pack *PackSet::finish_free(Pack *p, unsigned u, unsigned units) {
    free_units(p, u, units);
    return settle(p);
}

int PackSet::shrink(Pack *p, unsigned u, unsigned units, uint32_t requested) {
    if (!p->is_live(u))
        return EINVAL;
    unsigned had = p->extent(u);
    uint32_t req = p->requested_of(u);
    if (units == 0 || units > had || requested > units * kPackUnit || units_for(requested) != units)
        return EINVAL;
    if (units < had)
        free_units(p, u + units, had - units);  // the tail holds traps (the caller filled it)
    set_pad(p, u, static_cast<unsigned>(units * kPackUnit - requested));
    p->live_units -= had - units;
    live_units_ -= had - units;
    p->requested = p->requested - req + requested;
    requested_ = requested_ - req + requested;
    return 0;
}

bool PackSet::mark_code(Pack *p, unsigned u) {
    bool before = p->held_code(u);
    set_bit(p->code, u);
    return before;
}

Pack *PackSet::pop_empty() {
    for (Pack *p = head_; p; p = p->next)
        if (p->cached_empty) {
            unlink(p);
            return p;
        }
    return nullptr;
}

Pack *PackSet::pop_any() {
    Pack *p = head_;
    if (p)
        unlink(p);
    return p;
}

// ---------------------------------------------------------------- check

bool PackSet::check(std::string &msg, bool traps) const {
    auto fail = [&msg](const char *what, const Pack *p, unsigned u) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "pack %p unit %u: %s", static_cast<const void *>(p), u, what);
        msg = buf;
        return false;
    };
    uint64_t n = 0, empty = 0, used = 0, live = 0, live_units = 0, requested = 0;
    for (const Pack *p = head_; p; p = p->next) {
        if (++n > npacks_)
            return fail("list longer than its count (cycle?)", p, 0);
        uint64_t nused = 0, nlive = 0, units = 0, req = 0;
        for (unsigned w = 0; w < kPackWords; w++) {
            if ((p->start[w] & ~p->used[w]) || (p->live[w] & ~p->start[w]) || (p->code[w] & ~p->live[w]))
                return fail("bitmaps not nested (code in live in start in used)", p, w * 64);
            nused += static_cast<unsigned>(std::popcount(p->used[w]));
        }
        for (unsigned u = 0; u < kPackUnits; u++) {
            if (p->is_used(u) && (u == 0 || !p->is_used(u - 1)) && !p->is_start(u))
                return fail("used units begin without a start", p, u);
            if (p->is_live(u)) {
                unsigned ext = p->extent(u);
                uint32_t r = p->requested_of(u);
                if (r == 0 || r > ext * kPackUnit || r + kPackUnit <= ext * kPackUnit)
                    return fail("live object with bad length", p, u);
                nlive++;
                units += ext;
                req += r;
            }
            if (traps && !p->is_used(u) && !holds_only_traps(p->unit_addr(u), kPackUnit))
                return fail("free unit holds non-trap bytes", p, u);
        }
        unsigned run = 0, longest = 0;
        for (unsigned u = 0; u < kPackUnits; u++) {
            run = p->is_used(u) ? 0 : run + 1;
            longest = run > longest ? run : longest;
        }
        if (longest > p->max_run)
            return fail("a free run longer than max_run", p, longest);
        if (nused != p->nused || nlive != p->nlive || units != p->live_units || req != p->requested)
            return fail("counts disagree with bitmaps", p, 0);
        if (p->cached_empty != (p->nused == 0))
            return fail("empty pack not cached, or a cached one not empty", p, 0);
        for (unsigned pg = p->first_page; pg < p->first_page + kPackPages; pg++) {
            const PageDesc &d = p->chunk->pages[pg];
            if (d.state.load() != PageState::pack || d.owner.load() != p)
                return fail("page descriptor does not point to its pack", p, pg);
        }
        empty += p->cached_empty;
        used += nused;
        live += nlive;
        live_units += units;
        requested += req;
    }
    if (n != npacks_ || empty != empty_ || used != used_ || live != live_ ||
        live_units != live_units_ || requested != requested_)
        return fail("set totals disagree", nullptr, 0);
    return true;
}

}  // namespace jitalloc
