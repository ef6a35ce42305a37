/* shim: glibc's <errno.h> includes <linux/errno.h>, so define what we use */
#ifndef SHIM_LINUX_ERRNO_H
#define SHIM_LINUX_ERRNO_H
#include <asm-generic/errno.h>
#endif
