// The poke layer: the only code that maps code memory and writes into it.
//
// Invariants:
//  - A chunk's code view is mapped PROT_READ|PROT_EXEC and is never writable while
//    executable. Writes go through the kernel (pwrite to /proc/self/mem or a memfd),
//    a short-lived RW alias, an mprotect flip, or — only when the arena opted in — a
//    persistent RW alias (the one strategy that is not strict W^X).
//  - A chunk may be exposed in steps (src/chunk/growth.h): [base, base+exposed) is
//    mapped ROX and holds code or traps, the rest of the reservation stays PROT_NONE
//    (neither readable nor executable) until expose() fills it with traps and maps it ROX
//    as an extension of the same mapping (the alias writers map the new part RW, not
//    executable, fill it there, then turn it RX). Every exposed byte of a new chunk, or newly
//    exposed, is a trap instruction.
//  - poke() lands the whole range or restores what was there: callers see success with
//    the bytes verified by reading them back, or an errno and unchanged memory.
//  - Writers keep no state outside the ChunkMapping and the process-wide /proc/self/mem
//    descriptor and probe page, so one Writer object serves every arena.
//  - A new chunk may be born holding its first allocation's code (map's `first`): the
//    code goes in at the chunk's base in the same step as the trap fill of the first
//    part, before that part is ever executable (one kernel write, or one copy into the
//    part's RW view, instead of the fill and then a write of its own). Chosen over
//    leaving a new part RW and filling the code in at the first write (measured faster
//    too, issue 16): then the part would sit writable in a chunk other threads can reach,
//    and every path handing out a pointer, fork and every failure would have to make it
//    RX first. Here nothing is pending: map() returns a chunk that is ROX throughout, not
//    yet in the chunk map nor in any arena, and the arena hands the code's bytes out as
//    that allocation before any other thread can take them (arena.cpp, grow_locked).
#pragma once

#include "process/descriptors.h"

#include <jitalloc/jitalloc.h>

#include <cstddef>
#include <cstdint>

namespace jitalloc {

// Bytes in the static page of trap instructions every trap fill is copied from; a
// multiple of every trap instruction size, and no larger than any OS page.
inline constexpr size_t kTrapPage = 4096;

// How one chunk (2 MiB or a multiple) is mapped.
struct ChunkMapping {
    uint8_t *base = nullptr;     // ROX view
    size_t size = 0;             // the whole reservation, exposed or not
    size_t exposed = 0;          // [base, base+exposed) is ROX; the rest PROT_NONE. Only
                                 // grows; stored (release) under the arena's buddy lock,
                                 // loaded (acquire) by writes that hold no arena lock
    bool huge = false;           // huge pages wanted once the whole chunk is exposed
    int fd = -1;                 // memfd behind the view (memfd-family writers)
    FileId fd_id;                // what fd must still be (process/descriptors.h)
    uint64_t generation = 0;     // process generation the memfd is private to (identity.h)
    uint8_t *rw_alias = nullptr; // persistent RW view (persistent alias writer only)
    int fork_fd = -1;            // copy prepared for the child across fork()
    FileId fork_fd_id;
    uint8_t *fork_snapshot = nullptr;  // RW anonymous copy for the child if fork_fd failed
    bool poisoned = false;       // child after a failed fork copy: every write fails
};

class Writer {
public:
    virtual ~Writer() = default;
    virtual jit_writer kind() const = 0;
    bool strict_wx() const { return kind() != JIT_WRITER_PERSISTENT_ALIAS; }
    // write() never fails once it has started changing bytes (a plain memcpy): poke()
    // then keeps no undo copy of the old bytes.
    bool infallible() const { return kind() == JIT_WRITER_PERSISTENT_ALIAS; }
    // The kernel's own write path already made the new bytes visible to instruction
    // fetch (arm64: /proc/self/mem writes end in copy_to_user_page -> flush_ptrace_access,
    // which cleans and invalidates to the point of unification for VM_EXEC mappings).
    // Every other writer stores through a data path and poke() calls arch::sync_icache.
    virtual bool kernel_syncs_icache() const { return false; }

    struct Piece;
    // Takes over [at, at+size) — a PROT_NONE reservation, any multiple of the OS page —
    // and exposes its first `exposed` bytes (a multiple of the OS page, 0 < exposed <=
    // size) as trap-filled ROX code memory. huge: ask for huge pages once all of it is
    // exposed. first (nullptr: none): plain bytes, at most `exposed`, that [at, at +
    // first->len) holds instead of traps, written with the fill before the part is
    // executable (the header's last invariant); not read back here (the caller's poke
    // verifies them). 0 or an errno; on error the caller unmaps the range.
    virtual int map(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
                    const Piece *first) const = 0;
    // Extends the exposed part to [base, base+upto) (upto a multiple of the OS page,
    // <= size): trap-filled, then mapped ROX; once the whole chunk is exposed, collapses
    // it to huge pages if m.huge (best effort: small pages stay if the kernel cannot).
    // 0 or an errno, with the exposed part unchanged.
    virtual int expose(ChunkMapping &m, size_t upto) const = 0;
    // Unmaps the chunk (and its aliases / descriptors). 0 or an errno (still mapped).
    virtual int unmap(ChunkMapping &m) const = 0;

    // Bytes to write: plain bytes, or trap instructions repeated.
    // A repeating source is indexed by destination address: the byte for address (or
    // chunk offset) a is data[a % period]. The trap page is aligned and its period
    // divides every OS page and chunk, so any view of a chunk (code view, alias, memfd
    // offset) gets whole trap instructions in their place.
    struct Source {
        const uint8_t *data;
        size_t period;  // 0: plain bytes; else kTrapPage bytes of trap instructions
    };
    // len bytes of src, written after the pieces before it.
    struct Piece {
        Source src;
        size_t len;
    };
    // Raw write of the pieces one after another from dst on: one kernel write where the
    // writer has one (pwritev gathers them), one mapping change or alias for all of them
    // otherwise. 0 or an errno; may leave a partial write behind — poke() handles that.
    virtual int write(const ChunkMapping &m, uint8_t *dst, const Piece *pieces, size_t n) const = 0;

    // Checks that this strategy works in this process. The default maps a page, writes
    // it, reads it back and unmaps it. 0 or an errno.
    virtual int probe() const;

    // fork(): prepare runs in the parent with the arena locked (no write in flight);
    // child runs in the child; parent runs in the parent after fork(). Where no private
    // copy could be made (prepare or child failed), the child keeps a private snapshot
    // of the bytes taken in prepare, or no view at all, and its writes fail (EIO):
    // never a view the parent writes.
    virtual int fork_prepare(ChunkMapping &) const { return 0; }
    virtual int fork_child(ChunkMapping &) const { return 0; }
    virtual void fork_parent(ChunkMapping &) const {}
};

// The writer object for a strategy (never JIT_WRITER_AUTO); nullptr for bad values.
const Writer *writer_for(jit_writer kind);

// Order AUTO tries strategies in; the persistent alias is never chosen by AUTO.
inline constexpr jit_writer kAutoOrder[] = {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                            JIT_WRITER_TEMP_ALIAS, JIT_WRITER_MPROTECT};

// Checks that a strategy works in this process (Writer::probe). 0 or an errno.
int probe_writer(const Writer &w);
// proc_mem's probe: a kernel write through /proc/self/mem into a read-only page (what
// writing ROX code needs: FOLL_FORCE), read back. The page is one per process, mapped on
// first use and kept: mapping, changing and unmapping populated pages is what makes the
// default probe dear (a TLB flush each, ~50 µs on a paravirtualised VM). 0 or an errno.
int probe_proc_mem();

// How a failed write is undone.
enum class Undo : uint8_t {
    copy_old,  // a copy of the old bytes is taken first and written back
    traps,     // the memory held only traps: traps are written back, no copy needed
    none,      // nothing: the memory is free and may hold anything (lazy trap fill)
};
// Writes the pieces one after another at dst (inside mapping m; total len bytes) whole or
// not at all, verifies them by reading them back, and flushes the instruction cache.
// A write that changes nothing is skipped. On failure dst is restored per undo as far as
// the writer allows. Sources may lie anywhere, code memory and [dst, dst+len) included:
// the bytes written are those the sources held before the call (memmove). 0 or an errno.
int poke_pieces(const Writer &w, const ChunkMapping &m, uint8_t *dst, const Writer::Piece *pieces,
                size_t n, size_t len, Undo undo);
// Shorthands for one piece:
// Writes len bytes of src at dst whole or not at all (old bytes restored on failure).
int poke(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len);
// poke() into memory that holds only trap instructions (a fresh allocation): keeps no
// copy of the old bytes; a failed write is undone by filling traps back in.
int poke_fresh(const Writer &w, const ChunkMapping &m, uint8_t *dst, const void *src, size_t len);
// Fills [dst, dst+len) with trap instructions, verified. 0 or an errno.
int poke_traps(const Writer &w, const ChunkMapping &m, uint8_t *dst, size_t len);

// True if [p, p+len) holds nothing but the trap fill, compared by address phase (a
// range may start inside a trap instruction: an allocation's tail). Checkers, tests.
bool holds_only_traps(const uint8_t *p, size_t len);

// Process-wide descriptor for /proc/self/mem (opened on first use, reopened in a forked
// child). -1 with errno if it cannot be opened.
int proc_mem_fd();
// A write through fd (from proc_mem_fd()) failed: true if fd was no longer the library's
// /proc/self/mem (closed or replaced behind its back) and has been forgotten, so the
// write is worth retrying with proc_mem_fd(); false if the failure is the write's own.
bool proc_mem_lost(int fd);
// This is a new process (process/identity.h): the descriptor addresses the parent's
// memory. Drops it without taking a lock; the next proc_mem_fd() opens the child's own.
void proc_mem_forget_parent();

// Shared pieces of the writer implementations.
namespace poke_detail {
// A static page of trap instructions (kTrapPage bytes), the source of every trap fill.
const uint8_t *trap_page();
// The trap fill as a repeating Source.
inline Writer::Source trap_source() { return {trap_page(), kTrapPage}; }
// pwritev loop: writes all pieces one after another at file offset off (a repeating
// piece's phase is its file offset's). 0 or errno.
int pwrite_pieces(int fd, const Writer::Piece *pieces, size_t n, uint64_t off);
inline int pwrite_all(int fd, Writer::Source src, size_t len, uint64_t off) {
    const Writer::Piece one{src, len};
    return pwrite_pieces(fd, &one, 1, off);
}
// memcpy of a possibly repeating source to dst, its phase that of address pos (see
// Source): dst itself, unless dst is a staging copy of bytes bound for pos.
void copy_source(uint8_t *dst, Writer::Source src, size_t len, uintptr_t pos);
inline void copy_source(uint8_t *dst, Writer::Source src, size_t len) {
    copy_source(dst, src, len, reinterpret_cast<uintptr_t>(dst));
}
// memcpy of the pieces one after another, phases from pos on (as copy_source).
void copy_pieces(uint8_t *dst, const Writer::Piece *pieces, size_t n, uintptr_t pos);
inline void copy_pieces(uint8_t *dst, const Writer::Piece *pieces, size_t n) {
    copy_pieces(dst, pieces, n, reinterpret_cast<uintptr_t>(dst));
}
// Total length of the pieces.
size_t pieces_len(const Writer::Piece *pieces, size_t n);
// How a memfd-family writer puts bytes into its memfd at file offset off: the memfd
// writer with pwritev, the alias writers through a short-lived RW mapping (so they need
// no pwrite at all, e.g. under a seccomp policy that refuses it). 0 or an errno.
using FileWrite = int (*)(int fd, const Writer::Piece *pieces, size_t n, uint64_t off);
// Maps the pages of [off, off+len) read-write (MAP_SHARED), copies, unmaps (if the kernel
// refuses to unmap, the alias loses its write permission and the error is returned).
int write_through_alias(int fd, const Writer::Piece *pieces, size_t n, uint64_t off);
// Anonymous private chunk. Whole: RW, huge-page advice, trap fill, then RX. In steps: the
// reservation stays, each step is trap-filled by w's own write (for proc_mem a kernel
// write into memory that is still PROT_NONE) and then turned RX. 0 or errno.
// `first` as in Writer::map: the first object's code at the start of the new part.
int map_anon_chunk(const Writer &w, ChunkMapping &m, uint8_t *at, size_t size, size_t exposed,
                   bool huge, const Writer::Piece *first);
int expose_anon_chunk(const Writer &w, ChunkMapping &m, size_t upto,
                      const Writer::Piece *first = nullptr);
// memfd chunk: new memfd of the whole size, its exposed part trap-filled with `fill` and
// mapped ROX MAP_SHARED at `at`; expose_memfd_chunk fills and maps the next part. With
// fill_in_view (the alias writers, which write through mappings anyway) a new part is
// instead mapped read-write at its place, filled there and turned read+execute before
// anything can run it: never writable and executable at once. 0 or errno.
int map_memfd_chunk(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
                    FileWrite fill, bool fill_in_view, const Writer::Piece *first);
int expose_memfd_chunk(ChunkMapping &m, size_t upto, FileWrite fill, bool fill_in_view,
                       const Writer::Piece *first = nullptr);
int unmap_memfd_chunk(ChunkMapping &m);
// Closes a memfd of the library if it still is one (never a program's descriptor that
// took its number); fd becomes -1.
void close_memfd(int &fd, const FileId &id);
// fork support shared by memfd writers.
int memfd_fork_prepare(ChunkMapping &m, FileWrite fill);
int memfd_fork_child(ChunkMapping &m);
void memfd_fork_parent(ChunkMapping &m);
}  // namespace poke_detail

}  // namespace jitalloc
