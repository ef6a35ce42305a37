// Every process-wide lock of the library, in the one order they are taken, and how
// fork() keeps them consistent (process/fork.cpp).
//
// Invariants:
//  - A thread holding one of these locks takes only locks later in ProcessLock's order.
//    Between `registry` and `observers` lie the arenas' fork gates (arena.h): an arena
//    operation runs inside its arena's gate and takes the locks after it from there.
//    Between `observers` and `chunk_pool` lie each arena's size-class and buddy locks
//    (taken only inside that arena's gate): a free's commit runs under the observer lock.
//  - chunk_pool .. mprotect are leaves: nothing is locked while one is held.
//  - The fork prepare handler takes default_arena and registry, closes every arena's gate
//    (waiting for operations in flight), then takes observers .. mprotect; the parent and child
//    handlers release them all. So no thread holds any library lock when the kernel
//    copies the process, and a child of a multi-threaded parent never finds a lock
//    taken by a thread it does not have.
//  - No function-local static with a dynamic initialiser anywhere in the library: its
//    guard is a lock outside this list, and a child forked while another thread ran the
//    initialiser would wait for it forever. Lazily computed values live in atomics that
//    racing first callers fill alike (os page_size, the report settings); the test
//    core_no_static_guards reads the archive for __cxa_guard_acquire.
//  - The thread running the fork handlers (from prepare until its parent / child
//    handler returns) never waits for one of these locks or a closed gate: its library
//    calls — from other atfork handlers that run inside that window — fail at once
//    with EDEADLK (fork_in_progress_here()).
#pragma once

#include <mutex>

namespace jitalloc {

enum class ProcessLock : unsigned {
    default_arena,  // api: creating the default arena (held across arena_create)
    registry,       // arena: the list of live arenas
    // ---- every arena's fork gate comes here ----
    observers,      // observe: allocation records, perf map, GDB JIT list
    // ---- each arena's size-class and buddy locks come here ----
    chunk_pool,     // chunk: recycled chunk metadata
    chunk_map,      // chunk: leaf creation of the address -> chunk table
    proc_mem,       // poke: opening / replacing the /proc/self/mem descriptor
    mprotect,       // poke: the mprotect writer's page flips
    count
};
inline constexpr ProcessLock kFirstAfterGates = ProcessLock::observers;

// Constant-initialised (std::mutex's constructor is constexpr): usable from any static
// initialiser, before or after the library's own.
inline constinit std::mutex g_process_locks[static_cast<unsigned>(ProcessLock::count)];

constexpr std::mutex &process_lock(ProcessLock l) {
    return g_process_locks[static_cast<unsigned>(l)];
}

// True in the thread that is running the library's fork handlers, between its prepare
// and its parent / child handler: its calls must not wait for locks it holds itself.
bool fork_in_progress_here();

// Makes sure the library's pthread_atfork handlers are registered (they are from an ELF
// constructor at load; arena creation calls this too, for arenas created by an earlier
// constructor). Lock-free and idempotent.
void ensure_fork_handlers();

}  // namespace jitalloc
