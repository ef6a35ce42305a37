// Slab objects and per-class slab lists (see slab.h).
#include "slab/slab.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace jitalloc {

namespace {

size_t words_for(unsigned nobj) { return (nobj + 63) / 64; }

void set_bit(uint64_t *m, unsigned i) { m[i / 64] |= uint64_t{1} << (i % 64); }
void clear_bit(uint64_t *m, unsigned i) { m[i / 64] &= ~(uint64_t{1} << (i % 64)); }

}  // namespace

// off / size by recip, for off < nobj * size: with recip = 2^k / size + e (0 < e <= 1),
// off * recip / 2^k = off / size + off * e / 2^k, and off * e / 2^k < 1 / size (so the
// floor is off / size's) while off * size < 2^k: a slab is at most 128 pages (2^19
// bytes) and an object at most 64 KiB (2^16), 2^35 < 2^40.
static_assert(size_t{128} * kPageSize * kMaxSlabSize < (uint64_t{1} << Slab::kRecipShift));

int Slab::index_of(const void *p) const {
    int i = index_containing(p);
    return i >= 0 && base + size_t(i) * size == static_cast<const uint8_t *>(p) ? i : -1;
}

int Slab::index_containing(const void *p) const {
    auto *b = static_cast<const uint8_t *>(p);
    if (b < base)
        return -1;
    size_t off = static_cast<size_t>(b - base);
    if (off >= size_t{nobj} * size)
        return -1;
    return static_cast<int>((off * recip) >> kRecipShift);
}

bool Slab::mark_written(unsigned i, size_t end) {
    bool before = held_code(i);
    set_bit(code, i);
    if (end > requested_of(i))
        set_bit(wide, i);
    return before;
}

bool Slab::stale_span(uint8_t **lo, uint8_t **hi) const {
    int first = -1, last = -1;
    for (unsigned w = 0; w < words_for(nobj); w++) {
        uint64_t st = avail[w] & code[w];
        if (!st)
            continue;
        if (first < 0)
            first = static_cast<int>(w * 64 + std::countr_zero(st));
        last = static_cast<int>(w * 64 + 63 - std::countl_zero(st));
    }
    if (first < 0)
        return false;
    *lo = object(static_cast<unsigned>(first));
    *hi = object(static_cast<unsigned>(last)) + size;
    return true;
}

size_t slab_metadata_bytes(unsigned cls) {
    unsigned nobj = size_class(cls).objects;
    return sizeof(Slab) + 4 * words_for(nobj) * sizeof(uint64_t) + nobj * sizeof(uint16_t);
}

Slab *slab_new(unsigned cls, unsigned shard, Chunk *c, unsigned first_page) {
    const SizeClass &sc = size_class(cls);
    size_t words = words_for(sc.objects);
    void *mem = std::malloc(slab_metadata_bytes(cls));
    if (!mem)
        return nullptr;
    auto *s = new (mem) Slab{};
    s->chunk = c;
    s->base = c->page_addr(first_page);
    s->first_page = static_cast<uint16_t>(first_page);
    s->cls = static_cast<uint8_t>(cls);
    s->shard = static_cast<uint8_t>(shard);
    s->nobj = sc.objects;
    s->navail = sc.objects;
    s->size = sc.size;
    s->recip = (uint64_t{1} << Slab::kRecipShift) / sc.size + 1;
    s->avail = reinterpret_cast<uint64_t *>(s + 1);
    s->live = s->avail + words;
    s->code = s->live + words;
    s->wide = s->code + words;
    s->req = reinterpret_cast<uint16_t *>(s->wide + words);
    std::memset(s->avail, 0, words * sizeof(uint64_t));
    for (unsigned i = 0; i < sc.objects; i++)
        set_bit(s->avail, i);
    std::memset(s->live, 0, words * sizeof(uint64_t));
    std::memset(s->code, 0, words * sizeof(uint64_t));
    std::memset(s->wide, 0, words * sizeof(uint64_t));
    std::memset(s->req, 0, sc.objects * sizeof(uint16_t));
    for (unsigned p = first_page; p < first_page + sc.pages; p++) {
        c->pages[p].owner.store(s, std::memory_order_relaxed);
        c->pages[p].slab_key.store(slab_key_of(shard, cls), std::memory_order_relaxed);
        c->pages[p].state.store(PageState::slab, std::memory_order_release);
    }
    return s;
}

void slab_delete(Slab *s) {
    s->~Slab();
    std::free(s);
}

void SlabClass::link(Slab *s, ListId l) {
    SlabList &list = lists_[l];
    s->list = l;
    s->prev = nullptr;
    s->next = list.head;
    if (list.head)
        list.head->prev = s;
    list.head = s;
    list.count++;
}

void SlabClass::unlink(Slab *s) {
    SlabList &list = lists_[s->list];
    if (s->prev)
        s->prev->next = s->next;
    else
        list.head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = nullptr;
    list.count--;
}

// Moves s to the list its counts call for.
void SlabClass::relist(Slab *s) {
    ListId want = s->navail == 0 ? kFull : s->navail == s->nobj ? kEmpty : kPartial;
    if (want == s->list)
        return;
    unlink(s);
    link(s, want);
}

void SlabClass::add(Slab *s) {
    link(s, kEmpty);
    avail_ += s->nobj;
}

uint8_t *SlabClass::take(Slab **slab, unsigned *index, bool prefer_clean, bool *stale,
                         size_t *stale_end) {
    // Partial slabs first, so empty ones stay empty and can be given back.
    Slab *s = lists_[kPartial].head ? lists_[kPartial].head : lists_[kEmpty].head;
    if (!s)
        return nullptr;
    unsigned words = static_cast<unsigned>(words_for(s->nobj));
    // Pass 0 (prefer_clean only): objects holding only traps; pass 1: any free object.
    for (int pass = prefer_clean ? 0 : 1; pass < 2; pass++) {
        for (unsigned w = 0; w < words; w++) {
            uint64_t free = pass == 0 ? s->avail[w] & ~s->code[w] : s->avail[w];
            if (!free)
                continue;
            unsigned i = w * 64 + static_cast<unsigned>(std::countr_zero(free));
            if (stale)
                *stale = s->held_code(i);
            if (stale_end)
                *stale_end = s->held_code(i) ? s->code_end(i) : 0;
            clear_bit(s->code, i);  // written (up to stale_end) before it is published
            clear_bit(s->wide, i);
            clear_bit(s->avail, i);
            s->navail--;
            avail_--;
            relist(s);
            *slab = s;
            *index = i;
            return s->object(i);
        }
    }
    return nullptr;  // unreachable while the counts are right
}

void SlabClass::publish(Slab *s, unsigned i, uint32_t requested, bool with_code, bool wide) {
    if (with_code)
        set_bit(s->code, i);
    if (wide)
        set_bit(s->wide, i);
    else
        clear_bit(s->wide, i);
    set_bit(s->live, i);
    s->nlive++;
    s->req[i] = static_cast<uint16_t>(requested - 1);
    s->requested += requested;
    live_++;
    requested_ += requested;
}

int SlabClass::begin_free(Slab *s, unsigned i) {
    if (i >= s->nobj || !s->is_live(i))
        return EINVAL;
    clear_bit(s->live, i);
    s->nlive--;
    s->requested -= s->requested_of(i);
    live_--;
    requested_ -= s->requested_of(i);
    return 0;
}

void SlabClass::abort_free(Slab *s, unsigned i, uint32_t requested) {
    publish(s, i, requested, false, s->is_wide(i));  // as it was: begin_free kept its bits
}

Slab *SlabClass::finish_free(Slab *s, unsigned i, unsigned keep_empty, bool stale,
                             bool unknown_end) {
    set_bit(s->avail, i);
    if (stale)
        set_bit(s->code, i);
    else
        clear_bit(s->code, i);
    s->navail++;
    if (!stale) {  // a stale object keeps its length and wide bit: they bound its code
        s->req[i] = 0;
        clear_bit(s->wide, i);
    } else if (unknown_end) {
        set_bit(s->wide, i);
    }
    avail_++;
    relist(s);
    if (s->list == kEmpty && lists_[kEmpty].count > keep_empty) {
        unlink(s);
        avail_ -= s->nobj;
        return s;
    }
    return nullptr;
}

int SlabClass::set_requested(Slab *s, unsigned i, uint32_t requested) {
    if (i >= s->nobj || !s->is_live(i) || requested == 0 || requested > s->size)
        return EINVAL;
    s->requested -= s->requested_of(i);
    requested_ -= s->requested_of(i);
    s->req[i] = static_cast<uint16_t>(requested - 1);
    s->requested += requested;
    requested_ += requested;
    clear_bit(s->wide, i);  // its caller trap-filled everything past the new length
    return 0;
}

Slab *SlabClass::pop_empty() {
    Slab *s = lists_[kEmpty].head;
    if (s) {
        unlink(s);
        avail_ -= s->nobj;
    }
    return s;
}

Slab *SlabClass::pop_any() {
    for (auto &l : lists_) {
        if (Slab *s = l.head) {
            unlink(s);
            avail_ -= s->navail;
            live_ -= s->nlive;
            requested_ -= s->requested;
            return s;
        }
    }
    return nullptr;
}

uint64_t SlabClass::slabs() const {
    return lists_[kPartial].count + lists_[kFull].count + lists_[kEmpty].count;
}

bool SlabClass::check(unsigned shard, unsigned cls, std::string &msg, bool lazy) const {
    char buf[160];
    auto fail = [&](const char *what, const Slab *s, unsigned i) {
        std::snprintf(buf, sizeof buf, "slab class %u (shard %u): %s (slab %p object %u)", cls, shard, what,
                      s ? static_cast<const void *>(s->base) : nullptr, i);
        msg = buf;
        return false;
    };
    uint64_t live = 0, avail = 0, requested = 0;
    for (unsigned l = 0; l < kNumLists; l++) {
        uint64_t n = 0;
        const Slab *prev = nullptr;
        for (const Slab *s = lists_[l].head; s; prev = s, s = s->next) {
            if (s->prev != prev)
                return fail("broken list link", s, 0);
            if (s->list != l || s->cls != cls)
                return fail("slab on the wrong list", s, 0);
            if (s->shard != shard)
                return fail("slab in another shard's class", s, 0);
            const SizeClass &sc = size_class(cls);
            if (s->nobj != sc.objects || s->size != sc.size)
                return fail("geometry differs from its class", s, 0);
            unsigned na = 0, nl = 0;
            uint64_t req = 0;
            for (unsigned i = 0; i < s->nobj; i++) {
                bool a = s->is_avail(i), lv = s->is_live(i);
                if (a && lv)
                    return fail("object both free and live", s, i);
                na += a;
                nl += lv;
                if (lv) {
                    if (s->requested_of(i) > s->size)
                        return fail("live object with bad length", s, i);
                    req += s->requested_of(i);
                }
                if (a && s->held_code(i) && !lazy)
                    return fail("free object marked as holding code", s, i);
                if (a && !s->held_code(i) && !holds_only_traps(s->object(i), s->size))
                    return fail("free object holds non-trap bytes", s, i);
                if (a && !s->held_code(i) && (s->req[i] != 0 || s->is_wide(i)))
                    return fail("free object keeps a length", s, i);
                // Marked before any write past it (locate), so never behind the bytes.
                if ((lv || (a && s->held_code(i))) &&
                    !holds_only_traps(s->object(i) + s->code_end(i), s->size - s->code_end(i)))
                    return fail("object holds non-trap bytes past its code end", s, i);
            }
            if (na != s->navail || nl != s->nlive || req != s->requested)
                return fail("counts disagree with bitmaps", s, 0);
            ListId want = na == 0 ? kFull : na == s->nobj ? kEmpty : kPartial;
            if (want != l)
                return fail("slab on a list its counts do not match", s, 0);
            for (unsigned p = s->first_page; p < s->first_page + sc.pages; p++) {
                const PageDesc &d = s->chunk->pages[p];
                if (d.state.load() != PageState::slab || d.owner.load() != s ||
                    d.slab_key.load() != slab_key_of(s->shard, cls))
                    return fail("page descriptor does not point to its slab", s, p);
            }
            live += nl;
            avail += na;
            requested += req;
            if (++n > (uint64_t{1} << 40))
                return fail("list cycle", s, 0);
        }
        if (n != lists_[l].count)
            return fail("list count wrong", nullptr, l);
    }
    if (live != live_ || avail != avail_ || requested != requested_)
        return fail("class totals disagree", nullptr, 0);
    return true;
}

}  // namespace jitalloc
