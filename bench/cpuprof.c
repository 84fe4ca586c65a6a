/* SPDX-License-Identifier: MIT */
/*
 * cpuprof.c - what the CPU profile costs a CPU-bound program: the same
 * work with and without co_cpu_profile_start running (100 Hz, Go's rate).
 *
 * Two tasks (one per worker) each hash a 4 KiB buffer ROUNDS_WORK times
 * through a three-deep call chain (so the walk has frames to climb); a
 * round is that work on both workers.  Rounds alternate plain and
 * profiled, ROUNDS of each, so that a change in the machine's other load
 * hits both sides alike.  What is measured is the process's CPU time
 * (getrusage: both workers, the SIGPROF handlers, the profiler thread's
 * drains) for the work, not wall time: the machine is shared, and CPU time
 * is what profiling adds.  A profiled round starts the profile before the
 * work and stops it (writing to /dev/null) after the measurement.
 *
 * Twin: bench/go/cpuprof (pprof.StartCPUProfile, the same work).
 *
 * Output: cpuprof_plain: <ms> ms        median CPU time of a plain round
 *         cpuprof_profiled: <ms> ms     ... of a profiled round
 *         cpuprof_overhead: <pct> %     (profiled - plain) / plain
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "bench.h"

#define ROUNDS 7
#define WORK 30000      /* buffer hashes per task per round */
#define TASKS 2

static long work;
static uint8_t buf[4096];
static volatile uint64_t sink;
static co_wg wg;

__attribute__((noinline)) static uint64_t hash_block(const uint8_t *p,
						     size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

__attribute__((noinline)) static uint64_t hash_twice(uint64_t h)
{
	h = hash_block(buf, sizeof(buf) / 2, h);
	return hash_block(buf + sizeof(buf) / 2, sizeof(buf) / 2, h);
}

__attribute__((noinline)) static void task_work(void *arg)
{
	uint64_t h = (uintptr_t)arg;

	for (long i = 0; i < work; i++)
		h = hash_twice(h);
	sink = h;
	co_wg_done(&wg);
}

static int64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
		       1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* One round: the work on every task; its CPU time. */
static int64_t round_run(void)
{
	int64_t t0 = cpu_ns();

	co_wg_add(&wg, TASKS);
	for (long i = 0; i < TASKS; i++)
		BENCH_GO(task_work, (void *)(i + 1));
	co_wg_wait(&wg);
	return cpu_ns() - t0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void task_main(void *arg)
{
	int64_t plain[ROUNDS], prof[ROUNDS];
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)arg;
	if (null < 0)
		bench_fail("open /dev/null");
	work = bench_scaled(WORK);
	co_wg_init(&wg);
	round_run(); /* warm: caches, stacks, the unwind tables */
	for (int r = 0; r < ROUNDS; r++) {
		plain[r] = round_run();
		BENCH_CHECK(co_cpu_profile_start(null));
		prof[r] = round_run();
		BENCH_CHECK(co_cpu_profile_stop());
	}
	close(null);
	qsort(plain, ROUNDS, sizeof(plain[0]), cmp_i64);
	qsort(prof, ROUNDS, sizeof(prof[0]), cmp_i64);
	double a = (double)plain[ROUNDS / 2], b = (double)prof[ROUNDS / 2];
	bench_report("cpuprof_plain", a / 1e6, "ms");
	bench_report("cpuprof_profiled", b / 1e6, "ms");
	bench_report("cpuprof_overhead", 100.0 * (b - a) / a, "%");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
