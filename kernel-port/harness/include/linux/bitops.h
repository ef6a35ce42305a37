#ifndef SHIM_LINUX_BITOPS_H
#define SHIM_LINUX_BITOPS_H
#include <linux/types.h>
#define BITS_PER_LONG 64
#define BITS_TO_LONGS(n) (((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)
#define DECLARE_BITMAP(name, bits) unsigned long name[BITS_TO_LONGS(bits)]
static inline void __set_bit(unsigned int nr, unsigned long *a) { a[nr / 64] |= 1UL << (nr % 64); }
static inline void __clear_bit(unsigned int nr, unsigned long *a) { a[nr / 64] &= ~(1UL << (nr % 64)); }
static inline int test_bit(unsigned int nr, const unsigned long *a) { return (a[nr / 64] >> (nr % 64)) & 1; }
static inline unsigned long __ffs(unsigned long x) { return __builtin_ctzl(x); }
static inline unsigned long find_next_bit(const unsigned long *a, unsigned long size, unsigned long off)
{ for (; off < size; off++) if (test_bit(off, a)) return off; return size; }
static inline unsigned long find_first_zero_bit(const unsigned long *a, unsigned long size)
{ unsigned long i; for (i = 0; i < size; i++) if (!test_bit(i, a)) return i; return size; }
#define for_each_set_bit(bit, addr, size) \
	for ((bit) = find_next_bit((addr), (size), 0); (bit) < (size); \
	     (bit) = find_next_bit((addr), (size), (bit) + 1))
#endif
