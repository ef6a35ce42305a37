/*
 * libjitalloc-inspect: reading and disassembling jitalloc state with Capstone.
 * A separate library (link -ljitalloc-inspect -ljitalloc): the core libjitalloc does not
 * depend on Capstone. Built when Capstone is found (Debian: libcapstone-dev).
 *
 * The input is the text dump of <jitalloc/dump.h> (jit_dump / jit_dump_file), from this
 * process or from a file another process wrote. The command-line front end is
 * jitalloc-dump.
 */
#ifndef JITALLOC_INSPECT_H
#define JITALLOC_INSPECT_H

#include <jitalloc/dump.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Disassembles len bytes of machine code for the host architecture, as if located at
 * addr, one instruction a line ("  addr:  bytes  mnemonic operands"). Returns the
 * number of instructions, or -1 (errno) if Capstone cannot be opened. */
int jit_inspect_disasm(FILE *out, const void *code, size_t len, uint64_t addr);

/* Disassembles the live allocation starting at p in this process: its usable size
 * (jit_size) less the trailing trap bytes. Returns the instruction count, -1 with
 * errno EINVAL if p is not the start of a live allocation. */
int jit_inspect_disasm_alloc(FILE *out, const void *p);

/* Reads a dump and prints its arenas, statistics, buddy orders, size classes, chunks,
 * slabs and allocations as tables. disasm selects allocations to disassemble: NULL for
 * none, "all", a hex address (0x optional) or an allocation name. Returns 0, or -1 if
 * the dump is malformed (errno EINVAL) or disasm matched nothing (errno ENOENT). */
int jit_inspect_print(FILE *out, FILE *dump, const char *disasm);
/* Same; on failure msg (if not NULL) receives what went wrong, for a person: for a
 * malformed dump the line and what is wrong with it (not a dump, unknown version,
 * truncated, a record out of place), for disasm the name or address that matched
 * nothing and how many allocations the dump holds. */
int jit_inspect_print_msg(FILE *out, FILE *dump, const char *disasm, char *msg, size_t msg_len);

/* jit_dump(JIT_DUMP_CODE) of this process, printed with jit_inspect_print. */
int jit_inspect_self(FILE *out, const char *disasm);

#ifdef __cplusplus
}
#endif

#endif /* JITALLOC_INSPECT_H */
