// The process's first jit_alloc creates the default arena, and that allocation proves the
// arena's writer instead of a probe beforehand (issue 16, arena_create_allocating in
// src/arena/arena_setup.cpp). What must hold as with the probe: the allocation works and
// reads back; a writer refused at its first write (the chunk's trap fill or the code) is
// undone, leaving no mapping of its own, and AUTO tries the next one; a writer asked for
// by JITALLOC_WRITER that fails gives its error and no default arena. Every case runs in
// a forked child of a process that never made the default arena; the system calls are
// counted, and refused, through the fault seam (src/os/os.h).
#include "helpers.h"

#include "chunk/growth.h"
#include "os/os.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

using namespace jt;
namespace os = jitalloc::os;

namespace {

// Check in a child: its line number if cond is false.
#define CHILD_REQ(cond)                                                          \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #cond); \
            return __LINE__ % 250 + 1;                                           \
        }                                                                        \
    } while (0)

// Counts the calls of one kind from now on without failing any.
void count_calls(os::Call c) { os::set_fault({~uint64_t{0}, EIO, os::mask_of(c), false, false}); }

// memfd_create calls the library makes for one memfd: kernels before 6.3 (Debian's arm64
// 6.1 guest) reject MFD_EXEC with EINVAL and the library asks again without it
// (new_memfd in src/poke/poke.cpp).
uint64_t memfd_calls_per_memfd() {
    int fd = static_cast<int>(::syscall(SYS_memfd_create, "probe", MFD_CLOEXEC | MFD_EXEC));
    if (fd >= 0) {
        ::close(fd);
        return 1;
    }
    return errno == EINVAL ? 2 : 1;
}

// Descriptors of the library's memfds open in this process.
int memfds_open() {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (dirent *e = readdir(d)) {
        char path[320], target[256];
        std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, target, sizeof target - 1);
        if (k > 0) {
            target[k] = 0;
            n += std::strstr(target, "memfd:jitalloc") != nullptr;
        }
    }
    closedir(d);
    return n;
}

// Anonymous memory a chunk of a failed writer would leave: a mapping not in `before`,
// executable or PROT_NONE (a reservation), outside [keep, keep + 2 MiB) (the chunk of
// the writer that made it; 0: none). Read-write ones are metadata. Printed on stderr.
std::vector<std::string> anonymous_chunk_leftovers(const std::vector<Mapping> &before,
                                                   uintptr_t keep = 0) {
    std::vector<std::string> bad;
    for (const Mapping &m : read_maps()) {
        bool old = false;
        for (const Mapping &b : before)
            old |= b.start == m.start && b.end == m.end && b.perms == m.perms;
        bool kept = keep && m.start >= keep && m.end <= keep + kChunk;
        // At most a chunk's size: the sanitizers' own reservations are gigabytes.
        if (!old && !kept && m.path.empty() && m.end - m.start <= kChunk &&
            (m.executable() || m.perms[0] == '-'))
            bad.push_back(m.line);
    }
    for (const std::string &l : bad)
        std::fprintf(stderr, "left over: %s\n", l.c_str());
    return bad;
}

// The first allocation of the process, then a few checks of the default arena: it runs,
// later allocations and updates work, and the arena checks out.
int first_alloc_works(jit_writer expected) {
    const std::vector<Mapping> before = read_maps();
    auto code = ret_imm(42, 100);
    void *p = jit_alloc(code.data(), code.size());
    CHILD_REQ(p != nullptr);
    os::clear_fault();
    CHILD_REQ(call_int(p) == 42);
    CHILD_REQ(same_bytes(p, code));
    struct jit_stats st;
    CHILD_REQ(jit_stats(&st) == 0);
    CHILD_REQ(st.writer == expected);
    CHILD_REQ(st.strict_wx == 1);
    CHILD_REQ(st.chunks_mapped == 1);
    CHILD_REQ(st.bytes_mapped == jitalloc::first_step());
    auto other = ret_imm(7, 300);
    void *q = jit_alloc(other.data(), other.size());
    CHILD_REQ(q != nullptr && call_int(q) == 7);
    CHILD_REQ(jit_update(q, code.data(), code.size()) == 0 && call_int(q) == 42);
    CHILD_REQ(ArenaOk(jit_default_arena()));
    CHILD_REQ(anonymous_chunk_leftovers(before, chunk_base(p)).empty());
    CHILD_REQ(jit_free(p) == 0 && jit_free(q) == 0);
    CHILD_REQ(wx_mappings().empty());
    return 0;
}

class FirstAlloc : public ::testing::TestWithParam<jit_writer> {};

// No probe: the first allocation makes exactly the system calls of its own chunk and
// write. With a probe, proc_mem wrote /proc/self/mem once more (3 pwrites), the memfd
// writers made a second memfd, mprotect mapped and unmapped a page of its own.
TEST_P(FirstAlloc, ProvesTheWriterWithoutAProbe) {
    const jit_writer w = GetParam();
    int rc = in_child([w] {
        setenv("JITALLOC_WRITER", jit_writer_name(w), 1);
        os::Call counted = w == JIT_WRITER_PROC_MEM ? os::Call::pwrite
                           : w == JIT_WRITER_MPROTECT ? os::Call::munmap
                                                      : os::Call::memfd_create;
        count_calls(counted);
        auto code = ret_imm(42, 100);
        void *p = jit_alloc(code.data(), code.size());
        uint64_t calls = os::fault_calls();
        os::clear_fault();
        CHILD_REQ(p != nullptr && call_int(p) == 42);
        if (w == JIT_WRITER_PROC_MEM)
            CHILD_REQ(calls == 1);  // the first step's trap fill, the code in it
        else if (w == JIT_WRITER_MPROTECT)
            CHILD_REQ(calls == 0);  // nothing mapped is given back
        else
            CHILD_REQ(calls == memfd_calls_per_memfd());  // the chunk's memfd
        struct jit_stats st;
        CHILD_REQ(jit_stats(&st) == 0 && st.writer == w);
        CHILD_REQ(wx_mappings().empty());
        return 0;
    });
    EXPECT_EQ(rc, 0);
}

// Every writer AUTO may pick, and the one it may not.
INSTANTIATE_TEST_SUITE_P(All, FirstAlloc,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                           JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS,
                                           JIT_WRITER_MPROTECT),
                         [](const ::testing::TestParamInfo<jit_writer> &info) {
                             return std::string(jit_writer_name(info.param));
                         });

// AUTO's first allocation with pwrite refused by `refused` (the fault seam); expected:
// the writer that makes it. One memfd is left open: that writer's, if any.
int falls_back(os::Fault refused, jit_writer expected) {
    unsetenv("JITALLOC_WRITER");
    os::set_fault(refused);
    if (int e = first_alloc_works(expected))
        return e;
    CHILD_REQ(memfds_open() == 1);
    return 0;
}

// pwrite refused from the start: proc_mem fails at its chunk's trap fill, memfd at its
// memfd's; AUTO ends on temp_alias, which needs no pwrite, with nothing of the others left.
TEST(FirstAllocFallback, WriterRefusedAtItsTrapFillIsUndone) {
    EXPECT_EQ(in_child([] {
                  return falls_back({1, EPERM, os::mask_of(os::Call::pwrite), true, false},
                                    JIT_WRITER_TEMP_ALIAS);
              }),
              0);
}

// The first pwrite refused, once: proc_mem's trap fill, which carries the first code
// (the chunk is born holding it, arena.cpp grow_locked), does not land. The proc_mem
// chunk goes, and AUTO's next writer, memfd, makes the allocation with its own first
// pwrite (before the first allocation proved the writer, a probe had passed and the
// jit_alloc failed).
TEST(FirstAllocFallback, WriterRefusedAtTheFirstCodeWriteIsUndone) {
    EXPECT_EQ(in_child([] {
                  return falls_back({1, EPERM, os::mask_of(os::Call::pwrite), false, false},
                                    JIT_WRITER_MEMFD);
              }),
              0);
}

// The code of the first allocation goes in with the first chunk's trap fill: the write
// after it costs no system call of its own, for every writer (issue 16). Without it:
// proc_mem and memfd wrote once more, temp_alias mapped, copied into and unmapped an
// alias, mprotect flipped the page RW and back. The allocation holds the code, the rest
// of the exposed part traps, and nothing was writable and executable at once.
TEST(FirstAllocBornWithCode, FirstCodeWriteIsPartOfTheChunksFill) {
    struct Case {
        jit_writer w;
        os::Call counted;
        uint64_t calls;  // in the whole first jit_alloc
    };
    for (Case c : {Case{JIT_WRITER_PROC_MEM, os::Call::pwrite, 1},
                   Case{JIT_WRITER_MEMFD, os::Call::pwrite, 1},
                   Case{JIT_WRITER_TEMP_ALIAS, os::Call::munmap, 0},
                   Case{JIT_WRITER_PERSISTENT_ALIAS, os::Call::munmap, 0},
                   Case{JIT_WRITER_MPROTECT, os::Call::mprotect, 3}}) {
        int rc = in_child([c] {
            setenv("JITALLOC_WRITER", jit_writer_name(c.w), 1);
            count_calls(c.counted);
            auto code = ret_imm(42, 100);
            auto *p = static_cast<uint8_t *>(jit_alloc(code.data(), code.size()));
            uint64_t calls = os::fault_calls();
            os::clear_fault();
            CHILD_REQ(p != nullptr);
            CHILD_REQ(calls == c.calls);
            CHILD_REQ(reinterpret_cast<uintptr_t>(p) == chunk_base(p));
            CHILD_REQ(same_bytes(p, code));
            CHILD_REQ(all_traps(p + code.size(), jitalloc::first_step() - code.size()));
            CHILD_REQ(call_int(p) == 42);
            CHILD_REQ(stats_of(jit_default_arena()).writer == c.w);
            CHILD_REQ(ArenaOk(jit_default_arena()));
            CHILD_REQ(wx_mappings().empty());
            // Freed, it holds traps again; the next allocation is written as usual.
            CHILD_REQ(jit_free(p) == 0 && all_traps(p, code.size()));
            auto other = ret_imm(9, 200);
            void *q = jit_alloc(other.data(), other.size());
            CHILD_REQ(q != nullptr && call_int(q) == 9 && same_bytes(q, other));
            CHILD_REQ(ArenaOk(jit_default_arena()));
            return 0;
        });
        EXPECT_EQ(rc, 0) << jit_writer_name(c.w);
    }
}

// A reservation first: nothing but the fill is written, and that proves the writer.
TEST(FirstAllocFallback, ReservationFirstWorks) {
    int rc = in_child([] {
        unsetenv("JITALLOC_WRITER");
        auto *p = static_cast<uint8_t *>(jit_alloc(nullptr, 300));
        CHILD_REQ(p != nullptr);
        CHILD_REQ(all_traps(p, jit_size(p)));
        auto code = ret_imm(42, 100);
        CHILD_REQ(jit_update(p, code.data(), code.size()) == 0 && call_int(p) == 42);
        CHILD_REQ(stats_of(jit_default_arena()).writer == JIT_WRITER_PROC_MEM);
        return 0;
    });
    EXPECT_EQ(rc, 0);
}

// JITALLOC_WRITER names a writer that cannot work here: the first jit_alloc fails with
// that writer's error, no default arena is left, no other writer is tried; once the
// writer works again, the next jit_alloc makes the arena with it.
TEST(FirstAllocFallback, ForcedWriterThatFailsGivesItsError) {
    struct Case {
        jit_writer w;
        os::Call refused;
        int error;
    };
    for (Case c : {Case{JIT_WRITER_PROC_MEM, os::Call::pwrite, EPERM},
                   Case{JIT_WRITER_MEMFD, os::Call::memfd_create, EMFILE},
                   Case{JIT_WRITER_TEMP_ALIAS, os::Call::ftruncate, EFBIG}}) {
        int rc = in_child([c] {
            setenv("JITALLOC_WRITER", jit_writer_name(c.w), 1);
            const int fds = memfds_open();
            const std::vector<Mapping> before = read_maps();
            os::set_fault({1, c.error, os::mask_of(c.refused), true, false});
            auto code = ret_imm(42, 100);
            errno = 0;
            CHILD_REQ(jit_alloc(code.data(), code.size()) == nullptr);
            CHILD_REQ(errno == c.error);
            os::clear_fault();
            CHILD_REQ(memfds_open() == fds);
            CHILD_REQ(anonymous_chunk_leftovers(before).empty());
            if (int e = first_alloc_works(c.w))
                return e;
            return 0;
        });
        EXPECT_EQ(rc, 0) << jit_writer_name(c.w);
    }
}

}  // namespace
