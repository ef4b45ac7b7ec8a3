// SPDX-License-Identifier: GPL-2.0
/*
 * forkexec: fork, execve a tiny program, wait, in a loop (bprm_creds_from_file on every exec).
 *   forkexec LOOPS PROGRAM
 */
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	long loops, i, errors = 0;
	long long begin;

	if (argc < 3) {
		fprintf(stderr, "usage: forkexec LOOPS PROGRAM\n");
		return 2;
	}
	loops = arg_long(argc, argv, 1, 100);
	wait_for_quiet_cpu();
	begin = now_ns();
	for (i = 0; i < loops; i++) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			char *args[] = { argv[2], NULL };
			char *env[] = { NULL };

			execve(argv[2], args, env);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			errors++;
	}
	result(loops, now_ns() - begin, errors);
	return 0;
}
