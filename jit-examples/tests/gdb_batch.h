// Runs gdb in batch mode for the debugger tests; the caller skips when gdb or ptrace is
// not available here.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace gdbjit_test {

inline bool have_gdb() { return std::system("gdb --version >/dev/null 2>&1") == 0; }

// gdb -nx -batch with pending breakpoints allowed, then `commands` (each an -ex
// argument, already quoted), on `program_and_args`; returns stdout and stderr.
inline std::string run_gdb(const std::string &commands, const std::string &program_and_args) {
    std::string cmd = "gdb -nx -batch -ex 'set breakpoint pending on' " + commands + " --args " +
                      program_and_args + " 2>&1";
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
            out.append(buf, n);
        pclose(p);
    }
    return out;
}

inline bool ptrace_refused(const std::string &gdb_output) {
    return gdb_output.find("ptrace: Operation not permitted") != std::string::npos;
}

}  // namespace gdbjit_test
