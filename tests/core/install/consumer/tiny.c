/* Smallest consumer of the installed library: load, call, patch, free, check errors. */
#include <jitalloc/jitalloc.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    /* mov eax, 42; ret */
    unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3};
    void *p = jit_alloc(code, sizeof code);
    if (!p) {
        perror("jit_alloc");
        return 1;
    }
#if defined(__x86_64__)
    int (*fn)(void);
    memcpy(&fn, &p, sizeof fn);
    if (fn() != 42)
        return 2;
    unsigned char imm = 7;
    if (jit_update((unsigned char *)p + 1, &imm, 1) != 0 || fn() != 7)
        return 3;
#endif
    if (jit_free(p) != 0)
        return 4;
    errno = 0;
    if (jit_free(p) != -1 || errno != EINVAL)
        return 5;
    struct jit_stats s;
    if (jit_stats(&s) != 0 || s.allocations != 0)
        return 6;
    printf("tiny consumer ok (writer %s)\n", s.writer_name);
    return 0;
}
