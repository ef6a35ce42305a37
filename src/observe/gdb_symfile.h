// Symbol files for GDB's JIT interface: one small in-memory ELF64 relocatable object per
// function, whose .text section is SHT_NOBITS at the code's address (GDB reads the code
// from the process) with one global STT_FUNC symbol naming it.
//
// Self-contained (libc only, no allocator state): the observers use it, and so does the
// test library that plays another JIT runtime defining GDB's symbols in the same process.
#pragma once

#include <jitalloc/gdb_jit.h>

#include <cstddef>
#include <cstdint>

namespace jitalloc {

// A jit_code_entry with its symbol file right behind it in one calloc'd block (release
// with std::free), links cleared. nullptr if out of memory.
jit_code_entry *gdb_symfile_entry(uintptr_t addr, size_t len, const char *name, size_t name_len);

}  // namespace jitalloc
