// The poke layer: the only code that maps code memory and writes into it.
//
// Invariants:
//  - A chunk's code view is mapped PROT_READ|PROT_EXEC and is never writable while
//    executable. Writes go through the kernel (pwrite to /proc/self/mem or a memfd),
//    a short-lived RW alias, an mprotect flip, or — only when the arena opted in — a
//    persistent RW alias (the one strategy that is not strict W^X).
//  - A new chunk holds nothing but trap instructions when map() returns.
//  - poke() lands the whole range or restores what was there: callers see success with
//    the bytes verified by reading them back, or an errno and unchanged memory.
//  - Writers keep no state outside the ChunkMapping and the process-wide /proc/self/mem
//    descriptor, so one Writer object serves every arena.
#pragma once

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
    size_t size = 0;
    int fd = -1;                 // memfd behind the view (memfd-family writers)
    uint8_t *rw_alias = nullptr; // persistent RW view (persistent alias writer only)
    int fork_fd = -1;            // copy prepared for the child across fork()
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

    // Maps [at, at+size) — a PROT_NONE reservation, any multiple of the OS page — as
    // trap-filled ROX code memory. 0 or an errno; on error the caller unmaps the range.
    virtual int map(ChunkMapping &m, uint8_t *at, size_t size, bool huge) const = 0;
    // Unmaps the chunk (and its aliases / descriptors). 0 or an errno (still mapped).
    virtual int unmap(ChunkMapping &m) const = 0;

    // Raw write of len bytes (src may repeat: see Source). 0 or an errno; may leave a
    // partial write behind — poke() handles that.
    // A repeating source is indexed by destination address: the byte for address (or
    // chunk offset) a is data[a % period]. The trap page is aligned and its period
    // divides every OS page and chunk, so any view of a chunk (code view, alias, memfd
    // offset) gets whole trap instructions in their place.
    struct Source {
        const uint8_t *data;
        size_t period;  // 0: plain bytes; else kTrapPage bytes of trap instructions
    };
    virtual int write(const ChunkMapping &m, uint8_t *dst, Source src, size_t len) const = 0;

    // fork(): prepare runs in the parent with the arena locked (no write in flight);
    // child runs in the child; parent runs in the parent after fork(). In the child, a
    // failed fork_child leaves the chunk unwritable (writes fail), never shared.
    virtual int fork_prepare(ChunkMapping &) const { return 0; }
    virtual int fork_child(ChunkMapping &) const { return 0; }
    virtual void fork_parent(ChunkMapping &) const {}
};

// The writer object for a strategy (never JIT_WRITER_AUTO); nullptr for bad values.
const Writer *writer_for(jit_writer kind);

// Order AUTO tries strategies in; the persistent alias is never chosen by AUTO.
inline constexpr jit_writer kAutoOrder[] = {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                            JIT_WRITER_TEMP_ALIAS, JIT_WRITER_MPROTECT};

// Checks that a strategy works in this process: maps a page, writes it, reads it back,
// unmaps it. 0 or an errno.
int probe_writer(const Writer &w);

// Writes len bytes of src at dst (inside mapping m) whole or not at all, verifies them,
// and flushes the instruction cache. On failure the old bytes are restored as far as
// the writer allows. src may lie anywhere, code memory and [dst, dst+len) included:
// the bytes written are those src held before the call (memmove). 0 or an errno.
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
void proc_mem_after_fork_child();

// Shared pieces of the writer implementations.
namespace poke_detail {
// A static page of trap instructions (kTrapPage bytes), the source of every trap fill.
const uint8_t *trap_page();
// The trap fill as a repeating Source.
inline Writer::Source trap_source() { return {trap_page(), kTrapPage}; }
// pwritev loop: writes all of src (repeating per Source) at file offset off. 0 or errno.
int pwrite_all(int fd, Writer::Source src, size_t len, uint64_t off);
// memcpy of a possibly repeating source to dst (phase: see Source).
void copy_source(uint8_t *dst, Writer::Source src, size_t len);
// Anonymous private chunk: RW, huge-page advice, trap fill, then RX. 0 or errno.
int map_anon_chunk(ChunkMapping &m, uint8_t *at, size_t size, bool huge);
// memfd chunk: new memfd, trap filled, ROX MAP_SHARED view at `at`. 0 or errno.
int map_memfd_chunk(ChunkMapping &m, uint8_t *at, size_t size, bool huge);
int unmap_memfd_chunk(ChunkMapping &m);
// fork support shared by memfd writers.
int memfd_fork_prepare(ChunkMapping &m);
int memfd_fork_child(ChunkMapping &m);
void memfd_fork_parent(ChunkMapping &m);
}  // namespace poke_detail

}  // namespace jitalloc
