/* Varargs into libc (printf family with every argument class) and a varargs function
 * of the program's own forwarding a va_list to vsnprintf. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int format_into(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n;
}

static long sum_ints(int count, ...) {
    va_list ap;
    va_start(ap, count);
    long total = 0;
    for (int i = 0; i < count; i++)
        total += va_arg(ap, int);
    va_end(ap);
    return total;
}

static double sum_doubles(int count, ...) {
    va_list ap;
    va_start(ap, count);
    double total = 0;
    for (int i = 0; i < count; i++)
        total += va_arg(ap, double);
    va_end(ap);
    return total;
}

int main(void) {
    printf("%d %u %ld %lld %x %o %c %s %p\n", -1, 42u, 1234567890123L, -9876543210LL, 0xbeef, 8,
           'z', "string", (void *)0);
    printf("%.3f %e %g %10.2f|%-8s|%08d\n", 3.14159, 6.02e23, 0.0001, -2.5, "left", 123);
    printf("%f %f %f %f %f %f %f %f %f %f\n", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0);
    char buf[128];
    int n = format_into(buf, sizeof buf, "[%s:%d:%.2f]", "own", 7, 0.5);
    printf("format_into wrote %d: %s\n", n, buf);
    printf("sum_ints %ld\n", sum_ints(6, 1, 2, 3, 4, 5, 6));
    printf("sum_doubles %.2f\n", sum_doubles(9, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5));
    snprintf(buf, sizeof buf, "%s-%s", "snprintf", "works");
    puts(buf);
    fprintf(stdout, "fprintf to stdout %d\n", (int)strlen(buf));
    return 0;
}
