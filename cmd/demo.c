/* SPDX-License-Identifier: MIT */
/*
 * demo.c - Copper's demo: a concurrent pipeline in a few dozen lines.
 *
 * A producer feeds numbers into a buffered channel; a pool of worker tasks
 * checks each for primality (yielding now and then, as real work would
 * park on I/O); results flow to a collector through a second channel; a
 * wait group tells the collector when the pool is done.  Meanwhile 10,000
 * tasks sleep on timers to show that parked tasks are cheap.  The demo
 * prints what it did and how long it took.
 */
#include <copper.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define NUMBERS 200000
#define WORKERS 64
#define SLEEPERS 10000

struct pipeline {
	co_chan *jobs;     /* uint64_t candidates */
	co_chan *results;  /* uint64_t primes */
	co_wg pool;        /* the workers */
};

static int is_prime(uint64_t n)
{
	if (n < 2)
		return 0;
	for (uint64_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return 0;
	return 1;
}

static void task_producer(void *arg)
{
	struct pipeline *p = arg;

	for (uint64_t n = 1; n <= NUMBERS; n++)
		co_chan_send(p->jobs, &n);
	co_chan_close(p->jobs);
}

static void task_worker(void *arg)
{
	struct pipeline *p = arg;
	uint64_t n;

	while (co_chan_recv(p->jobs, &n) == 0) {
		if (is_prime(n))
			co_chan_send(p->results, &n);
		if (n % 1024 == 0)
			co_yield();
	}
	co_wg_done(&p->pool);
}

static void task_closer(void *arg)
{
	struct pipeline *p = arg;

	co_wg_wait(&p->pool);
	co_chan_close(p->results);
}

static void task_sleeper(void *arg)
{
	co_sleep((int64_t)(uintptr_t)arg);
}

static void main_task(void *arg)
{
	struct pipeline p;
	uint64_t prime, count = 0, largest = 0;
	int64_t start = co_now();
	(void)arg;

	p.jobs = co_chan_new(sizeof(uint64_t), 256);
	p.results = co_chan_new(sizeof(uint64_t), 256);
	if (!p.jobs || !p.results) {
		fprintf(stderr, "demo: out of memory\n");
		exit(1);
	}
	co_wg_init(&p.pool);
	for (uintptr_t i = 0; i < SLEEPERS; i++)
		co_go_named("sleeper", task_sleeper,
			    (void *)(uintptr_t)(50 * CO_MILLISECOND +
						i * CO_MICROSECOND));
	co_wg_add(&p.pool, WORKERS);
	for (int i = 0; i < WORKERS; i++)
		co_go_named("prime-worker", task_worker, &p);
	co_go_named("producer", task_producer, &p);
	co_go_named("closer", task_closer, &p);
	printf("demo: %zu tasks live (%d workers, %d sleepers)\n",
	       co_num_tasks(), WORKERS, SLEEPERS);

	while (co_chan_recv(p.results, &prime) == 0) {
		count++;
		if (prime > largest)
			largest = prime;
	}
	printf("demo: %" PRIu64 " primes up to %d (largest %" PRIu64
	       ") in %.1f ms\n",
	       count, NUMBERS, largest, (double)(co_now() - start) / 1e6);
	while (co_num_tasks() > 1)
		co_sleep(5 * CO_MILLISECOND);
	printf("demo: all tasks finished after %.1f ms\n",
	       (double)(co_now() - start) / 1e6);
	co_chan_free(p.jobs);
	co_chan_free(p.results);
}

int main(void)
{
	int err = co_run(main_task, NULL);

	if (err) {
		fprintf(stderr, "demo: co_run: %s\n", co_strerror(err));
		return 1;
	}
	return 0;
}
