// SPDX-License-Identifier: GPL-2.0
/*
 * jittool: helper for the qemu boot test (statically linked into the
 * initramfs).
 *
 *   jittool load N FILE   load N BPF socket filters of varying sizes (JITed),
 *                         print how many loaded and failed, touch FILE when
 *                         done, keep them loaded until killed
 *   jittool kcore         load one program, read its JITed image through
 *                         /proc/kcore and compare with BPF_OBJ_GET_INFO_BY_FD
 *   jittool hold N READY GO
 *                         load N programs, run each (BPF_PROG_TEST_RUN) and
 *                         keep its JIT image; touch READY, wait for GO (the
 *                         hibernation test hibernates and resumes meanwhile),
 *                         then run them again and compare every JIT image
 *                         with the saved copy and with /proc/kcore
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

static int bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int load_prog(unsigned int n)
{
	struct bpf_insn *insns = calloc(n + 2, sizeof(*insns));
	union bpf_attr attr;
	unsigned int i;
	int fd;

	/* r0 = 0; r0 += i (n times); exit */
	insns[0] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0 };
	for (i = 1; i <= n; i++)
		insns[i] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_ADD | BPF_K,
					      .dst_reg = 0, .imm = (int)i };
	insns[n + 1] = (struct bpf_insn){ .code = BPF_JMP | BPF_EXIT };
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = n + 2;
	attr.license = (uintptr_t)"GPL";
	fd = bpf(BPF_PROG_LOAD, &attr);
	free(insns);
	return fd;
}

/* what program n returns: r0 = 1 + 2 + ... + n, as a u32 */
static uint32_t prog_result(unsigned int n)
{
	return (uint32_t)((uint64_t)n * (n + 1) / 2);
}

static int prog_run(int fd, uint32_t *retval)
{
	unsigned char pkt[64] = { 0 };
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = fd;
	attr.test.data_in = (uintptr_t)pkt;
	attr.test.data_size_in = sizeof(pkt);
	attr.test.repeat = 1;
	if (bpf(BPF_PROG_TEST_RUN, &attr))
		return -1;
	*retval = attr.test.retval;
	return 0;
}

/* the JIT image of @fd into @img (at most @cap bytes) and its address */
static int prog_image(int fd, unsigned char *img, unsigned int cap,
		      unsigned int *len, uint64_t *ksym)
{
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	info.jited_prog_len = cap;
	info.jited_prog_insns = (uintptr_t)img;
	info.nr_jited_ksyms = 1;
	info.jited_ksyms = (uintptr_t)ksym;
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (uintptr_t)&info;
	if (bpf(BPF_OBJ_GET_INFO_BY_FD, &attr))
		return -1;
	*len = info.jited_prog_len < cap ? info.jited_prog_len : cap;
	return *len && *ksym ? 0 : -1;
}

static int kcore_read(uint64_t addr, void *buf, size_t len);

struct held {
	int fd;
	unsigned int n, len;
	uint64_t ksym;
	unsigned char img[4096];
};

/* run, image, kcore: every check of one held program; 0 if all hold */
static int held_check(struct held *h, int i, const char *when)
{
	unsigned char now[4096], kc[4096];
	unsigned int len;
	uint64_t ksym = 0;
	uint32_t r = 0;

	if (prog_run(h->fd, &r) || r != prog_result(h->n)) {
		fprintf(stderr, "jittool: %s: program %d returned %u, want %u (%s)\n",
			when, i, r, prog_result(h->n), strerror(errno));
		return -1;
	}
	if (prog_image(h->fd, now, sizeof(now), &len, &ksym) ||
	    len != h->len || ksym != h->ksym || memcmp(now, h->img, len)) {
		fprintf(stderr, "jittool: %s: JIT image of program %d changed\n", when, i);
		return -1;
	}
	if (kcore_read(h->ksym, kc, h->len) || memcmp(kc, h->img, h->len)) {
		fprintf(stderr, "jittool: %s: /proc/kcore differs for program %d at %llx\n",
			when, i, (unsigned long long)h->ksym);
		return -1;
	}
	return 0;
}

static int cmd_hold(int n, const char *ready, const char *go)
{
	struct rlimit rl = { n + 64, n + 64 };
	struct held *h = calloc(n, sizeof(*h));
	struct stat st;
	int i, bad = 0;

	setrlimit(RLIMIT_NOFILE, &rl);
	for (i = 0; i < n; i++) {
		h[i].n = 8 + (i * 53) % 600;
		h[i].fd = load_prog(h[i].n);
		if (h[i].fd < 0 ||
		    prog_image(h[i].fd, h[i].img, sizeof(h[i].img), &h[i].len, &h[i].ksym)) {
			fprintf(stderr, "jittool: hold: program %d: %s\n", i, strerror(errno));
			return 1;
		}
		if (held_check(&h[i], i, "before"))
			return 1;
	}
	printf("jittool: %d programs loaded, run and checked\n", n);
	fflush(stdout);
	close(open(ready, O_CREAT | O_WRONLY, 0644));
	while (stat(go, &st))
		usleep(100000);
	for (i = 0; i < n; i++)
		bad += held_check(&h[i], i, "after") != 0;
	printf("jittool: after: %d of %d programs run and match their JIT image and /proc/kcore\n",
	       n - bad, n);
	return bad != 0;
}

static int cmd_load(int n, const char *done)
{
	struct rlimit rl = { n + 64, n + 64 };
	int i, fd, failed = 0;

	setrlimit(RLIMIT_NOFILE, &rl);
	for (i = 0; i < n; i++) {
		fd = load_prog(8 + (i * 37) % 400);
		if (fd < 0 && failed++ < 5)
			fprintf(stderr, "jittool: load %d: %s\n", i, strerror(errno));
	}
	/* boot/init reads this line: every failure counts */
	printf("jittool: loaded %d BPF programs, %d failed\n", n - failed, failed);
	fflush(stdout);
	close(open(done, O_CREAT | O_WRONLY, 0644));
	for (;;)
		pause();
	return 0;
}

static int kcore_read(uint64_t addr, void *buf, size_t len)
{
	int fd = open("/proc/kcore", O_RDONLY);
	Elf64_Ehdr eh;
	int i;

	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
		return -1;
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * eh.e_phentsize) != sizeof(ph))
			break;
		if (ph.p_type != PT_LOAD || addr < ph.p_vaddr ||
		    addr + len > ph.p_vaddr + ph.p_memsz)
			continue;
		if (pread(fd, buf, len, ph.p_offset + (addr - ph.p_vaddr)) != (ssize_t)len)
			break;
		close(fd);
		return 0;
	}
	close(fd);
	return -1;
}

static int cmd_kcore(void)
{
	unsigned char img[4096], kc[4096];
	uint64_t ksym = 0;
	unsigned int len = 0;
	int fd = load_prog(50);

	if (fd < 0) {
		perror("jittool: BPF_PROG_LOAD");
		return 1;
	}
	if (prog_image(fd, img, sizeof(img), &len, &ksym)) {
		fprintf(stderr, "jittool: no JIT image (ksym %llx len %u): %s\n",
			(unsigned long long)ksym, len, strerror(errno));
		return 1;
	}
	if (kcore_read(ksym, kc, len)) {
		fprintf(stderr, "jittool: cannot read %llx from /proc/kcore\n",
			(unsigned long long)ksym);
		return 1;
	}
	if (memcmp(kc, img, len)) {
		fprintf(stderr, "jittool: /proc/kcore differs from the JIT image at %llx (first bytes %02x %02x %02x %02x)\n",
			(unsigned long long)ksym, kc[0], kc[1], kc[2], kc[3]);
		return 1;
	}
	printf("jittool: /proc/kcore matches the %u-byte JIT image at %llx\n",
	       len, (unsigned long long)ksym);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "load"))
		return cmd_load(atoi(argv[2]), argv[3]);
	if (argc == 2 && !strcmp(argv[1], "kcore"))
		return cmd_kcore();
	if (argc == 5 && !strcmp(argv[1], "hold"))
		return cmd_hold(atoi(argv[2]), argv[3], argv[4]);
	fprintf(stderr, "usage: jittool load N DONEFILE | jittool kcore | jittool hold N READY GO\n");
	return 2;
}
