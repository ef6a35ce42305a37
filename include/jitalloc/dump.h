/*
 * Dumps of the allocator's state, for jitalloc-dump and other inspectors.
 *
 * jit_dump writes a line-oriented text snapshot of every arena of this process: its
 * options, statistics (like jit_stats), 2 MiB chunks, slabs, and every live allocation
 * with its usable and requested size, its name (if an observer recorded one, see
 * JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT) and, with JIT_DUMP_CODE, its code bytes.
 * Each arena is walked under its own locks, so each arena's section is consistent;
 * code bytes are copied under those locks too (a concurrent jit_update of the same
 * bytes may be seen half done).
 *
 * The format (version 1) is described in jit-examples/README.md; `jitalloc-dump FILE`
 * prints it and disassembles allocations (Capstone, in libjitalloc-inspect).
 */
#ifndef JITALLOC_DUMP_H
#define JITALLOC_DUMP_H

#include <jitalloc/jitalloc.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define JIT_DUMP_CODE 1u      /* include the code bytes (requested length, at most 1 MiB) */
#define JIT_DUMP_FLAGS_ALL 1u

/* Writes the snapshot to f. 0, or -1 with errno (EINVAL, or the stdio error). */
int jit_dump(FILE *f, unsigned flags);
/* Same, into a new file at path (written to path.tmp, then renamed). */
int jit_dump_file(const char *path, unsigned flags);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* JITALLOC_DUMP_H */
