// Buddy allocator over the page descriptors of 2 MiB chunks (see buddy.h).
// Allocation takes the smallest order that fits, so wholly free chunks (order 9) are
// split last and drain back to the OS; sizes that are not a power of two get an exact
// run of pages, the tail of the block going straight back to the free lists.
#include "buddy/buddy.h"

#include <bit>
#include <cstdio>

namespace jitalloc {

namespace {

unsigned order_for(unsigned npages) { return static_cast<unsigned>(std::bit_width(npages - 1)); }

void set_state(Chunk *c, unsigned first, unsigned n, PageState s) {
    for (unsigned i = first; i < first + n; i++)
        c->pages[i].state.store(s, std::memory_order_release);
}

}  // namespace

void Buddy::push(Chunk *c, unsigned index, unsigned order) {
    PageDesc *d = &c->pages[index];
    // A descriptor's first time on a list: its chunk and index (see PageDesc).
    d->chunk = c;
    d->index = static_cast<uint16_t>(index);
    d->set_free_order(order);
    d->prev = nullptr;
    d->next = heads_[order];
    if (d->next)
        d->next->prev = d;
    heads_[order] = d;
    nr_free_[order]++;
}

void Buddy::unlink(PageDesc *d) {
    unsigned order = d->free_order();
    if (d->prev)
        d->prev->next = d->next;
    else
        heads_[order] = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->next = d->prev = nullptr;
    d->set_free_order(kNoOrder);
    nr_free_[order]--;
}

void Buddy::add_chunk(Chunk *c) {
    // Every descriptor is in its reset state (free: chunk.h), so none is written here but
    // the block's head: a descriptor page is touched only once the buddy uses it.
    c->free_pages = kPagesPerChunk;
    push(c, 0, kMaxOrder);
    nr_cached_[kMaxOrder]++;
}

bool Buddy::remove_chunk(Chunk *c) {
    PageDesc *d = &c->pages[0];
    if (d->free_order() != kMaxOrder)
        return false;
    unlink(d);
    c->free_pages = 0;
    nr_released_[kMaxOrder]++;
    return true;
}

void Buddy::undo_remove_chunk(Chunk *c) {
    c->free_pages = kPagesPerChunk;
    push(c, 0, kMaxOrder);
    nr_released_[kMaxOrder]--;
}

void Buddy::forget_chunk(Chunk *c) {
    for (unsigned i = 0; i < kPagesPerChunk; i++)
        if (c->pages[i].free_order() != kNoOrder)
            unlink(&c->pages[i]);
    c->free_pages = 0;
}

Chunk *Buddy::any_free_chunk() const {
    return heads_[kMaxOrder] ? heads_[kMaxOrder]->chunk : nullptr;
}

PageDesc *Buddy::alloc(unsigned npages) {
    if (npages == 0 || npages > kPagesPerChunk)
        return nullptr;
    unsigned want = order_for(npages);
    unsigned order = want;
    while (order <= kMaxOrder && !heads_[order])
        order++;
    if (order > kMaxOrder)
        return nullptr;
    return carve(heads_[order], order, npages);
}

PageDesc *Buddy::alloc_first(Chunk *c, unsigned npages) {
    if (npages == 0 || npages > kPagesPerChunk || c->pages[0].free_order() != kMaxOrder)
        return nullptr;
    return carve(&c->pages[0], kMaxOrder, npages);
}

PageDesc *Buddy::carve(PageDesc *d, unsigned order, unsigned npages) {
    unsigned want = order_for(npages);
    Chunk *c = d->chunk;
    unsigned first = d->index;
    unlink(d);
    // Split down to the wanted order; the upper halves go back on the lists.
    while (order > want) {
        order--;
        push(c, first + (1u << order), order);
    }
    c->free_pages -= 1u << want;
    // Give back the tail of the block that the request does not need.
    unsigned extra = (1u << want) - npages;
    if (extra)
        free(c, first + npages, extra);
    set_state(c, first + 1, npages - 1, PageState::pages_tail);
    for (unsigned i = first + 1; i < first + npages; i++)
        c->pages[i].head = static_cast<uint16_t>(first);
    PageDesc &head = c->pages[first];
    head.npages = static_cast<uint16_t>(npages);  // <= kPagesPerChunk
    head.held_code = false;
    head.state.store(PageState::pages_head, std::memory_order_release);
    return &head;
}

void Buddy::free_block(Chunk *c, unsigned first, unsigned order) {
    set_state(c, first, 1u << order, PageState::free);
    for (unsigned i = first; i < first + (1u << order); i++) {
        c->pages[i].owner.store(nullptr, std::memory_order_relaxed);
        c->pages[i].slab_key.store(kNoSlab, std::memory_order_relaxed);
    }
    c->free_pages += 1u << order;
    while (order < kMaxOrder) {
        unsigned buddy = first ^ (1u << order);
        PageDesc &b = c->pages[buddy];
        if (b.free_order() != order)
            break;
        unlink(&b);
        first &= buddy;
        order++;
    }
    push(c, first, order);
}

bool Buddy::free(Chunk *c, unsigned first, unsigned npages) {
    c->pages[first].npages = 0;
    c->pages[first].requested = 0;
    // Decompose the run into maximal aligned power-of-two blocks.
    unsigned end = first + npages;
    while (first < end) {
        unsigned order = first ? static_cast<unsigned>(std::countr_zero(first)) : kMaxOrder;
        while ((1u << order) > end - first)
            order--;
        free_block(c, first, order);
        first += 1u << order;
    }
    return c->free_pages == kPagesPerChunk;
}

uint64_t Buddy::free_pages() const {
    uint64_t n = 0;
    for (unsigned o = 0; o <= kMaxOrder; o++)
        n += nr_free_[o] << o;
    return n;
}

bool Buddy::check(const Chunk *chunks, std::string &msg) const {
    char buf[160];
    auto fail = [&](const char *what, const Chunk *c, unsigned page) {
        std::snprintf(buf, sizeof buf, "buddy: %s (chunk %p page %u)", what,
                      c ? static_cast<const void *>(c->base) : nullptr, page);
        msg = buf;
        return false;
    };
    // Free lists: well-formed, aligned, all pages free, no free buddy left uncoalesced.
    uint64_t listed_pages = 0;
    for (unsigned o = 0; o <= kMaxOrder; o++) {
        uint64_t n = 0;
        const PageDesc *prev = nullptr;
        for (const PageDesc *d = heads_[o]; d; prev = d, d = d->next) {
            const Chunk *c = d->chunk;
            if (!c || d->index >= kPagesPerChunk || &c->pages[d->index] != d)
                return fail("listed page without its chunk and index", c, d->index);
            if (d->prev != prev)
                return fail("broken free-list link", c, d->index);
            if (d->free_order() != o)
                return fail("free-list order mismatch", c, d->index);
            if (d->index & ((1u << o) - 1))
                return fail("misaligned free block", c, d->index);
            for (unsigned i = d->index; i < d->index + (1u << o); i++) {
                if (c->pages[i].state.load() != PageState::free)
                    return fail("page in free block not free", c, i);
                if (i != d->index && c->pages[i].free_order() != kNoOrder)
                    return fail("free block overlaps another", c, i);
            }
            if (o < kMaxOrder && c->pages[d->index ^ (1u << o)].free_order() == o)
                return fail("free buddies not coalesced", c, d->index);
            if (++n > (uint64_t{1} << 40))
                return fail("free-list cycle", c, d->index);
        }
        if (n != nr_free_[o])
            return fail("nr_free disagrees with free list", nullptr, o);
        listed_pages += n << o;
    }
    // Chunks: every free page lies in a listed block; counts agree.
    uint64_t chunk_free = 0;
    for (const Chunk *c = chunks; c; c = c->next) {
        if (c->large)
            continue;
        unsigned free_here = 0, i = 0;
        while (i < kPagesPerChunk) {
            const PageDesc &d = c->pages[i];
            if (d.free_order() != kNoOrder) {
                free_here += 1u << d.free_order();
                i += 1u << d.free_order();
                continue;
            }
            PageState s = d.state.load();
            if (s == PageState::free)
                return fail("free page outside any free block", c, i);
            if (s == PageState::pages_head || s == PageState::transit) {
                if (d.npages == 0 || i + d.npages > kPagesPerChunk)
                    return fail("bad page-allocation length", c, i);
                for (unsigned t = i + 1; t < i + d.npages; t++)
                    if (c->pages[t].state.load() != PageState::pages_tail || c->pages[t].head != i)
                        return fail("page-allocation tail broken", c, t);
                i += d.npages;
                continue;
            }
            if (s == PageState::pages_tail)
                return fail("tail page without head", c, i);
            i++;  // slab pages are checked by the slab layer
        }
        if (free_here != c->free_pages)
            return fail("chunk free_pages disagrees", c, free_here);
        chunk_free += free_here;
    }
    if (chunk_free != listed_pages)
        return fail("free lists hold pages of unknown chunks", nullptr, 0);
    return true;
}

}  // namespace jitalloc
