// The five writer strategies. Two families:
//  - private anonymous chunks (huge-page friendly, copy-on-write across fork):
//    proc_mem (pwrite to /proc/self/mem) and mprotect (flip RW/RX around a memcpy);
//  - memfd-backed chunks (the ROX view is MAP_SHARED of a memfd): memfd (pwrite to the
//    memfd), temp_alias (map a RW view for one write) and persistent_alias (keep one).
//    Across fork the parent hands the child a private copy of every memfd.
#include "poke/writer.h"

#include "os/os.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mutex>

namespace jitalloc {

using namespace poke_detail;

namespace {

class AnonWriter : public Writer {
public:
    int map(ChunkMapping &m, uint8_t *at, size_t size, bool huge) const override {
        return map_anon_chunk(m, at, size, huge);
    }
    int unmap(ChunkMapping &m) const override {
        if (os::munmap(m.base, m.size) != 0)
            return errno;
        m = ChunkMapping{};
        return 0;
    }
};

class ProcMemWriter final : public AnonWriter {
public:
    jit_writer kind() const override { return JIT_WRITER_PROC_MEM; }
    bool kernel_syncs_icache() const override { return true; }
    int write(const ChunkMapping &, uint8_t *dst, const Piece *pieces, size_t n) const override {
        int fd = proc_mem_fd();
        if (fd < 0)
            return errno;
        return pwrite_pieces(fd, pieces, n, reinterpret_cast<uintptr_t>(dst));
    }
};

// Serialises mprotect writes: two writes to different allocations on one page would
// otherwise race, one thread turning the page back to RX while the other still copies
// (SIGSEGV). No write is in flight across fork() (the arena's fork gate).
std::mutex g_mprotect_lock;

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

class MemfdFamily : public Writer {
public:
    int map(ChunkMapping &m, uint8_t *at, size_t size, bool huge) const override {
        return map_memfd_chunk(m, at, size, huge);
    }
    int unmap(ChunkMapping &m) const override { return unmap_memfd_chunk(m); }
    int fork_prepare(ChunkMapping &m) const override { return memfd_fork_prepare(m); }
    int fork_child(ChunkMapping &m) const override { return memfd_fork_child(m); }
    void fork_parent(ChunkMapping &m) const override { memfd_fork_parent(m); }
};

class MemfdWriter final : public MemfdFamily {
public:
    jit_writer kind() const override { return JIT_WRITER_MEMFD; }
    int write(const ChunkMapping &m, uint8_t *dst, const Piece *pieces, size_t n) const override {
        return pwrite_pieces(m.fd, pieces, n, static_cast<uint64_t>(dst - m.base));
    }
};

class TempAliasWriter final : public MemfdFamily {
public:
    jit_writer kind() const override { return JIT_WRITER_TEMP_ALIAS; }
    int write(const ChunkMapping &m, uint8_t *dst, const Piece *pieces, size_t n) const override {
        size_t len = pieces_len(pieces, n);
        // mmap offsets are whole OS pages: map those covering the write.
        size_t off = static_cast<size_t>(dst - m.base);
        os::PageSpan pages = os::page_span(off, len, os::page_size());
        size_t first = pages.start, span = pages.len;
        void *rw = os::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd,
                            static_cast<off_t>(first));
        if (rw == MAP_FAILED)
            return errno;
        copy_pieces(static_cast<uint8_t *>(rw) + (off - first), pieces, n);
        // The writable alias must not outlive the write: retry, and if the kernel still
        // refuses, take its write permission away.
        for (int tries = 0; os::munmap(rw, span) != 0; ++tries) {
            if (tries == 2) {
                int e = errno;
                (void)os::mprotect(rw, span, PROT_NONE);
                return e;
            }
        }
        return 0;
    }
};

class PersistentAliasWriter final : public MemfdFamily {
public:
    jit_writer kind() const override { return JIT_WRITER_PERSISTENT_ALIAS; }
    int map(ChunkMapping &m, uint8_t *at, size_t size, bool huge) const override {
        int rc = map_memfd_chunk(m, at, size, huge);
        if (rc)
            return rc;
        void *rw = os::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m.fd, 0);
        if (rw == MAP_FAILED) {
            rc = errno;
            os::close(m.fd);
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
