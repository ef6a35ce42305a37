/* Recursion: Ackermann, naive Fibonacci, mutual recursion, a deep recursion using
 * stack frames, quicksort; exits with a non-zero status computed from the results. */
#include <stdio.h>

static int ackermann(int m, int n) {
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static int is_odd(unsigned n);
static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }

static long deep(int n) {
    volatile char frame[64];
    frame[0] = (char)n;
    return n == 0 ? 0 : deep(n - 1) + frame[0] % 3;
}

static void quicksort(int *a, int lo, int hi) {
    if (lo >= hi)
        return;
    int p = a[(lo + hi) / 2], i = lo, j = hi;
    while (i <= j) {
        while (a[i] < p)
            i++;
        while (a[j] > p)
            j--;
        if (i <= j) {
            int t = a[i];
            a[i++] = a[j];
            a[j--] = t;
        }
    }
    quicksort(a, lo, j);
    quicksort(a, i, hi);
}

int main(void) {
    printf("ackermann(2, 3) = %d\n", ackermann(2, 3));
    printf("ackermann(3, 5) = %d\n", ackermann(3, 5));
    printf("fib(27) = %ld\n", fib(27));
    printf("is_even(10001) = %d\n", is_even(10001));
    printf("deep(20000) = %ld\n", deep(20000));
    int a[200];
    unsigned x = 12345;
    for (int i = 0; i < 200; i++)
        a[i] = (int)((x = x * 1103515245u + 12345u) >> 16) % 1000;
    quicksort(a, 0, 199);
    int sorted = 1;
    for (int i = 1; i < 200; i++)
        sorted &= a[i - 1] <= a[i];
    printf("sorted %d, min %d, max %d\n", sorted, a[0], a[199]);
    return (int)(fib(20) % 256);  /* 6765 % 256 = 109 */
}
