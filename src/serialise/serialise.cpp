// Cross-CPU serialisation (see serialise.h for the rules and why they hold).
#include "serialise/serialise.h"

#include "os/os.h"

#include <linux/membarrier.h>

#include <cerrno>

#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define JITALLOC_HAVE_SINGLE_THREADED 1
#endif

namespace jitalloc {

bool process_single_threaded() {
#ifdef JITALLOC_HAVE_SINGLE_THREADED
    // Read after the write it guards: only this thread could have created another one
    // since the write began, and it was busy writing. pthread_create clears the flag
    // before the new thread exists.
    return __libc_single_threaded != 0;
#else
    return false;
#endif
}

int register_sync_core() {
    return os::membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0) == 0 ? 0 : errno;
}

int serialise_other_cpus(bool registered) {
    if (!registered || process_single_threaded())
        return 0;
    return os::membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0) == 0 ? 0 : errno;
}

}  // namespace jitalloc
