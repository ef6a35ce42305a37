/* The second module of the function-pointer program (see fnptr_main.c). */
#include <string.h>

typedef int (*binop)(int, int);

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mod(int a, int b) { return a % b; }

const binop lib_ops[] = {add, sub, mod};
const char *const lib_op_names[] = {"add", "sub", "mod"};
int lib_op_count = 3;

static void (*registered)(const char *, int);

int lib_apply_twice(binop f, int a, int b) { return f(f(a, b), b); }

binop lib_pick(const char *name) {
    for (int i = 0; i < lib_op_count; i++)
        if (strcmp(name, lib_op_names[i]) == 0)
            return lib_ops[i];
    return 0;
}

void lib_register(void (*cb)(const char *, int)) { registered = cb; }

void lib_fire(void) {
    for (int i = 1; i <= 3; i++)
        registered("event", i);
}
