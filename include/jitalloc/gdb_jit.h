/*
 * The GDB JIT compilation interface as libjitalloc implements it (arenas with
 * JIT_ARENA_GDB_JIT). The layout and names are fixed by GDB ("JIT Compilation
 * Interface" in the GDB manual): a debugger puts a breakpoint on
 * __jit_debug_register_code and walks __jit_debug_descriptor's list of in-memory
 * ELF symbol files. This header is for tools and tests that want to read the list;
 * a program does not need it to be debuggable.
 *
 * GDB looks both names up in every object file and keeps one descriptor per object file,
 * so other JIT runtimes in the process (libLLVM's ORC and MCJIT, LuaJIT, ...) keep their
 * own. libjitalloc.so exports both names (symbol version JITALLOC_0) for GDB, but its
 * own code never reaches them through the dynamic linker: it always writes its own
 * descriptor, whichever library defines the names first in the search order.
 *
 * So this header declares the types only. To read jitalloc's list, look the descriptor
 * up in libjitalloc's own symbol table, as GDB does, e.g.
 *     Dl_info i; dladdr((void *)&jit_alloc, &i);
 *     void *h = dlopen(i.dli_fname, RTLD_NOW | RTLD_NOLOAD);
 *     const struct jit_descriptor *d = dlsym(h, "__jit_debug_descriptor");
 * (check with dladdr that the result lies in libjitalloc: dlsym also searches its
 * dependencies). A program that declares the variable itself may get a copy of it
 * (a copy relocation) or another runtime's definition, not the list jitalloc keeps.
 */
#ifndef JITALLOC_GDB_JIT_H
#define JITALLOC_GDB_JIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { JIT_NOACTION = 0, JIT_REGISTER_FN, JIT_UNREGISTER_FN } jit_actions_t;

struct jit_code_entry {
    struct jit_code_entry *next_entry;
    struct jit_code_entry *prev_entry;
    const char *symfile_addr;     /* an ELF64 relocatable object, .text at the code */
    uint64_t symfile_size;
};

struct jit_descriptor {
    uint32_t version;             /* 1 */
    uint32_t action_flag;         /* jit_actions_t */
    struct jit_code_entry *relevant_entry;
    struct jit_code_entry *first_entry;
};

#ifdef __cplusplus
}
#endif

#endif /* JITALLOC_GDB_JIT_H */
