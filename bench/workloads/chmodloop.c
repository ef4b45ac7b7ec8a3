// SPDX-License-Identifier: GPL-2.0
/*
 * chmodloop: two chmod(2) calls per loop on one file, then back.
 *   chmodloop FILE LOOPS MODE_A MODE_B
 * "0600 0640" never adds a forbidden bit: for every uid it measures the hook's check alone.
 * "0600 0602" adds o+w every loop (the paper's "Add WOTH"): under a strict job the second chmod is
 * denied and logged (the deny path), without a job both succeed. Either way the same syscalls are made.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	long loops, i, errors = 0;
	mode_t a, b;
	long long begin;
	int fd;

	if (argc < 5) {
		fprintf(stderr, "usage: chmodloop FILE LOOPS MODE_A MODE_B\n");
		return 2;
	}
	loops = arg_long(argc, argv, 2, 1);
	a = (mode_t)strtoul(argv[3], NULL, 8);
	b = (mode_t)strtoul(argv[4], NULL, 8);
	fd = open(argv[1], O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	close(fd);
	wait_for_quiet_cpu();
	begin = now_ns();
	for (i = 0; i < loops; i++) {
		if (chmod(argv[1], a) < 0)
			errors++;
		if (chmod(argv[1], b) < 0)
			errors++;
	}
	result(loops * 2, now_ns() - begin, errors);
	unlink(argv[1]);
	return 0;
}
