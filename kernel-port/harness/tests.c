// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace harness for mm/jitalloc_core.c (in the manner of
 * tools/testing/memblock): the kernel file is compiled unchanged against the
 * shim headers in include/, with a backend that hands out 2 MiB windows of
 * a PROT_NONE reservation.  Chunk memory is kept PROT_READ, so any direct
 * write by the core into "code" memory crashes the test; the backend's
 * ->fill() (the text_poke_set() stand-in) opens it briefly.
 *
 * Build: see kernel-port/test.sh (ASan + UBSan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/errno.h>
#include <linux/log2.h>
#include <linux/minmax.h>
#include "jitalloc_core.h"

int shim_warnings;
long shim_alloc_fail_after = -1;

static int failures, checks;
#define CHECK(c) do { checks++; if (!(c)) { failures++; \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); } } while (0)

/* ------------------------------------------------------------ backend */

#define NR_WIN 64
static unsigned long region;		/* 2 MiB aligned, NR_WIN windows */
static unsigned char win_used[NR_WIN];
static unsigned int be_max_order = JA_MAX_ORDER;	/* simulated fragmentation */
static int be_fail;			/* make chunk_get fail */
static long be_gets, be_puts, be_fills, be_flushes;
static unsigned char win_unmapped[NR_WIN];	/* chunk_unmap seen, flush pending */

static int be_chunk_get(struct ja_pool *pool, unsigned int min_order,
			unsigned long *addr, unsigned int *order, void **priv)
{
	unsigned int w, o = be_max_order;
	unsigned long a;

	if (be_fail || o < min_order)
		return -ENOMEM;
	for (w = 0; w < NR_WIN && win_used[w]; w++)
		;
	if (w == NR_WIN)
		return -ENOMEM;
	a = region + w * JA_WINDOW_SIZE;
	if (mprotect((void *)a, PAGE_SIZE << o, PROT_READ | PROT_WRITE))
		abort();
	memset((void *)a, 0xcc, PAGE_SIZE << o);
	mprotect((void *)a, PAGE_SIZE << o, PROT_READ);	/* "ROX" */
	win_used[w] = 1;
	*addr = a;
	*order = o;
	*priv = (void *)(unsigned long)(w + 1000);
	be_gets++;
	return 0;
}

static void be_chunk_unmap(struct ja_pool *pool, unsigned long addr,
			   unsigned int order, void *priv)
{
	unsigned int w = (addr - region) / JA_WINDOW_SIZE;

	CHECK(w < NR_WIN && win_used[w] && !win_unmapped[w]);
	win_unmapped[w] = 1;
}

static void be_unmap_flush(struct ja_pool *pool)
{
	for (int w = 0; w < NR_WIN; w++)
		if (win_unmapped[w] == 1)
			win_unmapped[w] = 2;	/* flushed */
	be_flushes++;
}

static void be_chunk_put(struct ja_pool *pool, unsigned long addr,
			 unsigned int order, void *priv)
{
	unsigned int w = (addr - region) / JA_WINDOW_SIZE;

	CHECK(w < NR_WIN && win_used[w]);
	/* unmapped and flushed before the memory is given back */
	CHECK(win_unmapped[w] == 2);
	win_unmapped[w] = 0;
	CHECK((unsigned long)priv == w + 1000);
	/* a released chunk must be all traps */
	for (unsigned long i = 0; i < (PAGE_SIZE << order); i++)
		if (((unsigned char *)addr)[i] != 0xcc) {
			CHECK(!"released chunk not trap-filled");
			break;
		}
	mprotect((void *)addr, JA_WINDOW_SIZE, PROT_NONE);
	win_used[w] = 0;
	be_puts++;
}

static void be_fill(struct ja_pool *pool, void *addr, size_t len)
{
	unsigned long a = ALIGN_DOWN((unsigned long)addr, PAGE_SIZE);
	unsigned long e = ALIGN((unsigned long)addr + len, PAGE_SIZE);

	mprotect((void *)a, e - a, PROT_READ | PROT_WRITE);
	memset(addr, 0xcc, len);
	mprotect((void *)a, e - a, PROT_READ);
	be_fills++;
}

/* "text_poke_copy" for tests */
static void poke(void *addr, int byte, size_t len)
{
	unsigned long a = ALIGN_DOWN((unsigned long)addr, PAGE_SIZE);
	unsigned long e = ALIGN((unsigned long)addr + len, PAGE_SIZE);

	mprotect((void *)a, e - a, PROT_READ | PROT_WRITE);
	memset(addr, byte, len);
	mprotect((void *)a, e - a, PROT_READ);
}

static const struct ja_ops be_ops = {
	.chunk_get = be_chunk_get,
	.chunk_unmap = be_chunk_unmap,
	.unmap_flush = be_unmap_flush,
	.chunk_put = be_chunk_put,
	.fill = be_fill,
};

static void drain(struct ja_pool *pool)
{
	struct ja_batch b;

	if (ja_pending_take(pool, &b)) {
		ja_pending_fill(pool, &b);
		ja_pending_finish(pool, &b);
	}
}

static bool all_cc(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((const unsigned char *)p)[i] != 0xcc)
			return false;
	return true;
}

/* invariants: per-order free block counts match the lists and the chunks */
static void check_invariants(struct ja_pool *pool)
{
	unsigned long free_pages = 0, chunk_free = 0, chunk_pages = 0;
	struct ja_chunk *c;

	for (int o = 0; o <= JA_MAX_ORDER; o++) {
		unsigned long n = 0;
		struct ja_page *pd;

		list_for_each_entry(pd, &pool->free_area[o], lru) {
			n++;
			CHECK(pd->state == JA_P_FREE && pd->order == o);
			CHECK((pd->idx & ((1U << o) - 1)) == 0);
		}
		CHECK(n == pool->nr_free[o]);
		free_pages += n << o;
	}
	list_for_each_entry(c, &pool->chunks, list) {
		chunk_free += c->nr_free;
		chunk_pages += 1UL << c->order;
	}
	CHECK(free_pages == chunk_free);
	CHECK(chunk_pages == free_pages + pool->nr_alloc_pages);
}

static struct ja_pool pool;

static void setup(void)
{
	memset(win_used, 0, sizeof(win_used));
	memset(win_unmapped, 0, sizeof(win_unmapped));
	be_max_order = JA_MAX_ORDER;
	be_fail = 0;
	CHECK(ja_pool_init(&pool, region - 12345, region + NR_WIN * JA_WINDOW_SIZE + 77,
			   &be_ops, NULL) == 0);
	CHECK(pool.base == region && pool.nr_windows == NR_WIN);
}

static void teardown(void)
{
	ja_pool_destroy(&pool);
	for (int w = 0; w < NR_WIN; w++)
		CHECK(!win_used[w]);
}

/* ---------------------------------------------------------------- tests */

static void test_sizes(void)
{
	static const size_t sizes[] = { 1, 15, 16, 17, 100, 512, 2048, 2049,
		4096, 4097, 5000, 12288, 65536, 100000, 1 << 20, 2 << 20 };
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	unsigned int i, j;

	setup();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t want = sizes[i] <= 2048 ?
			(sizes[i] < 16 ? 16 : 1UL << order_base_2(sizes[i])) :
			ALIGN(sizes[i], PAGE_SIZE);

		p[i] = ja_alloc(&pool, sizes[i]);
		CHECK(p[i] != NULL);
		CHECK(ja_owns(&pool, p[i]));
		CHECK(ja_size(&pool, p[i]) == want);
		CHECK(((unsigned long)p[i] & (min(want, PAGE_SIZE) - 1)) == 0);
		CHECK(all_cc(p[i], sizes[i]));
	}
	/* no overlaps */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (j = i + 1; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			unsigned long a = (unsigned long)p[i], b = (unsigned long)p[j];

			CHECK(a + ja_size(&pool, p[i]) <= b || b + ja_size(&pool, p[j]) <= a);
		}
	CHECK(ja_alloc(&pool, 0) == NULL);
	CHECK(ja_alloc(&pool, (2 << 20) + 1) == NULL);
	check_invariants(&pool);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		CHECK(ja_free(&pool, p[i]) == 0);
	drain(&pool);
	check_invariants(&pool);
	CHECK(pool.nr_alloc_pages == 0);
	for (i = 0; i < JA_NR_CLASSES; i++)
		CHECK(pool.classes[i].nr_slabs == 0 && pool.classes[i].nr_objs == 0);
	teardown();
}

static void test_bad_free(void)
{
	void *a, *b, *c;
	int x;

	setup();
	a = ja_alloc(&pool, 64);
	b = ja_alloc(&pool, 3 * PAGE_SIZE);
	c = ja_alloc(&pool, 64);
	CHECK(ja_free(&pool, &x) == -EINVAL);			/* foreign */
	CHECK(ja_free(&pool, (char *)a + 1) == -EINVAL);	/* misaligned */
	CHECK(ja_free(&pool, (char *)b + PAGE_SIZE) == -EINVAL); /* interior */
	CHECK(ja_free(&pool, (char *)a + 128 * 64) == -EINVAL);	/* never allocated */
	CHECK(ja_free(&pool, a) == 0);
	CHECK(ja_free(&pool, a) == -EINVAL);			/* double, pending */
	CHECK(ja_size(&pool, a) == 0);
	drain(&pool);
	CHECK(ja_free(&pool, a) == -EINVAL);			/* double, drained */
	CHECK(ja_free(&pool, b) == 0);
	CHECK(ja_free(&pool, b) == -EINVAL);
	drain(&pool);
	CHECK(ja_free(&pool, b) == -EINVAL);
	CHECK(pool.nr_bad_free == 8);
	CHECK(ja_free(&pool, c) == 0);
	drain(&pool);
	check_invariants(&pool);
	teardown();
}

static void test_trap_refill(void)
{
	void *p, *q;

	setup();
	p = ja_alloc(&pool, 200);
	poke(p, 0x90, 200);
	CHECK(ja_free(&pool, p) == 0);
	/* not reusable before the drain */
	q = ja_alloc(&pool, 200);
	CHECK(q != p);
	CHECK(ja_free(&pool, q) == 0);
	drain(&pool);
	CHECK(all_cc(p, 256));
	q = ja_alloc(&pool, 3 * PAGE_SIZE);
	poke(q, 0x90, 3 * PAGE_SIZE);
	CHECK(ja_free(&pool, q) == 0);
	drain(&pool);
	CHECK(all_cc(q, 3 * PAGE_SIZE));
	check_invariants(&pool);
	teardown();
}

static void test_slab_lifecycle(void)
{
	void *objs[256 * 2 + 1];
	unsigned int n = 0, i;
	struct ja_class *cl = &pool.classes[0];	/* 16-byte class */

	setup();
	for (i = 0; i < 256 * 2 + 1; i++) {
		objs[n] = ja_alloc(&pool, 16);
		CHECK(objs[n]);
		n++;
	}
	CHECK(cl->nr_slabs == 3 && cl->nr_objs == 513);
	/* free while a drain is in progress: must not be lost */
	for (i = 0; i < 10; i++)
		CHECK(ja_free(&pool, objs[i]) == 0);
	{
		struct ja_batch b;

		CHECK(ja_pending_take(&pool, &b));
		CHECK(ja_free(&pool, objs[10]) == 0);
		CHECK(ja_free(&pool, objs[3]) == -EINVAL);	/* being filled */
		ja_pending_fill(&pool, &b);
		ja_pending_finish(&pool, &b);
	}
	CHECK(cl->nr_objs == 513 - 10);
	drain(&pool);
	CHECK(cl->nr_objs == 513 - 11);
	/* freed slots are reused first, first-fit */
	CHECK(ja_alloc(&pool, 9) == objs[0]);
	CHECK(ja_free(&pool, objs[0]) == 0);
	for (i = 11; i < n; i++)
		CHECK(ja_free(&pool, objs[i]) == 0);
	drain(&pool);
	CHECK(cl->nr_slabs == 0 && cl->nr_objs == 0);
	CHECK(pool.nr_alloc_pages == 0);
	check_invariants(&pool);
	teardown();
}

static void test_buddy_coalesce_and_shrink(void)
{
	void *p[600];
	unsigned int i;
	LIST_HEAD(list);
	long puts0;

	setup();
	for (i = 0; i < 600; i++)	/* 600 pages: needs two chunks */
		CHECK((p[i] = ja_alloc(&pool, PAGE_SIZE)) != NULL);
	CHECK(pool.nr_cached[JA_MAX_ORDER] == 2 && pool.nr_grown[JA_MAX_ORDER] == 2);
	CHECK(ja_reclaimable_pages(&pool) == 0);
	for (i = 0; i < 600; i += 2)
		CHECK(ja_free(&pool, p[i]) == 0);
	drain(&pool);
	CHECK(pool.nr_free[0] == 300);	/* no coalescing possible yet */
	CHECK(ja_reclaimable_pages(&pool) == 0);
	for (i = 1; i < 600; i += 2)
		CHECK(ja_free(&pool, p[i]) == 0);
	drain(&pool);
	check_invariants(&pool);
	CHECK(pool.nr_free[JA_MAX_ORDER] == 2);
	for (i = 0; i < JA_MAX_ORDER; i++)
		CHECK(pool.nr_free[i] == 0);
	CHECK(ja_reclaimable_pages(&pool) == 2 * JA_CHUNK_PAGES);
	puts0 = be_puts;
	CHECK(ja_shrink(&pool, 1, &list) == JA_CHUNK_PAGES);	/* one chunk */
	ja_release_chunks(&pool, &list);
	CHECK(be_puts == puts0 + 1);
	CHECK(pool.nr_cached[JA_MAX_ORDER] == 1 && pool.nr_released[JA_MAX_ORDER] == 1);
	CHECK(!ja_owns(&pool, p[0]) || !ja_owns(&pool, p[599]));
	CHECK(ja_shrink(&pool, ULONG_MAX, &list) == JA_CHUNK_PAGES);
	ja_release_chunks(&pool, &list);
	CHECK(pool.nr_cached[JA_MAX_ORDER] == 0 && pool.nr_released[JA_MAX_ORDER] == 2);
	CHECK(!ja_owns(&pool, p[0]) && !ja_owns(&pool, p[599]));
	check_invariants(&pool);
	teardown();
}

static void test_exact_pages(void)
{
	void *a, *b;

	setup();
	a = ja_alloc(&pool, 5 * PAGE_SIZE);	/* order 3 block, 3 pages back */
	CHECK(pool.nr_alloc_pages == 5);
	b = ja_alloc(&pool, 2 * PAGE_SIZE);	/* fits in the returned tail */
	CHECK((char *)b == (char *)a + 6 * PAGE_SIZE);
	check_invariants(&pool);
	CHECK(ja_free(&pool, a) == 0);
	CHECK(ja_free(&pool, b) == 0);
	drain(&pool);
	CHECK(pool.nr_free[JA_MAX_ORDER] == 1);
	teardown();
}

static void test_fallback_orders(void)
{
	void *p, *q;

	setup();
	be_max_order = 4;		/* only 64 KiB chunks available */
	p = ja_alloc(&pool, 16 * PAGE_SIZE);
	CHECK(p != NULL);
	CHECK(pool.nr_cached[4] == 1);
	CHECK(ja_alloc(&pool, 17 * PAGE_SIZE) == NULL);	/* needs order 5 */
	q = ja_alloc(&pool, 100);
	CHECK(q && pool.nr_cached[4] == 2);
	CHECK(ja_owns(&pool, q) && !ja_owns(&pool, (char *)q + 16 * PAGE_SIZE));
	CHECK(ja_free(&pool, p) == 0 && ja_free(&pool, q) == 0);
	drain(&pool);
	check_invariants(&pool);
	CHECK(ja_reclaimable_pages(&pool) == 32);
	teardown();
}

static void test_oom(void)
{
	void *p;

	setup();
	be_fail = 1;
	CHECK(ja_alloc(&pool, 64) == NULL);
	CHECK(ja_alloc(&pool, PAGE_SIZE) == NULL);
	be_fail = 0;
	shim_alloc_fail_after = 0;	/* metadata allocation fails */
	CHECK(ja_alloc(&pool, PAGE_SIZE) == NULL);
	shim_alloc_fail_after = 1;	/* chunk ok, slab descriptor fails */
	CHECK(ja_alloc(&pool, 64) == NULL);
	shim_alloc_fail_after = -1;
	check_invariants(&pool);
	p = ja_alloc(&pool, 64);
	CHECK(p != NULL);
	CHECK(ja_free(&pool, p) == 0);
	drain(&pool);
	teardown();
}

/* random operations checked against a shadow map of owned bytes */
static void test_random(void)
{
	enum { N = 4000 };
	static void *ptr[N];
	static size_t len[N];
	static unsigned char *owner;
	unsigned long ops;
	unsigned int seed = 12345;

	owner = calloc(NR_WIN, JA_WINDOW_SIZE / 16);	/* one byte per 16 bytes */
	setup();
	memset(ptr, 0, sizeof(ptr));
	for (ops = 0; ops < 200000; ops++) {
		unsigned int i = rand_r(&seed) % N;

		if (ptr[i]) {
			unsigned long off = ((unsigned long)ptr[i] - region) / 16;

			CHECK(ja_size(&pool, ptr[i]) == len[i]);
			memset(owner + off, 0, len[i] / 16);
			CHECK(ja_free(&pool, ptr[i]) == 0);
			ptr[i] = NULL;
		} else {
			unsigned int r = rand_r(&seed) % 100;
			size_t sz = r < 70 ? 1 + rand_r(&seed) % 2048 :
				    r < 97 ? 1 + rand_r(&seed) % (8 * PAGE_SIZE) :
					     1 + rand_r(&seed) % (512 * 1024);
			unsigned long off;

			ptr[i] = ja_alloc(&pool, sz);
			if (!ptr[i])
				continue;	/* windows exhausted: fine */
			len[i] = ja_size(&pool, ptr[i]);
			CHECK(len[i] >= sz);
			off = ((unsigned long)ptr[i] - region) / 16;
			for (size_t k = 0; k < len[i] / 16; k++)
				if (owner[off + k]) {
					CHECK(!"overlap");
					break;
				}
			memset(owner + off, 1, len[i] / 16);
			CHECK(all_cc(ptr[i], 16));
		}
		if (ops % 997 == 0)
			drain(&pool);
		if (ops % 20011 == 0) {
			LIST_HEAD(list);

			check_invariants(&pool);
			ja_shrink(&pool, ULONG_MAX, &list);
			ja_release_chunks(&pool, &list);
		}
	}
	for (unsigned int i = 0; i < N; i++)
		if (ptr[i])
			CHECK(ja_free(&pool, ptr[i]) == 0);
	drain(&pool);
	check_invariants(&pool);
	CHECK(pool.nr_alloc_pages == 0 && pool.nr_pending_pages == 0);
	teardown();
	free(owner);
}

/* a block or object already trap-filled by its owner is reusable at once */
static void test_free_filled(void)
{
	unsigned long filled0;
	void *p, *q, *o, *o2;
	long fills0;

	setup();
	p = ja_alloc(&pool, JA_WINDOW_SIZE);	/* a whole chunk, like a BPF pack */
	CHECK(p != NULL);
	fills0 = be_fills;
	filled0 = pool.nr_filled_bytes;
	CHECK(ja_free_filled(&pool, p) == 0);
	CHECK(pool.nr_alloc_pages == 0 && pool.nr_pending_pages == 0);
	CHECK(ja_reclaimable_pages(&pool) == JA_CHUNK_PAGES);
	drain(&pool);
	CHECK(be_fills == fills0 && pool.nr_filled_bytes == filled0);
	q = ja_alloc(&pool, JA_WINDOW_SIZE);	/* same memory, no drain needed */
	CHECK(q == p);
	CHECK(ja_free_filled(&pool, q) == 0);
	CHECK(ja_free_filled(&pool, q) == -EINVAL);	/* double free */
	/* slab objects too */
	o = ja_alloc(&pool, 100);
	o2 = ja_alloc(&pool, 100);
	CHECK(ja_free_filled(&pool, o) == 0);
	CHECK(ja_alloc(&pool, 100) == o);
	CHECK(ja_free_filled(&pool, o) == 0);
	CHECK(ja_free(&pool, o2) == 0);
	drain(&pool);
	CHECK(pool.nr_filled_bytes == filled0 + 128);	/* only o2 was refilled */
	CHECK(pool.nr_alloc_pages == 0);
	check_invariants(&pool);
	teardown();
}

/* one ->unmap_flush() for a batch of released chunks, before any put */
static void test_release_batch(void)
{
	void *p[3];
	LIST_HEAD(list);
	long flushes0, puts0;

	setup();
	for (int i = 0; i < 3; i++) {
		p[i] = ja_alloc(&pool, JA_WINDOW_SIZE);
		CHECK(p[i] != NULL);
	}
	for (int i = 0; i < 3; i++)
		CHECK(ja_free(&pool, p[i]) == 0);
	drain(&pool);
	flushes0 = be_flushes;
	puts0 = be_puts;
	CHECK(ja_shrink(&pool, ULONG_MAX, &list) == 3 * JA_CHUNK_PAGES);
	ja_release_chunks(&pool, &list);
	CHECK(be_puts == puts0 + 3);
	CHECK(be_flushes == flushes0 + 1);
	CHECK(pool.nr_unmap_flushes == 1);
	check_invariants(&pool);
	teardown();
}

int main(void)
{
	void *r = mmap(NULL, (NR_WIN + 1) * JA_WINDOW_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "sizes", test_sizes },
		{ "bad_free", test_bad_free },
		{ "trap_refill", test_trap_refill },
		{ "slab_lifecycle", test_slab_lifecycle },
		{ "buddy_coalesce_and_shrink", test_buddy_coalesce_and_shrink },
		{ "exact_pages", test_exact_pages },
		{ "fallback_orders", test_fallback_orders },
		{ "oom", test_oom },
		{ "random", test_random },
		{ "free_filled", test_free_filled },
		{ "release_batch", test_release_batch },
	};
	int passed = 0, failed = 0;

	if (r == MAP_FAILED)
		return 2;
	region = ALIGN((unsigned long)r, JA_WINDOW_SIZE);
	for (unsigned int t = 0; t < sizeof(tests) / sizeof(tests[0]); t++) {
		int f0 = failures, w0 = shim_warnings;

		tests[t].fn();
		if (failures == f0 && shim_warnings == w0) {
			printf("ok %u - %s\n", t + 1, tests[t].name);
			passed++;
		} else {
			printf("not ok %u - %s\n", t + 1, tests[t].name);
			failed++;
		}
	}
	printf("harness: %d passed, %d failed (%d checks)\n", passed, failed, checks);
	return failed ? 1 : 0;
}
