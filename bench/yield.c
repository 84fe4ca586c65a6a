/* SPDX-License-Identifier: MIT */
/*
 * yield.c - co_yield between two tasks on one worker: the bare cost of a
 * task switch through the run queue.
 *
 * Task 1 spawns one partner; both call co_yield N times, so each yield
 * switches straight to the other (the only runnable task).  When task 1 is
 * done it keeps yielding until the partner says it is done too (at most a
 * yield or two).  The metric is the elapsed time over the 2N yields.
 * Like libdill's perf/ctxswitch.c.  This uses only co_go and co_yield, no
 * channel or wait group, so it measures nothing but the switch.
 *
 * Run with COPPER_PROCS=1 (the default here).  Twin: bench/go/yield, with
 * runtime.Gosched under GOMAXPROCS=1.
 *
 * Output: yield: <ns> ns/op
 */
#include <stdatomic.h>

#include "bench.h"

#define N 5000000 /* yields per task */

static long n;
static _Atomic int partner_done;

static void task_partner(void *arg)
{
	(void)arg;
	for (long i = 0; i < n; i++)
		co_yield();
	atomic_store(&partner_done, 1);
}

static void task_main(void *arg)
{
	int64_t t0;

	(void)arg;
	n = bench_scaled(N);
	t0 = bench_now();
	BENCH_GO(task_partner, NULL);
	for (long i = 0; i < n; i++)
		co_yield();
	while (!atomic_load(&partner_done))
		co_yield();
	bench_report("yield", (double)(bench_now() - t0) / (2.0 * n), "ns/op");
}

int main(void)
{
	bench_default_procs(1);
	return bench_main(task_main);
}
