#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_arena.cpp (one file per scenario). The encoding is
the harness's: an opcode byte (mod 16) and its argument bytes."""
import os, struct

def u32(v): return struct.pack('<I', v & 0xffffffff)
def create(slot, w, flags=0): return bytes([0, slot, w, flags])
def destroy(slot): return bytes([1, slot])
def alloc(slot, kind, v, seed=7, code=True): return bytes([2 if code else 4, slot, kind]) + u32(v) + bytes([seed])
def update(idx, off, n, seed=9, inb=True): return bytes([5 if inb else 7, idx]) + u32(off) + u32(n) + bytes([seed])
def free(idx, how=1): return bytes([8, idx, how])
def bad_free(kind, v=0): return bytes([10, kind]) + u32(v)
def shrink(slot): return bytes([11, slot])
def stats(slot): return bytes([12, slot])
def call(idx, imm): return bytes([13, idx]) + u32(imm)
def fault(nth, e, mask): return bytes([14, nth, e, mask])
def check(): return bytes([15])

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
seeds = {}
for w in range(6):
    seeds[f'writer{w}_basic'] = (create(0, w) + alloc(0, 0, 40) + alloc(0, 3, 5000) + alloc(0, 5, 3 << 12)
        + alloc(0, 6, 100, code=False) + update(1, 3, 64) + update(0, 0, 9999, inb=False)
        + call(0, 0x1234) + free(2) + bad_free(0, 5) + bad_free(1) + bad_free(2) + bad_free(3) + bad_free(4)
        + shrink(0) + stats(0) + free(0, 0) + free(0) + stats(0) + destroy(0))
    seeds[f'writer{w}_faults'] = (create(1, w, 4) + alloc(1, 1, 300) + fault(1, 2, 9) + update(0, 10, 50)
        + fault(1, 0, 0) + alloc(1, 4, 9000) + fault(2, 1, 1) + alloc(1, 6, 7) + fault(1, 3, 9)
        + free(0) + fault(1, 6, 0) + free(0) + stats(1) + shrink(3) + check() + destroy(1))
seeds['three_arenas'] = (create(0, 1) + create(1, 2, 2) + create(2, 5, 16) + b''.join(
    alloc(i % 3, i % 8, i * 977, seed=i) for i in range(24)) + b''.join(update(i, i * 5, 40) for i in range(12))
    + b''.join(free(i) for i in range(0, 24, 2)) + shrink(3) + destroy(1) + bad_free(1, 3) + stats(0) + stats(2))
seeds['capped_arena'] = create(0, 1, 16) + b''.join(alloc(0, 6, i) for i in range(4)) + b''.join(alloc(0, 5, 511 << 12) for i in range(4)) + stats(0)
seeds['slab_churn'] = create(0, 1, 4) + b''.join(alloc(0, 0, i) + free(0) for i in range(40)) + shrink(0) + stats(0)
seeds['reuse_after_destroy'] = (create(0, 2) + alloc(0, 2, 77) + destroy(0) + create(0, 1) + alloc(0, 2, 77)
    + bad_free(1) + free(0) + bad_free(1) + destroy(0))
for name, data in seeds.items():
    with open(os.path.join(here, name), 'wb') as f:
        f.write(data)
print(len(seeds), 'seeds')
