// Which process the library runs in, known without a system call per write.
//
// A child made without the library's fork handlers — _Fork(), a raw clone() without
// CLONE_VM — inherits descriptors and mappings that still name its parent: the
// /proc/self/mem descriptor addresses the parent's memory, and memfd-backed chunks share
// the parent's pages. The library must notice before its next write.
//
// Invariants:
//  - A token lives in a MADV_WIPEONFORK page: the kernel hands every child a zeroed copy
//    of it (fork, _Fork, clone without CLONE_VM alike), so the first check in a new
//    process sees zero with one load. Kernels without MADV_WIPEONFORK (before 4.14):
//    the pid is compared instead (one getpid per check).
//  - On that first check (in the fork child handler, or the first write of a _Fork /
//    clone child) the process generation grows by one and the /proc/self/mem
//    descriptor of the parent is dropped, before any write is made: proc_mem writes go
//    through the child's own descriptor. The write gate (poke/write_gate.h) forgets the
//    parent's holders then too.
//  - A memfd-backed chunk records the generation it was mapped (or privately copied) in;
//    one of an older generation shares its pages with another process and is never
//    written (poke.cpp: EIO).
//  - Lock-free: the check works in a _Fork child whatever locks the parent's other
//    threads held.
#pragma once

#include <cstdint>

namespace jitalloc {

// The generation of the process this runs in (>= 1). Takes the process over first if it
// is a new one.
uint64_t process_generation();

}  // namespace jitalloc
