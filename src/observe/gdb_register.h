// jitalloc's list for GDB's JIT interface: its descriptor and register function (see
// gdb_register.cpp for how they coexist with other JIT runtimes' in one process).
// Called with the observer lock held (observe.cpp), which serialises the list.
#pragma once

#include <jitalloc/gdb_jit.h>

#include <cstddef>
#include <cstdint>

namespace jitalloc {

// Links e at the head of the list and tells GDB (which reads its symbol file now).
void gdb_link(jit_code_entry *e);
// Unlinks e and tells GDB, which drops the symbol file and every breakpoint location in
// it, putting back the bytes it saved; e stays allocated.
void gdb_unlink(jit_code_entry *e);
// Makes GDB take the breakpoints it put into code it no longer has a symbol file for out
// of memory (putting back the bytes it saved), before those bytes are rewritten: GDB
// keeps such breakpoints where they were until it re-sets its breakpoints, which it does
// when a symbol file is registered. So this registers and unregisters a placeholder
// symbol file at [addr, addr+len). Call it after gdb_unlink of the code's own entry.
void gdb_reset_breakpoints(uintptr_t addr, size_t len);
// The descriptor (exported as __jit_debug_descriptor), for tests.
const jit_descriptor &gdb_descriptor();

}  // namespace jitalloc
