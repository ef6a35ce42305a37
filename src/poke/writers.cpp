// The five writer strategies. Two families:
//  - private anonymous chunks (huge-page friendly, copy-on-write across fork):
//    proc_mem (pwrite to /proc/self/mem) and mprotect (flip RW/RX around a memcpy);
//  - memfd-backed chunks (the ROX view is MAP_SHARED of a memfd): memfd (pwrite to the
//    memfd), temp_alias (map a RW view for one write) and persistent_alias (keep one).
//    The alias writers fill and copy memfds through RW mappings too: they work where
//    pwrite is refused (a new part of a chunk is filled in its own view, mapped RW before
//    it is ever executable, then turned RX). Across fork the parent hands the child a
//    private copy of every memfd.
#include "poke/writer.h"
#include "process/locks.h"

#include "os/os.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>

namespace jitalloc {

using namespace poke_detail;

namespace {

class AnonWriter : public Writer {
public:
    int map(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
            const Piece *first) const override {
        return map_anon_chunk(*this, m, at, size, exposed, huge, first);
    }
    int expose(ChunkMapping &m, size_t upto) const override {
        return expose_anon_chunk(*this, m, upto);
    }
    int unmap(ChunkMapping &m) const override {
        if (os::munmap(m.base, m.size) != 0)
            return errno;
        m = ChunkMapping{};
        return 0;
    }
};

// /proc/self/mem has no write_iter: the kernel turns a pwritev into one write per
// vector, and each write allocates a bounce page, takes the mmap lock and looks the
// pages up again (measured: 300 KB in 300 vectors 82 us, in one 21 us). So a write of
// several pieces (a batch's runs, code plus a trap tail) is gathered here into one
// buffer of up to kGather bytes per system call. One repeating piece (a trap fill) goes
// as it is: its vectors are trap pages, as long as the copy would be.
constexpr size_t kGather = size_t{64} << 10;

// The calling thread's gather buffer (malloc'ed on first use, freed at thread exit);
// nullptr if there is no memory: the pieces are then written vector by vector.
uint8_t *gather_buffer() {
    struct Buffer {
        uint8_t *p = nullptr;
        ~Buffer() { std::free(p); }
    };
    thread_local Buffer b;
    if (!b.p)
        b.p = static_cast<uint8_t *>(std::malloc(kGather));
    return b.p;
}

// Code followed by a long trap fill (a new chunk part born holding its first code, see
// writer.h; a long trap tail): as they are, two or three vectors, the trap ones up to a
// page long, cost less than copying the fill into the buffer, which a fresh thread would
// first have to make (a 64 KiB malloc, its first pages touched: measured 1.4-2.1 us more
// on a process's first jit_alloc than the two vectors).
bool code_then_long_fill(const Writer::Piece *pieces, size_t n) {
    return n == 2 && !pieces[0].src.period && pieces[1].src.period && pieces[1].len >= kTrapPage / 2;
}

// pwrite_pieces, with runs of whole pieces copied into one write of up to kGather bytes;
// a piece longer than that is one vector already (or trap pages) and goes on its own.
int pwrite_gathered(int fd, const Writer::Piece *pieces, size_t n, uint64_t off) {
    uint8_t *buf = n > 1 && !code_then_long_fill(pieces, n) ? gather_buffer() : nullptr;
    if (!buf)
        return pwrite_pieces(fd, pieces, n, off);
    for (size_t i = 0; i < n;) {
        size_t first = i, len = 0;
        while (i < n && len + pieces[i].len <= kGather)
            len += pieces[i++].len;
        if (i == first) {
            len = pieces[i++].len;
            if (int rc = pwrite_pieces(fd, pieces + first, 1, off))
                return rc;
        } else {
            copy_pieces(buf, pieces + first, i - first, static_cast<uintptr_t>(off));
            if (int rc = pwrite_all(fd, {buf, 0}, len, off))
                return rc;
        }
        off += len;
    }
    return 0;
}

class ProcMemWriter final : public AnonWriter {
public:
    jit_writer kind() const override { return JIT_WRITER_PROC_MEM; }
    int probe() const override { return probe_proc_mem(); }
    bool kernel_syncs_icache() const override { return true; }
    int write(const ChunkMapping &, uint8_t *dst, const Piece *pieces, size_t n) const override {
        // A descriptor closed (or replaced) behind the library's back shows as a failed
        // write, EBADF mostly: then /proc/self/mem is reopened and the write made once
        // more. No check on the way in: the hot path stays one system call.
        for (int attempt = 0;; attempt++) {
            int fd = proc_mem_fd();
            if (fd < 0)
                return errno;
            int rc = pwrite_gathered(fd, pieces, n, reinterpret_cast<uintptr_t>(dst));
            if (rc == 0 || attempt == 1 || !proc_mem_lost(fd))
                return rc;
        }
    }
};

// Serialises mprotect writes: two writes to different allocations on one page would
// otherwise race, one thread turning the page back to RX while the other still copies
// (SIGSEGV). fork() takes it (process/locks.h): the probe at arena creation writes
// outside any arena's gate.
constinit std::mutex &g_mprotect_lock = process_lock(ProcessLock::mprotect);

class MprotectWriter final : public AnonWriter {
public:
    jit_writer kind() const override { return JIT_WRITER_MPROTECT; }
    int write(const ChunkMapping &, uint8_t *dst, const Piece *pieces, size_t n) const override {
        size_t len = pieces_len(pieces, n);
        std::lock_guard<std::mutex> g(g_mprotect_lock);
        os::PageSpan span = os::page_span(reinterpret_cast<uintptr_t>(dst), len, os::page_size());
        auto *page = reinterpret_cast<void *>(span.start);
        // RW (not executable) for the copy, then back to RX: never both at once.
        if (os::mprotect(page, span.len, PROT_READ | PROT_WRITE) != 0)
            return errno;
        copy_pieces(dst, pieces, n);
        for (int tries = 0;; ++tries) {
            if (os::mprotect(page, span.len, PROT_READ | PROT_EXEC) == 0)
                return 0;
            if (tries == 3)
                return errno;  // left RW, not executable: W^X holds, the code won't run
        }
    }
};

// The memfd family differs in how bytes get into the memfd (FileWrite): every write,
// the trap fill of a new chunk and the private copy made for a fork() child go the same
// way, so an alias writer never needs pwrite.
class MemfdFamily : public Writer {
public:
    constexpr MemfdFamily(FileWrite file_write, bool maps_to_write)
        : file_write_(file_write), maps_to_write_(maps_to_write) {}
    int map(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
            const Piece *first) const override {
        return map_memfd_chunk(m, at, size, exposed, huge, file_write_, maps_to_write_, first);
    }
    int expose(ChunkMapping &m, size_t upto) const override {
        return expose_memfd_chunk(m, upto, file_write_, maps_to_write_);
    }
    int unmap(ChunkMapping &m) const override { return unmap_memfd_chunk(m); }
    int write(const ChunkMapping &m, uint8_t *dst, const Piece *pieces, size_t n) const override {
        // A writer that maps the memfd for the write checks first that it is still the
        // library's (a program's file under that number would be mapped: SIGBUS past its
        // end). A pwrite needs no check on the way in: with the memfd closed behind the
        // library's back it fails (EBADF), and the failure is checked.
        if (maps_to_write_ && !still_ours(m.fd, m.fd_id))
            return EBADF;
        int rc = file_write_(m.fd, pieces, n, static_cast<uint64_t>(dst - m.base));
        if (rc && !maps_to_write_ && !still_ours(m.fd, m.fd_id))
            return EBADF;  // the memfd is gone: nothing can be written, nothing was
        return rc;
    }
    int fork_prepare(ChunkMapping &m) const override { return memfd_fork_prepare(m, file_write_); }
    int fork_child(ChunkMapping &m) const override { return memfd_fork_child(m); }
    void fork_parent(ChunkMapping &m) const override { memfd_fork_parent(m); }

protected:
    FileWrite file_write_;
    bool maps_to_write_;  // file_write_ maps the memfd
};

class MemfdWriter final : public MemfdFamily {
public:
    constexpr MemfdWriter() : MemfdFamily(pwrite_pieces, false) {}
    jit_writer kind() const override { return JIT_WRITER_MEMFD; }
};

class TempAliasWriter final : public MemfdFamily {
public:
    constexpr TempAliasWriter() : MemfdFamily(write_through_alias, true) {}
    jit_writer kind() const override { return JIT_WRITER_TEMP_ALIAS; }
};

class PersistentAliasWriter final : public MemfdFamily {
public:
    constexpr PersistentAliasWriter() : MemfdFamily(write_through_alias, true) {}
    jit_writer kind() const override { return JIT_WRITER_PERSISTENT_ALIAS; }
    int map(ChunkMapping &m, uint8_t *at, size_t size, size_t exposed, bool huge,
            const Piece *first) const override {
        int rc = map_memfd_chunk(m, at, size, exposed, huge, file_write_, maps_to_write_, first);
        if (rc)
            return rc;
        // The alias covers the whole file; only its exposed part is ever written, so only
        // that is populated now (the hole would otherwise be allocated page by page).
        int populate = exposed == size ? MAP_POPULATE : 0;
        void *rw = os::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | populate, m.fd, 0);
        if (rw == MAP_FAILED) {
            rc = errno;
            close_memfd(m.fd, m.fd_id);
            m = ChunkMapping{};
            return rc;
        }
        m.rw_alias = static_cast<uint8_t *>(rw);
        return 0;
    }
    int write(const ChunkMapping &m, uint8_t *dst, const Piece *pieces, size_t n) const override {
        if (!m.rw_alias)
            return EIO;
        copy_pieces(m.rw_alias + (dst - m.base), pieces, n);
        return 0;
    }
};

const ProcMemWriter g_proc_mem;
const MemfdWriter g_memfd;
const TempAliasWriter g_temp_alias;
const PersistentAliasWriter g_persistent_alias;
const MprotectWriter g_mprotect;

}  // namespace

const Writer *writer_for(jit_writer kind) {
    switch (kind) {
    case JIT_WRITER_PROC_MEM: return &g_proc_mem;
    case JIT_WRITER_MEMFD: return &g_memfd;
    case JIT_WRITER_TEMP_ALIAS: return &g_temp_alias;
    case JIT_WRITER_PERSISTENT_ALIAS: return &g_persistent_alias;
    case JIT_WRITER_MPROTECT: return &g_mprotect;
    default: return nullptr;
    }
}

}  // namespace jitalloc

extern "C" const char *jit_writer_name(enum jit_writer w) {
    switch (w) {
    case JIT_WRITER_AUTO: return "auto";
    case JIT_WRITER_PROC_MEM: return "proc_mem";
    case JIT_WRITER_MEMFD: return "memfd";
    case JIT_WRITER_TEMP_ALIAS: return "temp_alias";
    case JIT_WRITER_PERSISTENT_ALIAS: return "persistent_alias";
    case JIT_WRITER_MPROTECT: return "mprotect";
    default: return "?";
    }
}
