// The library's own file descriptors (memfds behind code, /proc/self/mem), kept safe
// from a program that closes descriptors behind the library's back — a sandbox's
// close_range(3, ~0U) — and then opens its own files, which get the same numbers.
//
// Invariants:
//  - Every descriptor the library keeps sits at a high number (kept_fd(): moved with
//    F_DUPFD_CLOEXEC to the upper half of RLIMIT_NOFILE, at most from 512 up), away from
//    the lowest free numbers that open() hands a program: after close_range the
//    program's new files do not take the library's numbers, and the library's next use
//    of a closed one fails with EBADF instead of reaching the program's file. If no high
//    number is free the descriptor stays where it is.
//  - Its identity (device and inode) is recorded. Before the library maps or closes a
//    kept descriptor, and after a write through one failed, it checks the identity
//    (fstat): a descriptor that is no longer the library's is never mapped, written
//    again or closed. /proc/self/mem is then reopened (poke.cpp); a memfd cannot be, and
//    its chunk's writes fail with EBADF, changing nothing.
//  - Hot writes (pwrite to /proc/self/mem or a memfd) add no system call: the check runs
//    only where a mapping or a close follows anyway, or a write has failed.
//  - Not covered: a program that puts its own file at exactly one of the library's
//    numbers (dup2 onto it) before a pwrite-based write: that write reaches its file.
#pragma once

#include <cstdint>

namespace jitalloc {

struct FileId {
    uint64_t dev = 0, ino = 0;
    bool operator==(const FileId &) const = default;
};

// Takes over fd (just opened by the library): moves it to a high number and records its
// identity in id. The descriptor to use (fd itself if it could not be moved); -1 with
// errno (and fd closed) if it cannot even be identified.
int keep_fd(int fd, FileId &id);

// Grows the descriptor table now to hold the numbers keep_fd moves to (a descriptor
// duplicated there and closed again), so that moving one later does not grow it: in a
// process with several threads growing the table waits for an RCU grace period
// (process/startup.h). Best effort, nothing changes if it fails.
void presize_descriptor_table();

// True if fd is still the file recorded in id.
bool still_ours(int fd, const FileId &id);

// Closes fd if it is still the file recorded in id; else leaves it to its new owner.
void close_if_ours(int fd, const FileId &id);

}  // namespace jitalloc
