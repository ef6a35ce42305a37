// SPDX-License-Identifier: GPL-2.0
/* A small module with a few KiB of text, loaded many times under different
 * names by the boot test to exercise module text/data allocations. */
#include <linux/module.h>
#include <linux/init.h>

#define F(n) noinline int jm_f##n(int x) { return x * n + (x >> (n % 7)) - (x ^ n); }
#define F8(n) F(n##0) F(n##1) F(n##2) F(n##3) F(n##4) F(n##5) F(n##6) F(n##7)
F8(1) F8(2) F8(3) F8(4) F8(5) F8(6) F8(7) F8(8)

static int __init jm_init(void)
{
	return jm_f10(1) == 0x7fffffff;	/* never true: keeps the functions */
}

static void __exit jm_exit(void)
{
}

module_init(jm_init);
module_exit(jm_exit);
MODULE_DESCRIPTION("jitalloc boot test module");
MODULE_LICENSE("GPL");
