// DataHeap (see data_heap.h): best-fit over coalesced free ranges, 2 MiB blocks from
// jit_arena_map_near, pages given back as soon as they hold no live data.
#include "data_heap.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace jitalloc::orc::detail {

namespace {

constexpr size_t kGranule = 16;
constexpr size_t kBlockBytes = size_t{2} << 20;
// Candidates tried at the best-fit size before a range big enough for any alignment
// padding is taken instead (keeps over-aligned requests O(log n)).
constexpr int kAlignedTries = 32;

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

uintptr_t align_up(uintptr_t v, size_t a) { return (v + a - 1) & ~(uintptr_t{a} - 1); }
uintptr_t align_down(uintptr_t v, size_t a) { return v & ~(uintptr_t{a} - 1); }

}  // namespace

DataHeap::~DataHeap() {
    for (auto &[base, b] : blocks_)
        munmap(reinterpret_cast<void *>(base), b.size);
}

DataHeap::Blocks::iterator DataHeap::block_of(uintptr_t addr) {
    auto it = blocks_.upper_bound(addr);
    return it == blocks_.begin() ? blocks_.end() : std::prev(it);
}

void DataHeap::erase_free_locked(std::map<uintptr_t, size_t>::iterator it) {
    free_by_size_.erase({it->second, it->first});
    free_by_addr_.erase(it);
}

// Adds [start, start+len) to the free ranges, merged with free neighbours in its block.
void DataHeap::insert_free_locked(uintptr_t start, size_t len) {
    auto b = block_of(start);
    uintptr_t block_lo = b->first, block_hi = b->first + b->second.size;
    uintptr_t end = start + len;
    auto next = free_by_addr_.lower_bound(start);
    if (next != free_by_addr_.begin()) {
        auto prev = std::prev(next);
        if (prev->first >= block_lo && prev->first + prev->second == start) {
            start = prev->first;
            erase_free_locked(prev);
        }
    }
    if (next != free_by_addr_.end() && next->first == end && end < block_hi) {
        end += next->second;
        erase_free_locked(next);
    }
    free_by_addr_.emplace(start, end - start);
    free_by_size_.emplace(end - start, start);
}

int DataHeap::add_block_locked(size_t min_len) {
    size_t size = min_len <= kBlockBytes ? kBlockBytes : align_up(min_len, page_size());
    int prot = access_ == Access::ReadOnly ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = jit_arena_map_near(arena_, size, prot);
    if (!p)
        return errno;
    auto base = reinterpret_cast<uintptr_t>(p);
    blocks_.emplace(base, Block{size, 0});
    bytes_mapped_ += size;
    insert_free_locked(base, size);
    return 0;
}

void DataHeap::release_block_locked(Blocks::iterator b) {
    erase_free_locked(free_by_addr_.find(b->first));  // the whole block: one free range
    munmap(reinterpret_cast<void *>(b->first), b->second.size);
    bytes_mapped_ -= b->second.size;
    if (spare_block_ == b->first)
        spare_block_ = 0;
    blocks_.erase(b);
}

int DataHeap::alloc(size_t len, size_t align, uint8_t **out) {
    if (len == 0 || len > JIT_MAX_ALLOC_SIZE || align == 0 || (align & (align - 1)) != 0 ||
        align > JIT_MAX_ALLOC_SIZE)
        return EINVAL;
    const size_t need = align_up(len, kGranule);
    const size_t a = align < kGranule ? kGranule : align;
    const size_t any_alignment = need + (a - kGranule);  // a range this big always fits
    uintptr_t at = 0;
    {
        std::lock_guard<std::mutex> g(lock_);
        auto fits = [&](std::pair<size_t, uintptr_t> r) {
            return align_up(r.second, a) + need <= r.second + r.first;
        };
        auto it = free_by_size_.lower_bound({need, 0});
        for (int tries = 0; it != free_by_size_.end() && !fits(*it); tries++, ++it)
            if (tries == kAlignedTries) {
                it = free_by_size_.lower_bound({any_alignment, 0});
                break;
            }
        if (it == free_by_size_.end()) {
            if (int rc = add_block_locked(any_alignment))
                return rc;
            it = free_by_size_.lower_bound({any_alignment, 0});
        }
        auto [size, start] = *it;
        erase_free_locked(free_by_addr_.find(start));
        at = align_up(start, a);
        // The pieces left on either side touch only handed-out memory: no merging.
        if (at > start) {
            free_by_addr_.emplace(start, at - start);
            free_by_size_.emplace(at - start, start);
        }
        uintptr_t tail = at + need, end = start + size;
        if (tail < end) {
            free_by_addr_.emplace(tail, end - tail);
            free_by_size_.emplace(end - tail, tail);
        }
        auto b = block_of(at);
        b->second.in_use += need;
        if (spare_block_ == b->first)
            spare_block_ = 0;
        bytes_in_use_ += need;
    }
    *out = reinterpret_cast<uint8_t *>(at);
    // Ours alone now: zero it outside the lock (its pages may have been given back and
    // read as zero already, but a reused range holds an old graph's data).
    if (access_ == Access::ReadWrite)
        std::memset(*out, 0, need);
    return 0;
}

void DataHeap::free(uint8_t *p, size_t len) {
    const size_t need = align_up(len, kGranule);
    const auto start = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> g(lock_);
    auto b = block_of(start);
    b->second.in_use -= need;
    bytes_in_use_ -= need;
    insert_free_locked(start, need);
    // Give back the pages this free made wholly free: those inside the merged free
    // range that overlap the freed bytes (any other page of it was given back when it
    // became free). Under the lock, so no one is handed these pages meanwhile.
    auto merged = std::prev(free_by_addr_.upper_bound(start));
    const size_t page = page_size();
    uintptr_t lo = std::max(align_up(merged->first, page), align_down(start, page));
    uintptr_t hi = std::min(align_down(merged->first + merged->second, page),
                            align_up(start + need, page));
    if (b->second.in_use == 0 && (spare_block_ != 0 || b->second.size != kBlockBytes)) {
        release_block_locked(b);
        return;
    }
    if (lo < hi)
        madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
    if (b->second.in_use == 0)
        spare_block_ = b->first;
}

int DataHeap::write(uint8_t *dst, const void *src, size_t len) {
    if (len == 0)
        return 0;
    if (access_ == Access::ReadWrite) {
        std::memcpy(dst, src, len);
        return 0;
    }
    const size_t page = page_size();
    auto lo = reinterpret_cast<void *>(align_down(reinterpret_cast<uintptr_t>(dst), page));
    size_t span = align_up(reinterpret_cast<uintptr_t>(dst) + len, page) -
                  reinterpret_cast<uintptr_t>(lo);
    // One writer at a time: two overlapping flips would let one thread make the pages
    // read-only while another is still copying.
    std::lock_guard<std::mutex> g(lock_);
    if (mprotect(lo, span, PROT_READ | PROT_WRITE) != 0)
        return errno;
    std::memcpy(dst, src, len);
    if (mprotect(lo, span, PROT_READ) != 0 && mprotect(lo, span, PROT_READ) != 0)
        return errno;
    return 0;
}

DataStats DataHeap::stats() const {
    std::lock_guard<std::mutex> g(lock_);
    DataStats s;
    s.blocks = blocks_.size();
    s.bytes_mapped = bytes_mapped_;
    s.bytes_in_use = bytes_in_use_;
    const size_t page = page_size();
    unsigned char vec[512];
    for (auto &[base, b] : blocks_)
        for (size_t off = 0; off < b.size; off += sizeof vec * page) {
            size_t span = std::min(b.size - off, sizeof vec * page);
            if (mincore(reinterpret_cast<void *>(base + off), span, vec) != 0)
                continue;
            for (size_t i = 0; i < span / page; i++)
                s.bytes_resident += (vec[i] & 1) ? page : 0;
        }
    return s;
}

size_t DataHeap::shrink() {
    std::lock_guard<std::mutex> g(lock_);
    if (!spare_block_)
        return 0;
    auto b = blocks_.find(spare_block_);
    size_t bytes = b->second.size;
    release_block_locked(b);
    return bytes;
}

}  // namespace jitalloc::orc::detail
