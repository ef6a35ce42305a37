/*
 * jitalloc demo: loads 20 000 small x86-64 functions, calls them, patches them with
 * jit_update, runs them from two threads and in a forked child, shows that bad input
 * is rejected with EINVAL without changing anything, frees everything and gives the
 * memory back. Uses only <jitalloc/jitalloc.h>. Exits non-zero on any wrong result.
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

/* nop padding, then: lea eax, [rdi + imm32]; ret  -> returns x + imm */
static size_t make_func(uint8_t *buf, int pad, int32_t imm) {
    size_t n = 0;
    memset(buf, 0x90, (size_t)pad);
    n += (size_t)pad;
    buf[n++] = 0x8d;
    buf[n++] = 0x87;
    memcpy(buf + n, &imm, 4);
    n += 4;
    buf[n++] = 0xc3;
    return n;
}

static int call(int i, int x) { return ((fn_t)funcs[i])(x); }

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
        size_t len = make_func(buf, pad, i);
        imm_off[i] = (size_t)pad + 2;
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

    /* 3. patch: make every function return x + 2i */
    for (int i = 0; i < NFUNCS; i++) {
        int32_t imm = 2 * i;
        CHECK(jit_update((uint8_t *)funcs[i] + imm_off[i], &imm, 4) == 0, "jit_update %d", i);
    }
    CHECK(all_return(2), "patched functions return x + 2i");

    /* 4. two threads at once */
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, caller_thread, (void *)(intptr_t)2);
    for (int k = 0; k < 2; k++) {
        void *bad;
        pthread_join(t[k], &bad);
        CHECK(bad == NULL, "thread %d saw %ld wrong results", k, (long)(intptr_t)bad);
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

    /* 6. bad input: EINVAL, nothing changed */
    uint8_t *f0 = funcs[0];
    uint8_t before[64];
    memcpy(before, f0, sizeof before);
    size_t sz = jit_size(f0);
    int32_t junk = 0x12345678;
    errno = 0;
    CHECK(jit_free(NULL) == -1 && errno == EINVAL, "free(NULL)");
    errno = 0;
    CHECK(jit_free(f0 + 1) == -1 && errno == EINVAL, "free(interior)");
    errno = 0;
    CHECK(jit_free(buf) == -1 && errno == EINVAL, "free(foreign)");
    errno = 0;
    CHECK(jit_update(f0, &junk, 0) == -1 && errno == EINVAL, "update len 0");
    errno = 0;
    CHECK(jit_update(f0 + sz - 2, &junk, 4) == -1 && errno == EINVAL, "update past the end");
    errno = 0;
    CHECK(jit_update(f0, &junk, SIZE_MAX) == -1 && errno == EINVAL, "update SIZE_MAX");
    errno = 0;
    CHECK(jit_update(f0, NULL, 4) == -1 && errno == EINVAL, "update from NULL");
    errno = 0;
    CHECK(jit_alloc(buf, 0) == NULL && errno == EINVAL, "alloc len 0");
    errno = 0;
    CHECK(jit_alloc(buf, SIZE_MAX) == NULL && errno == EINVAL, "alloc SIZE_MAX");
    CHECK(memcmp(before, f0, sizeof before) == 0, "bad input changed nothing");
    void *extra = jit_alloc(buf, make_func(buf, 0, 7));
    CHECK(extra && jit_free(extra) == 0, "alloc/free");
    errno = 0;
    CHECK(jit_free(extra) == -1 && errno == EINVAL, "double free");
    CHECK(all_return(2), "all functions still intact");

    /* 7. free everything and give memory back */
    for (int i = 0; i < NFUNCS; i++)
        CHECK(jit_free(funcs[i]) == 0, "jit_free %d", i);
    size_t released = jit_shrink();
    CHECK(jit_stats(&st) == 0 && st.allocations == 0, "nothing live");
    printf("freed everything; jit_shrink released %zu KiB; %llu chunk(s) still mapped\n",
           released / 1024, (unsigned long long)st.chunks_mapped);
    jit_stats_print(stdout, &st);

    if (failures) {
        fprintf(stderr, "demo: %d check(s) failed\n", failures);
        return 1;
    }
    printf("demo: all checks passed\n");
    return 0;
}
