// Load-time set-up (see startup.h).
#include "process/startup.h"

#include "process/descriptors.h"
#include "serialise/serialise.h"

namespace jitalloc {

void prepare_while_single_threaded() {
    if (!process_single_threaded())
        return;
    // Process-wide and idempotent: the arenas' own registration then returns at once.
    (void)register_sync_core();
    presize_descriptor_table();
}

}  // namespace jitalloc
