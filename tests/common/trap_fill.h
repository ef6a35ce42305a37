// The trap fill as tests expect it, written apart from the library's own checker
// (holds_only_traps) so a bug there cannot hide itself. Fresh, freed and tail memory hold
// whole trap instructions laid out from chunk bases: x86-64 int3 (1 byte), arm64
// brk #0x100 (4 bytes), so the byte expected at an address depends on its phase.
#pragma once

#include "arch/arch.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace jt_traps {

// The trap byte expected at address a.
inline uint8_t trap_at(const void *a) {
    return jitalloc::arch::trap_byte_at(reinterpret_cast<uintptr_t>(a));
}

// The bytes a trap-filled [p, p+len) holds (a model of fresh memory).
inline std::vector<uint8_t> trap_bytes(const void *p, size_t len) {
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; i++)
        v[i] = trap_at(static_cast<const uint8_t *>(p) + i);
    return v;
}

// Writes the trap fill into ordinary memory (unit tests of the metadata layers).
inline void fill_traps(void *p, size_t len) {
    auto *q = static_cast<uint8_t *>(p);
    for (size_t i = 0; i < len; i++)
        q[i] = trap_at(q + i);
}

// [p, p+len) holds only the trap fill. memcmp against a reference block: one range check
// per 4 KiB under the sanitizers, not one per byte.
inline bool all_traps(const void *p, size_t len) {
    constexpr size_t kBlock = 4096;  // a multiple of every trap instruction's size
    static const auto block = [] {
        std::vector<uint8_t> b(kBlock);
        for (size_t i = 0; i < kBlock; i++)
            b[i] = jitalloc::arch::trap_byte_at(i);
        return b;
    }();
    auto *q = static_cast<const uint8_t *>(p);
    for (size_t done = 0; done < len;) {
        size_t phase = (reinterpret_cast<uintptr_t>(q) + done) % kBlock;
        size_t n = kBlock - phase < len - done ? kBlock - phase : len - done;
        if (std::memcmp(q + done, block.data() + phase, n) != 0)
            return false;
        done += n;
    }
    return true;
}

}  // namespace jt_traps
