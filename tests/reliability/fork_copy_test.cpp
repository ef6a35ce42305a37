// fork() with memfd-backed chunks when the child's private copy cannot be made (issue
// 10, item 2). The parent's fork prepare handler copies every memfd for the child; with
// RLIMIT_NOFILE exhausted (EMFILE) there is no descriptor for the copy. The child must
// then keep no view the parent can write: it gets a private snapshot of the bytes (code
// still runs, writes fail with EIO), never the shared memfd. Every memfd-family writer.
// (Every other failure of the prepare path, at each call, is in fault_walk_test's
// FaultWalkFork.)
#include "process_common.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

namespace {

using proc::call;
using proc::kRet42;
using proc::kRetImm;

struct Alloc {
    uint8_t *p;
    size_t len;
};

// Takes every free descriptor below a lowered RLIMIT_NOFILE; undone by the destructor.
class NoFreeDescriptors {
public:
    bool take() {
        if (getrlimit(RLIMIT_NOFILE, &saved_) != 0)
            return false;
        struct rlimit low = saved_;
        low.rlim_cur = 64;
        if (setrlimit(RLIMIT_NOFILE, &low) != 0)
            return false;
        for (;;) {
            int fd = ::dup(0);
            if (fd < 0)
                return errno == EMFILE;
            taken_.push_back(fd);
        }
    }
    ~NoFreeDescriptors() {
        for (int fd : taken_)
            ::close(fd);
        (void)setrlimit(RLIMIT_NOFILE, &saved_);
    }

private:
    struct rlimit saved_ {};
    std::vector<int> taken_;
};

int fork_without_copy(jit_writer w) {
    jit_arena *a = rel::make_arena(w, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_IGNORE_ENV, 0);
    PREQ(a != nullptr);
    std::vector<uint8_t> A(5000, 0x11), B(5000, 0x22);
    A.back() = B.back() = 0xC3;
    std::vector<Alloc> allocs;
    for (size_t n : {size_t{100}, size_t{5000}, (size_t{2} << 20) + 4096}) {
        // n bytes (a slab object, a page run, a large chunk), the first ones A
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, n));
        PREQ(p != nullptr);
        size_t k = std::min(n, A.size());
        PREQ(jit_update(p, A.data(), k) == 0);
        allocs.push_back({p, k});
    }
    auto *fn = static_cast<uint8_t *>(jit_arena_alloc(a, kRet42.data(), kRet42.size()));
    PREQ(fn != nullptr);
    std::set<unsigned long> parents;  // the parent's memfds
    for (const Alloc &x : allocs)
        for (unsigned long ino : proc::inodes_under(x.p, x.len))
            parents.insert(ino);
    PREQ(!parents.empty());

    int go[2];
    PREQ(pipe(go) == 0);
    pid_t pid;
    {
        NoFreeDescriptors full;
        PREQ(full.take());
        std::fflush(nullptr);
        pid = fork();  // the prepare handler gets EMFILE for every copy
        PREQ(pid >= 0);
        if (pid == 0) {
            char c;
            (void)!::read(go[0], &c, 1);  // the parent has written B
            int bad = 0;
            for (const Alloc &x : allocs) {
                if (std::memcmp(x.p, A.data(), x.len) != 0)
                    bad = 10;  // the parent's write reached the child
                for (unsigned long ino : proc::inodes_under(x.p, x.len))
                    if (parents.count(ino))
                        bad = 11;  // still a view of the parent's memfd
            }
            if (!bad && call(fn) != 42)
                bad = 12;  // the snapshot runs
            uint8_t seven = 7;
            errno = 0;
            if (!bad && (jit_update(fn + kRetImm, &seven, 1) == 0 || errno != EIO || fn[kRetImm] != 0x2A))
                bad = 13;  // no writer for a snapshot: EIO, nothing changed
            if (!bad && !rel::find_wx().empty())
                bad = 14;
            _exit(bad);
        }
    }
    for (const Alloc &x : allocs)
        PREQ(jit_update(x.p, B.data(), x.len) == 0);
    PREQ(::write(go[1], "x", 1) == 1);
    int st = 0;
    PREQ(waitpid(pid, &st, 0) == pid);
    ::close(go[0]);
    ::close(go[1]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        std::fprintf(stderr, "%s: child status %#x\n", jit_writer_name(w), st);
    PREQ(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (const Alloc &x : allocs)
        PREQ(std::memcmp(x.p, B.data(), x.len) == 0);
    PREQ(rel::check(a).empty());
    PREQ(jit_arena_destroy(a) == 0);
    return 0;
}

class ForkCopyFails : public ::testing::TestWithParam<jit_writer> {};

TEST_P(ForkCopyFails, ChildKeepsAPrivateSnapshotNeverTheSharedMemfd) {
    jit_writer w = GetParam();
    int rc = proc::scenario(60, [w] { return fork_without_copy(w); });
    EXPECT_EQ(rc, 0) << proc::describe(rc);
}

INSTANTIATE_TEST_SUITE_P(MemfdWriters, ForkCopyFails,
                         ::testing::Values(JIT_WRITER_MEMFD, JIT_WRITER_TEMP_ALIAS,
                                           JIT_WRITER_PERSISTENT_ALIAS),
                         [](const auto &info) { return std::string(jit_writer_name(info.param)); });

}  // namespace
