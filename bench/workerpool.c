/* SPDX-License-Identifier: MIT */
/*
 * workerpool.c - a worker pool fed from one channel (issue 22): does
 * throughput hold as workers are added?
 *
 * A producer task sends the job numbers 0 .. N-1 into `jobs` (capacity
 * 256) and closes it.  4 pool tasks per worker receive a job, hash it
 * (job_hash: HASH_ROUNDS rounds of a multiply-xorshift chain, about
 * 0.3 us on the 2-core VMs) and send {job, hash} into `results`
 * (capacity 256).  Task 1 is the collector: it receives N results, checks
 * the count and the sum of the job numbers, and reports jobs per second
 * over the whole run (spawning included: a few microseconds).  Every job
 * is thus two channel operations on each of two shared channels, made by
 * tasks on every worker: the per-job cost of the scheduler's cross-worker
 * paths (channel locks, wake-ups, stealing) shows as a fall in jobs/s
 * when workers are added (docs/design.md, "Many workers").
 *
 * bench/run runs it with COPPER_PROCS=1 and 2 (workerpool_p1, _p2); by
 * hand, any COPPER_PROCS.  Twin: bench/go/workerpool, with the same
 * constants, hash and channel capacities under the same GOMAXPROCS.
 *
 * With BENCH_PARKS=1 the block profile records every wait (rate 1) and
 * a second line gives the parks per 1,000 jobs, summed over the
 * profile's records; the twin counts with Go's block profile the same
 * way.  That is the design table's "parks per job" measured on both
 * runtimes (bench/run's workerpool_parks rows; the rate is not the
 * point of that run, the profile slows it).
 *
 * Output: workerpool_p<procs>: <millions> Mjobs/s; with BENCH_PARKS=1
 * workerpool_p<procs>_prof (the rate with the profile on) and
 * workerpool_p<procs>_parks: <n> parks/kjob.
 */
#include <stdbool.h>
#include <sys/mman.h>

#include "bench.h"

#define N 2000000        /* jobs */
#define JOBS_CAP 256     /* capacity of the job channel */
#define RESULTS_CAP 256  /* capacity of the result channel */
#define TASKS_PER_WORKER 4
#define HASH_ROUNDS 128  /* about 0.3 us of work per job */

struct result {
	uint64_t job;
	uint64_t hash;
};

static co_chan *jobs, *results;
static co_wg done;
static long n;

/* The job: keep in step with jobHash in bench/go/workerpool. */
static uint64_t job_hash(uint64_t x)
{
	for (int i = 0; i < HASH_ROUNDS; i++) {
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdULL;
	}
	return x;
}

static void task_producer(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < (uint64_t)n; i++)
		BENCH_CHECK(co_chan_send(jobs, &i));
	BENCH_CHECK(co_chan_close(jobs));
}

static void task_pool(void *arg)
{
	uint64_t job;
	int rc;

	(void)arg;
	while ((rc = co_chan_recv(jobs, &job)) == 0) {
		struct result r = {job, job_hash(job)};
		BENCH_CHECK(co_chan_send(results, &r));
	}
	if (rc != CO_EPIPE)
		BENCH_CHECK(rc);
	BENCH_CHECK(co_wg_done(&done));
}

/* Waits the block profile recorded: the sum of its records' counts
 * (debug=1 lines "<cycles> <count> @ <pcs>"). */
static uint64_t block_parks(void)
{
	int fd = memfd_create("block", MFD_CLOEXEC);
	unsigned long long cycles, count;
	uint64_t sum = 0;
	char line[4096];
	FILE *f;

	if (fd < 0)
		bench_fail("memfd_create: %s", strerror(errno));
	BENCH_CHECK(co_profile_write(co_profile_lookup("block"), fd, 1));
	lseek(fd, 0, SEEK_SET);
	if (!(f = fdopen(fd, "r")))
		bench_fail("fdopen: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llu %llu @", &cycles, &count) == 2)
			sum += count;
	fclose(f);
	return sum;
}

static void task_main(void *arg)
{
	int tasks = TASKS_PER_WORKER * bench_procs();
	uint64_t sum = 0;
	int64_t t0, elapsed;
	char metric[32];

	(void)arg;
	n = bench_scaled(N);
	const char *pk = getenv("BENCH_PARKS");
	bool parks = pk && strcmp(pk, "1") == 0;
	if (parks)
		co_set_block_profile_rate(1);
	jobs = co_chan_new(sizeof(uint64_t), JOBS_CAP);
	results = co_chan_new(sizeof(struct result), RESULTS_CAP);
	if (jobs == NULL || results == NULL)
		bench_fail("co_chan_new failed");
	BENCH_CHECK(co_wg_init(&done));
	BENCH_CHECK(co_wg_add(&done, tasks));

	t0 = bench_now();
	BENCH_GO(task_producer, NULL);
	for (int i = 0; i < tasks; i++)
		BENCH_GO(task_pool, NULL);
	for (long i = 0; i < n; i++) {
		struct result r;

		BENCH_CHECK(co_chan_recv(results, &r));
		sum += r.job;
	}
	elapsed = bench_now() - t0;
	if (sum != (uint64_t)n * (uint64_t)(n - 1) / 2)
		bench_fail("results sum to %llu, want %llu",
			   (unsigned long long)sum,
			   (unsigned long long)n * (unsigned long long)(n - 1) / 2);

	BENCH_CHECK(co_wg_wait(&done));
	co_chan_free(jobs);
	co_chan_free(results);
	snprintf(metric, sizeof(metric), "workerpool_p%d%s", bench_procs(),
		 parks ? "_prof" : "");
	bench_report(metric, (double)n * 1e3 / (double)elapsed, "Mjobs/s");
	if (parks) {
		snprintf(metric, sizeof(metric), "workerpool_p%d_parks",
			 bench_procs());
		bench_report(metric, (double)block_parks() * 1e3 / (double)n,
			     "parks/kjob");
	}
}

int main(void)
{
	return bench_main(task_main);
}
