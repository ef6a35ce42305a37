// LD_PRELOAD shim that runs the W^X monitor (wx_monitor.h) in a jitalloc-lli process from
// its first constructor to its last destructor, then writes what it saw to the file
// named by JITALLOC_WX_REPORT: "scans N", "violations M", one line per violation.
// JITALLOC_WX_STRICT=1 checks the strict-writer rules too. Without JITALLOC_WX_REPORT it
// does nothing.
#include "wx_monitor.h"

#include <cstdlib>
#include <cstring>

namespace {

orct::WxMonitor *g_monitor = nullptr;

__attribute__((constructor)) void start_monitor() {
    if (!std::getenv("JITALLOC_WX_REPORT"))
        return;
    const char *strict = std::getenv("JITALLOC_WX_STRICT");
    g_monitor = new orct::WxMonitor(strict && std::strcmp(strict, "1") == 0);
    g_monitor->start();
}

__attribute__((destructor)) void stop_monitor() {
    if (!g_monitor)
        return;
    g_monitor->stop();
    if (FILE *f = std::fopen(std::getenv("JITALLOC_WX_REPORT"), "w")) {
        auto v = g_monitor->violations();
        std::fprintf(f, "scans %llu\nviolations %zu\n",
                     static_cast<unsigned long long>(g_monitor->scans()), v.size());
        for (const std::string &line : v)
            std::fprintf(f, "%s\n", line.c_str());
        std::fclose(f);
    }
}

}  // namespace
