// SPDX-License-Identifier: GPL-2.0
/* A small module with a few KiB of text, loaded many times under different
 * names by the boot test to exercise module text/data allocations.  It has
 * data, rodata and ro_after_init contents too (the module loader's
 * EXECMEM_MODULE_DATA allocations, served by the cache's data pool with
 * CONFIG_EXECMEM_JITALLOC), and reports them in
 * /sys/module/jmNN/parameters/state, which boot/init compares with what
 * the module was built with. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/moduleparam.h>

#define F(n) noinline int jm_f##n(int x) { return x * n + (x >> (n % 7)) - (x ^ n); }
#define F8(n) F(n##0) F(n##1) F(n##2) F(n##3) F(n##4) F(n##5) F(n##6) F(n##7)
F8(1) F8(2) F8(3) F8(4) F8(5) F8(6) F8(7) F8(8)

/* over a page each, so each section needs pages of its own */
static const int jm_rodata[1100] = { [0] = 11, [1099] = 13 };
static int jm_data[1100] = { [0] = 17, [1099] = 19 };
static int jm_ro_after_init[1100] __ro_after_init = { [0] = 23 };

static int jm_state_get(char *buf, const struct kernel_param *kp)
{
	/* READ_ONCE: loads from the module's rodata, not folded constants */
	return sysfs_emit(buf, "rodata %d %d data %d %d ro_after_init %d %d\n",
			  READ_ONCE(jm_rodata[0]), READ_ONCE(jm_rodata[1099]),
			  jm_data[0], jm_data[1099],
			  jm_ro_after_init[0], jm_ro_after_init[1099]);
}

static const struct kernel_param_ops jm_state_ops = { .get = jm_state_get };
module_param_cb(state, &jm_state_ops, NULL, 0444);

static int __init jm_init(void)
{
	jm_data[1099]++;			/* 20: data is writable */
	jm_ro_after_init[1099] = 29;		/* writable until init returns */
	return jm_f10(1) == 0x7fffffff;	/* never true: keeps the functions */
}

static void __exit jm_exit(void)
{
}

module_init(jm_init);
module_exit(jm_exit);
MODULE_DESCRIPTION("jitalloc boot test module");
MODULE_LICENSE("GPL");
