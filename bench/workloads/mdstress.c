// SPDX-License-Identifier: GPL-2.0
/*
 * mdstress, after the paper's Appendix C: create a file, write "mdstress", close, unlink, in a loop.
 *   mdstress FILE LOOPS [RATE] [UMASK]
 * RATE 0 (default) runs unpaced; otherwise loops are paced to RATE per second like the paper's.
 * UMASK (octal, default 022): 0 makes every create world-writable (mode 0666), so that every create is
 * a fileperms decision.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	static const char data[] = "mdstress";
	struct pacer pacer;
	long loops, i, errors = 0;
	long long begin;

	if (argc < 3) {
		fprintf(stderr, "usage: mdstress FILE LOOPS [RATE] [UMASK]\n");
		return 2;
	}
	loops = arg_long(argc, argv, 2, 1);
	umask(argc > 4 ? (mode_t)strtoul(argv[4], NULL, 8) : 022);
	pacer_init(&pacer, arg_long(argc, argv, 3, 0));
	wait_for_quiet_cpu();
	begin = now_ns();
	for (i = 0; i < loops; i++) {
		int fd = open(argv[1], O_RDWR | O_CREAT, 0666);

		if (fd < 0) {
			errors++;
		} else {
			if (write(fd, data, strlen(data)) < 0)
				errors++;
			close(fd);
			if (unlink(argv[1]) < 0)
				errors++;
		}
		pacer_wait(&pacer);
	}
	result(loops, now_ns() - begin, errors);
	return 0;
}
