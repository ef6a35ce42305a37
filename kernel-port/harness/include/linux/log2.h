#ifndef SHIM_LINUX_LOG2_H
#define SHIM_LINUX_LOG2_H
static inline int ilog2(unsigned long x) { return 63 - __builtin_clzl(x); }
static inline int order_base_2(unsigned long n) { return n > 1 ? ilog2(n - 1) + 1 : 0; }
#endif
