// Fault-injection walk (issue 6, part 1).
//
// For every operation (arena create with each writer, alloc small / page / large with and
// without code, cold and warm, update, free, shrink, stats, arena destroy) and every kind
// of system call (os::Call), the walk first counts how many calls of that kind the
// operation makes (os::set_fault with nth = 0 only counts), then repeats the operation
// from the same starting state once per call N = 1..count and per failure mode (ENOMEM,
// EAGAIN, EIO, EPERM, and a short transfer for pwrite / read), failing exactly the Nth
// call. After each run it asserts:
//  - a failed operation reports the injected errno (nothing else, nothing silent);
//    success is accepted only where the library legitimately tolerates the fault
//    (madvise, membarrier, mincore, munmap of a cached chunk, short transfers, and AUTO
//    falling back to the next writer);
//  - an operation that failed changed nothing: code bytes as before, allocation still live
//    (free) or absent (alloc), jit_arena_check passes, no mapping / descriptor / metadata
//    more than before; after teardown the process has exactly the mappings and
//    descriptors it had before the setup;
//  - the arena is still usable: alloc + call-free update + free + check afterwards.
// At the end main() prints which call kinds each operation makes and fails if some kind
// the library uses was never faulted.
#include "rel_common.h"

#include "../common/host_code.h"

#include "chunk/chunk.h"
#include "os/os.h"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

namespace os = jitalloc::os;
using os::Call;

namespace {

// REL_FAULT_QUICK=1: each call fails with one errno (rotating) instead of all four, and
// the sticky walk covers proc_mem only. Set by ctest in sanitizer builds.
bool quick() {
    static const bool q = [] {
        const char *e = std::getenv("REL_FAULT_QUICK");
        return e && *e == '1';
    }();
    return q;
}

constexpr size_t kSmall = 100;
constexpr size_t kPage = 3 * 4096 + 5;
constexpr size_t kLarge = (size_t{2} << 20) + 4096;

struct Ctx {
    jit_writer writer = JIT_WRITER_AUTO;
    jit_placement place = JIT_PLACE_NEAR_LIBRARY;
    jit_arena *a = nullptr;
    void *p = nullptr;           // the allocation the op works on
    void *keep = nullptr;        // keeps a chunk warm
    size_t len = 0;
    std::vector<uint8_t> before; // p's bytes before the op
    size_t result = 0;           // shrink: bytes released
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    // never the trap byte at the ends, so partial writes show
    v[0] = static_cast<uint8_t>(seed | 1);
    if (n > 1)
        v[n - 1] = 0xC3;
    return v;
}

// JIT_PLACE_NEAR_ADDRESS walks: a window of +-2 MiB inside a free region, so a cold
// allocation finds no room in the likely places and reads the free gaps from
// /proc/self/maps. The likely places include the last chunk placed (placement reuses a
// released chunk's space), so consecutive arenas take turns between two windows 12 MiB
// apart: the previous arena's chunk is never inside the next one's window.
const uint8_t *g_window_region = nullptr;
unsigned g_window_turn = 0;

jit_arena *arena(const Ctx &c) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = c.writer;
    o.placement = c.place;
    if (c.place == JIT_PLACE_NEAR_ADDRESS) {
        o.near = g_window_region + (size_t{12} << 20) * (1 + g_window_turn++ % 2);
        o.near_range = size_t{2} << 20;
    }
    o.flags = JIT_ARENA_IGNORE_ENV;
    return jit_arena_create(&o);
}

Ctx fresh(jit_writer w, jit_placement p) {
    Ctx c;
    c.writer = w;
    c.place = p;
    return c;
}

int err_or(int fallback) { return errno ? errno : fallback; }

struct Op {
    std::string name;
    std::function<void(Ctx &)> setup;         // no faults
    std::function<int(Ctx &)> run;            // under fault: 0 or an errno
    std::function<void(Ctx &, bool ok)> post; // op-specific checks
    bool on_arena = true;                     // setup creates c.a
};

void snap(Ctx &c) {
    c.before.assign(static_cast<uint8_t *>(c.p), static_cast<uint8_t *>(c.p) + c.len);
}

bool unchanged(const Ctx &c) { return std::memcmp(c.p, c.before.data(), c.len) == 0; }

std::vector<Op> make_ops(jit_writer w) {
    std::vector<Op> ops;
    ops.push_back({"create", [](Ctx &) {},
                   [](Ctx &c) {
                       errno = 0;
                       c.a = arena(c);
                       return c.a ? 0 : err_or(EIO);
                   },
                   [](Ctx &c, bool ok) {
                       if (ok) {
                           struct jit_stats s = rel::stats(c.a);
                           EXPECT_TRUE(s.strict_wx || c.writer == JIT_WRITER_PERSISTENT_ALIAS);
                           if (c.writer != JIT_WRITER_AUTO) {
                               EXPECT_EQ(s.writer, c.writer);
                           } else {
                               EXPECT_NE(s.writer, JIT_WRITER_PERSISTENT_ALIAS);
                           }
                       }
                   },
                   false});
    struct Size {
        const char *name;
        size_t len;
    };
    for (Size sz : {Size{"small", kSmall}, Size{"page", kPage}, Size{"large", kLarge}}) {
        for (bool code : {true, false}) {
            for (bool warm : {false, true}) {
                if (warm && sz.len == kLarge)
                    continue;  // large allocations always map their own chunk
                std::string name = std::string("alloc_") + sz.name + (code ? "_code" : "_nocode") +
                                   (warm ? "_warm" : "_cold");
                size_t len = sz.len;
                ops.push_back({name,
                               [warm, len](Ctx &c) {
                                   c.a = arena(c);
                                   ASSERT_NE(c.a, nullptr);
                                   c.len = len;
                                   if (warm) {
                                       // a live neighbour keeps a chunk and a slab around
                                       c.keep = jit_arena_alloc(c.a, nullptr, len);
                                       ASSERT_NE(c.keep, nullptr);
                                   }
                               },
                               [code, len](Ctx &c) {
                                   auto v = pattern(len, 0x40);
                                   errno = 0;
                                   c.p = jit_arena_alloc(c.a, code ? v.data() : nullptr, len);
                                   return c.p ? 0 : err_or(EIO);
                               },
                               [code, len](Ctx &c, bool ok) {
                                   if (!ok) {
                                       EXPECT_EQ(c.p, nullptr);
                                       return;
                                   }
                                   size_t usable = jit_size(c.p);
                                   EXPECT_GE(usable, len);
                                   if (code) {
                                       auto v = pattern(len, 0x40);
                                       EXPECT_EQ(std::memcmp(c.p, v.data(), len), 0);
                                   } else {
                                       EXPECT_TRUE(rel::all_traps(c.p, len));
                                   }
                                   EXPECT_TRUE(rel::all_traps(static_cast<uint8_t *>(c.p) + len,
                                                              usable - len));
                               }});
            }
        }
        // update: [off, off+n) of a live allocation
        size_t len = sz.len;
        ops.push_back({std::string("update_") + sz.name,
                       [len](Ctx &c) {
                           c.a = arena(c);
                           ASSERT_NE(c.a, nullptr);
                           auto v = pattern(len, 0x10);
                           c.len = len;
                           c.p = jit_arena_alloc(c.a, v.data(), len);
                           ASSERT_NE(c.p, nullptr);
                           snap(c);
                       },
                       [len](Ctx &c) {
                           size_t off = len / 3, n = std::min<size_t>(len - off, 700);
                           auto v = pattern(n, 0x77);
                           errno = 0;
                           return jit_update(static_cast<uint8_t *>(c.p) + off, v.data(), n) == 0
                                      ? 0
                                      : err_or(EIO);
                       },
                       [len](Ctx &c, bool ok) {
                           if (!ok) {
                               EXPECT_TRUE(unchanged(c)) << "failed update changed code";
                               return;
                           }
                           size_t off = len / 3, n = std::min<size_t>(len - off, 700);
                           auto v = pattern(n, 0x77);
                           EXPECT_EQ(std::memcmp(static_cast<uint8_t *>(c.p) + off, v.data(), n), 0);
                           EXPECT_EQ(std::memcmp(c.p, c.before.data(), off), 0);
                       }});
        ops.push_back({std::string("free_") + sz.name,
                       [len](Ctx &c) {
                           c.a = arena(c);
                           ASSERT_NE(c.a, nullptr);
                           c.keep = jit_arena_alloc(c.a, nullptr, 16);
                           auto v = pattern(len, 0x20);
                           c.len = len;
                           c.p = jit_arena_alloc(c.a, v.data(), len);
                           ASSERT_NE(c.p, nullptr);
                           snap(c);
                       },
                       [](Ctx &c) {
                           errno = 0;
                           return jit_free(c.p) == 0 ? 0 : err_or(EIO);
                       },
                       [](Ctx &c, bool ok) {
                           if (ok) {
                               EXPECT_EQ(jit_size(c.p), 0u);
                               EXPECT_EQ(jit_free(c.p), -1) << "double free accepted";
                               c.p = nullptr;
                               return;
                           }
                           EXPECT_GE(jit_size(c.p), c.len) << "failed free lost the allocation";
                           EXPECT_TRUE(unchanged(c)) << "failed free changed code";
                           EXPECT_EQ(jit_free(c.p), 0) << "cannot free after a failed free";
                           c.p = nullptr;
                       }});
    }
    // live patch: three sites in two allocations (one merged write per step for the two
    // in one allocation); a failure anywhere puts every site's old bytes back. The
    // mprotect writer refuses live patching (EOPNOTSUPP) before any call, and so does an
    // architecture without a live-patch protocol (arm64, jt_code::kLivePatch); the sites
    // are x86-64 instruction lengths, which only that protocol takes.
    if (jt_code::kLivePatch && w != JIT_WRITER_MPROTECT)
        ops.push_back({"patch_batch",
                       [](Ctx &c) {
                           c.a = arena(c);
                           ASSERT_NE(c.a, nullptr);
                           auto v = pattern(kSmall, 0x10);
                           c.len = kSmall;
                           c.p = jit_arena_alloc(c.a, v.data(), kSmall);
                           c.keep = jit_arena_alloc(c.a, v.data(), kSmall);
                           ASSERT_NE(c.p, nullptr);
                           ASSERT_NE(c.keep, nullptr);
                           snap(c);
                       },
                       [](Ctx &c) {
                           static const auto v = pattern(15, 0x55);
                           auto *p = static_cast<uint8_t *>(c.p);
                           const jit_patch_site sites[] = {
                               {p + 20, v.data(), 7}, {p, v.data(), 5}, {c.keep, v.data(), 15}};
                           errno = 0;
                           return jit_arena_patch_batch(c.a, sites, 3) == 0 ? 0 : err_or(EIO);
                       },
                       [](Ctx &c, bool ok) {
                           auto v = pattern(15, 0x55);
                           auto *p = static_cast<uint8_t *>(c.p);
                           if (!ok) {
                               EXPECT_TRUE(unchanged(c)) << "failed patch changed code";
                               EXPECT_EQ(std::memcmp(c.keep, c.before.data(), 15), 0);
                               return;
                           }
                           EXPECT_EQ(std::memcmp(p, v.data(), 5), 0);
                           EXPECT_EQ(std::memcmp(p + 20, v.data(), 7), 0);
                           EXPECT_EQ(std::memcmp(c.keep, v.data(), 15), 0);
                       }});
    ops.push_back({"shrink",
                   [](Ctx &c) {
                       c.a = arena(c);
                       ASSERT_NE(c.a, nullptr);
                       // two cached chunks (retain 4 MiB) and empty slabs of two classes
                       void *big[2], *small[2];
                       for (auto &b : big)
                           ASSERT_NE(b = jit_arena_alloc(c.a, nullptr, size_t{2} << 20), nullptr);
                       small[0] = jit_arena_alloc(c.a, nullptr, 64);
                       small[1] = jit_arena_alloc(c.a, nullptr, 3000);
                       for (void *p : big)
                           ASSERT_EQ(jit_free(p), 0);
                       for (void *p : small)
                           ASSERT_EQ(jit_free(p), 0);
                       c.keep = jit_arena_alloc(c.a, nullptr, 16);
                   },
                   [](Ctx &c) {
                       c.result = jit_arena_shrink(c.a);
                       return 0;
                   },
                   [](Ctx &c, bool) {
                       // what could not be released stays cached and goes at the next shrink
                       jit_arena_shrink(c.a);
                       struct jit_stats s = rel::stats(c.a);
                       EXPECT_EQ(s.chunks_mapped, 1u) << "a chunk survived two shrinks";
                   }});
    ops.push_back({"stats",
                   [](Ctx &c) {
                       c.a = arena(c);
                       ASSERT_NE(c.a, nullptr);
                       c.keep = jit_arena_alloc(c.a, nullptr, 100);
                       c.p = jit_arena_alloc(c.a, nullptr, kLarge);
                   },
                   [](Ctx &c) {
                       struct jit_stats s;
                       errno = 0;
                       return jit_arena_stats(c.a, &s) == 0 ? 0 : err_or(EIO);
                   },
                   [](Ctx &, bool) {}});
    ops.push_back({"destroy",
                   [](Ctx &c) {
                       c.a = arena(c);
                       ASSERT_NE(c.a, nullptr);
                       auto v = pattern(kPage, 1);
                       ASSERT_NE(jit_arena_alloc(c.a, v.data(), 100), nullptr);
                       ASSERT_NE(jit_arena_alloc(c.a, v.data(), kPage), nullptr);
                       ASSERT_NE(jit_arena_alloc(c.a, nullptr, kLarge), nullptr);
                   },
                   [](Ctx &c) {
                       errno = 0;
                       int rc = jit_arena_destroy(c.a) == 0 ? 0 : err_or(EIO);
                       if (rc == 0)
                           c.a = nullptr;
                       return rc;
                   },
                   [](Ctx &, bool) {}});
    (void)w;
    return ops;
}

// Faults that may be absorbed: the call is advisory, or retried / replaced.
bool tolerated(Call k, bool short_io, const Ctx &c, const std::string &op) {
    if (short_io)
        return true;
    switch (k) {
    case Call::madvise:
    case Call::membarrier:
    case Call::mincore:
    case Call::close:
    case Call::fcntl:  // a descriptor not moved to a high number stays where it is
        return true;
    case Call::munmap:
        // releasing a cached chunk (shrink, or the free that empties one) may fail: the
        // chunk stays cached; the probe's unmap failure is cleaned up by a second munmap
        return true;
    default:
        break;
    }
    // the mprotect writer retries turning a page back to read + execute
    if (k == Call::mprotect && c.writer == JIT_WRITER_MPROTECT)
        return true;
    // AUTO moves on to the next strategy when one fails its probe.
    if (op == "create" && c.writer == JIT_WRITER_AUTO)
        return true;
    // shrink reports bytes, not errors
    return op == "shrink";
}

struct Mode {
    int error;
    bool short_io;
    const char *name;
};
constexpr Mode kModes[] = {{ENOMEM, false, "ENOMEM"}, {EAGAIN, false, "EAGAIN"},
                           {EIO, false, "EIO"},       {EPERM, false, "EPERM"},
                           {EIO, true, "short"}};

// call kind -> op names that make it, with counts
std::map<std::string, std::map<std::string, uint64_t>> g_coverage;
std::set<std::string> g_faulted;
uint64_t g_runs = 0, g_failed_ops = 0, g_tolerated = 0;

std::string writer_tag(jit_writer w, jit_placement p) {
    return std::string(jit_writer_name(w)) + (p == JIT_PLACE_ANYWHERE       ? "/anywhere"
                                              : p == JIT_PLACE_NEAR_ADDRESS ? "/window"
                                                                            : "");
}

// Leaves nothing behind: frees the op's objects, destroys the arena.
void teardown(Ctx &c) {
    os::clear_fault();
    if (c.a) {
        EXPECT_EQ(jit_arena_destroy(c.a), 0);
    }
    c = fresh(c.writer, c.place);
}

// A quick alloc / update / free round on an arena that just saw a fault.
void still_usable(jit_arena *a) {
    auto v = pattern(200, 0x5a);
    void *q = jit_arena_alloc(a, v.data(), v.size());
    ASSERT_NE(q, nullptr) << "arena unusable after a fault: " << std::strerror(errno);
    EXPECT_EQ(std::memcmp(q, v.data(), v.size()), 0);
    auto u = pattern(50, 0x33);
    EXPECT_EQ(jit_update(static_cast<uint8_t *>(q) + 10, u.data(), u.size()), 0);
    EXPECT_EQ(jit_free(q), 0);
    if (!quick()) {  // the walk has checked the arena just before
        EXPECT_EQ(rel::check(a), "");
    }
}

void walk(jit_writer w, jit_placement place, const std::vector<std::string> &only = {}) {
    // Warm up process-wide state (the /proc/self/mem descriptor, chunk map leaves, the
    // chunk metadata pool) so each run starts from the same place.
    for (const Op &op : make_ops(w)) {
        if (!only.empty() && std::find(only.begin(), only.end(), op.name) == only.end())
            continue;
        Ctx c = fresh(w, place);
        op.setup(c);
        if (::testing::Test::HasFatalFailure())
            return;
        ASSERT_EQ(op.run(c), 0) << op.name << " fails without faults";
        op.post(c, true);
        teardown(c);
    }
    const size_t pool = jitalloc::chunk_metadata_bytes();
    const rel::Footprint f_start = rel::footprint();
    const int fds_start = rel::count_fds();

    for (const Op &op : make_ops(w)) {
        if (!only.empty() && std::find(only.begin(), only.end(), op.name) == only.end())
            continue;
        // quick mode: the no-code and warm allocations make a subset of the calls of the
        // cold allocation with code, so they are left out
        if (quick() && only.empty() &&
            (op.name.find("_nocode") != std::string::npos || op.name.find("_warm") != std::string::npos))
            continue;
        for (unsigned ki = 0; ki < static_cast<unsigned>(Call::count); ki++) {
            Call k = static_cast<Call>(ki);
            // count
            Ctx c = fresh(w, place);
            op.setup(c);
            os::set_fault({0, 0, os::mask_of(k), false, false});
            (void)op.run(c);
            uint64_t n = os::fault_calls();
            os::clear_fault();
            op.post(c, true);
            teardown(c);
            if (n == 0)
                continue;
            std::string tag = writer_tag(w, place) + " " + op.name;
            g_coverage[os::call_name(k)][tag] = n;
            if (k == Call::close || k == Call::fstat)
                continue;  // counted, never failed (see os.h)
            for (uint64_t nth = 1; nth <= n; nth++) {
                for (const Mode &m : kModes) {
                    if (m.short_io && k != Call::pwrite && k != Call::read)
                        continue;
                    // quick mode (sanitizer builds): one errno per call, in rotation
                    if (quick() && !m.short_io && &m != &kModes[(nth + ki) % 4])
                        continue;
                    SCOPED_TRACE(tag + ": " + os::call_name(k) + " #" + std::to_string(nth) +
                                 " of " + std::to_string(n) + " fails with " + m.name);
                    Ctx c = fresh(w, place);
                    op.setup(c);
                    if (c.a)
                        jit_arena_shrink(c.a);
                    const rel::Footprint f0 = rel::footprint();
                    const int fds0 = rel::count_fds();
                    const uint64_t meta0 = c.a ? rel::stats(c.a).bytes_metadata : 0;
                    const uint64_t live0 = c.a ? rel::stats(c.a).allocations : 0;

                    os::set_fault({nth, m.error, os::mask_of(k), false, m.short_io});
                    int rc = op.run(c);
                    uint64_t injected = os::faults_injected();
                    os::clear_fault();
                    g_runs++;
                    if (injected)
                        g_faulted.insert(os::call_name(k));

                    if (rc != 0) {
                        g_failed_ops++;
                        EXPECT_EQ(injected, 1u) << "failed without an injected fault: "
                                                << std::strerror(rc);
                        EXPECT_EQ(rc, m.error) << "error reported: " << std::strerror(rc);
                        if (c.a) {
                            EXPECT_EQ(rel::check(c.a), "");
                            EXPECT_EQ(rel::stats(c.a).allocations, live0);
                            jit_arena_shrink(c.a);
                            EXPECT_EQ(rel::stats(c.a).bytes_metadata, meta0) << "metadata leaked";
                        }
                        EXPECT_EQ(rel::footprint(), f0) << "mapping leaked";
                        EXPECT_EQ(rel::count_fds(), fds0) << "descriptor leaked";
                        op.post(c, false);
                    } else {
                        if (injected) {
                            g_tolerated++;
                            EXPECT_TRUE(tolerated(k, m.short_io, c, op.name))
                                << "a failed " << os::call_name(k) << " went unreported";
                        }
                        op.post(c, true);
                        if (c.a) {
                            EXPECT_EQ(rel::check(c.a), "");
                        }
                    }
                    // W^X held throughout, and every executable byte is arena memory.
                    rel::Footprint f = rel::footprint();
                    EXPECT_EQ(f.wx_bytes, 0u);
                    if (c.a) {
                        struct jit_stats s = rel::stats(c.a);
                        EXPECT_EQ(f.exec_bytes, s.bytes_mapped) << f.str();
                        still_usable(c.a);
                    } else if (op.name == "create" || op.name == "destroy") {
                        EXPECT_EQ(f.exec_bytes, 0u) << f.str();
                    }
                    teardown(c);
                    EXPECT_EQ(rel::footprint(), f_start) << "mapping leaked past teardown";
                    EXPECT_EQ(rel::count_fds(), fds_start) << "descriptor leaked past teardown";
                    if (::testing::Test::HasFailure())
                        return;  // one detailed failure is enough
                }
            }
        }
    }
    EXPECT_EQ(jitalloc::chunk_metadata_bytes(), pool) << "chunk metadata pool grew under faults";
}

class FaultWalk : public ::testing::TestWithParam<jit_writer> {};

TEST_P(FaultWalk, EveryCallOfEveryOperation) { walk(GetParam(), JIT_PLACE_NEAR_LIBRARY); }

INSTANTIATE_TEST_SUITE_P(Writers, FaultWalk,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                           JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS,
                                           JIT_WRITER_MPROTECT),
                         [](const auto &info) { return std::string(jit_writer_name(info.param)); });

// AUTO: a probe failure moves on to the next strategy, never to the persistent alias.
TEST(FaultWalkAuto, CreateFallsBackNeverToPersistentAlias) {
    walk(JIT_WRITER_AUTO, JIT_PLACE_NEAR_LIBRARY, {"create", "alloc_small_code_cold"});
}

// Placement anywhere: the reservation trims its alignment slack with munmap.
TEST(FaultWalkAnywhere, ColdAllocations) {
    walk(JIT_WRITER_PROC_MEM, JIT_PLACE_ANYWHERE,
         {"alloc_small_code_cold", "alloc_large_code_cold", "destroy"});
    walk(JIT_WRITER_MEMFD, JIT_PLACE_ANYWHERE, {"alloc_page_code_cold", "destroy"});
}

// A placement window of its own: the maps scan (open, read) under every fault.
TEST(FaultWalkWindow, ColdAllocationsScanTheMaps) {
    void *r = mmap(nullptr, size_t{64} << 20, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(r, MAP_FAILED);
    munmap(r, size_t{64} << 20);
    g_window_region = static_cast<uint8_t *>(r);
    walk(JIT_WRITER_PROC_MEM, JIT_PLACE_NEAR_ADDRESS,
         {"alloc_small_code_cold", "alloc_page_code_cold"});
}

// Sticky faults: every call of a kind fails from the Nth on (a resource that stays gone).
// The guarantees are weaker: a clear error, consistency, W^X; the arena works again once
// the fault clears.
TEST(FaultWalkSticky, EveryKindFromEveryCall) {
    for (jit_writer w : rel::kWriters) {
        if (quick() && w != JIT_WRITER_PROC_MEM)
            continue;
        for (const Op &op : make_ops(w)) {
            if (op.name == "destroy" || op.name == "create")
                continue;
            if (quick() && (op.name.find("_nocode") != std::string::npos ||
                            op.name.find("_warm") != std::string::npos))
                continue;
            for (unsigned ki = 0; ki < static_cast<unsigned>(Call::count); ki++) {
                Call k = static_cast<Call>(ki);
                if (k == Call::close || k == Call::fstat)
                    continue;
                Ctx c = fresh(w, JIT_PLACE_NEAR_LIBRARY);
                op.setup(c);
                os::set_fault({0, 0, os::mask_of(k), false, false});
                (void)op.run(c);
                uint64_t n = os::fault_calls();
                os::clear_fault();
                teardown(c);
                for (uint64_t nth = 1; nth <= n; nth++) {
                    SCOPED_TRACE(writer_tag(w, JIT_PLACE_NEAR_LIBRARY) + " " + op.name + ": " +
                                 os::call_name(k) + " fails from #" + std::to_string(nth));
                    Ctx c2 = fresh(w, JIT_PLACE_NEAR_LIBRARY);
                    op.setup(c2);
                    os::set_fault({nth, EIO, os::mask_of(k), true, false});
                    int rc = op.run(c2);
                    os::clear_fault();
                    if (rc != 0) {
                        EXPECT_EQ(rc, EIO);
                    }
                    EXPECT_EQ(rel::footprint().wx_bytes, 0u);
                    EXPECT_EQ(rel::check(c2.a), "");
                    still_usable(c2.a);
                    teardown(c2);
                    if (::testing::Test::HasFailure())
                        return;
                }
            }
        }
    }
}

// fork() with memfd-backed chunks (issue 10, item 2): the prepare handler copies every
// memfd for the child (memfd_create, fcntl, ftruncate, the writer's fill: pwrite, or
// mmap / munmap of an alias); the child handler maps the copies. Each call of the
// parent's side fails in turn (the child inherits the armed fault, so its side is hit
// too where the count runs on). Whatever fails: the child never sees the parent's later
// writes (a private copy, a private snapshot, or no view at all), a write the child
// manages stays in the child, and the parent keeps no mapping or descriptor more.
bool readable(const void *p) {
    auto a = reinterpret_cast<uintptr_t>(p);
    for (const rel::Vma &v : rel::read_maps())
        if (v.start <= a && a < v.end)
            return v.r();
    return false;
}

// In the child: 0, or what went wrong.
int child_after_fork(const std::vector<std::pair<uint8_t *, size_t>> &allocs,
                     const std::vector<uint8_t> &A, int go) {
    os::clear_fault();
    char ch;
    if (::read(go, &ch, 1) != 1)
        return 9;
    for (auto &[p, n] : allocs)
        if (readable(p) && std::memcmp(p, A.data(), n) != 0)
            return 10;  // the parent's write reached the child
    auto C = pattern(64, 0x5c);
    for (auto &[p, n] : allocs) {
        if (!readable(p))
            continue;
        int rc = jit_update(p, C.data(), C.size());
        if (rc == 0 && std::memcmp(p, C.data(), C.size()) != 0)
            return 11;
        if (rc != 0 && std::memcmp(p, A.data(), n) != 0)
            return 12;  // a failed write changed the child's bytes
    }
    return rel::find_wx().empty() ? 0 : 13;
}

TEST(FaultWalkFork, PrepareEveryCall) {
    for (jit_writer w : {JIT_WRITER_MEMFD, JIT_WRITER_TEMP_ALIAS, JIT_WRITER_PERSISTENT_ALIAS}) {
        jit_arena *a = arena(fresh(w, JIT_PLACE_NEAR_LIBRARY));
        ASSERT_NE(a, nullptr);
        auto A = pattern(5000, 0x31), B = pattern(5000, 0x62);
        std::vector<std::pair<uint8_t *, size_t>> allocs;
        for (size_t n : {kSmall, kPage, kLarge}) {
            // n bytes (a slab object, a page run, a large chunk), the first ones A
            auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, n));
            ASSERT_NE(p, nullptr);
            size_t k = std::min(n, A.size());
            ASSERT_EQ(jit_update(p, A.data(), k), 0);
            allocs.push_back({p, k});
        }
        // Forks under fault f; the calls the parent's side made and the faults injected
        // there, and the child's status.
        struct Forked {
            uint64_t calls = 0, injected = 0;
            int status = 0;
        };
        auto fork_once = [&](const os::Fault &f, Forked &out) {
            int go[2];
            ASSERT_EQ(pipe(go), 0);
            std::fflush(nullptr);
            os::set_fault(f);
            pid_t pid = fork();
            if (pid == 0)
                _exit(child_after_fork(allocs, A, go[0]));
            out.calls = os::fault_calls();
            out.injected = os::faults_injected();
            os::clear_fault();
            ASSERT_GT(pid, 0);
            for (auto &[p, n] : allocs)
                EXPECT_EQ(jit_update(p, B.data(), n), 0);
            EXPECT_EQ(::write(go[1], "x", 1), 1);
            int st = 0;
            EXPECT_EQ(waitpid(pid, &st, 0), pid);
            ::close(go[0]);
            ::close(go[1]);
            out.status = st;
            for (auto &[p, n] : allocs) {
                EXPECT_EQ(std::memcmp(p, B.data(), n), 0) << "the child's write reached the parent";
                EXPECT_EQ(jit_update(p, A.data(), n), 0);
            }
        };
        for (unsigned ki = 0; ki < static_cast<unsigned>(Call::count); ki++) {
            Call k = static_cast<Call>(ki);
            Forked counted;
            fork_once({0, 0, os::mask_of(k), false, false}, counted);
            uint64_t n = counted.calls;
            if (n == 0)
                continue;
            std::string tag = writer_tag(w, JIT_PLACE_NEAR_LIBRARY) + " fork";
            g_coverage[os::call_name(k)][tag] = n;
            if (k == Call::close || k == Call::fstat)
                continue;
            for (uint64_t nth = 1; nth <= n; nth++) {
                for (int e : {ENOMEM, EMFILE, EIO}) {
                    if (quick() && e != (nth % 2 ? ENOMEM : EMFILE))
                        continue;
                    SCOPED_TRACE(tag + ": " + os::call_name(k) + " #" + std::to_string(nth) + " of " +
                                 std::to_string(n) + " fails with " + std::strerror(e));
                    const rel::Footprint f0 = rel::footprint();
                    const int fds0 = rel::count_fds();
                    Forked r;
                    fork_once({nth, e, os::mask_of(k), false, false}, r);
                    g_runs++;
                    EXPECT_EQ(r.injected, 1u);
                    if (r.injected)
                        g_faulted.insert(os::call_name(k));
                    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
                        << "child status " << r.status;
                    EXPECT_EQ(rel::footprint(), f0) << "mapping leaked";
                    EXPECT_EQ(rel::count_fds(), fds0) << "descriptor leaked";
                    EXPECT_EQ(rel::check(a), "");
                    if (::testing::Test::HasFailure())
                        return;
                }
            }
        }
        EXPECT_EQ(jit_arena_destroy(a), 0);
    }
}

}  // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    int rc = RUN_ALL_TESTS();
    std::printf("\nfault walk: %" PRIu64 " runs, %" PRIu64 " failed cleanly, %" PRIu64
                " faults tolerated\n",
                g_runs, g_failed_ops, g_tolerated);
    std::printf("%-12s %s\n", "call", "operations (calls made)");
    for (auto &[call, ops] : g_coverage) {
        std::printf("%-12s", call.c_str());
        int col = 0;
        for (auto &[op, n] : ops) {
            std::printf("%s%s(%" PRIu64 ")", col++ % 4 ? "  " : "\n    ", op.c_str(), n);
        }
        std::printf("\n");
    }
    // Every call kind the library uses must have been faulted at least once (close is
    // never failed by injection; it is counted above). Two kinds are faulted elsewhere:
    // sigaction runs once per process (the first jit_patch installs the SIGTRAP handler),
    // read_memory only inside that handler; core_patch_traps fails both
    // (FailedInstallChangesNothing, LateHandlerRestartsOnlyWhereTheInt3IsGone).
    if (::testing::GTEST_FLAG(filter) == "*") {
        for (unsigned ki = 0; ki < static_cast<unsigned>(Call::count); ki++) {
            const char *name = os::call_name(static_cast<Call>(ki));
            Call k = static_cast<Call>(ki);
            if (k == Call::close || k == Call::fstat || k == Call::sigaction ||
                k == Call::read_memory)
                continue;
            if (!g_faulted.count(name)) {
                std::printf("NOT COVERED: no operation faulted %s\n", name);
                rc = 1;
            }
        }
    }
    return rc;
}
