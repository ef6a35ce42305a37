// Arena options and the perf-map file (issue 10, item 10).
//  - jit_arena_create rejects options it could not work with (a near address outside
//    user space or whose window has no room for a chunk, struct_size shorter than
//    version 0.1 of the struct, a max_bytes cap below one chunk, ...) with EINVAL, and
//    leaves no mapping, descriptor or arena behind.
//  - The perf map's temporary file follows no symlink planted in /tmp, and the map is a
//    regular file no more permissive than 0644.
#include "rel_common.h"
#include "../core/helpers.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <functional>

namespace {

constexpr size_t k2M = size_t{2} << 20;
constexpr uintptr_t kUserTop = uintptr_t{1} << jitalloc::arch::kUserAddressBits;

struct BadOption {
    const char *what;
    std::function<void(jit_arena_options &)> set;
};

const BadOption kBad[] = {
    {"near -1", [](auto &o) { o.placement = JIT_PLACE_NEAR_ADDRESS; o.near = reinterpret_cast<void *>(~uintptr_t{0}); }},
    {"near at the top of user space", [](auto &o) {
         o.placement = JIT_PLACE_NEAR_ADDRESS;
         o.near = reinterpret_cast<void *>(kUserTop);
     }},
    {"near in kernel space", [](auto &o) {
         o.placement = JIT_PLACE_NEAR_ADDRESS;
         o.near = reinterpret_cast<void *>(uintptr_t{0xffffffff81000000});
     }},
    {"near window below the first chunk", [](auto &o) {
         o.placement = JIT_PLACE_NEAR_ADDRESS;
         o.near = reinterpret_cast<void *>(uintptr_t{4096});
         o.near_range = k2M;
     }},
    {"near NULL", [](auto &o) { o.placement = JIT_PLACE_NEAR_ADDRESS; o.near = nullptr; }},
    {"near_range 1", [](auto &o) { o.near_range = 1; }},
    {"near_range 4 GiB", [](auto &o) { o.near_range = size_t{4} << 30; }},
    {"struct_size 1", [](auto &o) { o.struct_size = 1; }},
    {"struct_size 8", [](auto &o) { o.struct_size = 8; }},
    {"struct_size one short of version 0.1", [](auto &o) { o.struct_size = JIT_ARENA_OPTIONS_MIN_SIZE - 1; }},
    {"struct_size too big", [](auto &o) { o.struct_size = sizeof o + 8; }},
    {"max_bytes 1", [](auto &o) { o.max_bytes = 1; }},
    {"max_bytes below one chunk", [](auto &o) { o.max_bytes = k2M - 4096; }},
    {"unknown flag", [](auto &o) { o.flags |= 1u << 31; }},
    {"writer out of range", [](auto &o) {
         int v = 99;
         std::memcpy(&o.writer, &v, sizeof v);
     }},
    {"placement out of range", [](auto &o) {
         int v = -1;
         std::memcpy(&o.placement, &v, sizeof v);
     }},
};

TEST(Options, BadOptionsAreRejectedAndChangeNothing) {
    // Warm up what the first arena sets up once (atfork handlers, the proc_mem descriptor).
    jit_arena *warm = jit_arena_create(nullptr);
    ASSERT_NE(warm, nullptr);
    ASSERT_EQ(0, jit_arena_destroy(warm));
    for (const BadOption &b : kBad) {
        SCOPED_TRACE(b.what);
        jit_arena_options o;
        jit_arena_options_init(&o);
        o.flags |= JIT_ARENA_IGNORE_ENV;
        b.set(o);
        rel::Footprint before = rel::footprint();
        int fds = rel::count_fds();
        errno = 0;
        jit_arena *a = jit_arena_create(&o);
        int err = errno;
        EXPECT_EQ(nullptr, a);
        EXPECT_EQ(EINVAL, err);
        if (a)
            jit_arena_destroy(a);
        EXPECT_EQ(before.str(), rel::footprint().str());
        EXPECT_EQ(fds, rel::count_fds());
    }
}

TEST(Options, BoundaryValuesAreAccepted) {
    auto works = [](const char *what, const std::function<void(jit_arena_options &)> &set) {
        SCOPED_TRACE(what);
        jit_arena_options o;
        jit_arena_options_init(&o);
        o.flags |= JIT_ARENA_IGNORE_ENV;
        set(o);
        jit_arena *a = jit_arena_create(&o);
        ASSERT_NE(a, nullptr) << std::strerror(errno);
        void *p = jit_arena_alloc(a, nullptr, 64);
        EXPECT_NE(p, nullptr) << std::strerror(errno);
        EXPECT_EQ(0, jit_arena_destroy(a));
    };
    works("struct_size of version 0.1", [](auto &o) { o.struct_size = JIT_ARENA_OPTIONS_MIN_SIZE; });
    works("max_bytes one chunk", [](auto &o) { o.max_bytes = k2M; });
    works("near_range 2 GiB", [](auto &o) { o.near_range = size_t{2} << 30; });
    static int local;  // an address of this program's data
    works("near a data address", [](auto &o) {
        o.placement = JIT_PLACE_NEAR_ADDRESS;
        o.near = &local;
    });
}

// In a child (its own pid, so its own map path, and no map opened yet): symlinks planted
// at the map's path and at the name the old code used for its temporary file must not be
// followed; the map that appears is a regular file, mode 0644 or stricter.
TEST(Options, PerfMapFollowsNoPlantedSymlink) {
    char dir[] = "/tmp/jitalloc-victim-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(dir));
    const std::string victim = std::string(dir) + "/victim";
    const std::string precious = "precious bytes\n";
    int rc = rel::in_child([&] {
        FILE *f = std::fopen(victim.c_str(), "w");
        if (!f || std::fputs(precious.c_str(), f) < 0 || std::fclose(f) != 0)
            return 10;
        const std::string map = "/tmp/perf-" + std::to_string(getpid()) + ".map";
        for (const std::string &link : {map + ".tmp", map})
            if (::symlink(victim.c_str(), link.c_str()) != 0)
                return 11;
        jit_arena *a = rel::make_arena(JIT_WRITER_AUTO, JIT_PLACE_NEAR_LIBRARY,
                                       JIT_ARENA_IGNORE_ENV | JIT_ARENA_PERF_MAP);
        if (!a)
            return 12;
        static const uint8_t ret[] = {0xC3};
        void *p = jit_arena_alloc_named(a, ret, sizeof ret, "rel_planted_link_fn");
        void *q = jit_arena_alloc_named(a, ret, sizeof ret, "rel_second_fn");
        if (!p || !q || jit_arena_free(a, q) != 0)  // the free rewrites the map
            return 13;
        int result = 0;
        struct stat st;
        if (jt::read_file(victim.c_str()) != precious)
            result = 20;  // written through a planted link
        else if (::lstat(map.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            result = 21;
        else if ((st.st_mode & 0777) & ~0644)
            result = 22;
        else if (jt::read_file(map.c_str()).find("rel_planted_link_fn") == std::string::npos)
            result = 23;
        jit_arena_destroy(a);
        ::unlink(map.c_str());
        ::unlink((map + ".tmp").c_str());
        return result;
    });
    ::unlink(victim.c_str());
    ::rmdir(dir);
    EXPECT_EQ(0, rc) << "10-13: setup failed; 20: victim written through a planted link; "
                        "21: map not a regular file; 22: map mode wider than 0644; 23: map lacks the name";
}

}  // namespace
