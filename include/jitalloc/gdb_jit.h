/*
 * The GDB JIT compilation interface as libjitalloc implements it (arenas with
 * JIT_ARENA_GDB_JIT). The layout and names are fixed by GDB ("JIT Compilation
 * Interface" in the GDB manual): a debugger puts a breakpoint on
 * __jit_debug_register_code and walks __jit_debug_descriptor's list of in-memory
 * ELF symbol files. This header is for tools and tests that want to read the list;
 * a program does not need it to be debuggable.
 *
 * If another component of the process (LLVM's ORC/MCJIT, LuaJIT, ...) defines the
 * same two symbols, link only one of them: they are process-wide by GDB's design.
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

#pragma GCC visibility push(default)
extern struct jit_descriptor __jit_debug_descriptor;
void __jit_debug_register_code(void);
#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* JITALLOC_GDB_JIT_H */
