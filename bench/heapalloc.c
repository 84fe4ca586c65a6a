/* SPDX-License-Identifier: MIT */
/*
 * heapalloc.c - what heap profiling costs a malloc-heavy program: many
 * small, short-lived allocations on two workers, with the profiler's
 * sampling at its default rate (512 KiB) or off (COPPER_MEMPROFILERATE=0),
 * and the same loop on glibc's allocator called directly (no profiler in
 * the path at all) as the baseline.
 *
 * Two tasks (one per worker) each run N/2 rounds of: pick a slot of a
 * 64-entry ring from a xorshift generator, free what it holds, malloc
 * 16..256 bytes into it and write its first byte.  So every round is one
 * malloc and one free of a block that lived about 64 rounds.  Each loop
 * runs twice, interposed and direct alternately (glibc, copper, glibc,
 * copper), and the faster of its two runs is reported, in ns per
 * malloc+free pair of wall time over both workers.  Both loops call the
 * allocator through function pointers, so they differ only in what is
 * called: malloc/free (libcopper's, sampling) or __libc_malloc/__libc_free
 * (glibc's own entry points, which libcopper's call).
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/heapalloc,
 * make([]byte, n) into the same ring with GOGC default and
 * runtime.MemProfileRate at its default or 0 (the same variable).
 *
 * Output: heapalloc: <ns> ns/op  and  heapalloc_glibc: <ns> ns/op
 *         (heapalloc_off and heapalloc_off_glibc when the rate is 0)
 */
#include "bench.h"

#define N 10000000 /* malloc+free pairs over both tasks */
#define TASKS 2
#define RING 64

/* glibc's own allocator entry points (exported since glibc 2.0). */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

struct loop {
	void *(*alloc)(size_t n);
	void (*release)(void *p);
	long rounds;
	uint32_t seed;
};

static co_wg done;

static void task_loop(void *arg)
{
	struct loop *l = arg;
	void *ring[RING] = {0};
	uint32_t x = l->seed;

	for (long i = 0; i < l->rounds; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		unsigned k = x % RING;
		l->release(ring[k]);
		char *p = l->alloc(16 + (x >> 8) % 241);
		if (!p)
			bench_fail("malloc failed");
		p[0] = (char)i;
		ring[k] = p;
	}
	for (int k = 0; k < RING; k++)
		l->release(ring[k]);
	BENCH_CHECK(co_wg_done(&done));
}

/* Runs the loop on TASKS tasks; ns per pair. */
static double run(void *(*alloc)(size_t), void (*release)(void *), long n)
{
	struct loop l[TASKS];
	int64_t t0;

	BENCH_CHECK(co_wg_init(&done));
	BENCH_CHECK(co_wg_add(&done, TASKS));
	t0 = bench_now();
	for (int i = 0; i < TASKS; i++) {
		l[i] = (struct loop){alloc, release, n / TASKS,
				     0x9e3779b9u * (uint32_t)(i + 1)};
		BENCH_GO(task_loop, &l[i]);
	}
	BENCH_CHECK(co_wg_wait(&done));
	return (double)(bench_now() - t0) / (double)n;
}

static void task_main(void *arg)
{
	const char *rate = getenv("COPPER_MEMPROFILERATE");
	bool off = rate && strcmp(rate, "0") == 0;
	long n = bench_scaled(N);
	double direct = 1e300, copper = 1e300;

	(void)arg;
	for (int pass = 0; pass < 2; pass++) {
		double d = run(__libc_malloc, __libc_free, n);
		double c = run(malloc, free, n);
		direct = d < direct ? d : direct;
		copper = c < copper ? c : copper;
	}
	bench_report(off ? "heapalloc_off" : "heapalloc", copper, "ns/op");
	bench_report(off ? "heapalloc_off_glibc" : "heapalloc_glibc", direct,
		     "ns/op");
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
