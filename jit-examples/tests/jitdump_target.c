/* A program that spends its time in JIT code, for the perf jitdump test
 * (jitdump_test.sh): jd_hot_loop is allocated with its loop; jd_updated is allocated
 * with other bytes (xor eax, eax; ret; nops) and then rewritten in place with the loop,
 * so perf sees it only if the update's load record reached the dump. Each runs for
 * about `ms` milliseconds of CPU time (argv[1], default 150). x86-64 only. */
#include <jitalloc/jitalloc.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* mov ecx, 1000000; 1: dec ecx; jnz 1b; mov eax, 42; ret */
static const unsigned char kLoop[] = {0xb9, 0x40, 0x42, 0x0f, 0x00, 0xff, 0xc9, 0x75,
                                      0xfc, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
/* xor eax, eax; ret; then nops to the loop's length */
static const unsigned char kFirst[] = {0x31, 0xc0, 0xc3, 0x90, 0x90, 0x90, 0x90, 0x90,
                                       0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int spin(void *fn, double ms) {
    int (*f)(void) = (int (*)(void))fn;
    double until = cpu_ms() + ms;
    long calls = 0;
    while (cpu_ms() < until) {
        if (f() != 42)
            return 0;
        calls++;
    }
    return calls > 0;
}

int main(int argc, char **argv) {
    double ms = argc > 1 ? atof(argv[1]) : 150;
    struct jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_JITDUMP | JIT_ARENA_IGNORE_ENV;
    jit_arena *a = jit_arena_create(&o);
    void *hot = a ? jit_arena_alloc_named(a, kLoop, sizeof kLoop, "jd_hot_loop") : NULL;
    void *upd = a ? jit_arena_alloc_named(a, kFirst, sizeof kFirst, "jd_updated") : NULL;
    if (!hot || !upd || ((int (*)(void))upd)() != 0 || jit_update(upd, kLoop, sizeof kLoop) != 0) {
        perror("jitalloc");
        return 1;
    }
    if (!spin(hot, ms) || !spin(upd, ms)) {
        fprintf(stderr, "JIT code returned a wrong value\n");
        return 1;
    }
    printf("ran jd_hot_loop and jd_updated for %.0f ms of CPU each\n", ms);
    jit_arena_destroy(a);
    return 0;
}
