/* SPDX-License-Identifier: MIT */
/*
 * spawn.c - spawn, run and exit in batches: what a short-lived task costs.
 *
 * Task 1 runs ROUNDS rounds.  Each round adds N to a co_wg, spawns N tasks
 * that only call co_wg_done, and waits for the group.  Round 0 is the
 * warm-up (the slot pool is cold and stacks are untouched); the metric is
 * the time of the other rounds divided by the tasks they ran, so it
 * includes spawning, the child's first switch in, co_wg_done, exit and the
 * slot's return to the pool, and the parent's wake-up.
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/spawn, with
 * `go child()` and a sync.WaitGroup under GOMAXPROCS=2.
 *
 * Output: spawn: <ns> ns/op
 */
#include "bench.h"

#define N 200000  /* tasks per round */
#define ROUNDS 11 /* round 0 is the warm-up */

static co_wg wg;

static void task_child(void *arg)
{
	(void)arg;
	BENCH_CHECK(co_wg_done(&wg));
}

static void task_main(void *arg)
{
	long n = bench_scaled(N);
	int64_t total = 0;

	(void)arg;
	BENCH_CHECK(co_wg_init(&wg));
	for (int round = 0; round < ROUNDS; round++) {
		int64_t t0 = bench_now();

		BENCH_CHECK(co_wg_add(&wg, n));
		for (long i = 0; i < n; i++)
			BENCH_GO(task_child, NULL);
		BENCH_CHECK(co_wg_wait(&wg));
		if (round > 0)
			total += bench_now() - t0;
	}
	bench_report("spawn", (double)total / ((double)(ROUNDS - 1) * n),
		     "ns/op");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
