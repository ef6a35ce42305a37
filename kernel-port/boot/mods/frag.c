// SPDX-License-Identifier: GPL-2.0
/*
 * frag: make a freshly booted guest look like a long-running host before
 * the direct-map figures of kernel-port/test.sh --full, for as long as the
 * module is loaded.  The fragmenting code is the series' own
 * mm/execmem_jitalloc_frag.h (the KUnit measurement uses it too), taken
 * from the KUnit patch by boot/full.sh, so that the stock kernel, which
 * has no such file, is fragmented by the same code.
 */
#include <linux/module.h>
#include <linux/init.h>

#include "mm/execmem_jitalloc_frag.h"

static unsigned long keep_free_mb = 384;
module_param(keep_free_mb, ulong, 0444);

static struct jit_frag frag;

static int __init frag_init(void)
{
	if (!jit_frag_take(&frag, keep_free_mb << (20 - PAGE_SHIFT))) {
		jit_frag_release(&frag);
		return -ENOMEM;
	}
	pr_info("frag: took %lu pages, freed every other one, %lu kB free now\n",
		frag.nr, global_zone_page_state(NR_FREE_PAGES) << (PAGE_SHIFT - 10));
	return 0;
}

static void __exit frag_exit(void)
{
	jit_frag_release(&frag);
}

module_init(frag_init);
module_exit(frag_exit);
MODULE_DESCRIPTION("jitalloc boot test: fragment free memory");
MODULE_LICENSE("GPL");
