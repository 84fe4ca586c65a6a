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
 * With BENCH_TRACE=1 the run is cut into TRACE_SEGMENTS pairs of
 * segments, the first of each pair plain, the second with the execution
 * trace recording into /dev/null (started before its clock starts,
 * stopped and written after it stops).  The metric ends in _trace (the
 * traced segments' time per round trip), and _trace_cost is traced time
 * over plain time: a ratio taken seconds apart in one process, which the
 * slow phases of a shared VM (minutes long) do not skew the way two
 * separate runs are skewed.  The twin runs Go's runtime/trace the same
 * way.
 *
 * Output: pingpong_p<procs>[_prof|_trace]: <ns> ns/op
 *         [pingpong_p<procs>_trace_cost: <x> x]
 */
#include <fcntl.h>
#include <stdbool.h>

#include "bench.h"

#define N 1000000 /* round trips */
#define TRACE_SEGMENTS 4

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

/* n round trips; returns their time in ns. */
static int64_t round_trips(long n)
{
	int64_t t0 = bench_now();

	for (int i = 0; i < n; i++) {
		int v = -1;

		BENCH_CHECK(co_chan_send(ping, &i));
		BENCH_CHECK(co_chan_recv(pong, &v));
		if (v != i)
			bench_fail("pong returned %d, want %d", v, i);
	}
	return bench_now() - t0;
}

static void task_main(void *arg)
{
	long n = bench_scaled(N);
	char metric[32];
	int64_t elapsed, plain = 0;

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
	if (trace) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (devnull < 0)
			bench_fail("/dev/null: %s", strerror(errno));
		n -= n % TRACE_SEGMENTS;
		elapsed = 0;
		for (int k = 0; k < TRACE_SEGMENTS; k++) {
			plain += round_trips(n / TRACE_SEGMENTS);
			BENCH_CHECK(co_trace_start(devnull));
			elapsed += round_trips(n / TRACE_SEGMENTS);
			BENCH_CHECK(co_trace_stop());
		}
		close(devnull);
	} else {
		elapsed = round_trips(n);
	}

	BENCH_CHECK(co_chan_close(ping));
	BENCH_CHECK(co_wg_wait(&done));
	co_chan_free(ping);
	co_chan_free(pong);
	snprintf(metric, sizeof(metric), "pingpong_p%d%s", bench_procs(),
		 trace ? "_trace" : bench_prof_suffix());
	bench_report(metric, (double)elapsed / n, "ns/op");
	if (trace) {
		snprintf(metric, sizeof(metric), "pingpong_p%d_trace_cost",
			 bench_procs());
		bench_report(metric, (double)elapsed / (double)plain, "x");
	}
}

int main(void)
{
	return bench_main(task_main);
}
