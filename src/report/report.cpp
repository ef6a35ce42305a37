// Environment-requested reports on stderr: JITALLOC_STATS and JITALLOC_VERBOSE (see
// report.h for what each prints and the invariants).
#include "report/report.h"

#include "arena/arena.h"
#include "diag/diag.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

namespace jitalloc {
namespace {

// "1" on; unset, empty or "0" off; anything else off, said once on stderr.
bool read_switch(const char *var, std::atomic<bool> &told) {
    const char *v = std::getenv(var);
    if (!v || !*v || std::strcmp(v, "0") == 0)
        return false;
    if (std::strcmp(v, "1") == 0)
        return true;
    diag_once(told, "%s=%.64s is not 0 or 1: ignored, nothing is reported (%s=1 turns it on)", var,
              v, var);
    return false;
}

const char *errno_name(int rc) {
    const char *n = strerrorname_np(rc);
    return n ? n : "?";
}

std::string arena_label(const jit_arena *a) {
    std::string s = "arena " + std::to_string(a->id);
    if (!a->name.empty())
        s += " \"" + a->name + "\"";
    return s;
}

void print_stats(jit_arena *a, const char *when) {
    struct jit_stats st;
    if (a->stats(&st) != 0)
        return;
    // One block, one write: built in memory first.
    char *text = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    std::fprintf(f, "jitalloc: stats of %s, %s:\n", arena_label(a).c_str(), when);
    jit_stats_print(f, &st);
    if (std::fclose(f) == 0)
        std::fwrite(text, 1, len, stderr);
    std::free(text);
}

void report_at_exit() {
    for_each_arena([](jit_arena *a) { print_stats(a, "live at exit"); });
}

struct Settings {
    bool stats = false;
    bool verbose = false;
};

// Read at the first arena creation; the exit report is armed then. Kept in one atomic
// word, not a function-local static: a static's guard is a lock, and a child forked
// while another thread was initialising it would wait for it forever (locks.h). Racing
// first callers read the same environment; the one that publishes arms the report.
constexpr uint8_t kSettingsRead = 1, kSettingsStats = 2, kSettingsVerbose = 4;
constinit std::atomic<uint8_t> g_settings{0};
constinit std::atomic<bool> g_told_stats{false}, g_told_verbose{false};

Settings settings() {
    uint8_t v = g_settings.load(std::memory_order_acquire);
    if (!(v & kSettingsRead)) [[unlikely]] {
        uint8_t read = kSettingsRead;
        if (read_switch("JITALLOC_STATS", g_told_stats))
            read |= kSettingsStats;
        if (read_switch("JITALLOC_VERBOSE", g_told_verbose))
            read |= kSettingsVerbose;
        uint8_t none = 0;
        if (g_settings.compare_exchange_strong(none, read, std::memory_order_acq_rel)) {
            if ((read & kSettingsStats) && std::atexit(report_at_exit) != 0)
                diag_line("JITALLOC_STATS=1: cannot register the exit report (atexit failed)");
            v = read;
        } else {
            v = none;  // another thread published first
        }
    }
    return Settings{(v & kSettingsStats) != 0, (v & kSettingsVerbose) != 0};
}

std::string why_this_order(WriterProbes::Asked asked) {
    switch (asked) {
    case WriterProbes::Asked::options:
        return "asked for in jit_arena_options.writer";
    case WriterProbes::Asked::environment:
        return "asked for by JITALLOC_WRITER";
    case WriterProbes::Asked::auto_order:
        break;
    }
    std::string s = "auto: the first that works of";
    for (jit_writer w : kAutoOrder)
        s += std::string(w == kAutoOrder[0] ? " " : ", ") + jit_writer_name(w);
    return s;
}

}  // namespace

void report_arena_created(const jit_arena *a, const WriterProbes &p, int rc) {
    if (!settings().verbose)
        return;
    std::string line = a ? arena_label(a) : std::string("arena creation failed (") + errno_name(rc) + ")";
    if (p.count == 0) {
        line += ": no writer probed (the options or the environment were refused)";
    } else {
        line += ": probed";
        for (unsigned i = 0; i < p.count; i++) {
            const WriterProbes::Probe &pr = p.probes[i];
            line += i ? ", " : " ";
            line += jit_writer_name(pr.writer);
            if (pr.rc == 0) {
                line += " (works)";
            } else {
                line += " (failed: ";
                line += errno_name(pr.rc);
                line += ", ";
                line += std::strerror(pr.rc);
                line += ")";
            }
        }
        line += a ? std::string("; chose ") + jit_writer_name(a->writer->kind()) : "; no writer works";
        line += " (";
        line += why_this_order(p.asked);
        if (p.asked == WriterProbes::Asked::auto_order && p.count < std::size(kAutoOrder))
            line += "; the later ones were not probed";
        line += ")";
    }
    diag_line("%s", line.c_str());
}

void report_arena_destroyed(jit_arena *a) {
    if (settings().stats)
        print_stats(a, "destroyed");
}

}  // namespace jitalloc
