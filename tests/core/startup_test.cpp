// Load-time set-up (src/process/startup.h): while the process has one thread, the library's
// constructor registers membarrier SYNC_CORE and grows the descriptor table to hold the
// library's high descriptor numbers, so that a first jit_alloc made once threads exist
// waits for neither (each cost 9-15 ms of wall time there: other CPUs, an RCU grace
// period). This binary makes no arena before these checks: whatever they see, the
// constructor did.
#include "helpers.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace {

long fd_table_size() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("FDSize:", 0) == 0)
            return std::stol(line.substr(7));
    return -1;
}

TEST(Startup, SyncCoreRegisteredAndDescriptorTableGrownAtLoad) {
    // Expedited SYNC_CORE needs the registration: EPERM without it.
    long query = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (query < 0 || !(query & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE))
        GTEST_SKIP() << "membarrier SYNC_CORE not available";
    EXPECT_EQ(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0), 0)
        << std::strerror(errno);
    EXPECT_GT(fd_table_size(), 512);
    // And the first allocation works as ever.
    auto code = jt_code::ret_imm(5, 64);
    void *p = jit_alloc(code.data(), code.size());
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(jt::call_int(p), 5);
    EXPECT_EQ(jit_free(p), 0);
}

}  // namespace
