// Slab size classes.
//
// 16-byte steps up to 256 bytes, then eight classes per doubling up to 16 KiB, so the
// space lost to rounding stays under 1/8 of a request (about 6% on average). Each class
// picks its slab length (1..16 pages) so the slab's unusable tail is small.
// Requests above kMaxSlabSize are served by the buddy in whole pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitalloc {

inline constexpr unsigned kNumClasses = 64;
inline constexpr size_t kMaxSlabSize = 16384;
inline constexpr unsigned kMaxSlabObjects = 512;

struct SizeClass {
    uint32_t size;     // bytes per object, a multiple of 16
    uint16_t pages;    // pages per slab
    uint16_t objects;  // objects per slab
};

const SizeClass &size_class(unsigned index);
// Class for a request of len bytes (1..kMaxSlabSize); -1 above that.
int class_index(size_t len);

}  // namespace jitalloc
