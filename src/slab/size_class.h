// Slab size classes.
//
// 16-byte steps up to 256 bytes, then eight classes per doubling up to 64 KiB, so the
// space lost to rounding stays under 1/8 of a request (about 6% on average); evenly
// spaced below 32 KiB, sized above it to divide their slab (size_class.cpp). Each class
// picks its slab length (1 to 128 pages, a power of two: one buddy block) so the
// unusable tail is small.
// Requests above kMaxSlabSize are served by the buddy in whole pages. Keeping everything
// up to 64 KiB in slabs means the buddy mostly sees power-of-two requests, which it
// serves without leaving odd fragments behind (measured under BPF-like churn: mapped
// bytes per requested byte at 50 000 live fell from 1.43 to 1.17).
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitalloc {

inline constexpr unsigned kNumClasses = 80;
inline constexpr size_t kMaxSlabSize = 65536;
inline constexpr unsigned kMaxSlabObjects = 512;

struct SizeClass {
    uint32_t size;     // bytes per object, a multiple of 16
    uint16_t pages;    // pages per slab
    uint16_t objects;  // objects per slab
};

const SizeClass &size_class(unsigned index);
// Class for a request of len bytes (1..kMaxSlabSize) whose objects all start at a
// multiple of align (a power of two up to kPageSize: slabs start on a page, so an object
// size that is a multiple of align keeps every object aligned); -1 if none, or above
// kMaxSlabSize.
int class_index(size_t len, size_t align = 16);

}  // namespace jitalloc
