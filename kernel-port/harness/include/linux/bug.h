#ifndef SHIM_LINUX_BUG_H
#define SHIM_LINUX_BUG_H
#include <stdio.h>
extern int shim_warnings;
#define WARN_ON(c) ({ int __c = !!(c); if (__c) { shim_warnings++; \
	fprintf(stderr, "WARN_ON(%s) at %s:%d\n", #c, __FILE__, __LINE__); } __c; })
#endif
