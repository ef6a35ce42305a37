// Shared helpers for the core test suite: machine-code builders, arena handles,
// invariant checks, /proc/self/{maps,smaps} readers and byte-level comparisons.
#pragma once

#include <jitalloc/jitalloc.h>

#include "../common/a64.h"
#include "../common/host_code.h"
#include "../common/trap_fill.h"
#include "os/os.h"
#include "slab/size_class.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace jt {

// membarrier SYNC_CORE calls one write of fresh code adds in a multi-threaded process:
// none on x86-64, one on arm64, where the architecture asks for context synchronisation
// before other CPUs run new instructions (src/arch/, kFreshCodeNeedsCpuSync).
inline constexpr unsigned kFreshCodeSerialises = jitalloc::arch::kFreshCodeNeedsCpuSync ? 1 : 0;

// GCC 12's ASan and TSan allocators have no fork handlers: a child forked while another
// thread is inside malloc waits for the allocator's lock forever at its first allocation
// (seen in PatchFork.ForkWhileAnotherThreadPatches and BornWithCode.ForkWhileAnother...).
// Tests that fork while another thread allocates skip under them.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kForkWhileAllocatingHangs = true;
#else
inline constexpr bool kForkWhileAllocatingHangs = false;
#endif

constexpr size_t KiB = 1024;
constexpr size_t MiB = 1024 * 1024;
constexpr size_t kChunk = 2 * MiB;
using jt_traps::all_traps;
using jt_traps::trap_at;
using jt_traps::trap_bytes;

// ---------------------------------------------------------------- machine code
using namespace jt_code;
using IntFn = int (*)(int);

inline int call_int(const void *code, int x = 0) {
    return reinterpret_cast<IntFn>(const_cast<void *>(code))(x);
}

// A second thread that keeps running JIT code (fn) until destroyed, so the process has
// more than one thread and another CPU executes code of the arena.
class Runner {
public:
    explicit Runner(const void *fn) : fn_(fn), t_([this] { run(); }) {
        while (!started_.load(std::memory_order_acquire))
            std::this_thread::yield();
    }
    ~Runner() {
        stop_.store(true, std::memory_order_relaxed);
        t_.join();
    }

private:
    void run() {
        started_.store(true, std::memory_order_release);
        int sum = 0;
        while (!stop_.load(std::memory_order_relaxed))
            sum += call_int(fn_, 1);
        sink_ = sum;
    }
    const void *fn_;
    std::atomic<bool> stop_{false}, started_{false};
    volatile int sink_ = 0;
    std::thread t_;
};

// A deterministic byte pattern (not code; only compared, never run). Eight bytes per
// step, so megabytes of it stay cheap under the sanitizers.
inline std::vector<uint8_t> pattern(size_t len, uint32_t seed) {
    std::vector<uint8_t> v(len);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(&v[i], &x, len - i < 8 ? len - i : 8);
    }
    return v;
}

// ---------------------------------------------------------------- system calls

// Counts the system calls of one kind made while alive, through the os seam (a fault
// that never fires).
class CallCount {
public:
    explicit CallCount(jitalloc::os::Call c) {
        jitalloc::os::set_fault({0, 0, jitalloc::os::mask_of(c), false, false});
    }
    ~CallCount() { jitalloc::os::clear_fault(); }
    CallCount(const CallCount &) = delete;
    CallCount &operator=(const CallCount &) = delete;
    uint64_t calls() const { return jitalloc::os::fault_calls(); }
    uint64_t bytes() const { return jitalloc::os::fault_bytes(); }  // pwrite only
};

// ---------------------------------------------------------------- byte checks

inline bool all_bytes(const void *p, size_t len, uint8_t b) {
    uint8_t ref[4096];
    std::memset(ref, b, sizeof ref);
    auto *q = static_cast<const uint8_t *>(p);
    for (size_t done = 0; done < len; done += sizeof ref)
        if (std::memcmp(q + done, ref, len - done < sizeof ref ? len - done : sizeof ref) != 0)
            return false;
    return true;
}

inline std::vector<uint8_t> snapshot(const void *p, size_t len) {
    auto *q = static_cast<const uint8_t *>(p);
    return std::vector<uint8_t>(q, q + len);
}

inline bool same_bytes(const void *p, const std::vector<uint8_t> &v) {
    return std::memcmp(p, v.data(), v.size()) == 0;
}

// ---------------------------------------------------------------- arenas

inline const char *writer_name(jit_writer w) { return jit_writer_name(w); }

constexpr jit_writer kAllWriters[] = {JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                      JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS,
                                      JIT_WRITER_MPROTECT};

// The mprotect writer makes a page RW (not executable) for the length of a write, so
// other threads must not run code on that page meanwhile (documented in jitalloc.h).
inline bool can_run_during_writes(jit_writer w) {
    return w != JIT_WRITER_MPROTECT;
}

inline jit_arena_options options(jit_writer w = JIT_WRITER_AUTO) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = w;
    o.flags |= JIT_ARENA_IGNORE_ENV;
    return o;
}

// Owns an arena for one test.
class ArenaHolder {
public:
    explicit ArenaHolder(const jit_arena_options &o) : a_(jit_arena_create(&o)), err_(errno) {}
    explicit ArenaHolder(jit_writer w = JIT_WRITER_AUTO) : ArenaHolder(options(w)) {}
    ~ArenaHolder() {
        if (a_)
            jit_arena_destroy(a_);
    }
    ArenaHolder(const ArenaHolder &) = delete;
    ArenaHolder &operator=(const ArenaHolder &) = delete;
    jit_arena *get() const { return a_; }
    operator jit_arena *() const { return a_; }
    int error() const { return a_ ? 0 : err_; }

private:
    jit_arena *a_;
    int err_;
};

// gtest assertion: the arena's invariant checker is happy.
inline ::testing::AssertionResult ArenaOk(jit_arena *a) {
    char msg[256] = "";
    if (jit_arena_check(a, msg, sizeof msg) == 0)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "jit_arena_check: " << msg << " (errno " << errno << ")";
}

// For the internal checkers (bool check(..., std::string &msg)): the check passed /
// failed with a message that names `what`.
inline ::testing::AssertionResult Checked(bool ok, const std::string &msg) {
    if (ok)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << msg;
}
inline ::testing::AssertionResult FailedWith(bool ok, const std::string &msg, const char *what) {
    if (ok)
        return ::testing::AssertionFailure() << "check passed, expected: " << what;
    if (msg.find(what) == std::string::npos)
        return ::testing::AssertionFailure() << "message '" << msg << "' lacks: " << what;
    return ::testing::AssertionSuccess();
}

inline struct jit_stats stats_of(jit_arena *a) {
    struct jit_stats s;
    std::memset(&s, 0, sizeof s);
    EXPECT_EQ(jit_arena_stats(a, &s), 0);
    return s;
}

// Fields of struct jit_stats that a rejected call must not change (bytes_resident may move).
inline ::testing::AssertionResult SameStats(const struct jit_stats &a, const struct jit_stats &b) {
#define JT_FIELD(f)                                                                     \
    if (a.f != b.f)                                                                     \
        return ::testing::AssertionFailure() << #f ": " << a.f << " -> " << b.f;
    JT_FIELD(writer)
    JT_FIELD(chunks_mapped)
    JT_FIELD(bytes_mapped)
    JT_FIELD(bytes_requested)
    JT_FIELD(bytes_in_use)
    JT_FIELD(bytes_cached)
    JT_FIELD(bytes_metadata)
    JT_FIELD(allocations)
    JT_FIELD(total_allocs)
    JT_FIELD(total_frees)
    JT_FIELD(total_updates)
    JT_FIELD(chunks_released)
    for (unsigned o = 0; o < JIT_BUDDY_ORDERS; o++) {
        JT_FIELD(order_free[o])
        JT_FIELD(order_cached[o])
        JT_FIELD(order_released[o])
    }
    for (unsigned i = 0; i < a.nr_classes && i < JIT_MAX_SIZE_CLASSES; i++) {
        JT_FIELD(classes[i].slabs)
        JT_FIELD(classes[i].objects_in_use)
        JT_FIELD(classes[i].objects_free)
    }
#undef JT_FIELD
    return ::testing::AssertionSuccess();
}

// The expected usable size of a request of len bytes on each path.
inline size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

// A length served by a page run (just above the largest slab class) of
// run_pages(extra) pages.
inline size_t run_len(size_t extra_pages = 0) {
    return round_up(jitalloc::kMaxSlabSize + 1, 4096) + extra_pages * 4096 - 100;
}
inline size_t run_pages(size_t extra_pages = 0) { return round_up(run_len(extra_pages), 4096) / 4096; }

// The 2 MiB chunk an address lies in.
inline uintptr_t chunk_base(const void *p) {
    return reinterpret_cast<uintptr_t>(p) & ~(uintptr_t{kChunk} - 1);
}

// ---------------------------------------------------------------- /proc/self/maps

struct Mapping {
    uintptr_t start = 0, end = 0;
    std::string perms;  // "r-xp"
    std::string path;
    std::string line;   // as read
    bool writable() const { return perms.size() > 1 && perms[1] == 'w'; }
    bool executable() const { return perms.size() > 2 && perms[2] == 'x'; }
};

inline bool parse_maps_line(const std::string &line, Mapping &m) {
    unsigned long long s = 0, e = 0;
    char perms[8] = "";
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %*s %*s %n", &s, &e, perms, &path_at) < 3)
        return false;
    m.start = s;
    m.end = e;
    m.perms = perms;
    m.line = line;
    m.path = path_at > 0 && static_cast<size_t>(path_at) <= line.size() ? line.substr(path_at) : "";
    return true;
}

// Reads a whole (proc) file.
inline std::string read_file(const char *path) {
    std::string out;
    FILE *f = std::fopen(path, "re");
    if (!f)
        return out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        out.append(buf, n);
    std::fclose(f);
    return out;
}

inline std::vector<Mapping> read_maps() {
    std::vector<Mapping> v;
    std::istringstream in(read_file("/proc/self/maps"));
    std::string line;
    while (std::getline(in, line)) {
        Mapping m;
        if (parse_maps_line(line, m))
            v.push_back(m);
    }
    return v;
}

// How the 2 MiB chunk at base is mapped: the read+execute bytes from its base on (its
// exposed part, src/chunk/growth.h), and whether every other byte of it is mapped and
// PROT_NONE (reserved, neither readable nor executable).
struct ChunkView {
    size_t exposed = 0;
    bool rest_inaccessible = false;
};
inline ChunkView chunk_view(uintptr_t base) {
    ChunkView v;
    size_t none = 0;
    bool other = false;
    const uintptr_t end = base + kChunk;
    for (const Mapping &m : read_maps()) {
        uintptr_t lo = std::max(m.start, base), hi = std::min(m.end, end);
        if (lo >= hi)
            continue;
        if (m.perms.rfind("r-x", 0) == 0 && lo == base + v.exposed)
            v.exposed += hi - lo;
        else if (m.perms.rfind("---", 0) == 0)
            none += hi - lo;
        else
            other = true;
    }
    v.rest_inaccessible = !other && v.exposed + none == kChunk;
    return v;
}

// Mappings that are writable and executable at once.
inline std::vector<std::string> wx_mappings() {
    std::vector<std::string> bad;
    for (const Mapping &m : read_maps())
        if (m.writable() && m.executable())
            bad.push_back(m.line);
    return bad;
}

// One VMA of /proc/self/smaps with the fields the tests need (kB).
struct SmapsEntry {
    Mapping map;
    uint64_t size_kb = 0, rss_kb = 0, anon_huge_kb = 0;
};

inline std::vector<SmapsEntry> read_smaps() {
    std::vector<SmapsEntry> v;
    std::istringstream in(read_file("/proc/self/smaps"));
    std::string line;
    while (std::getline(in, line)) {
        Mapping m;
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
            line.find('-') < line.find(' ') && parse_maps_line(line, m)) {
            v.push_back({m, 0, 0, 0});
            continue;
        }
        if (v.empty())
            continue;
        unsigned long long kb = 0;
        if (std::sscanf(line.c_str(), "Size: %llu kB", &kb) == 1)
            v.back().size_kb = kb;
        else if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1)
            v.back().rss_kb = kb;
        else if (std::sscanf(line.c_str(), "AnonHugePages: %llu kB", &kb) == 1)
            v.back().anon_huge_kb = kb;
    }
    return v;
}

// "always", "madvise" or "never": the bracketed word of a THP sysfs file.
inline std::string thp_mode(const char *file = "/sys/kernel/mm/transparent_hugepage/enabled") {
    std::string s = read_file(file);
    size_t a = s.find('['), b = s.find(']');
    return a != std::string::npos && b != std::string::npos && b > a ? s.substr(a + 1, b - a - 1)
                                                                     : "";
}

// The PMD-sized transparent huge page (2 MiB with 4 KiB pages; 32 MiB with 16 KiB, 512
// MiB with 64 KiB on arm64); 0 if the kernel does not say.
inline size_t thp_pmd_size() {
    return static_cast<size_t>(
        std::strtoull(read_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").c_str(), nullptr, 10));
}

// Whether this kernel collapses read-only anonymous memory into a huge page: a chunk
// grown in steps is read+execute when it becomes whole, and the library's MADV_COLLAPSE
// is its only way onto a huge page (poke.cpp, collapse_if_whole). Kernels up to at least
// 6.12 refuse (EINVAL: khugepaged's collapse wants a writable PTE in the range, and
// kernels before 6.1 have no MADV_COLLAPSE); 6.18 collapses. Probed on a 2 MiB region of
// the test's own, read-only like a chunk: why the kernel cannot, or "".
inline std::string read_only_collapse_refused() {
    const size_t huge = thp_pmd_size();
    if (huge == 0)
        return "the kernel reports no PMD huge-page size";
    void *r = mmap(nullptr, 2 * huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return std::string("no address space for the probe: ") + std::strerror(errno);
    auto *at = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(r) + huge - 1) & ~(huge - 1));
    std::string why;
    const int kCollapse = 25;  // MADV_COLLAPSE, missing from older headers
    if (mprotect(at, huge, PROT_READ | PROT_WRITE) != 0) {
        why = std::string("mprotect: ") + std::strerror(errno);
    } else {
        std::memset(at, 0xd4, huge);
        (void)mprotect(at, huge, PROT_READ);
        (void)madvise(at, huge, MADV_HUGEPAGE);
        // Only EINVAL says the kernel cannot: EAGAIN / ENOMEM (no free huge page now)
        // leaves the test to run and to report it.
        if (madvise(at, huge, kCollapse) != 0 && errno == EINVAL) {
            int e = errno;
            utsname u{};
            (void)uname(&u);
            why = std::string("MADV_COLLAPSE of read-only anonymous memory fails with ") +
                  std::strerror(e) + " on kernel " + u.release;
        }
    }
    (void)munmap(r, 2 * huge);
    return why;
}

// ---------------------------------------------------------------- fork

// Runs fn in a forked child; returns its exit status (fn's return value) or -1 when
// the child died by a signal.
template <class Fn>
int in_child(Fn &&fn) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A pipe used to sequence a parent and a child: one byte per step.
struct Pipe {
    int fd[2] = {-1, -1};
    Pipe() { EXPECT_EQ(pipe(fd), 0); }
    ~Pipe() { close_all(); }
    void close_all() {
        for (int &f : fd)
            if (f >= 0) {
                close(f);
                f = -1;
            }
    }
    bool send(char c = 'x') const { return write(fd[1], &c, 1) == 1; }
    bool wait() const {
        char c;
        return read(fd[0], &c, 1) == 1;
    }
};

// Forks; the child waits until the parent has run `parent` after the fork, then runs
// `child` (its return value is the exit status). Returns the child's status as
// in_child does.
template <class Child, class Parent>
int fork_then(Parent &&parent, Child &&child) {
    Pipe child_ready, parent_done;
    pid_t pid = fork();
    if (pid == 0) {
        child_ready.send();
        _exit(parent_done.wait() ? child() : 100);
    }
    if (pid < 0 || !child_ready.wait())
        return -2;
    parent();
    parent_done.send();
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace jt
