// GDB with several JIT runtimes in one process (gdb_coexist_target.cpp): a breakpoint on
// a named function of each runtime hits while threads register and unregister in all of
// them, whichever library the dynamic linker searches first.
#include "gdb_batch.h"

#include <gtest/gtest.h>

#include <string>

namespace {

void breaks_in_every_runtime(const char *target) {
    if (!gdbjit_test::have_gdb())
        GTEST_SKIP() << "gdb is not installed";
    std::string cmds = "-ex 'break ja_answer' -ex 'break ot_answer' ";
#ifdef JT_HAVE_LLVM
    cmds += "-ex 'break llvm_answer' ";
#endif
    cmds += "-ex run -ex continue -ex continue -ex continue";
    std::string out = gdbjit_test::run_gdb(cmds, std::string(target) + " 20");
    if (gdbjit_test::ptrace_refused(out))
        GTEST_SKIP() << "ptrace is not permitted here:\n" << out;
    EXPECT_NE(std::string::npos, out.find("Breakpoint 1, ")) << out;
    EXPECT_NE(std::string::npos, out.find("in ja_answer ()")) << out;
    EXPECT_NE(std::string::npos, out.find("Breakpoint 2, ")) << out;
    EXPECT_NE(std::string::npos, out.find("in ot_answer ()")) << out;
#ifdef JT_HAVE_LLVM
    EXPECT_NE(std::string::npos, out.find("Breakpoint 3, ")) << out;
    EXPECT_NE(std::string::npos, out.find("in llvm_answer ()")) << out;
#endif
    EXPECT_NE(std::string::npos, out.find("lists intact")) << out;
    EXPECT_NE(std::string::npos, out.find("exited normally")) << out;
}

}  // namespace

TEST(GdbCoexist, JitallocSearchedFirst) { breaks_in_every_runtime(COEXIST_JITALLOC_FIRST); }
TEST(GdbCoexist, OtherRuntimeSearchedFirst) { breaks_in_every_runtime(COEXIST_OTHER_FIRST); }
