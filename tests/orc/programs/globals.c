/* Globals and constant data referenced from code: initialised and zero-filled globals,
 * constant tables, string literals, pointers to globals in initialised data (data
 * relocations), static locals, over-aligned data, a big .bss array, a struct copy. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const int primes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29};
static const char *const words[] = {"alpha", "beta", "gamma", "delta"};
int counter = 100;
static int zeroed[4096];
static char big_bss[1 << 20];
int *counter_ptr = &counter;
const char *const *word_table = words;
static _Alignas(4096) unsigned char page_aligned[64] = {1, 2, 3};
static _Alignas(8192) double wide_aligned[4] = {1.5, 2.5, 3.5, 4.5};

struct point {
    int x, y;
    const char *label;
};
static const struct point origin = {0, 0, "origin"};
struct point points[3] = {{1, 2, "a"}, {3, 4, "b"}, {5, 6, "c"}};

static int next_id(void) {
    static int id = 0;
    return ++id;
}

int main(void) {
    int sum = 0;
    for (unsigned i = 0; i < sizeof primes / sizeof primes[0]; i++)
        sum += primes[i];
    printf("sum of primes %d\n", sum);
    for (int i = 0; i < 4; i++)
        printf("word %d: %s (%zu)\n", i, word_table[i], strlen(word_table[i]));
    *counter_ptr += 5;
    printf("counter %d\n", counter);
    int nonzero = 0;
    for (int i = 0; i < 4096; i++)
        nonzero += zeroed[i] != 0;
    for (int i = 0; i < (1 << 20); i += 4096)
        nonzero += big_bss[i] != 0;
    memset(big_bss, 7, sizeof big_bss);
    printf("nonzero in bss %d, after memset %d\n", nonzero, big_bss[12345]);
    printf("page aligned %d, wide aligned %d\n", (int)((uintptr_t)page_aligned % 4096 == 0),
           (int)((uintptr_t)wide_aligned % 8192 == 0));
    printf("page_aligned[2] %d, wide_aligned[3] %.1f\n", page_aligned[2], wide_aligned[3]);
    struct point p = origin;
    p.x += points[2].x;
    printf("%s moved to %d,%d; points[1] %s at %d,%d\n", p.label, p.x, p.y, points[1].label,
           points[1].x, points[1].y);
    int a = next_id(), b = next_id(), c = next_id();
    printf("ids %d %d %d\n", a, b, c);
    return sum % 7;
}
