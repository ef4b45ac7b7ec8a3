// SPDX-License-Identifier: GPL-2.0
/*
 * dgemm: a CPU-bound kernel standing in for xhpl: blocked double-precision C += A*B, no syscalls in
 * the timed part.   dgemm N REPS      ops = floating-point operations (2*N^3*REPS)
 */
#include <string.h>
#include "common.h"

#define BS 32

int main(int argc, char **argv)
{
	long n = arg_long(argc, argv, 1, 128), reps = arg_long(argc, argv, 2, 4), r, i, j, k, ii, jj, kk;
	double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = calloc(n * n, sizeof(double));
	double check = 0;
	long long begin;

	for (i = 0; i < n * n; i++) {
		a[i] = (double)(i % 17) / 17.0;
		b[i] = (double)(i % 13) / 13.0;
	}
	wait_for_quiet_cpu();
	begin = now_ns();
	for (r = 0; r < reps; r++)
		for (ii = 0; ii < n; ii += BS)
			for (kk = 0; kk < n; kk += BS)
				for (jj = 0; jj < n; jj += BS)
					for (i = ii; i < ii + BS && i < n; i++)
						for (k = kk; k < kk + BS && k < n; k++) {
							double aik = a[i * n + k];

							for (j = jj; j < jj + BS && j < n; j++)
								c[i * n + j] += aik * b[k * n + j];
						}
	long long ns = now_ns() - begin;
	for (i = 0; i < n * n; i++)
		check += c[i];
	fprintf(stderr, "dgemm checksum %.6g\n", check);
	result(2LL * n * n * n * reps, ns, 0);
	return 0;
}
