// perf map files (see perf_map.h).
#include "observe/perf_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace jitalloc {
namespace {

// Guarded by the observer lock, like the table.
int g_fd = -1;       // the map being appended to
pid_t g_pid = 0;     // the process g_fd was opened by
bool g_keep = false;  // JITALLOC_PERF_MAP=keep

std::string map_path(pid_t pid) { return "/tmp/perf-" + std::to_string(pid) + ".map"; }

void append_line(std::string &out, uintptr_t addr, const Record &r) {
    char head[64];
    std::snprintf(head, sizeof head, "%lx %zx ", static_cast<unsigned long>(addr), r.len);
    out += head;
    out += r.name;
    out += '\n';
}

bool write_all(int fd, const std::string &s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t w = ::write(fd, s.data() + done, s.size() - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        done += static_cast<size_t>(w);
    }
    return true;
}

// Writes every listed record to a fresh file and renames it over the map; the new file
// becomes the one appended to.
void rewrite(const RecordTable &table) {
    pid_t pid = getpid();
    std::string path = map_path(pid);
    // /tmp is shared: the temporary file gets a fresh name and is created exclusively
    // (O_EXCL: a name planted there, symlink or not, is never opened), and rename()
    // replaces whatever sits at the map's own path without following it.
    std::string tmp = path + ".XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)::fchmod(fd, 0644);  // mkostemp makes it 0600; perf may run as another user
    std::string text;
    for (const auto &[addr, r] : table)
        if (r.in_perf_map)
            append_line(text, addr, r);
    if (!write_all(fd, text) || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return;
    }
    if (g_fd >= 0)
        ::close(g_fd);
    g_fd = fd;
    g_pid = pid;
}

}  // namespace

void perf_map_add(const RecordTable &table, uintptr_t addr, const Record &r) {
    if (g_fd < 0 || g_pid != getpid()) {
        const char *v = std::getenv("JITALLOC_PERF_MAP");
        g_keep = v && std::strcmp(v, "keep") == 0;
        rewrite(table);  // includes r: it is already in the table
        return;
    }
    std::string line;
    append_line(line, addr, r);
    (void)write_all(g_fd, line);
}

void perf_map_dropped(const RecordTable &table) {
    if (!g_keep)
        rewrite(table);
}

void perf_map_changed(const RecordTable &table, uintptr_t addr, const Record &r) {
    if (g_keep)
        perf_map_add(table, addr, r);
    else
        rewrite(table);
}

}  // namespace jitalloc
