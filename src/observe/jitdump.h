// perf jitdump files (jit-PID.dump, the format `perf inject --jit` reads; see
// tools/perf/Documentation/jitdump-specification.txt in Linux). An observer like the
// perf map, but with time and the code's bytes: perf inject turns each code-load record
// into a small ELF file holding the bytes (jitted-PID-N.so, next to the dump) mapped at
// the record's time, so `perf report` names JIT functions and `perf annotate`
// disassembles them as they were when sampled.
//
// What is written:
//  - the header, when the first record of a process is due; the file is then mapped
//    once PROT_READ|PROT_EXEC (never writable) and left mapped: that mmap is the marker
//    `perf record` sees and `perf inject --jit` looks for;
//  - JIT_CODE_LOAD (name, address, size, bytes, a fresh code index) whenever code is
//    written into an allocation: at its allocation, at the first write into a
//    reservation, and again at each update, since the bytes changed in place. perf 6.1
//    has no unload record (JIT_CODE_CLOSE ends the whole file) and JIT_CODE_MOVE maps an
//    earlier load's bytes at a new address — code that moves, which jitalloc's never
//    does — so neither is written: a newer load at the same address supersedes the
//    older one from its timestamp on, and freed code keeps its last name until then.
// Timestamps are CLOCK_MONOTONIC, so record with `perf record -k 1` (-k mono).
// Directory: JITALLOC_JITDUMP_DIR, else /tmp. The file is created with O_EXCL|O_NOFOLLOW
// (a leftover or planted file at that name is never opened: then no dump is written and
// one line on stderr says why). A forked child starts its own file, with a load record
// for every live allocation it inherited.
// Called with the observer lock held (observe.cpp); does its own open/write/mmap: the
// file is not part of the allocator's memory path, like the perf map.
#pragma once

#include "observe/records.h"

namespace jitalloc {

// The code of the record at addr was written (r.len bytes at addr, readable).
void jitdump_load(const RecordTable &table, uintptr_t addr, const Record &r);

}  // namespace jitalloc
