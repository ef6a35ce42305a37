/*
 * jitalloc — executable memory for JIT compilers.
 *
 * Code lives in read-only + executable (ROX) memory, packed by size-class slabs on a
 * buddy allocator of 2 MiB, huge-page backed chunks. Nothing is ever writable and
 * executable at once: every write goes through a text_poke-style "writer" (see
 * enum jit_writer). Metadata lives outside code memory.
 *
 * Error convention (all functions): pointer results are NULL and int results are -1
 * on failure, with errno set:
 *   EINVAL  bad argument: NULL, zero or absurd length, a pointer that is not the start
 *           of a live allocation (interior pointer, double free, foreign pointer), an
 *           update range outside one live allocation, bad options;
 *   ENOMEM  memory (or address space inside the placement window) cannot be had;
 *   others  the writer's system call failed (EIO, EPERM, ...); nothing was changed.
 * A failed call leaves code memory and the allocator's state as they were.
 *
 * Thread safety: every function may be called from any thread. Concurrent jit_update
 * or jit_free of the *same* allocation is a caller race (as with free() and a store).
 * fork(): the child gets its own copy of all code; neither side's writes reach the other.
 */
#ifndef JITALLOC_JITALLOC_H
#define JITALLOC_JITALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The arena is opaque. Declared outside the default-visibility region below: in C++ the
 * pragma would also give the struct's internal member functions default visibility. */
typedef struct jit_arena jit_arena;

/* The library is built with hidden visibility; only this API is exported (symbol version
 * JITALLOC_0 of libjitalloc.so.0). */
#pragma GCC visibility push(default)

#define JITALLOC_VERSION_MAJOR 0
#define JITALLOC_VERSION_MINOR 1

/* Largest single allocation; larger lengths are rejected with EINVAL. */
#define JIT_MAX_ALLOC_SIZE ((size_t)1 << 30)
/* Alignment of every allocation's start address (a multiple of the instruction size:
 * arm64 instructions are 4 bytes). */
#define JIT_ALLOC_ALIGN 16
/* Largest alignment jit_alloc_aligned takes: the page size. */
#define JIT_MAX_ALIGN 4096
/* Number of buddy orders: 4 KiB (order 0) .. 2 MiB (order 9). */
#define JIT_BUDDY_ORDERS 10
/* Upper bound on the number of slab size classes reported in struct jit_stats. */
#define JIT_MAX_SIZE_CLASSES 96

/* How code memory is written. Costs are for a 64-byte write (see README). */
enum jit_writer {
    JIT_WRITER_AUTO = 0,          /* first that works: proc_mem, memfd, temp_alias, mprotect */
    JIT_WRITER_PROC_MEM,          /* pwrite to /proc/self/mem; strict W^X, keeps 2 MiB pages */
    JIT_WRITER_MEMFD,             /* pwrite to a memfd backing the ROX view; strict W^X */
    JIT_WRITER_TEMP_ALIAS,        /* map a RW alias of the memfd, copy, unmap; short RW window */
    JIT_WRITER_PERSISTENT_ALIAS,  /* permanent RW alias: fast, NOT strict W^X (opt-in only) */
    JIT_WRITER_MPROTECT,          /* mprotect RW, copy, mprotect RX: last resort; splits huge
                                     pages and other threads cannot run code on that page
                                     during the write */
    JIT_WRITER_COUNT
};

/* Short stable name ("proc_mem", "memfd", ...), "?" for an unknown value. */
const char *jit_writer_name(enum jit_writer w);

/* Where code goes. "Near" means every code byte within near_range of the address, so a
 * direct call (x86-64 rel32, +-2 GiB) from any code byte reaches it. */
enum jit_placement {
    JIT_PLACE_NEAR_LIBRARY = 0,   /* near libjitalloc's own code (the default). Linked as a
                                     shared library, that is among the shared libraries
                                     (libc, libstdc++, ...), usually far from the
                                     executable's own functions; linked statically, it is
                                     the executable's code, usually far from libc. */
    JIT_PLACE_NEAR_ADDRESS,       /* near options.near (e.g. the host function called most) */
    JIT_PLACE_ANYWHERE,           /* wherever the kernel puts it */
    JIT_PLACE_NEAR_ADDRESSES      /* near every one of options.near_addresses at once: the
                                     window is where all their windows overlap; EINVAL at
                                     creation if they lie too far apart (more than twice
                                     near_range) for one 2 MiB chunk to fit */
};
/* Most targets JIT_PLACE_NEAR_ADDRESSES takes. */
#define JIT_MAX_NEAR_ADDRESSES 64

/* Arena flags. */
#define JIT_ARENA_NO_SYNC_CORE  (1u << 0) /* skip membarrier(SYNC_CORE) after updates of
                                             live code */
#define JIT_ARENA_NO_HUGE_PAGES (1u << 1) /* do not ask for transparent huge pages */
#define JIT_ARENA_IGNORE_ENV    (1u << 2) /* JITALLOC_WRITER does not override AUTO,
                                             JITALLOC_PERF_MAP / _GDB_JIT / _JITDUMP add
                                             no flags */
#define JIT_ARENA_PERF_MAP      (1u << 3) /* name allocations in /tmp/perf-PID.map */
#define JIT_ARENA_GDB_JIT       (1u << 4) /* register allocations with GDB's JIT interface */
#define JIT_ARENA_LAZY_TRAP_FILL (1u << 5) /* jit_free leaves a slab object's code in place
                                             (still executable) until the memory is reused:
                                             the trap fill is folded into the write that
                                             reuses it. Objects up to 64 KiB; see
                                             docs/GUARANTEES.md for the weaker promise */
#define JIT_ARENA_JITDUMP       (1u << 6) /* perf jitdump: code-load records with the code's
                                             bytes in jit-PID.dump, for perf inject --jit */
#define JIT_ARENA_FLAGS_ALL     0x7fu

/* Default distance kept between any code byte and the placement address: the reach of
 * the architecture's direct call less 32 MiB of slack for the host code around that
 * address, so direct calls reach it: x86-64 rel32 (2 GiB), arm64 bl (128 MiB). */
#if defined(__aarch64__)
#define JIT_DEFAULT_NEAR_RANGE (((size_t)128 << 20) - ((size_t)32 << 20))
#else
#define JIT_DEFAULT_NEAR_RANGE (((size_t)2 << 30) - ((size_t)32 << 20))
#endif
/* Default bytes of wholly free 2 MiB chunks kept mapped (trap-filled, ROX) for reuse. */
#define JIT_DEFAULT_RETAIN_BYTES ((size_t)4 << 20)

/* Options are checked by jit_arena_create: a bad value fails with EINVAL and nothing is
 * created (every bound below). */
struct jit_arena_options {
    size_t struct_size;           /* sizeof(struct jit_arena_options) as the caller was
                                     built; set by _init. At least
                                     JIT_ARENA_OPTIONS_MIN_SIZE (every field of version
                                     0.1, up to name), at most the library's own size */
    enum jit_writer writer;       /* JIT_WRITER_AUTO: probe; others: that one or fail */
    enum jit_placement placement;
    const void *near;             /* with JIT_PLACE_NEAR_ADDRESS: a user-space address
                                     whose window (+-near_range) holds a 2 MiB chunk */
    size_t near_range;            /* 0: JIT_DEFAULT_NEAR_RANGE; 2 MiB .. 2 GiB */
    size_t retain_bytes;          /* free chunks kept mapped; SIZE_MAX: keep all */
    size_t max_bytes;             /* cap on mapped code memory; 0: no cap; else >= 2 MiB */
    unsigned flags;               /* JIT_ARENA_*; unknown bits are rejected */
    const char *name;             /* arena name for stats and dumps; copied; may be NULL */
    /* version 0.2: */
    const void *const *near_addresses; /* with JIT_PLACE_NEAR_ADDRESSES: near_count user-space
                                          addresses (1..JIT_MAX_NEAR_ADDRESSES), read at
                                          creation only */
    size_t near_count;
};
/* The smallest struct_size accepted: the options of version 0.1. */
#define JIT_ARENA_OPTIONS_MIN_SIZE \
    (offsetof(struct jit_arena_options, name) + sizeof(const char *))

/* Fills *opts with the defaults. */
void jit_arena_options_init(struct jit_arena_options *opts);

/* NULL opts: defaults. Fails (NULL, errno) if the requested writer does not work here. */
jit_arena *jit_arena_create(const struct jit_arena_options *opts);
/* Unmaps all of the arena's code; its allocations become invalid. EINVAL for NULL, the
 * default arena or one not (or no longer) known; EBUSY, with nothing changed, while a
 * batch made for it is not destroyed (in a child forked while another thread had a
 * batch of the arena open, that batch stays open there: the child cannot destroy it). */
int jit_arena_destroy(jit_arena *arena);
/* The arena behind jit_alloc; created on first use (honours JITALLOC_WRITER). */
jit_arena *jit_default_arena(void);
/* An arena's id: unique for the life of the process and never given to another arena,
 * even after this one is destroyed (a new arena may reuse the old one's address, never
 * its id). 0 for NULL. */
uint64_t jit_arena_id(const jit_arena *arena);
/* The live arena with that id, NULL (errno EINVAL) once it has been destroyed or if no
 * arena ever had it. Handles that outlive their arena (jitalloc::Code) keep the id and
 * look the arena up here instead of keeping a pointer that could dangle. */
jit_arena *jit_arena_by_id(uint64_t id);

/* Copies len bytes of code into new ROX memory. code == NULL: reserve len bytes of
 * trap instructions, to be written later with jit_update. The rest of the usable size
 * (jit_size) holds trap instructions. */
void *jit_alloc(const void *code, size_t len);
void *jit_arena_alloc(jit_arena *arena, const void *code, size_t len);
/* Same, with a symbol name for profilers and debuggers (may be NULL). Observers (perf
 * map, GDB) hear of the allocation when its code is written: at once if code != NULL,
 * else at the first write into it (jit_update, a batch commit). */
void *jit_arena_alloc_named(jit_arena *arena, const void *code, size_t len, const char *name);

/* Same as jit_alloc / jit_arena_alloc_named, with the start address a multiple of align:
 * a power of two up to JIT_MAX_ALIGN (values up to JIT_ALLOC_ALIGN change nothing); any
 * other align fails with EINVAL. A small aligned request takes the smallest size class
 * whose objects are all aligned (e.g. 32 bytes at align 64 uses a 64-byte object), a
 * larger one whole pages. name may be NULL. */
void *jit_alloc_aligned(const void *code, size_t len, size_t align);
void *jit_arena_alloc_aligned(jit_arena *arena, const void *code, size_t len, size_t align,
                              const char *name);

/* Gives back the unused tail of the live allocation starting at p: bytes [p+len, end)
 * become trap instructions (whatever was written there), and where the layout allows the
 * memory becomes reusable: an allocation of whole pages returns the pages past
 * len rounded up to 4 KiB to the arena, and jit_size becomes that length; a slab object
 * (up to 64 KiB) and a large allocation keep their size (jit_size unchanged), only their
 * tail holds traps. Stats count len as the requested length. 0, or -1 with errno:
 * EINVAL (p not a live allocation start, len 0 or above jit_size(p)), the writer's errno
 * (nothing changed). For a JIT that reserved a worst case and emitted less. */
int jit_shrink_alloc(void *p, size_t len);
int jit_arena_shrink_alloc(jit_arena *arena, void *p, size_t len);

/* text_poke-style write into live code: [dst, dst+len) must lie inside the usable size
 * of one live allocation. The write lands whole or not at all and is read back. If the
 * allocation has held code before (it was written with code or updated), every other
 * running thread executes a serialising instruction before this returns (membarrier
 * SYNC_CORE), so none keeps running stale instructions; the first write into a
 * reservation (jit_alloc(NULL, n)) is new code and needs none on x86-64, nor does any
 * write while the process has a single thread (docs/GUARANTEES.md). Threads executing
 * the bytes while they change can see a torn instruction: patch live code only where
 * that is harmless (single bytes at instruction starts, the int3 protocol). src may lie
 * anywhere, in code memory too, even overlapping [dst, dst+len) (e.g.
 * jit_update(p + 16, p, 64)): memmove semantics, the bytes written are those src held
 * before the call. The same holds for the code argument of jit_alloc. */
int jit_update(void *dst, const void *src, size_t len);
/* Same, but dst must belong to arena (EINVAL otherwise). */
int jit_arena_update(jit_arena *arena, void *dst, const void *src, size_t len);

/* ---- Live patching: replace an instruction while other threads execute it ----
 *
 * jit_patch writes len bytes at dst like jit_update, but with the breakpoint protocol
 * of the Linux kernel's text_poke_bp(), so threads may run the code meanwhile: an int3
 * goes on the first byte, every CPU is serialised (membarrier SYNC_CORE; not while the
 * process has a single thread: no other CPU can have fetched the site), the rest of
 * the bytes are written, every CPU is serialised, the first byte is written, every CPU
 * is serialised. A thread reaching dst meanwhile executes the complete old bytes, or
 * the complete new bytes, or traps on the int3; the library's SIGTRAP handler
 * (installed on first use, chaining to the one before it for every other trap) makes
 * such a thread wait until the patch is complete and then re-execute dst. Each write
 * goes through the arena's writer, so strict W^X holds.
 * jit_patch_batch patches n sites with three serialisations in total
 * (text_poke_bp_batch); each step's writes are one batch (jit_batch_*): sites of one
 * chunk within 4 KiB of one another share one kernel write. Bytes between them that
 * belong to other allocations, or are free, are written back with the values they hold,
 * while every other code write in the process waits (so none is lost): for the length of
 * such a patch, about three serialisations, other threads' jit_alloc / jit_update /
 * jit_free wait at their write. The persistent alias writer, whose writes are memcpys,
 * writes only the allocations holding sites (one, or several that adjoin).
 * x86-64 only: on arm64 valid input fails with EOPNOTSUPP (what arm64 needs instead, one
 * aligned 4-byte write of an instruction the architecture lets be swapped under running
 * CPUs (B, BL, NOP, ...) plus cache maintenance and one sync, is in src/arch/live_patch.h).
 *
 * The caller guarantees (none of it can be checked in general):
 *  - [dst, dst+len) of the old code is one instruction, or several that no thread is
 *    executing, stopped in or returning into, except at dst (e.g. code not yet
 *    reachable); the new bytes are whole instructions; execution never continues into
 *    leftover old bytes (len covers the old instruction, padded with nops if shorter);
 *  - no jit_update / jit_free of an allocation holding a site runs concurrently
 *    (jit_patch rewrites the bytes between neighbouring sites with their current
 *    values);
 *  - threads that may run patched code do not block SIGTRAP (a trap while SIGTRAP is
 *    blocked kills the process, as it would for any int3), and a SIGTRAP handler
 *    installed after the first jit_patch passes on traps it does not own to the
 *    handler it replaced (sigaction's old action), as jitalloc's does.
 * Signals other than synchronous faults are blocked on the calling thread for the
 * length of the call (a handler running patched code on the patching thread would wait
 * for itself), and it is not a cancellation point.
 *
 * Errors (nothing is changed): EINVAL for a NULL pointer, len 0 or above
 * JIT_PATCH_MAX_LEN, a range outside one live allocation, sites in different arenas or
 * overlapping, n == 0; EOPNOTSUPP when live patching cannot be done safely here: the
 * mprotect writer (the page would not be executable during a write, so other threads
 * running it would fault), no membarrier SYNC_CORE in the kernel, or an architecture
 * without a protocol yet; ENOMEM for the batch's bookkeeping; the errno of sigaction
 * when the handler cannot be installed; the writer's or membarrier's errno (EIO, ...)
 * when a kernel write or sync fails, after the old bytes were put back with the same
 * protocol. A patch that changes no byte is a successful no-op. */
#if defined(__x86_64__)
#define JIT_PATCH_MAX_LEN 15          /* the longest x86-64 instruction */
#else
#define JIT_PATCH_MAX_LEN 4           /* one fixed-size instruction */
#endif

struct jit_patch_site {
    void *dst;                        /* first byte to replace (an instruction start) */
    const void *src;                  /* the new bytes */
    size_t len;                       /* 1 .. JIT_PATCH_MAX_LEN */
};

int jit_patch(void *dst, const void *src, size_t len);
int jit_arena_patch(jit_arena *arena, void *dst, const void *src, size_t len);
/* All sites in one arena (the arena of sites[0] for jit_patch_batch), not overlapping;
 * all land or none (a failed batch puts every site's old bytes back). */
int jit_patch_batch(const struct jit_patch_site *sites, size_t n);
int jit_arena_patch_batch(jit_arena *arena, const struct jit_patch_site *sites, size_t n);

/* Frees an allocation; p must be a start address from jit_alloc. The memory is refilled
 * with trap instructions before it can be handed out again. */
int jit_free(void *p);
int jit_arena_free(jit_arena *arena, void *p);

/* Usable size of the live allocation starting at p; 0 if p is not one. */
size_t jit_size(const void *p);
/* The arena that owns the live allocation starting at p, NULL if none. */
jit_arena *jit_arena_of(const void *p);

struct jit_class_stats {
    uint32_t object_size;         /* bytes per object */
    uint32_t slab_pages;          /* 4 KiB pages per slab */
    uint32_t objects_per_slab;
    uint32_t reserved;
    uint64_t slabs;               /* slabs of this class */
    uint64_t objects_in_use;
    uint64_t objects_free;        /* in this class's slabs, ready for reuse */
};

struct jit_stats {
    enum jit_writer writer;       /* the strategy in use */
    const char *writer_name;
    uint32_t strict_wx;           /* 1 unless a persistent writable alias exists */
    uint32_t sync_core;           /* 1 if updates of live code serialise other threads
                                     (membarrier SYNC_CORE, when the process has threads) */
    uint64_t chunks_mapped;       /* 2 MiB chunks currently mapped (large ones count each) */
    uint64_t bytes_mapped;        /* code memory mapped (read+execute: a chunk's address
                                     space is reserved whole, mapped as it fills up) */
    uint64_t bytes_resident;      /* code memory resident (mincore) */
    uint64_t bytes_requested;     /* sum of lengths asked for, live allocations */
    uint64_t bytes_in_use;        /* sum of usable sizes, live allocations */
    uint64_t bytes_cached;        /* free code memory kept mapped (buddy free lists) */
    uint64_t bytes_metadata;      /* out-of-band metadata (page descriptors, slabs) */
    uint64_t allocations;         /* live allocations */
    uint64_t total_allocs, total_frees, total_updates;
    uint64_t chunks_released;     /* chunks given back to the OS so far */
    /* Per buddy order, like /proc/pagetypeinfo: free blocks now; blocks taken into the
     * cache (refills); blocks given back to the OS. */
    uint64_t order_free[JIT_BUDDY_ORDERS];
    uint64_t order_cached[JIT_BUDDY_ORDERS];
    uint64_t order_released[JIT_BUDDY_ORDERS];
    uint32_t nr_classes;
    struct jit_class_stats classes[JIT_MAX_SIZE_CLASSES];
};

/* Stats of the default arena / of one arena. */
int jit_stats(struct jit_stats *out);
int jit_arena_stats(jit_arena *arena, struct jit_stats *out);
/* Prints stats as tables to f (NULL: stdout). */
int jit_stats_print(FILE *f, const struct jit_stats *stats);

/* Releases every wholly free chunk (and empty cached slabs and packs) of every arena to
 * the OS; returns the bytes released (the chunks those slabs and packs held included). */
size_t jit_shrink(void);
size_t jit_arena_shrink(jit_arena *arena);

/* An arena's placement window: every code byte it will ever hand out lies in [lo, hi).
 * For JIT_PLACE_ANYWHERE the window is all of user space and center is 0. */
struct jit_window {
    enum jit_placement placement;
    uintptr_t lo, hi;             /* the window: code bytes in [lo, hi) */
    uintptr_t center;             /* where the search for address space starts */
    size_t call_reach;            /* reach of a direct call (x86-64 rel32: 2 GiB,
                                     arm64 bl: 128 MiB) */
};
/* Fills *out. 0, or -1 with errno EINVAL (NULL argument). */
int jit_arena_window(jit_arena *arena, struct jit_window *out);
/* 1 if a direct call (rel32, arm64 bl) from any code byte the arena can hand out, now
 * or later, reaches target; 0 if some would not (emit an indirect call); -1 with errno
 * EINVAL for a NULL arena. Decided from the window alone, before any code is emitted. */
int jit_arena_reaches(jit_arena *arena, const void *target);

/* Maps len bytes (a multiple of 4096) of ordinary anonymous memory, never executable,
 * with protection prot (PROT_NONE, PROT_READ or PROT_READ|PROT_WRITE), inside the arena's
 * placement window: data that the arena's code addresses PC-relatively (constant pools,
 * GOTs, globals of JIT-compiled modules). With a window of at most 1 GiB around its
 * address, every byte mapped here is within +-2 GiB of every code byte of the arena.
 * The mapping starts 2 MiB aligned, is not code memory (jit_size and jit_free know
 * nothing of it) and is the caller's: change or release it with mprotect / munmap.
 * NULL with errno: EINVAL (NULL arena; len 0, not page-sized or above JIT_MAX_ALLOC_SIZE;
 * PROT_EXEC, PROT_WRITE without PROT_READ or an unknown bit in prot), ENOMEM (no room in
 * the window), or the mapping call's errno. */
void *jit_arena_map_near(jit_arena *arena, size_t len, int prot);

/* Batches: many writes — the code of new allocations and updates of live code — made
 * at one commit, in as few kernel writes as the addresses allow (adjacent ranges merge
 * into one), with at most one cross-CPU serialisation (only if live code that has held
 * code was rewritten; docs/GUARANTEES.md). Allocations of up to 4 KiB made in a batch are
 * laid out back to back, each rounded up to 16 bytes (jit_size), in a run of memory the
 * batch reserves (a "pack", like the kernel's bpf_prog_pack), so a batch of small
 * functions of any sizes is one kernel write; the unused rest of the run is freed at the
 * commit (if no pack has room and none can be made — the max_bytes cap, free pages too
 * scattered for a new one — such an allocation takes a slab object as jit_arena_alloc
 * would). Longer ones come from consecutive objects of a slab (one size class) or pages.
 * Freed pack memory is trap-filled at once, also in arenas with lazy trap fill.
 *
 *   jit_batch *b = jit_batch_create(arena);
 *   void *f = jit_batch_alloc(b, code, len, "f");     address final, not live yet
 *   jit_batch_update(b, f + 12, &rel, 4);              into f's staged bytes
 *   jit_batch_update(b, caller + 3, &disp, 4);         into live code
 *   if (jit_batch_commit(b) != 0) ... nothing happened; else f is live, caller patched
 *   jit_batch_destroy(b);
 *
 * Every byte is copied when it is added (memmove semantics: sources may lie in code
 * memory); the batch stages each allocation's whole usable size until the commit.
 * Until the commit a batch allocation is not live: not callable, jit_size() returns 0,
 * jit_free() fails. A batch is used by one thread at a time; other threads may use the
 * arena meanwhile. Destroy batches before their arena (jit_arena_destroy fails with
 * EBUSY until then).
 *
 * Errors, all or nothing: a failing jit_batch_alloc / jit_batch_update (EINVAL for bad
 * arguments, an update range outside one live allocation or overlapping an earlier
 * update of live code by the same batch; ENOMEM) adds nothing and leaves the batch as it
 * was. Updates into the batch's own allocations write its staged bytes at once, so they
 * may overlap one another: the later one's bytes win. A failing jit_batch_commit makes
 * no allocation of the batch and leaves live code as it was (as far as the writer
 * allows, like a failed jit_update): EINVAL if an allocation that an update targets was
 * freed after the update was staged (also when its memory was handed out again since,
 * at the same start: the staged bytes never reach the new allocation), else the
 * writer's errno. A jit_free of a target concurrent with the commit is a caller race, as
 * a jit_free concurrent with a jit_update is. After jit_batch_commit, whatever its
 * result, the batch is empty and can be reused. */
typedef struct jit_batch jit_batch;
/* NULL arena: the default arena. NULL with errno ENOMEM if no memory. */
jit_batch *jit_batch_create(jit_arena *arena);
/* Takes memory for len bytes of code (NULL: trap instructions) and stages the code;
 * returns the final address. name as for jit_arena_alloc_named (copied). */
void *jit_batch_alloc(jit_batch *batch, const void *code, size_t len, const char *name);
/* Same, with the start address a multiple of align (a power of two up to JIT_MAX_ALIGN,
 * else EINVAL), as for jit_arena_alloc_aligned: above 16 bytes the allocation comes from
 * a size class whose objects are all aligned, or whole pages, not from the batch's pack. */
void *jit_batch_alloc_aligned(jit_batch *batch, const void *code, size_t len, size_t align,
                              const char *name);
/* Stages a write of len bytes of src at dst: inside one live allocation of the batch's
 * arena (as for jit_update) or inside an allocation of this batch. */
int jit_batch_update(jit_batch *batch, void *dst, const void *src, size_t len);
/* Makes every staged write and publishes the allocations; 0 or -1 with errno. */
int jit_batch_commit(jit_batch *batch);
/* Drops everything staged: the batch's allocations are given back, nothing is written. */
void jit_batch_abort(jit_batch *batch);
/* jit_batch_abort, then frees the batch. NULL is ignored. */
void jit_batch_destroy(jit_batch *batch);

/* Checks every invariant of the arena's chunks, buddy free lists and slabs (debugging
 * and tests). Returns 0, or -1 with errno EUCLEAN and a message in msg. */
int jit_arena_check(jit_arena *arena, char *msg, size_t msg_len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* JITALLOC_JITALLOC_H */
