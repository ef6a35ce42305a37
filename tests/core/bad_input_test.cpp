// Every bad input is rejected with EINVAL and changes nothing: code bytes, stats and the
// arena's invariants are compared before and after each rejected call.
#include "helpers.h"

#include <cstdlib>
#include <functional>

using namespace jt;

namespace {

// An arena with a few live allocations of every kind, adjacent slab objects and a
// freed object, whose bytes and stats are snapshotted around each bad call.
class BadInput : public ::testing::Test {
protected:
    ArenaHolder arena{JIT_WRITER_AUTO};
    void *a = nullptr, *b = nullptr;   // adjacent objects of one slab class
    void *run = nullptr;               // page run of several pages
    void *large = nullptr;             // > 2 MiB
    void *freed = nullptr;             // freed slab object

    void SetUp() override {
        ASSERT_NE(arena.get(), nullptr) << strerror(arena.error());
        auto ca = pattern(64, 1), cb = pattern(64, 2);
        a = jit_arena_alloc(arena, ca.data(), ca.size());
        b = jit_arena_alloc(arena, cb.data(), cb.size());
        ASSERT_NE(a, nullptr);
        ASSERT_NE(b, nullptr);
        ASSERT_EQ(static_cast<uint8_t *>(b), static_cast<uint8_t *>(a) + 64)
            << "fresh slab hands out consecutive objects";
        auto cr = pattern(run_len(), 3);
        run = jit_arena_alloc(arena, cr.data(), cr.size());
        ASSERT_NE(run, nullptr);
        large = jit_arena_alloc(arena, nullptr, 3 * MiB);
        ASSERT_NE(large, nullptr);
        auto cf = pattern(100, 4);
        freed = jit_arena_alloc(arena, cf.data(), cf.size());
        ASSERT_NE(freed, nullptr);
        ASSERT_EQ(jit_free(freed), 0);
        ASSERT_TRUE(ArenaOk(arena));
    }
    void TearDown() override {
        for (void *p : {a, b, run, large})
            if (p) {
                EXPECT_EQ(jit_free(p), 0);
            }
        EXPECT_TRUE(ArenaOk(arena));
    }

    // Runs a bad call; it must fail with EINVAL and change nothing.
    void expect_rejected(const char *what, const std::function<int()> &call) {
        SCOPED_TRACE(what);
        auto sa = snapshot(a, 128);
        auto sr = snapshot(run, run_pages() * 4096);
        auto sl = snapshot(large, 64 * KiB);
        auto sf = snapshot(freed, 100);
        struct jit_stats before = stats_of(arena);
        errno = 0;
        EXPECT_EQ(call(), -1);
        EXPECT_EQ(errno, EINVAL);
        EXPECT_TRUE(same_bytes(a, sa));
        EXPECT_TRUE(same_bytes(run, sr));
        EXPECT_TRUE(same_bytes(large, sl));
        EXPECT_TRUE(same_bytes(freed, sf));
        EXPECT_TRUE(all_traps(freed, 100));
        EXPECT_TRUE(SameStats(before, stats_of(arena)));
        EXPECT_TRUE(ArenaOk(arena));
    }
};

uint8_t src_buf[64] = {0xc3};

TEST_F(BadInput, Free) {
    int on_stack = 0;
    void *heap = std::malloc(64);
    uint8_t *chunk_end = reinterpret_cast<uint8_t *>(chunk_base(a) + kChunk);
    expect_rejected("free(NULL)", [] { return jit_free(nullptr); });
    expect_rejected("interior pointer", [&] { return jit_free(static_cast<uint8_t *>(a) + 16); });
    expect_rejected("interior of page run",
                    [&] { return jit_free(static_cast<uint8_t *>(run) + 4096); });
    expect_rejected("interior of large", [&] { return jit_free(static_cast<uint8_t *>(large) + 4096); });
    expect_rejected("heap pointer", [&] { return jit_free(heap); });
    expect_rejected("stack pointer", [&] { return jit_free(&on_stack); });
    expect_rejected("library code", [] { return jit_free(reinterpret_cast<void *>(&jit_free)); });
    expect_rejected("free page of a chunk", [&] { return jit_free(chunk_end - 4096); });
    expect_rejected("double free", [&] { return jit_free(freed); });
    expect_rejected("arena free, NULL arena", [&] { return jit_arena_free(nullptr, a); });
    std::free(heap);
}

TEST_F(BadInput, FreeWithTheWrongArena) {
    ArenaHolder other(JIT_WRITER_AUTO);
    ASSERT_NE(other.get(), nullptr);
    expect_rejected("wrong arena", [&] { return jit_arena_free(other, a); });
    expect_rejected("wrong arena, large", [&] { return jit_arena_free(other, large); });
    expect_rejected("wrong arena update",
                    [&] { return jit_arena_update(other, a, src_buf, 1); });
    EXPECT_EQ(jit_arena_free(arena, a), 0);  // the right arena works
    a = nullptr;
}

TEST_F(BadInput, Update) {
    uint8_t *pa = static_cast<uint8_t *>(a);
    size_t usable = jit_size(a);
    ASSERT_EQ(usable, 64u);
    std::vector<uint8_t> big(run_pages() * 4096 + 16);
    expect_rejected("NULL dst", [] { return jit_update(nullptr, src_buf, 1); });
    expect_rejected("NULL src", [&] { return jit_update(a, nullptr, 1); });
    expect_rejected("len 0", [&] { return jit_update(a, src_buf, 0); });
    expect_rejected("SIZE_MAX", [&] { return jit_update(a, src_buf, SIZE_MAX); });
    expect_rejected("dst+len overflows", [&] { return jit_update(pa + 8, src_buf, SIZE_MAX - 4); });
    expect_rejected("one past the end", [&] { return jit_update(pa + 1, src_buf, usable); });
    expect_rejected("straddles two allocations",
                    [&] { return jit_update(pa + usable - 8, src_buf, 16); });
    expect_rejected("freed object", [&] { return jit_update(freed, src_buf, 1); });
    expect_rejected("heap dst", [&] { return jit_update(src_buf, src_buf, 1); });
    expect_rejected("page run overrun",
                    [&] { return jit_update(static_cast<uint8_t *>(run) + 4096, big.data(), (run_pages() - 1) * 4096 + 1); });
    expect_rejected("free page of a chunk", [&] {
        return jit_update(reinterpret_cast<void *>(chunk_base(a) + kChunk - 64), src_buf, 1);
    });
    expect_rejected("large overrun", [&] {
        return jit_update(static_cast<uint8_t *>(large) + jit_size(large) - 8, src_buf, 16);
    });
    expect_rejected("arena update, NULL arena", [&] { return jit_arena_update(nullptr, a, src_buf, 1); });
    // The exact end still works.
    EXPECT_EQ(jit_update(pa + usable - 8, src_buf, 8), 0);
}

TEST_F(BadInput, Alloc) {
    auto null_to_int = [](void *p) { return p ? 0 : -1; };
    expect_rejected("len 0", [&] { return null_to_int(jit_arena_alloc(arena, src_buf, 0)); });
    expect_rejected("reserve len 0", [&] { return null_to_int(jit_arena_alloc(arena, nullptr, 0)); });
    expect_rejected("SIZE_MAX", [&] { return null_to_int(jit_arena_alloc(arena, nullptr, SIZE_MAX)); });
    expect_rejected("above JIT_MAX_ALLOC_SIZE",
                    [&] { return null_to_int(jit_arena_alloc(arena, nullptr, JIT_MAX_ALLOC_SIZE + 1)); });
    expect_rejected("NULL arena", [&] { return null_to_int(jit_arena_alloc(nullptr, src_buf, 1)); });
    expect_rejected("stats NULL out", [&] { return jit_arena_stats(arena, nullptr); });
    expect_rejected("stats NULL arena", [] {
        struct jit_stats s;
        return jit_arena_stats(nullptr, &s);
    });
    expect_rejected("check NULL arena", [] { return jit_arena_check(nullptr, nullptr, 0); });
    expect_rejected("print NULL stats", [] { return jit_stats_print(stderr, nullptr); });
}

TEST_F(BadInput, SizeAndOwnerOfBadPointers) {
    int on_stack = 0;
    EXPECT_EQ(jit_size(nullptr), 0u);
    EXPECT_EQ(jit_size(&on_stack), 0u);
    EXPECT_EQ(jit_size(static_cast<uint8_t *>(a) + 1), 0u);
    EXPECT_EQ(jit_size(freed), 0u);
    EXPECT_EQ(jit_arena_of(freed), nullptr);
    EXPECT_EQ(jit_arena_of(&on_stack), nullptr);
    EXPECT_EQ(jit_arena_of(a), arena.get());
}

TEST_F(BadInput, DestroyDefaultOrBogusArena) {
    jit_arena *def = jit_default_arena();
    ASSERT_NE(def, nullptr);
    void *p = jit_alloc(src_buf, 1);
    ASSERT_NE(p, nullptr);
    expect_rejected("destroy(default)", [&] { return jit_arena_destroy(def); });
    expect_rejected("destroy(NULL)", [] { return jit_arena_destroy(nullptr); });
    // An unknown pointer is looked up in the registry, never dereferenced.
    alignas(64) static char not_an_arena[4096];
    expect_rejected("destroy(bogus)",
                    [] { return jit_arena_destroy(reinterpret_cast<jit_arena *>(not_an_arena)); });
    EXPECT_EQ(jit_size(p), 16u);  // the default arena still works
    EXPECT_EQ(jit_free(p), 0);
}

// ---------------------------------------------------------------- options

void expect_bad_options(const char *what, const std::function<void(jit_arena_options &)> &edit) {
    SCOPED_TRACE(what);
    jit_arena_options o = options();
    edit(o);
    errno = 0;
    EXPECT_EQ(jit_arena_create(&o), nullptr);
    EXPECT_EQ(errno, EINVAL);
}

TEST(BadOptions, AreRejected) {
    expect_bad_options("writer enum", [](auto &o) { o.writer = static_cast<jit_writer>(99); });
    expect_bad_options("writer COUNT", [](auto &o) { o.writer = JIT_WRITER_COUNT; });
    expect_bad_options("negative writer", [](auto &o) { o.writer = static_cast<jit_writer>(-1); });
    expect_bad_options("placement enum", [](auto &o) { o.placement = static_cast<jit_placement>(7); });
    expect_bad_options("near_range > 2 GiB", [](auto &o) { o.near_range = (size_t{2} << 30) + 1; });
    expect_bad_options("near_range < 2 MiB", [](auto &o) { o.near_range = 1 * MiB; });
    expect_bad_options("NEAR_ADDRESS without address", [](auto &o) {
        o.placement = JIT_PLACE_NEAR_ADDRESS;
        o.near = nullptr;
    });
    expect_bad_options("unknown flag", [](auto &o) { o.flags |= JIT_ARENA_FLAGS_ALL + 1; });
    expect_bad_options("all flags", [](auto &o) { o.flags = ~0u; });
    expect_bad_options("struct_size 0", [](auto &o) { o.struct_size = 0; });
    expect_bad_options("struct_size too big", [](auto &o) { o.struct_size = sizeof o + 8; });
}

TEST(BadOptions, LimitsThatAreAccepted) {
    for (size_t range : {size_t{2} << 30, size_t{2} * MiB}) {
        jit_arena_options o = options();
        o.near_range = range;
        ArenaHolder a(o);
        EXPECT_NE(a.get(), nullptr) << range;
    }
    ArenaHolder with_null(JIT_WRITER_AUTO);
    EXPECT_NE(jit_arena_create(nullptr), nullptr) << "NULL options mean defaults";
}

// JITALLOC_WRITER overrides AUTO; a bad value makes AUTO arenas fail with EINVAL.
class EnvWriter : public ::testing::Test {
protected:
    void TearDown() override { unsetenv("JITALLOC_WRITER"); }
};

TEST_F(EnvWriter, BogusValueIsEinval) {
    ASSERT_EQ(setenv("JITALLOC_WRITER", "bogus", 1), 0);
    jit_arena_options o;
    jit_arena_options_init(&o);
    errno = 0;
    EXPECT_EQ(jit_arena_create(&o), nullptr);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(jit_arena_create(nullptr), nullptr);
    EXPECT_EQ(errno, EINVAL);
    // IGNORE_ENV and an explicit writer are not affected.
    o.flags = JIT_ARENA_IGNORE_ENV;
    ArenaHolder ignoring(o);
    EXPECT_NE(ignoring.get(), nullptr);
    ArenaHolder explicit_writer(JIT_WRITER_MEMFD);
    EXPECT_NE(explicit_writer.get(), nullptr);
}

TEST_F(EnvWriter, NamedWriterIsUsed) {
    ASSERT_EQ(setenv("JITALLOC_WRITER", "temp_alias", 1), 0);
    jit_arena_options o;
    jit_arena_options_init(&o);
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    EXPECT_EQ(stats_of(a).writer, JIT_WRITER_TEMP_ALIAS);
}

// The default arena honours the variable too; it is created once per process, so the
// check runs in a fresh process (threadsafe death-test style re-executes the binary).
TEST_F(EnvWriter, DefaultArenaRejectsBogusValue) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            setenv("JITALLOC_WRITER", "bogus", 1);
            errno = 0;
            void *p = jit_alloc(src_buf, 1);
            bool ok = p == nullptr && errno == EINVAL && jit_default_arena() == nullptr;
            std::fprintf(stderr, ok ? "rejected\n" : "accepted\n");
            std::_Exit(ok ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "rejected");
}

// Runs body with stderr captured into a file and returns what it wrote there. Call it in
// a fresh process (EXPECT_EXIT, threadsafe style): the messages are once per process.
template <class Body>
std::string stderr_of(Body body) {
    std::fflush(stderr);
    FILE *capture = std::tmpfile();
    int saved = dup(2);
    if (!capture || saved < 0)
        return "[no capture]";
    dup2(fileno(capture), 2);
    bool ok = body();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string text;
    std::rewind(capture);
    for (int ch; (ch = std::fgetc(capture)) != EOF;)
        text += static_cast<char>(ch);
    std::fclose(capture);
    return ok ? text : text + "[calls did not behave]";
}

// In a fresh process: captures what body prints on stderr, checks it with verdict, and
// exits 0 if both are happy (else prints what it saw).
#define EXPECT_STDERR_IN_FRESH_PROCESS(body, verdict)                                     \
    do {                                                                                  \
        GTEST_FLAG_SET(death_test_style, "threadsafe");                                   \
        EXPECT_EXIT(                                                                      \
            {                                                                             \
                std::string err_ = stderr_of(body);                                       \
                bool ok_ = verdict(err_);                                                 \
                std::fprintf(stderr, "%s<<%s>>\n", ok_ ? "stderr ok " : "stderr WRONG ", \
                             err_.c_str());                                               \
                std::_Exit(ok_ ? 0 : 1);                                                  \
            },                                                                            \
            ::testing::ExitedWithCode(0), "stderr ok");                                   \
    } while (0)

size_t count_of(const std::string &text, const std::string &what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        n++;
    return n;
}

// A bad JITALLOC_WRITER says so on stderr, once per process, naming the variable and the
// value (before: every arena failed with EINVAL and nothing said why).
TEST_F(EnvWriter, BogusValueIsNamedOnStderrOnce) {
    auto body = [] {
        setenv("JITALLOC_WRITER", "bogus", 1);
        bool ok = jit_arena_create(nullptr) == nullptr && errno == EINVAL;
        ok = ok && jit_arena_create(nullptr) == nullptr && errno == EINVAL;
        return ok && jit_alloc(src_buf, 1) == nullptr && errno == EINVAL;
    };
    auto verdict = [](const std::string &err) {
        return count_of(err, "JITALLOC_WRITER=bogus is not a writer") == 1 && count_of(err, "\n") == 1 &&
               err.rfind("jitalloc: ", 0) == 0 && err.find("EINVAL") != std::string::npos;
    };
    EXPECT_STDERR_IN_FRESH_PROCESS(body, verdict);
}

// The old spellings still select their writer, and say the current name once; the
// current names print nothing.
TEST_F(EnvWriter, OldSpellingsStillWorkAndNameTheCurrentOne) {
    struct Case {
        const char *old_name;
        jit_writer w;
    };
    static const Case cases[] = {{"procmem", JIT_WRITER_PROC_MEM},
                                 {"alias", JIT_WRITER_TEMP_ALIAS},
                                 {"persistent", JIT_WRITER_PERSISTENT_ALIAS}};
    static const Case *c;
    for (const Case &one : cases) {
        c = &one;
        auto body = [] {
            setenv("JITALLOC_WRITER", c->old_name, 1);
            for (int i = 0; i < 2; i++) {
                jit_arena *a = jit_arena_create(nullptr);
                struct jit_stats s;
                if (!a || jit_arena_stats(a, &s) != 0 || s.writer != c->w)
                    return false;
                jit_arena_destroy(a);
            }
            return true;
        };
        auto verdict = [](const std::string &err) {
            std::string want = std::string("JITALLOC_WRITER=") + c->old_name +
                               " is an old spelling: use JITALLOC_WRITER=" + jit_writer_name(c->w);
            return count_of(err, want) == 1 && count_of(err, "\n") == 1;
        };
        EXPECT_STDERR_IN_FRESH_PROCESS(body, verdict);
    }
    static jit_writer w;
    for (jit_writer each : kAllWriters) {
        w = each;
        auto body = [] {
            setenv("JITALLOC_WRITER", jit_writer_name(w), 1);
            jit_arena *a = jit_arena_create(nullptr);
            return a && jit_arena_destroy(a) == 0;
        };
        auto verdict = [](const std::string &err) { return err.empty(); };
        EXPECT_STDERR_IN_FRESH_PROCESS(body, verdict);
    }
}

}  // namespace
