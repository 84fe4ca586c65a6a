/* SPDX-License-Identifier: MIT */
/*
 * manypairs.c - many independent ping-pong pairs at once (issue 22): does
 * the scheduler keep each pair on one worker and spread the pairs?
 *
 * PAIRS pairs of tasks; in each, a pinger sends i on its own unbuffered
 * `ping` channel and waits for it back on `pong`, ROUNDS times, then
 * closes `ping`; the ponger echoes until `ping` is closed.  No channel is
 * shared between pairs, so the work is perfectly parallel: what it
 * measures is the local hand-off (runnext, direct switch) under load and
 * how evenly the pairs spread over the workers.  Task 1 starts the pairs,
 * waits for them and reports round trips per second over all pairs,
 * spawning included.
 *
 * bench/run runs it with COPPER_PROCS=2 (manypairs_p2); by hand, any
 * COPPER_PROCS.  Twin: bench/go/manypairs (same constants, `chan int`).
 *
 * Output: manypairs_p<procs>: <millions> Mrt/s
 */
#include "bench.h"

#define PAIRS 2000
#define ROUNDS 2000 /* round trips per pair */

struct pair {
	co_chan *ping, *pong;
};

static struct pair pairs[PAIRS];
static co_wg done;
static long rounds;

static void task_ponger(void *arg)
{
	struct pair *p = arg;
	int v, rc;

	while ((rc = co_chan_recv(p->ping, &v)) == 0)
		BENCH_CHECK(co_chan_send(p->pong, &v));
	if (rc != CO_EPIPE)
		BENCH_CHECK(rc);
	BENCH_CHECK(co_wg_done(&done));
}

static void task_pinger(void *arg)
{
	struct pair *p = arg;

	for (int i = 0; i < rounds; i++) {
		int v = -1;

		BENCH_CHECK(co_chan_send(p->ping, &i));
		BENCH_CHECK(co_chan_recv(p->pong, &v));
		if (v != i)
			bench_fail("pong returned %d, want %d", v, i);
	}
	BENCH_CHECK(co_chan_close(p->ping));
	BENCH_CHECK(co_wg_done(&done));
}

static void task_main(void *arg)
{
	int64_t t0, elapsed;
	char metric[32];

	(void)arg;
	rounds = bench_scaled(ROUNDS);
	for (int i = 0; i < PAIRS; i++) {
		pairs[i].ping = co_chan_new(sizeof(int), 0);
		pairs[i].pong = co_chan_new(sizeof(int), 0);
		if (pairs[i].ping == NULL || pairs[i].pong == NULL)
			bench_fail("co_chan_new failed");
	}
	BENCH_CHECK(co_wg_init(&done));
	BENCH_CHECK(co_wg_add(&done, 2 * PAIRS));

	t0 = bench_now();
	for (int i = 0; i < PAIRS; i++) {
		BENCH_GO(task_ponger, &pairs[i]);
		BENCH_GO(task_pinger, &pairs[i]);
	}
	BENCH_CHECK(co_wg_wait(&done));
	elapsed = bench_now() - t0;

	for (int i = 0; i < PAIRS; i++) {
		co_chan_free(pairs[i].ping);
		co_chan_free(pairs[i].pong);
	}
	snprintf(metric, sizeof(metric), "manypairs_p%d", bench_procs());
	bench_report(metric, (double)PAIRS * (double)rounds * 1e3 /
				     (double)elapsed, "Mrt/s");
}

int main(void)
{
	return bench_main(task_main);
}
