/*
 * jitalloc demo: loads 20 000 small x86-64 or AArch64 functions, calls them, patches them with
 * jit_update, runs them from two threads and in a forked child, shows that bad input
 * is rejected with EINVAL without changing anything, prints the allocator's statistics
 * while the functions are live, frees everything and gives the memory back. Each step
 * says what it did; each bad input is printed with the errno it got. Uses only
 * <jitalloc/jitalloc.h>. Exits non-zero on any wrong result.
 */
#include <jitalloc/jitalloc.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFUNCS 20000

typedef int (*fn_t)(int);

static void *funcs[NFUNCS];
static size_t imm_off[NFUNCS]; /* where each function's imm32 lives */
static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)

/* Each function returns x + imm; *imm_at is where its imm32 lives (for jit_update). */
#if defined(__x86_64__)
/* nop padding, then: lea eax, [rdi + imm32]; ret */
static size_t make_func(uint8_t *buf, int pad, int32_t imm, size_t *imm_at) {
    size_t n = 0;
    memset(buf, 0x90, (size_t)pad);
    n += (size_t)pad;
    buf[n++] = 0x8d;
    buf[n++] = 0x87;
    *imm_at = n;
    memcpy(buf + n, &imm, 4);
    n += 4;
    buf[n++] = 0xc3;
    return n;
}
#elif defined(__aarch64__)
static size_t put32(uint8_t *buf, size_t n, uint32_t w) {
    memcpy(buf + n, &w, 4); /* little-endian */
    return n + 4;
}
/* nop padding (whole instructions), then: ldr w1, imm; add w0, w0, w1; ret; imm: .word */
static size_t make_func(uint8_t *buf, int pad, int32_t imm, size_t *imm_at) {
    size_t n = 0;
    for (int i = 0; i + 4 <= pad; i += 4)
        n = put32(buf, n, 0xd503201f); /* nop */
    n = put32(buf, n, 0x18000061);     /* ldr w1, .+12 */
    n = put32(buf, n, 0x0b010000);     /* add w0, w0, w1 */
    n = put32(buf, n, 0xd65f03c0);     /* ret */
    *imm_at = n;
    return put32(buf, n, (uint32_t)imm); /* an aligned word: one atomic store to patch */
}
#else
#error "the demo generates x86-64 or AArch64 code"
#endif

static int call(int i, int x) { return ((fn_t)funcs[i])(x); }

static const char *errno_name(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EIO: return "EIO";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

/* A call that must fail with errno want: prints what it got. */
static void expect_error(const char *what, int failed, int want) {
    int e = errno;
    printf("  %-42s %s errno %s (%s)\n", what, failed ? "fails," : "SUCCEEDED,", errno_name(e),
           strerror(e));
    CHECK(failed && e == want, "%s: want failure with errno %s", what, errno_name(want));
}

static void *caller_thread(void *arg) {
    long bad = 0;
    int scale = (int)(intptr_t)arg;
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < NFUNCS; i++)
            if (call(i, 3) != 3 + scale * i)
                bad++;
    return (void *)bad;
}

static int all_return(int scale) {
    for (int i = 0; i < NFUNCS; i++)
        if (call(i, 1) != 1 + scale * i)
            return 0;
    return 1;
}

int main(void) {
    uint8_t buf[256];
    struct jit_stats st;

    /* 1. load */
    for (int i = 0; i < NFUNCS; i++) {
        int pad = (i * 7) % 200;
        size_t len = make_func(buf, pad, i, &imm_off[i]);
        funcs[i] = jit_alloc(buf, len);
        if (!funcs[i]) {
            perror("jit_alloc");
            return 1;
        }
    }
    CHECK(jit_stats(&st) == 0, "jit_stats");
    printf("loaded %d functions: writer %s, %llu chunk(s) of 2 MiB, %llu bytes requested\n",
           NFUNCS, st.writer_name, (unsigned long long)st.chunks_mapped,
           (unsigned long long)st.bytes_requested);

    /* 2. call */
    CHECK(all_return(1), "fresh functions return x + i");
    printf("called each once: function i returns x + i\n");

    /* 3. patch: make every function return x + 2i */
    for (int i = 0; i < NFUNCS; i++) {
        int32_t imm = 2 * i;
        CHECK(jit_update((uint8_t *)funcs[i] + imm_off[i], &imm, 4) == 0, "jit_update %d", i);
    }
    CHECK(all_return(2), "patched functions return x + 2i");
    printf("patched the imm32 of every function with jit_update: function i returns x + 2i\n");

    /* 4. two threads at once */
    printf("two threads calling every function 5 times at once:\n");
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, caller_thread, (void *)(intptr_t)2);
    for (int k = 0; k < 2; k++) {
        void *bad;
        pthread_join(t[k], &bad);
        CHECK(bad == NULL, "thread %d saw %ld wrong results", k, (long)(intptr_t)bad);
        printf("thread %d: %d calls, %ld wrong\n", k, 5 * NFUNCS, (long)(intptr_t)bad);
    }

    /* 5. fork: the child runs and patches its own copy; the parent's is untouched */
    pid_t pid = fork();
    if (pid == 0) {
        int ok = all_return(2);
        for (int i = 0; i < NFUNCS; i++) {
            int32_t imm = 3 * i;
            if (jit_update((uint8_t *)funcs[i] + imm_off[i], &imm, 4) != 0)
                ok = 0;
        }
        ok = ok && all_return(3);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ran and patched its copy");
    CHECK(all_return(2), "parent code unchanged by the child");
    printf("fork: child %ld called its copy and patched it to x + 3i (exit status %d); "
           "the parent's functions still return x + 2i\n",
           (long)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* 6. bad input: EINVAL, nothing changed */
    uint8_t *f0 = funcs[0];
    uint8_t before[64];
    memcpy(before, f0, sizeof before);
    size_t sz = jit_size(f0);
    int32_t junk = 0x12345678;
    printf("bad input, each rejected:\n");
    errno = 0;
    expect_error("jit_free(NULL)", jit_free(NULL) == -1, EINVAL);
    errno = 0;
    expect_error("jit_free(interior pointer)", jit_free(f0 + 1) == -1, EINVAL);
    errno = 0;
    expect_error("jit_free(a stack buffer)", jit_free(buf) == -1, EINVAL);
    errno = 0;
    expect_error("jit_update(f, src, 0)", jit_update(f0, &junk, 0) == -1, EINVAL);
    errno = 0;
    expect_error("jit_update past the end of f", jit_update(f0 + sz - 2, &junk, 4) == -1, EINVAL);
    errno = 0;
    expect_error("jit_update(f, src, SIZE_MAX)", jit_update(f0, &junk, SIZE_MAX) == -1, EINVAL);
    errno = 0;
    expect_error("jit_update(f, NULL, 4)", jit_update(f0, NULL, 4) == -1, EINVAL);
    errno = 0;
    expect_error("jit_alloc(code, 0)", jit_alloc(buf, 0) == NULL, EINVAL);
    errno = 0;
    expect_error("jit_alloc(code, SIZE_MAX)", jit_alloc(buf, SIZE_MAX) == NULL, EINVAL);
    CHECK(memcmp(before, f0, sizeof before) == 0, "bad input changed nothing");
    size_t unused;
    void *extra = jit_alloc(buf, make_func(buf, 0, 7, &unused));
    CHECK(extra && jit_free(extra) == 0, "alloc/free");
    errno = 0;
    expect_error("jit_free twice (double free)", jit_free(extra) == -1, EINVAL);
    CHECK(all_return(2), "all functions still intact");
    printf("after the bad input: function 0's bytes unchanged, all functions still return x + 2i\n");

    /* 7. statistics while everything is live: chunks, buddy orders, the size classes */
    CHECK(jit_stats(&st) == 0 && st.allocations == NFUNCS, "%d live", NFUNCS);
    printf("\nstatistics with %llu live functions:\n", (unsigned long long)st.allocations);
    jit_stats_print(stdout, &st);
    printf("\n");

    /* 8. free everything and give memory back */
    for (int i = 0; i < NFUNCS; i++)
        CHECK(jit_free(funcs[i]) == 0, "jit_free %d", i);
    size_t released = jit_shrink();
    CHECK(jit_stats(&st) == 0 && st.allocations == 0, "nothing live");
    printf("freed all %d functions; jit_shrink released %zu KiB; now %llu live, %llu chunk(s) "
           "mapped, %llu chunk(s) given back to the OS in all\n",
           NFUNCS, released / 1024, (unsigned long long)st.allocations,
           (unsigned long long)st.chunks_mapped, (unsigned long long)st.chunks_released);

    if (failures) {
        fprintf(stderr, "demo: %d check(s) failed\n", failures);
        return 1;
    }
    printf("demo: all checks passed\n");
    return 0;
}
