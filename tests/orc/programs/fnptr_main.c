/* Function pointers between modules (this one and fnptr_lib.c, linked as separate
 * modules): a table of the other module's functions, callbacks handed across in both
 * directions, libc calling back into JIT code (qsort, bsearch), and a host function
 * pointer called from JIT code. Also prints its arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*binop)(int, int);
extern const binop lib_ops[];
extern const char *const lib_op_names[];
extern int lib_op_count;
int lib_apply_twice(binop f, int a, int b);
binop lib_pick(const char *name);
void lib_register(void (*cb)(const char *, int));
void lib_fire(void);

static int times(int a, int b) { return a * b; }

static void on_event(const char *what, int n) { printf("callback from lib: %s %d\n", what, n); }

static int compare_ints(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        printf("arg %d: %s\n", i, argv[i]);
    for (int i = 0; i < lib_op_count; i++)
        printf("%s(7, 3) = %d\n", lib_op_names[i], lib_ops[i](7, 3));
    printf("apply_twice(times, 3, 4) = %d\n", lib_apply_twice(times, 3, 4));
    binop sub = lib_pick("sub");
    printf("picked sub: %d, same as table: %d\n", sub(10, 4), sub == lib_ops[1]);
    lib_register(on_event);
    lib_fire();
    int values[] = {42, 7, 19, 3, 88, 23, 1, 56};
    qsort(values, 8, sizeof values[0], compare_ints);
    for (int i = 0; i < 8; i++)
        printf("%d%c", values[i], i == 7 ? '\n' : ' ');
    int key = 23;
    int *found = bsearch(&key, values, 8, sizeof values[0], compare_ints);
    printf("bsearch 23 at index %d\n", found ? (int)(found - values) : -1);
    size_t (*host_strlen)(const char *) = strlen;
    printf("host strlen through a pointer: %zu\n", host_strlen("function pointer"));
    return argc;
}
