/* Userspace shim: allocations with failure injection. */
#ifndef SHIM_LINUX_SLAB_H
#define SHIM_LINUX_SLAB_H
#include <stdlib.h>
#include <linux/types.h>
extern long shim_alloc_fail_after;	/* <0: never fail */
static inline void *shim_alloc(size_t n)
{
	if (shim_alloc_fail_after == 0)
		return NULL;
	if (shim_alloc_fail_after > 0)
		shim_alloc_fail_after--;
	return calloc(1, n);
}
#define kzalloc(n, g) shim_alloc(n)
#define kvzalloc(n, g) shim_alloc(n)
#define kcalloc(n, s, g) shim_alloc((n) * (s))
#define kfree(p) free(p)
#define kvfree(p) free(p)
#endif
