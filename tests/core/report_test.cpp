// JITALLOC_STATS and JITALLOC_VERBOSE (src/report): a child process (report_child.cpp)
// runs with the variables set, and what it printed on stderr is checked.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {

struct Child {
    int status = -1;
    std::string err;  // its stderr
};

// Runs report_child MODE with `env` (VAR=VALUE ...) added, stdout discarded.
Child run_child(const std::string &env, const std::string &mode) {
    std::string cmd = "env -u JITALLOC_STATS -u JITALLOC_VERBOSE -u JITALLOC_WRITER " + env + " " +
                      REPORT_CHILD + " " + mode + " 2>&1 >/dev/null";
    Child c;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
            c.err.append(buf, n);
        c.status = pclose(p);
    }
    return c;
}

size_t count_of(const std::string &s, const std::string &what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        n++;
    return n;
}

bool exited_ok(const Child &c) { return WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0; }

}  // namespace

TEST(Report, NothingWithoutTheVariables) {
    Child c = run_child("", "live");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_EQ("", c.err);
}

TEST(Report, StatsOfLiveArenasAtExit) {
    Child c = run_child("JITALLOC_STATS=1", "live");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_EQ(1u, count_of(c.err, "\"kept\", live at exit:\n")) << c.err;
    EXPECT_EQ(0u, c.err.find("jitalloc: stats of arena ")) << c.err;
    // jit_stats_print's block follows: the three functions are live.
    EXPECT_NE(std::string::npos, c.err.find("jitalloc: writer ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("  live 3  ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("allocs 3  frees 0")) << c.err;
}

TEST(Report, StatsOfADestroyedArena) {
    Child c = run_child("JITALLOC_STATS=1", "destroyed");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_EQ(1u, count_of(c.err, "\"gone\", destroyed:\n")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("  live 0  ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("allocs 1  frees 1")) << c.err;
    EXPECT_EQ(0u, count_of(c.err, "live at exit")) << c.err;  // it is gone by then
}

TEST(Report, VerboseNamesTheWriterChosen) {
    Child c = run_child("JITALLOC_VERBOSE=1", "live");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_EQ(1u, count_of(c.err, "\n")) << c.err;
    EXPECT_EQ(0u, c.err.find("jitalloc: arena ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("\"kept\": probed ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("(works); chose ")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("(auto: the first that works of proc_mem, memfd, temp_alias, mprotect"))
        << c.err;
    EXPECT_EQ(0u, count_of(c.err, "stats of")) << c.err;
}

TEST(Report, VerboseSaysWhyAWriterFailed) {
    Child c = run_child("JITALLOC_VERBOSE=1", "no_proc_mem");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_NE(std::string::npos,
              c.err.find("\"fallback\": probed proc_mem (failed: EACCES, Permission denied), memfd (works); "
                         "chose memfd (auto: "))
        << c.err;
    EXPECT_NE(std::string::npos, c.err.find("; the later ones were not probed)\n")) << c.err;
}

TEST(Report, VerboseNamesAWriterAskedFor) {
    Child c = run_child("JITALLOC_VERBOSE=1 JITALLOC_WRITER=memfd", "live");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_NE(std::string::npos,
              c.err.find("\"kept\": probed memfd (works); chose memfd (asked for by JITALLOC_WRITER)\n"))
        << c.err;
}

TEST(Report, VerboseTellsARefusedCreation) {
    Child c = run_child("JITALLOC_VERBOSE=1", "refused");
    ASSERT_TRUE(exited_ok(c)) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("jitalloc: arena creation failed (EINVAL): no writer probed")) << c.err;
    EXPECT_NE(std::string::npos, c.err.find("\"after\": probed ")) << c.err;
}

// A value other than 0 or 1: one line naming the variable, nothing else printed.
TEST(Report, BadValuesAreNamedOnceAndIgnored) {
    for (const char *var : {"JITALLOC_STATS", "JITALLOC_VERBOSE"}) {
        Child c = run_child(std::string(var) + "=yes", "live");
        ASSERT_TRUE(exited_ok(c)) << c.err;
        EXPECT_EQ(1u, count_of(c.err, "\n")) << var << ": " << c.err;
        EXPECT_EQ(0u, c.err.find(std::string("jitalloc: ") + var + "=yes is not 0 or 1")) << c.err;
    }
    Child off = run_child("JITALLOC_STATS=0 JITALLOC_VERBOSE=0", "live");
    ASSERT_TRUE(exited_ok(off)) << off.err;
    EXPECT_EQ("", off.err);
}
