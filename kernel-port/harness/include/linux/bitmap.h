#ifndef SHIM_LINUX_BITMAP_H
#define SHIM_LINUX_BITMAP_H
#include <linux/bitops.h>
static inline void bitmap_zero(unsigned long *d, unsigned int n) { memset(d, 0, BITS_TO_LONGS(n) * sizeof(long)); }
static inline void bitmap_or(unsigned long *d, const unsigned long *a, const unsigned long *b, unsigned int n)
{ for (unsigned int i = 0; i < BITS_TO_LONGS(n); i++) d[i] = a[i] | b[i]; }
static inline bool bitmap_empty(const unsigned long *a, unsigned int n)
{ for (unsigned int i = 0; i < n; i++) if (test_bit(i, a)) return false; return true; }
static inline unsigned int bitmap_weight(const unsigned long *a, unsigned int n)
{ unsigned int w = 0; for (unsigned int i = 0; i < n; i++) w += test_bit(i, a); return w; }
#endif
