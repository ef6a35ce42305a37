#ifndef SHIM_LINUX_MM_H
#define SHIM_LINUX_MM_H
#include <linux/types.h>
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PMD_SHIFT 21
#define ALIGN(x, a) (((x) + (a) - 1) & ~((unsigned long)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((unsigned long)(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((unsigned long)(a) - 1)) == 0)
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#endif
