/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared bits of the benchmark workloads: a CLOCK_MONOTONIC stopwatch, a rate limiter (the paper's
 * mdstress pacing: absolute deadlines with clock_nanosleep) and the one result line every workload
 * prints:  RESULT ops=<operations> ns=<elapsed CLOCK_MONOTONIC ns> errors=<failed syscalls>
 * Under qemu -icount shift=0,sleep=off the guest clock counts instructions (1 ns per instruction).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Paces a loop at `rate` operations per second, one sleep per millisecond's worth of operations (at least
 * one operation per sleep): a sleep per operation would cost the generator a timer and two context switches
 * every few microseconds, more than the operation itself at high rates. Deadlines are absolute, so a loop
 * that falls behind catches up.
 */
struct pacer {
	long long delay_ns;	/* sleep interval; 0: unpaced */
	long batch;		/* operations per sleep */
	long count;		/* operations since the last sleep */
	struct timespec next;
};

static inline void pacer_init(struct pacer *p, long rate)
{
	p->batch = rate >= 1000 ? rate / 1000 : 1;
	p->delay_ns = rate > 0 ? 1000000000LL * p->batch / rate : 0;
	p->count = 0;
	clock_gettime(CLOCK_MONOTONIC, &p->next);
}

static inline void pacer_wait(struct pacer *p)
{
	if (!p->delay_ns || ++p->count < p->batch)
		return;
	p->count = 0;
	p->next.tv_nsec += p->delay_ns;
	p->next.tv_sec += p->next.tv_nsec / 1000000000L;
	p->next.tv_nsec %= 1000000000L;
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &p->next, NULL);
}

/* busy time of the whole machine so far, in ticks: /proc/stat's "cpu" line (user nice system idle iowait irq softirq steal) */
static inline long long busy_ticks(void)
{
	unsigned long long v[8];
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	return n == 8 ? (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) : -1;
}

/*
 * Called before a timed loop starts its stopwatch: wait (up to 10 s) until nothing else has used the CPU
 * for 300 ms, three 100 ms windows without a tick of busy time. On the bench's one vCPU whatever else
 * runs lands in the loop's elapsed time; the likeliest is the work the process that started this one
 * does right after the spawn (the driver's V8 threads). Idle time costs nothing under -icount sleep=off.
 */
static inline void wait_for_quiet_cpu(void)
{
	struct timespec tenth = { 0, 100000000L };
	long long before = busy_ticks(), after;
	int quiet = 0, tries = 0;

	while (before >= 0 && quiet < 3 && tries++ < 100) {
		nanosleep(&tenth, NULL);
		after = busy_ticks();
		quiet = after == before ? quiet + 1 : 0;
		before = after;
	}
}

static inline void result(long long ops, long long ns, long long errors)
{
	printf("RESULT ops=%lld ns=%lld errors=%lld\n", ops, ns, errors);
	fflush(stdout);
}

static inline long arg_long(int argc, char **argv, int i, long def)
{
	return argc > i ? strtol(argv[i], NULL, 10) : def;
}
#endif
