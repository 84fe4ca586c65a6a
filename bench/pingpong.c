/* SPDX-License-Identifier: MIT */
/*
 * pingpong.c - round trips between two tasks over two unbuffered channels:
 * the cost of a blocking hand-off and the wake-up behind it.
 *
 * Task 1 sends i on `ping` and waits for it back on `pong`; its partner
 * echoes every value until `ping` is closed.  Each round trip is two
 * rendezvous, so two parks and two wake-ups.  The metric is elapsed time
 * over N round trips.
 *
 * bench/run runs it twice, with COPPER_PROCS=1 and 2; the metric's name
 * says which (pingpong_p<procs>).  Twin: bench/go/pingpong, with two
 * `chan int` under the same GOMAXPROCS.
 *
 * With $COPPER_BLOCKPROFILERATE or $COPPER_MUTEXPROFILEFRACTION on, the
 * block and mutex profiles record every wait and the metric ends in _prof
 * (the twin turns Go's on from the same variables).
 *
 * With BENCH_TRACE=1 the execution trace records the round trips (into
 * /dev/null, written after the clock stops) and the metric ends in
 * _trace; the twin runs Go's runtime/trace the same way.
 *
 * Output: pingpong_p<procs>[_prof|_trace]: <ns> ns/op
 */
#include <fcntl.h>
#include <stdbool.h>

#include "bench.h"

#define N 1000000 /* round trips */

static co_chan *ping, *pong;
static co_wg done;

static void task_pong(void *arg)
{
	int v, rc;

	(void)arg;
	while ((rc = co_chan_recv(ping, &v)) == 0)
		BENCH_CHECK(co_chan_send(pong, &v));
	if (rc != CO_EPIPE)
		BENCH_CHECK(rc);
	BENCH_CHECK(co_wg_done(&done));
}

static void task_main(void *arg)
{
	long n = bench_scaled(N);
	char metric[32];
	int64_t t0, elapsed;

	(void)arg;
	ping = co_chan_new(sizeof(int), 0);
	pong = co_chan_new(sizeof(int), 0);
	if (ping == NULL || pong == NULL)
		bench_fail("co_chan_new failed");
	BENCH_CHECK(co_wg_init(&done));
	BENCH_CHECK(co_wg_add(&done, 1));
	BENCH_GO(task_pong, NULL);
	const char *tr = getenv("BENCH_TRACE");
	bool trace = tr && strcmp(tr, "1") == 0;
	int devnull = -1;
	if (trace) {
		if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
			bench_fail("/dev/null: %s", strerror(errno));
		BENCH_CHECK(co_trace_start(devnull));
	}

	t0 = bench_now();
	for (int i = 0; i < n; i++) {
		int v = -1;

		BENCH_CHECK(co_chan_send(ping, &i));
		BENCH_CHECK(co_chan_recv(pong, &v));
		if (v != i)
			bench_fail("pong returned %d, want %d", v, i);
	}
	elapsed = bench_now() - t0;
	if (trace) {
		BENCH_CHECK(co_trace_stop());
		close(devnull);
	}

	BENCH_CHECK(co_chan_close(ping));
	BENCH_CHECK(co_wg_wait(&done));
	co_chan_free(ping);
	co_chan_free(pong);
	snprintf(metric, sizeof(metric), "pingpong_p%d%s", bench_procs(),
		 trace ? "_trace" : bench_prof_suffix());
	bench_report(metric, (double)elapsed / n, "ns/op");
}

int main(void)
{
	return bench_main(task_main);
}
