// W^X monitor for the ORC tests: a thread that reads /proc/self/maps every few
// milliseconds, for the whole life of a test process, and records every violation of
//  - no mapping is ever writable and executable at once;
//  - with a strict writer (strict = true): no writable view of code exists, i.e. no
//    writable mapping of a jitalloc memfd, and no range once seen executable
//    (anonymous or memfd: JIT code, not a file's text) is later seen writable.
// Used in-process by the gtest suites and, through wx_preload.cpp, in jitalloc-lli runs.
#pragma once

#include "rel_common.h"

#include <time.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace orct {

class WxMonitor {
public:
    explicit WxMonitor(bool strict) : strict_(strict) {}
    ~WxMonitor() { stop(); }

    void start() {
        thread_ = std::thread([this] {
            const timespec pause = {0, 2 * 1000 * 1000};
            while (!stopping_.load(std::memory_order_relaxed)) {
                scan();
                nanosleep(&pause, nullptr);
            }
        });
    }
    void stop() {
        if (thread_.joinable()) {
            stopping_ = true;
            thread_.join();
        }
        scan();
    }

    void scan() {
        std::vector<rel::Vma> maps = rel::read_maps();
        std::lock_guard<std::mutex> g(lock_);
        scans_++;
        // Code ranges that are gone are forgotten (the address may be reused for data).
        for (auto it = code_.begin(); it != code_.end();) {
            bool mapped = false;
            for (const rel::Vma &v : maps)
                mapped |= v.start < it->second && it->first < v.end && v.x();
            it = mapped ? std::next(it) : code_.erase(it);
        }
        for (const rel::Vma &v : maps) {
            if (v.w() && v.x())
                record("writable and executable", v);
            if (!strict_)
                continue;
            if (v.memfd() && v.w())
                record("writable view of a jitalloc memfd", v);
            if (v.w())
                for (auto &[lo, hi] : code_)
                    if (v.start < hi && lo < v.end)
                        record("writable mapping over code seen executable", v);
        }
        for (const rel::Vma &v : maps)
            if (v.x() && (v.anon() || v.memfd()))
                code_[v.start] = v.end;
    }

    uint64_t scans() const {
        std::lock_guard<std::mutex> g(lock_);
        return scans_;
    }
    std::vector<std::string> violations() const {
        std::lock_guard<std::mutex> g(lock_);
        return violations_;
    }

private:
    void record(const char *what, const rel::Vma &v) {
        if (violations_.size() >= 16)
            return;
        char b[160];
        std::snprintf(b, sizeof b, "%s: %" PRIxPTR "-%" PRIxPTR " %s %s", what, v.start, v.end,
                      v.perms, v.path.c_str());
        violations_.push_back(b);
    }

    const bool strict_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    mutable std::mutex lock_;
    uint64_t scans_ = 0;
    std::map<uintptr_t, uintptr_t> code_;  // executable anonymous / memfd ranges seen
    std::vector<std::string> violations_;
};

}  // namespace orct
