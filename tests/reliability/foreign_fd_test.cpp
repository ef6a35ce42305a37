// Descriptors closed behind the library's back (issue 10, item 8). A sandbox does
// close_range(3, ~0U) and then opens its own files, which take the lowest free numbers.
// The library must never write into, map or close a descriptor that is not its own any
// more (process/descriptors.h):
//  - proc_mem: the next write reopens /proc/self/mem and succeeds;
//  - memfd, temp_alias: writes fail with EBADF and change nothing (the memfd is gone);
//    temp_alias maps no foreign file (that was a SIGBUS);
//  - persistent_alias and mprotect need no descriptor to write;
//  - jit_arena_destroy closes none of the program's descriptors;
//  - the program's files keep their size and bytes throughout.
// A second case puts the program's files at exactly the library's old numbers (dup2):
// the paths that check identity — temp_alias mapping, the closes of destroy — leave them
// alone too.
#include "process_common.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#ifndef CLOSE_RANGE_UNSHARE
#include <linux/close_range.h>
#endif

namespace {

using proc::call;
using proc::kRet42;
using proc::kRetImm;
const char kVictimBytes[] = "the program's own file";


// The program's own files: memfds holding kVictimBytes.
struct Victims {
    std::vector<int> fds;
    int open_one() {
        int fd = static_cast<int>(syscall(SYS_memfd_create, "victim", 0u));
        if (fd >= 0 && ::write(fd, kVictimBytes, sizeof kVictimBytes) == sizeof kVictimBytes)
            fds.push_back(fd);
        return fd;
    }
    // 0 if every victim is still open with exactly its bytes, else a check number.
    int intact() const {
        for (int fd : fds) {
            struct stat st;
            if (fstat(fd, &st) != 0)
                return 1;  // closed by the library
            if (st.st_size != static_cast<off_t>(sizeof kVictimBytes))
                return 2;  // written at some offset (a code address, a chunk offset)
            char buf[sizeof kVictimBytes] = {};
            if (pread(fd, buf, sizeof buf, 0) != sizeof buf || std::memcmp(buf, kVictimBytes, sizeof buf))
                return 3;
        }
        return 0;
    }
};

using Case = proc::WriterCase;

std::vector<int> library_fds() {
    std::vector<int> out;
    for (int fd = 3; fd < 4096; fd++) {
        char path[64], link[256] = {};
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0 && (std::strstr(link, "memfd:jitalloc") || std::strstr(link, "/mem")))
            out.push_back(fd);
    }
    return out;
}

// After the program replaced the library's descriptors by its own files.
int check_after(std::vector<Case> &cases, Victims &victims) {
    for (const Case &c : cases) {
        uint8_t seven = 7;
        errno = 0;
        int rc = jit_update(c.fn + kRetImm, &seven, 1);
        PREQ(victims.intact() == 0);
        if (c.w == JIT_WRITER_MEMFD || c.w == JIT_WRITER_TEMP_ALIAS) {
            PREQ(rc != 0 && errno == EBADF);  // the memfd is gone: refused
            PREQ(call(c.fn) == 42);           // nothing changed
        } else {
            PREQ(rc == 0 && call(c.fn) == 7);  // reopened, or no descriptor needed
        }
    }
    // A new arena of every kind still works (new descriptors of the library's own).
    for (jit_writer w : rel::kWriters) {
        jit_arena *a = rel::make_arena(w);
        PREQ(a != nullptr);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, kRet42.data(), kRet42.size()));
        uint8_t nine = 9;
        PREQ(p && jit_update(p + kRetImm, &nine, 1) == 0 && call(p) == 9 && jit_free(p) == 0);
        PREQ(jit_arena_destroy(a) == 0);
        PREQ(victims.intact() == 0);
    }
    for (const Case &c : cases) {
        (void)jit_free(c.fn);  // fails (EBADF) for memfd / temp_alias: their trap fill
        PREQ(jit_arena_destroy(c.a) == 0);
        PREQ(victims.intact() == 0);  // not closed, not written
    }
    PREQ(rel::find_wx().empty());
    return 0;
}

TEST(ForeignDescriptors, CloseRangeThenTheProgramsOwnFiles) {
    int rc = proc::scenario(60, [] {
        std::vector<Case> cases;
        if (int e = proc::cases_of_every_writer(cases))
            return e;
        PREQ(syscall(SYS_close_range, 3u, ~0u, 0u) == 0);
        Victims victims;
        for (int i = 0; i < 40; i++)
            PREQ(victims.open_one() >= 0);
        return check_after(cases, victims);
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

TEST(ForeignDescriptors, TheProgramsFilesAtTheLibrarysNumbers) {
    int rc = proc::scenario(60, [] {
        // Only the writers whose descriptor use is checked: temp_alias maps, destroy
        // closes (see process/descriptors.h for the pwrite writers).
        std::vector<Case> cases;
        for (jit_writer w : {JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS}) {
            jit_arena *a = rel::make_arena(w);
            PREQ(a != nullptr);
            auto *fn = static_cast<uint8_t *>(jit_arena_alloc(a, kRet42.data(), kRet42.size()));
            PREQ(fn != nullptr);
            cases.push_back({w, a, fn});
        }
        std::vector<int> ours = library_fds();
        PREQ(!ours.empty());
        Victims victims;
        PREQ(victims.open_one() >= 0);
        int model = victims.fds[0];
        for (int fd : ours) {
            PREQ(::dup2(model, fd) == fd);  // the program's file under the library's number
            victims.fds.push_back(fd);
        }
        for (const Case &c : cases) {
            uint8_t seven = 7;
            errno = 0;
            int rc = jit_update(c.fn + kRetImm, &seven, 1);
            PREQ(victims.intact() == 0);
            if (c.w == JIT_WRITER_TEMP_ALIAS)
                PREQ(rc != 0 && errno == EBADF && call(c.fn) == 42);
            else
                PREQ(rc == 0 && call(c.fn) == 7);
        }
        for (const Case &c : cases) {
            (void)jit_free(c.fn);
            PREQ(jit_arena_destroy(c.a) == 0);
            PREQ(victims.intact() == 0);
        }
        return 0;
    });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

}  // namespace
