// fork(): the library's pthread_atfork handlers, registered when the library is loaded
// (by the constructor below, which also maps the process token, identity.h, and does the
// single-threaded set-up of process/startup.h).
//
// Order of handlers. POSIX runs prepare handlers in reverse order of registration and
// parent / child handlers in order of registration. Registering at load (an ELF
// constructor) puts ours before every handler a program registers from main() or later:
// such a handler's prepare runs before ours (the library is fully usable), its parent /
// child handler after ours (the child is already fixed up). A handler registered earlier
// still (another library's constructor that ran first) runs inside our window; its calls
// fail at once with EDEADLK instead of waiting for locks this thread holds
// (fork_in_progress_here()).
//
// What the handlers do, in the order of process/locks.h:
//   prepare: default_arena and registry locks; every arena's fork_prepare (closes its
//            gate, waits for operations in flight, prepares private copies of
//            memfd-backed code); every leaf lock;
//   parent:  arenas' fork_parent (drop the copies, open the gates); release all;
//   child:   the process is taken over (identity.h: the /proc/self/mem descriptor of
//            the parent is dropped); the shard leases of the parent's other threads
//            end (process/thread_shard.h); arenas' fork_child (switch to the private copies,
//            or private snapshots where no copy could be made; open the gates);
//            release all.
#include "process/locks.h"

#include "arena/arena.h"
#include "poke/writer.h"
#include "process/identity.h"
#include "process/startup.h"
#include "process/thread_shard.h"

#include <pthread.h>

#include <atomic>

namespace jitalloc {

namespace {

thread_local bool t_forking = false;
std::atomic<bool> g_handlers_registered{false};

constexpr unsigned kLocks = static_cast<unsigned>(ProcessLock::count);
constexpr unsigned kAfterGates = static_cast<unsigned>(kFirstAfterGates);

void lock_range(unsigned from, unsigned to) {
    for (unsigned i = from; i < to; i++)
        g_process_locks[i].lock();
}

void unlock_range(unsigned from, unsigned to) {
    for (unsigned i = to; i-- > from;)
        g_process_locks[i].unlock();
}

void prepare() {
    t_forking = true;
    lock_range(0, kAfterGates);  // default arena, registry
    arenas_fork_prepare();
    lock_range(kAfterGates, kLocks);
}

void parent() {
    unlock_range(kAfterGates, kLocks);
    arenas_fork_parent();
    unlock_range(0, kAfterGates);
    t_forking = false;
}

void child() {
    // The only thread of the child, holding every lock: nothing can race the fix-ups.
    (void)process_generation();  // takes the new process over: the parent's /proc/self/mem goes
    shards_fork_child();         // the parent's other threads hold no shard here
    arenas_fork_child();
    unlock_range(kAfterGates, kLocks);
    unlock_range(0, kAfterGates);
    t_forking = false;
}

__attribute__((constructor)) void register_at_load() {
    ensure_fork_handlers();
    (void)process_generation();  // maps the process token (identity.h) before any arena
    prepare_while_single_threaded();  // what a first jit_alloc with threads waits for
}

}  // namespace

bool fork_in_progress_here() { return t_forking; }

void ensure_fork_handlers() {
    if (g_handlers_registered.load(std::memory_order_acquire) ||
        g_handlers_registered.exchange(true, std::memory_order_acq_rel))
        return;
    pthread_atfork(prepare, parent, child);
}

}  // namespace jitalloc
