/* setjmp / longjmp across JIT frames (the jump buffer in JIT code, the jump from frames
 * several calls deep), sigsetjmp / siglongjmp out of a signal handler, volatile locals. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>

static jmp_buf env;
static sigjmp_buf sig_env;
static int depth_reached;

static void dive(int depth) {
    depth_reached = depth;
    if (depth == 5)
        longjmp(env, depth * 10);
    dive(depth + 1);
    printf("never printed\n");
}

static void on_signal(int sig) { siglongjmp(sig_env, sig); }

int main(void) {
    volatile int rounds = 0;
    int rc = setjmp(env);
    if (rc == 0) {
        printf("setjmp returned 0, diving\n");
        dive(0);
    }
    printf("longjmp returned %d after depth %d\n", rc, depth_reached);
    rc = setjmp(env);
    rounds++;
    if (rounds < 4)
        longjmp(env, rounds);
    printf("looped %d rounds, last value %d\n", rounds, rc);
    signal(SIGUSR1, on_signal);
    int sig = sigsetjmp(sig_env, 1);
    if (sig == 0) {
        raise(SIGUSR1);
        printf("never printed either\n");
    }
    printf("siglongjmp out of the handler for signal %s\n", sig == SIGUSR1 ? "SIGUSR1" : "?");
    return 0;
}
