// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the debug KUnit boot (kernel-port/test.sh --kunit-debug, see
 * kunit_debug() in boot/full.sh).
 *
 * The built-in KUnit suites run before init; the boot is not shut down
 * after them (no kunit_shutdown), so this program runs once they are done.
 * It asks kmemleak for three scans (kmemleak reports an object only once
 * it was unreferenced, and unchanged, in two consecutive scans and is at
 * least 5 s old), prints what /sys/kernel/debug/kmemleak then lists and
 * lockdep's debug_locks (0 once lockdep has reported anything and turned
 * itself off), and reboots (qemu runs with -no-reboot: it exits).
 *
 * Every line it prints starts with "DEBUGINIT "; the checks in full.sh
 * look for "DEBUGINIT kmemleak suspects N" and "DEBUGINIT debug_locks N".
 * Needs only the kernel's rootfs: it creates /dev/console itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("DEBUGINIT ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

/* writes "scan" to kmemleak's control file: the scan runs in this write */
static int kmemleak_scan(void)
{
	int fd = open("/sys/kernel/debug/kmemleak", O_WRONLY);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, "scan", 4) == 4;
	close(fd);
	return ok ? 0 : -errno;
}

/* prints kmemleak's report, returns the number of suspects (-1: no file) */
static long kmemleak_report(void)
{
	FILE *f = fopen("/sys/kernel/debug/kmemleak", "r");
	char line[512];
	long n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (strstr(line, "unreferenced object"))
			n++;
		say("kmemleak: %s", line);
	}
	fclose(f);
	return n;
}

static long debug_locks(void)
{
	FILE *f = fopen("/proc/lockdep_stats", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " debug_locks: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int main(void)
{
	int fd, i, err;

	mkdir("/dev", 0755);
	mknod("/dev/console", S_IFCHR | 0600, makedev(5, 1));
	fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);

	say("start");
	sleep(6);	/* kmemleak ignores objects younger than 5 s */
	for (i = 0; i < 3; i++) {
		err = kmemleak_scan();
		if (err)
			say("kmemleak scan failed: %s", strerror(-err));
	}
	say("kmemleak suspects %ld", kmemleak_report());
	say("debug_locks %ld", debug_locks());
	say("done");
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
