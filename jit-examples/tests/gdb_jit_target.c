/* A JIT function named jit_answer_fn, registered with GDB's JIT interface, then called:
 * the gdb test breaks on it by name. Prints the result; exit 0 if it is 42. */
#include <jitalloc/jitalloc.h>

#include <stdio.h>

int main(void) {
    struct jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_GDB_JIT | JIT_ARENA_IGNORE_ENV;
    jit_arena *a = jit_arena_create(&o);
    /* push rbp; mov rbp, rsp; mov eax, 42; pop rbp; ret */
    static const unsigned char code[] = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0x5d, 0xc3};
    void *p = a ? jit_arena_alloc_named(a, code, sizeof code, "jit_answer_fn") : NULL;
    if (!p) {
        perror("jitalloc");
        return 1;
    }
    int r = ((int (*)(void))p)();
    printf("jit_answer_fn returned %d\n", r);
    jit_free(p);
    jit_arena_destroy(a);
    return r == 42 ? 0 : 1;
}
