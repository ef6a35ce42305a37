// Size-class table (see size_class.h), computed once at compile time.
#include "slab/size_class.h"

#include "chunk/chunk.h"

#include <array>
#include <bit>

namespace jitalloc {

namespace {

// The top group (32..64 KiB): sizes that divide a power-of-two slab with a small tail
// (40320 = 512 KiB / 13, 43680 = 128 KiB / 3, ...) instead of the 4 KiB steps, whose
// slabs left 5..9% unusable (RESULTS.md section 5). 58368 is a one-object step that keeps
// the rounding from 58240 to 65536 under 1/8.
constexpr uint32_t kTopGroup[8] = {36864, 40320, 43680, 47648, 52416, 58240, 58368, 65536};

constexpr uint32_t class_size(unsigned i) {
    if (i < 16)
        return 16 * (i + 1);
    unsigned group = (i - 16) / 8;  // 0: 256..512, 1: 512..1024, ...
    if (group == 7)
        return kTopGroup[(i - 16) % 8];
    unsigned step = 32u << group;
    return (256u << group) + step * ((i - 16) % 8 + 1);
}

// Slabs are power-of-two runs of pages (1..128) — whole buddy blocks, so making and
// freeing a slab never splits a block into odd pieces (which would fragment the buddy
// under churn). Each class takes the smallest such slab whose unusable tail is at most
// 1/32 of it, failing that the one with the smallest tail; at most kMaxSlabObjects
// objects.
constexpr SizeClass make_class(unsigned i) {
    uint32_t size = class_size(i);
    SizeClass best{size, 0, 0};
    uint64_t best_waste_num = 1, best_waste_den = 0;  // infinite
    for (unsigned pages = 1; pages <= 128; pages *= 2) {
        uint64_t bytes = uint64_t{pages} * kPageSize;
        uint64_t objects = bytes / size;
        if (objects == 0 || objects > kMaxSlabObjects)
            continue;
        uint64_t waste = bytes - objects * size;
        if (waste * 32 <= bytes)
            return SizeClass{size, static_cast<uint16_t>(pages), static_cast<uint16_t>(objects)};
        if (best_waste_den == 0 || waste * best_waste_den < best_waste_num * bytes) {
            best = SizeClass{size, static_cast<uint16_t>(pages), static_cast<uint16_t>(objects)};
            best_waste_num = waste;
            best_waste_den = bytes;
        }
    }
    return best;
}

constexpr std::array<SizeClass, kNumClasses> make_table() {
    std::array<SizeClass, kNumClasses> t{};
    for (unsigned i = 0; i < kNumClasses; i++)
        t[i] = make_class(i);
    return t;
}

constexpr std::array<SizeClass, kNumClasses> kTable = make_table();

static_assert(kTable[kNumClasses - 1].size == kMaxSlabSize);
static_assert(kTable[0].objects > 0 && kTable[kNumClasses - 1].objects > 0);

}  // namespace

const SizeClass &size_class(unsigned index) { return kTable[index]; }

namespace {

int smallest_class(size_t len) {
    if (len <= 256)
        return static_cast<int>((len - 1) / 16);
    // len in (256 << g, 512 << g]: group g, step 32 << g.
    unsigned g = static_cast<unsigned>(std::bit_width(len - 1)) - 9;
    if (g == 7) {
        unsigned j = 0;
        while (kTopGroup[j] < len)
            j++;
        return static_cast<int>(16 + 8 * g + j);
    }
    size_t step = size_t{32} << g;
    size_t base = size_t{256} << g;
    return static_cast<int>(16 + 8 * g + (len - base - 1) / step);
}

}  // namespace

int class_index(size_t len, size_t align) {
    if (len == 0 || len > kMaxSlabSize)
        return -1;
    for (unsigned i = static_cast<unsigned>(smallest_class(len)); i < kNumClasses; i++)
        if (kTable[i].size % align == 0)
            return static_cast<int>(i);
    return -1;
}

}  // namespace jitalloc
