/* SPDX-License-Identifier: MIT */
/*
 * bufchan.c - one producer, one consumer, a buffered channel: streaming
 * throughput, where neither side should park often.
 *
 * A producer task sends 0 .. N-1 as int64_t into a channel of capacity
 * 1024 and closes it; task 1 receives until -EPIPE and checks the count
 * and the sum.  The metric is messages per second over the whole stream.
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/bufchan,
 * `make(chan int64, 1024)` under GOMAXPROCS=2.
 *
 * Output: bufchan: <millions> Mmsg/s
 */
#include "bench.h"

#define N 20000000 /* messages */
#define CAPACITY 1024

static co_chan *ch;
static long n;

static void task_producer(void *arg)
{
	(void)arg;
	for (int64_t i = 0; i < n; i++)
		BENCH_CHECK(co_chan_send(ch, &i));
	BENCH_CHECK(co_chan_close(ch));
}

static void task_main(void *arg)
{
	int64_t v, count = 0, sum = 0, t0, elapsed;
	int rc;

	(void)arg;
	n = bench_scaled(N);
	ch = co_chan_new(sizeof(int64_t), CAPACITY);
	if (ch == NULL)
		bench_fail("co_chan_new failed");

	t0 = bench_now();
	BENCH_GO(task_producer, NULL);
	while ((rc = co_chan_recv(ch, &v)) == 0) {
		count++;
		sum += v;
	}
	elapsed = bench_now() - t0;
	if (rc != CO_EPIPE)
		BENCH_CHECK(rc);
	if (count != n || sum != (int64_t)n * (n - 1) / 2)
		bench_fail("received %lld messages summing to %lld, want %ld",
			   (long long)count, (long long)sum, n);
	co_chan_free(ch);
	bench_report("bufchan", (double)n * 1e3 / (double)elapsed, "Mmsg/s");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
