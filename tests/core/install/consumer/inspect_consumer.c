/* A consumer of libjitalloc-inspect: loads a named function, inspects its own process
 * and checks that the dump names it and disassembles its instruction. */
#define _GNU_SOURCE
#include <jitalloc/inspect.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    struct jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_GDB_JIT; /* keeps names for the dump */
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        perror("jit_arena_create");
        return 1;
    }
    /* mov eax, 42; ret */
    static const unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3};
    if (!jit_arena_alloc_named(a, code, sizeof code, "consumer_answer")) {
        perror("jit_arena_alloc_named");
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out || jit_inspect_self(out, "consumer_answer") != 0) {
        perror("jit_inspect_self");
        return 1;
    }
    fclose(out);
    int ok = strstr(text, "disassembly of consumer_answer") && strstr(text, "mov");
    if (!ok)
        fprintf(stderr, "inspect output lacks the function:\n%s", text);
    free(text);
    jit_arena_destroy(a);
    if (ok)
        printf("inspect consumer ok\n");
    return ok ? 0 : 1;
}
