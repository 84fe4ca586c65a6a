/* SPDX-License-Identifier: MIT */
/*
 * mutex.c - a contended co_mutex: four tasks on two workers taking turns
 * on one lock around a counter increment.
 *
 * Each of TASKS tasks runs M lock / increment / unlock rounds; task 1 waits
 * for them on a co_wg and checks the counter.  The metric is the elapsed
 * time over all TASKS * M operations, so it mixes the uncontended fast
 * path, spinning, and parking with hand-off, as Go's sync.Mutex does.
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/mutex,
 * sync.Mutex under GOMAXPROCS=2.
 *
 * Output: mutex: <ns> ns/op
 */
#include "bench.h"

#define TASKS 4
#define M 2500000 /* operations per task */

static co_mutex mu;
static co_wg done;
static long m;
static long counter; /* guarded by mu */

static void task_locker(void *arg)
{
	(void)arg;
	for (long i = 0; i < m; i++) {
		BENCH_CHECK(co_mutex_lock(&mu));
		counter++;
		BENCH_CHECK(co_mutex_unlock(&mu));
	}
	BENCH_CHECK(co_wg_done(&done));
}

static void task_main(void *arg)
{
	int64_t t0, elapsed;

	(void)arg;
	m = bench_scaled(M);
	BENCH_CHECK(co_mutex_init(&mu));
	BENCH_CHECK(co_wg_init(&done));
	BENCH_CHECK(co_wg_add(&done, TASKS));

	t0 = bench_now();
	for (int i = 0; i < TASKS; i++)
		BENCH_GO(task_locker, NULL);
	BENCH_CHECK(co_wg_wait(&done));
	elapsed = bench_now() - t0;

	if (counter != TASKS * m)
		bench_fail("counter is %ld, want %ld", counter, TASKS * m);
	BENCH_CHECK(co_mutex_destroy(&mu));
	char metric[32];

	snprintf(metric, sizeof(metric), "mutex%s", bench_prof_suffix());
	bench_report(metric, (double)elapsed / ((double)TASKS * m), "ns/op");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
