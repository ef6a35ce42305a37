// Small functions in the host's instruction set, for the core and reliability tests.
#pragma once

#include "a64.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace jt_code {

// Each keeps its constant as a 4-byte
// little-endian word at a fixed offset (kRetImmOff / kAddImmOff), so a test patches the
// result by writing 4 bytes there: an imm32 operand on x86-64, a literal word read by
// `ldr` on arm64 (aligned, so the update is one single-copy-atomic store).

#if defined(__x86_64__)
constexpr size_t kRetImmLen = 6, kAddImmLen = 7;
constexpr size_t kRetImmOff = 1;
constexpr size_t kAddImmOff = 2;
constexpr uint8_t kPadByte[1] = {0x90};  // nop
// ret_imm_code(imm) for 0 <= imm < 256 as a braced list (for APIs and arrays taking one).
#define JT_RET_IMM_BRACED(imm) {0xb8, imm, 0, 0, 0, 0xc3}

// `mov eax, imm32; ret`
inline std::vector<uint8_t> ret_imm_code(int32_t imm) {
    std::vector<uint8_t> v = {0xb8, 0, 0, 0, 0, 0xc3};
    std::memcpy(&v[kRetImmOff], &imm, 4);
    return v;
}
// `lea eax, [rdi + imm32]; ret` (returns x + imm).
inline std::vector<uint8_t> add_imm_code(int32_t imm) {
    std::vector<uint8_t> v = {0x8d, 0x87, 0, 0, 0, 0, 0xc3};
    std::memcpy(&v[kAddImmOff], &imm, 4);
    return v;
}
#elif defined(__aarch64__)
constexpr size_t kRetImmLen = 12, kAddImmLen = 16;
constexpr size_t kRetImmOff = 8;
constexpr size_t kAddImmOff = 12;
constexpr uint8_t kPadByte[4] = {0x1f, 0x20, 0x03, 0xd5};  // nop
// ret_imm_code(imm) for 0 <= imm < 256 as a braced list (for APIs and arrays taking one).
#define JT_RET_IMM_BRACED(imm) {0x40, 0, 0, 0x18, 0xc0, 0x03, 0x5f, 0xd6, imm, 0, 0, 0}

// `ldr w0, imm; ret; imm: .word imm32`
inline std::vector<uint8_t> ret_imm_code(int32_t imm) {
    return a64::bytes({a64::ldr_w_literal(0, 8), a64::ret(), static_cast<uint32_t>(imm)});
}
// `ldr w1, imm; add w0, w0, w1; ret; imm: .word imm32` (returns x + imm).
inline std::vector<uint8_t> add_imm_code(int32_t imm) {
    return a64::bytes({a64::ldr_w_literal(1, 12), a64::add_w(0, 0, 1), a64::ret(),
                       static_cast<uint32_t>(imm)});
}
#endif

// Pads code to `len` bytes with nops (never run: they follow the ret).
inline std::vector<uint8_t> padded(std::vector<uint8_t> v, size_t len) {
    for (size_t i = v.size(); i < len; i++)
        v.push_back(kPadByte[i % sizeof kPadByte]);
    return v;
}
// Returns imm, padded to `len` bytes (at least kRetImmLen).
inline std::vector<uint8_t> ret_imm(int32_t imm, size_t len = kRetImmLen) {
    return padded(ret_imm_code(imm), len);
}
// Returns x + imm, padded to `len` bytes (at least kAddImmLen).
inline std::vector<uint8_t> add_imm(int32_t imm, size_t len = kAddImmLen) {
    return padded(add_imm_code(imm), len);
}

}  // namespace jt_code
