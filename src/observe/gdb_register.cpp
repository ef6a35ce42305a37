// jitalloc's list for GDB's JIT interface (see gdb_register.h).
//
// GDB looks __jit_debug_register_code and __jit_debug_descriptor up in each object file
// and keeps one descriptor per object file, so several JIT runtimes in one process
// (libLLVM defines both names too) each announce code in their own. libjitalloc.so
// exports the two names (JITALLOC_0, src/api/exports.map: GDB wants a global data symbol,
// and one that survives stripping) as aliases of the hidden definitions below, and this
// file only ever uses the hidden names: jitalloc's accesses never go through the dynamic
// linker, so they reach its own descriptor whichever library the linker searches first,
// and versioned references of other runtimes (libLLVM's are __jit_debug_descriptor@LLVM_16)
// never bind to jitalloc's. The aliases are weak so that a static link with another
// definer keeps the other's (GDB then sees only that one in the executable; see README).
#include "observe/gdb_register.h"

#include "observe/gdb_symfile.h"

#include <cstdlib>

extern "C" {
__attribute__((visibility("hidden"))) jit_descriptor jitalloc_gdb_descriptor = {
    1, JIT_NOACTION, nullptr, nullptr};

// GDB sets a breakpoint here; the asm keeps the call, and the stores before it, in place.
__attribute__((visibility("hidden"), noinline, used)) void jitalloc_gdb_register_code(void) noexcept {
    __asm__ volatile("" ::: "memory");
}

extern jit_descriptor __jit_debug_descriptor
    __attribute__((weak, alias("jitalloc_gdb_descriptor"), visibility("default")));
void __jit_debug_register_code(void) noexcept
    __attribute__((weak, alias("jitalloc_gdb_register_code"), visibility("default")));
}

namespace jitalloc {

void gdb_link(jit_code_entry *e) {
    e->prev_entry = nullptr;
    e->next_entry = jitalloc_gdb_descriptor.first_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e;
    jitalloc_gdb_descriptor.first_entry = e;
    jitalloc_gdb_descriptor.relevant_entry = e;
    jitalloc_gdb_descriptor.action_flag = JIT_REGISTER_FN;
    jitalloc_gdb_register_code();
}

void gdb_unlink(jit_code_entry *e) {
    if (e->prev_entry)
        e->prev_entry->next_entry = e->next_entry;
    else
        jitalloc_gdb_descriptor.first_entry = e->next_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e->prev_entry;
    jitalloc_gdb_descriptor.relevant_entry = e;
    jitalloc_gdb_descriptor.action_flag = JIT_UNREGISTER_FN;
    jitalloc_gdb_register_code();
    jitalloc_gdb_descriptor.relevant_entry = nullptr;
    jitalloc_gdb_descriptor.action_flag = JIT_NOACTION;
    e->next_entry = e->prev_entry = nullptr;
}

void gdb_reset_breakpoints(uintptr_t addr, size_t len) {
    static const char kName[] = "<jitalloc: code being rewritten>";
    jit_code_entry *e = gdb_symfile_entry(addr, len, kName, sizeof kName - 1);
    if (!e)
        return;  // out of memory: GDB may put a saved byte back later
    gdb_link(e);
    gdb_unlink(e);
    std::free(e);
}

const jit_descriptor &gdb_descriptor() { return jitalloc_gdb_descriptor; }

}  // namespace jitalloc
