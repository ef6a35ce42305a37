/* JIT functions named jit_answer_fn, registered with GDB's JIT interface, then called:
 * the gdb tests break on them by name. Between steps it calls jit_checkpoint(), a host
 * function the tests break on too, so that GDB stops (and takes its breakpoints out of
 * memory) between a write and the call. Modes:
 *   alloc    (default) allocated with its code, called: returns 42
 *   reserve  reserved by name without code, written with jit_update, called: 42
 *   batch    reserved by name without code, written by a batch commit, called: 42
 *   update   allocated (42), called, its start rewritten with jit_update (43), called
 *   free     allocated, called, freed; the same size reserved again must read as traps
 * Prints each result; exit 0 if all are right. */
#include <jitalloc/jitalloc.h>

#include <stdio.h>
#include <string.h>

/* push rbp; mov rbp, rsp; mov eax, imm32; pop rbp; ret */
static const unsigned char kCode[] = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0x5d, 0xc3};

__attribute__((noinline)) void jit_checkpoint(const char *what) {
    printf("checkpoint: %s\n", what);
    fflush(stdout);
}

static int call(void *p, const char *what, int want) {
    int r = ((int (*)(void))p)();
    printf("jit_answer_fn returned %d (%s)\n", r, what);
    return r == want;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "alloc";
    struct jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_GDB_JIT | JIT_ARENA_IGNORE_ENV;
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        perror("jit_arena_create");
        return 1;
    }
    int ok = 1;
    void *p;
    if (strcmp(mode, "reserve") == 0 || strcmp(mode, "batch") == 0) {
        p = jit_arena_alloc_named(a, NULL, sizeof kCode, "jit_answer_fn");
        if (!p) {
            perror("jit_arena_alloc_named");
            return 1;
        }
        jit_checkpoint("reserved");
        int rc;
        if (strcmp(mode, "batch") == 0) {
            jit_batch *b = jit_batch_create(a);
            rc = !b || jit_batch_update(b, p, kCode, sizeof kCode) != 0 || jit_batch_commit(b) != 0;
            jit_batch_destroy(b);
        } else {
            rc = jit_update(p, kCode, sizeof kCode);
        }
        if (rc != 0) {
            perror("writing the reservation");
            return 1;
        }
        jit_checkpoint("written");
        ok &= call(p, "reserved, then written", 42);
    } else {
        p = jit_arena_alloc_named(a, kCode, sizeof kCode, "jit_answer_fn");
        if (!p) {
            perror("jit_arena_alloc_named");
            return 1;
        }
        ok &= call(p, "allocated with its code", 42);
    }
    if (strcmp(mode, "update") == 0) {
        /* mov eax, 43; ret: a different first byte from the code it replaces */
        static const unsigned char next[] = {0xb8, 0x2b, 0x00, 0x00, 0x00, 0xc3};
        if (jit_update(p, next, sizeof next) != 0) {
            perror("jit_update");
            return 1;
        }
        jit_checkpoint("updated");
        ok &= call(p, "after the update", 43);
    }
    if (jit_free(p) != 0) {
        perror("jit_free");
        return 1;
    }
    if (strcmp(mode, "free") == 0) {
        jit_checkpoint("freed");
        /* Freed memory holds traps, whatever a debugger did around the free. */
        unsigned char *again = jit_arena_alloc(a, NULL, sizeof kCode);
        if (!again)
            return 1;
        size_t traps = 0;
        for (size_t i = 0; i < sizeof kCode; i++)
            traps += again[i] == 0xcc;
        printf("reserved again at the %s address: %zu of %zu bytes are traps\n",
               (void *)again == p ? "same" : "another", traps, sizeof kCode);
        ok &= traps == sizeof kCode;
    }
    jit_arena_destroy(a);
    return ok ? 0 : 1;
}
