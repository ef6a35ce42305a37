// SPDX-License-Identifier: GPL-2.0
/*
 * frag: make a freshly booted guest look like a long-running host before
 * the direct-map figures of kernel-port/test.sh --full.
 *
 * Allocates order-0 pages until only keep_free_mb of memory is free, then
 * frees every other one of them in random order and holds the rest for as
 * long as the module is loaded.  Free memory then consists of single pages
 * scattered over the whole direct map (their buddies are held, so they
 * cannot coalesce), in random order on the free lists, plus keep_free_mb of
 * untouched memory: what the page allocator of a machine that has run for a
 * while hands out.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/gfp.h>
#include <linux/vmalloc.h>
#include <linux/random.h>

static unsigned long keep_free_mb = 384;
module_param(keep_free_mb, ulong, 0444);

static struct page **held;
static unsigned long nr_held;

static int __init frag_init(void)
{
	unsigned long keep = keep_free_mb << (20 - PAGE_SHIFT);
	unsigned long max = global_zone_page_state(NR_FREE_PAGES);
	unsigned long i, n = 0, freed = 0;
	struct page **pages;

	if (max <= keep)
		return -ENOMEM;
	max -= keep;
	pages = vmalloc(array_size(max, sizeof(*pages)));
	if (!pages)
		return -ENOMEM;
	while (n < max && global_zone_page_state(NR_FREE_PAGES) > keep) {
		pages[n] = alloc_page(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
		if (!pages[n])
			break;
		n++;
		if (!(n % 4096))
			cond_resched();
	}
	/* every other page, in random order: shuffle the odd slots */
	for (i = n / 2; i > 1; i--) {
		unsigned long j = get_random_u32_below(i);

		swap(pages[2 * (i - 1) + 1], pages[2 * j + 1]);
	}
	for (i = 1; i < n; i += 2) {
		__free_page(pages[i]);
		pages[i] = NULL;
		freed++;
	}
	held = pages;
	nr_held = n;
	pr_info("frag: took %lu pages, freed %lu scattered ones, %lu kB free now\n",
		n, freed, global_zone_page_state(NR_FREE_PAGES) << (PAGE_SHIFT - 10));
	return 0;
}

static void __exit frag_exit(void)
{
	unsigned long i;

	for (i = 0; i < nr_held; i++)
		if (held[i])
			__free_page(held[i]);
	vfree(held);
}

module_init(frag_init);
module_exit(frag_exit);
MODULE_DESCRIPTION("jitalloc boot test: fragment free memory");
MODULE_LICENSE("GPL");
