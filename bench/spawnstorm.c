/* SPDX-License-Identifier: MIT */
/*
 * spawnstorm.c - a spawn storm: many spawners start short tasks as fast
 * as they can, never parking, and the children must keep up.
 *
 * Task 1 adds N + SPAWNERS * procs to one co_wg, then starts SPAWNERS
 * spawner tasks per worker.  Between them the spawners start N tasks:
 * each loops co_go its share of times without yielding or parking, then
 * calls co_wg_done.  Each child only calls co_wg_done.  Task 1 waits for
 * the group, so the wait returns when every child and every spawner is
 * done.  Unlike spawn.c, where one parent spawns a batch and parks, here
 * the spawners never give their workers up, so how many children are
 * alive at the peak depends on whether the scheduler runs the new tasks
 * while the spawners are still going, and rss shows it: a burst of
 * handlers started faster than they finish.
 *
 *   rate  N over the time from just before the first spawner is started
 *         to co_wg_wait returning;
 *   rss   the process's peak RSS (getrusage ru_maxrss), the storm's peak:
 *         one run per process, no warm-up round.
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/spawnstorm,
 * spawner goroutines looping `go child()` and one sync.WaitGroup under
 * GOMAXPROCS=2.
 *
 * Output: spawnstorm_rate: <M> M/s, spawnstorm_rss: <MB> MB
 */
#include <stdint.h>
#include <sys/resource.h>

#include "bench.h"

#define N 1000000  /* children, over all the spawners */
#define SPAWNERS 4 /* spawners per worker */

static co_wg wg;

static void task_child(void *arg)
{
	(void)arg;
	BENCH_CHECK(co_wg_done(&wg));
}

/* Starts (intptr_t)arg children back to back, then reports itself done. */
static void task_spawner(void *arg)
{
	long share = (long)(intptr_t)arg;

	for (long i = 0; i < share; i++)
		BENCH_GO(task_child, NULL);
	BENCH_CHECK(co_wg_done(&wg));
}

static void task_main(void *arg)
{
	long n = bench_scaled(N);
	int procs = bench_procs();
	long spawners;
	int64_t t0, elapsed;
	struct rusage ru;

	(void)arg;
	if (procs < 1)
		bench_fail("bad worker count %d", procs);
	spawners = (long)SPAWNERS * procs;
	BENCH_CHECK(co_wg_init(&wg));
	BENCH_CHECK(co_wg_add(&wg, n + spawners));

	t0 = bench_now();
	for (long s = 0; s < spawners; s++) {
		long share = n / spawners + (s < n % spawners ? 1 : 0);

		BENCH_GO(task_spawner, (void *)(intptr_t)share);
	}
	BENCH_CHECK(co_wg_wait(&wg));
	elapsed = bench_now() - t0;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		bench_fail("getrusage: %s", strerror(errno));
	bench_report("spawnstorm_rate", (double)n * 1e3 / (double)elapsed,
		     "M/s");
	bench_report("spawnstorm_rss", (double)ru.ru_maxrss / 1024, "MB");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
