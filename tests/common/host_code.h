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

// ---- live patching (jit_patch, tests/core/patch_*) ----
// jit_patch has a protocol for x86-64 (src/arch/live_patch.h).
constexpr bool kLivePatch = true;
// A patch site: kSiteLen bytes, one instruction in either variant.
constexpr size_t kSiteLen = 5;
// Call site function: `mov eax, 2; sub rsp, 8; SITE; add rsp, 8; ret`, the site a
// `call one` (variant 0: returns what one returns) or a 5-byte nop (variant 1: 2).
constexpr size_t kCallSiteAt = 9;
inline std::vector<uint8_t> call_site_fn() {
    return {0xb8, 2, 0, 0, 0, 0x48, 0x83, 0xec, 0x08, 0, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x08, 0xc3};
}
// Jump site function: `SITE; mov eax, 2; ret`, the site a `jmp one` (variant 0) or a
// 2-byte `jmp +3` over three int3 (variant 1: an instruction of another length whose
// leftover bytes nothing reaches).
constexpr size_t kJumpSiteAt = 0;
inline std::vector<uint8_t> jump_site_fn() { return {0, 0, 0, 0, 0, 0xb8, 2, 0, 0, 0, 0xc3}; }
// The site's bytes for `variant`, the site at `at` and `one` the function variant 0 reaches.
inline void site_variant(uint8_t out[kSiteLen], bool call, int variant, const uint8_t *at,
                         const void *one) {
    if (variant == 0) {
        int32_t rel = static_cast<int32_t>(static_cast<const uint8_t *>(one) - (at + 5));
        out[0] = call ? 0xe8 : 0xe9;
        std::memcpy(out + 1, &rel, 4);
        return;
    }
    static const uint8_t nop5[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
    static const uint8_t jmp8[] = {0xeb, 0x03, 0xcc, 0xcc, 0xcc};
    std::memcpy(out, call ? nop5 : jmp8, 5);
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

// ---- live patching (jit_patch, tests/core/patch_*) ----
// No protocol for arm64 yet: jit_patch fails with EOPNOTSUPP and changes nothing
// (src/arch/live_patch.h says what arm64 needs).
constexpr bool kLivePatch = false;
constexpr size_t kSiteLen = 4;
// Call site function: `stp x29, x30; mov w0, #2; SITE; ldp x29, x30; ret`, the site a
// `bl one` (variant 0: returns what one returns) or a nop (variant 1: 2).
constexpr size_t kCallSiteAt = 8;
inline std::vector<uint8_t> call_site_fn() {
    return a64::bytes({a64::push_frame(), a64::movz_w(0, 2), 0, a64::pop_frame(), a64::ret()});
}
// Jump site function: `SITE; mov w0, #2; ret`, the site a `b one` (variant 0) or a nop.
constexpr size_t kJumpSiteAt = 0;
inline std::vector<uint8_t> jump_site_fn() {
    return a64::bytes({0, a64::movz_w(0, 2), a64::ret()});
}
inline void site_variant(uint8_t out[kSiteLen], bool call, int variant, const uint8_t *at,
                         const void *one) {
    int64_t off = static_cast<const uint8_t *>(one) - at;
    a64::Insn i = variant == 1 ? a64::nop() : call ? a64::bl(off) : a64::b(off);
    std::memcpy(out, &i, 4);
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
