// A tiny AArch64 encoder for the tests: the handful of A64 instructions they generate,
// each checked against the ARM ARM encoding (and binutils' objdump while writing it).
// Instructions are 32-bit little-endian words; branch offsets are relative to the
// branch's own address, in bytes, a multiple of 4.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace a64 {

using Insn = uint32_t;

constexpr Insn nop() { return 0xd503201f; }
constexpr Insn ret() { return 0xd65f03c0; }  // ret x30
constexpr Insn isb() { return 0xd5033fdf; }
constexpr Insn brk(uint16_t imm) { return 0xd4200000u | uint32_t{imm} << 5; }
// movz wd, #imm16, lsl #(16*hw)
constexpr Insn movz_w(unsigned rd, uint16_t imm, unsigned hw = 0) {
    return 0x52800000u | hw << 21 | uint32_t{imm} << 5 | rd;
}
// movk wd, #imm16, lsl #(16*hw)
constexpr Insn movk_w(unsigned rd, uint16_t imm, unsigned hw) {
    return 0x72800000u | hw << 21 | uint32_t{imm} << 5 | rd;
}
// add wd, wn, wm
constexpr Insn add_w(unsigned rd, unsigned rn, unsigned rm) {
    return 0x0b000000u | rm << 16 | rn << 5 | rd;
}
// ldr wt, <pc + off>   (literal; off a multiple of 4 within +-1 MiB)
constexpr Insn ldr_w_literal(unsigned rt, int32_t off) {
    return 0x18000000u | (static_cast<uint32_t>(off / 4) & 0x7ffff) << 5 | rt;
}
// b / bl <pc + off>   (off a multiple of 4 within +-128 MiB)
constexpr bool branch_reaches(int64_t off) {
    return off % 4 == 0 && off >= -(int64_t{1} << 27) && off < (int64_t{1} << 27);
}
constexpr Insn b(int64_t off) { return 0x14000000u | (static_cast<uint32_t>(off / 4) & 0x3ffffff); }
constexpr Insn bl(int64_t off) { return 0x94000000u | (static_cast<uint32_t>(off / 4) & 0x3ffffff); }
// stp x29, x30, [sp, #-16]!   /   ldp x29, x30, [sp], #16
constexpr Insn push_frame() { return 0xa9bf7bfd; }
constexpr Insn pop_frame() { return 0xa8c17bfd; }

// Appends instructions (or data words) as little-endian bytes.
inline void emit(std::vector<uint8_t> &out, Insn i) {
    uint8_t b[4];
    std::memcpy(b, &i, 4);  // AArch64 Linux is little-endian
    out.insert(out.end(), b, b + 4);
}
inline std::vector<uint8_t> bytes(std::initializer_list<Insn> insns) {
    std::vector<uint8_t> v;
    for (Insn i : insns)
        emit(v, i);
    return v;
}

}  // namespace a64
