// Diagnostics: one-line messages to stderr for things a person must be told because no
// errno can say them (a bad environment variable, a deprecated spelling).
//
// Invariants:
//  - A message is one line, "jitalloc: ...\n", written with one stdio call on the
//    unbuffered stderr, so lines from several threads do not interleave.
//  - diag_once prints at most once per process for its flag (the first caller wins;
//    the others return at once), however many arenas hit the same condition.
//  - Nothing here allocates or takes a jitalloc lock: callable from any operation.
#pragma once

#include <atomic>

namespace jitalloc {

// Prints "jitalloc: <fmt...>\n" to stderr.
void diag_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// The same, only the first time `once` is passed.
void diag_once(std::atomic<bool> &once, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace jitalloc
