/* SPDX-License-Identifier: MIT */
/*
 * park1m.c - a million parked tasks: what creating one costs, and what one
 * costs to keep.
 *
 * Task 1 spawns N tasks; each bumps a shared counter and parks in
 * co_chan_recv on one unbuffered channel that nobody sends on.  Task 1
 * yields until the counter reaches N, so the measured interval runs from
 * the first co_go until every task has run up to its park (the last bump
 * is a few instructions before the last park).  Then it closes the
 * channel; every receiver gets -EPIPE, calls co_wg_done and exits.
 *
 * Per task, over that interval:
 *   create  elapsed time;
 *   rss     growth of the peak RSS (VmHWM, reset through
 *           /proc/self/clear_refs just before the round), so it counts the
 *           pages the tasks touched, and nothing the pool had already;
 *   minflt  minor page faults (getrusage);
 *   pte     growth of the page tables (VmPTE): memory the kernel spends
 *           that RSS does not show, one page-table page per 2 MiB of
 *           address space that holds a touched stack page.
 * The round runs twice in one process: "park1m" with a cold pool, then
 * "park1m_warm", which reuses the slots (and pages) of the first.
 *
 * Run with COPPER_PROCS=2 (the default here).  Twin: bench/go/park1m,
 * `<-ch` in N goroutines under GOMAXPROCS=2.
 *
 * Output: park1m_{create,rss,minflt,pte}, then park1m_warm_{...}.
 */
#include <stdatomic.h>
#include <sys/resource.h>

#include "bench.h"

#define N 1000000 /* tasks per round */

struct mem {
	long hwm_kb;   /* VmHWM: peak resident set */
	long pte_kb;   /* VmPTE: page tables */
	long minflt;   /* minor faults so far */
};

static co_chan *ch;
static co_wg exited;
static _Atomic long parked;

static void task_parked(void *arg)
{
	int rc;

	(void)arg;
	atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
	rc = co_chan_recv(ch, NULL);
	if (rc != CO_EPIPE)
		bench_fail("co_chan_recv: got %d (%s), want EPIPE", rc,
			   co_errname(rc));
	BENCH_CHECK(co_wg_done(&exited));
}

/* Reads one "Name:   123 kB" line of /proc/self/status. */
static long status_kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	if (p == NULL)
		bench_fail("/proc/self/status has no %s", key);
	return strtol(p + strlen(key), NULL, 10);
}

static void mem_read(struct mem *m)
{
	char buf[4096];
	struct rusage ru;
	FILE *f = fopen("/proc/self/status", "r");
	size_t len;

	if (f == NULL)
		bench_fail("/proc/self/status: %s", strerror(errno));
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	m->hwm_kb = status_kb(buf, "VmHWM:");
	m->pte_kb = status_kb(buf, "VmPTE:");
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		bench_fail("getrusage: %s", strerror(errno));
	m->minflt = ru.ru_minflt;
}

/* Resets VmHWM to the current RSS (Linux 4.0+). */
static void hwm_reset(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f == NULL || fputs("5", f) < 0 || fclose(f) != 0)
		bench_fail("/proc/self/clear_refs: %s", strerror(errno));
}

static void round_run(const char *name, long n)
{
	struct mem before, after;
	char metric[64];
	int64_t t0, elapsed;

	ch = co_chan_new(sizeof(int), 0);
	if (ch == NULL)
		bench_fail("co_chan_new failed");
	atomic_store(&parked, 0);
	BENCH_CHECK(co_wg_add(&exited, n));
	hwm_reset();
	mem_read(&before);

	t0 = bench_now();
	for (long i = 0; i < n; i++)
		BENCH_GO(task_parked, NULL);
	while (atomic_load_explicit(&parked, memory_order_relaxed) < n)
		co_yield();
	elapsed = bench_now() - t0;
	mem_read(&after);

	snprintf(metric, sizeof(metric), "%s_create", name);
	bench_report(metric, (double)elapsed / 1e3 / n, "us/task");
	snprintf(metric, sizeof(metric), "%s_rss", name);
	bench_report(metric, (double)(after.hwm_kb - before.hwm_kb) / n,
		     "KB/task");
	snprintf(metric, sizeof(metric), "%s_minflt", name);
	bench_report(metric, (double)(after.minflt - before.minflt) / n,
		     "faults/task");
	snprintf(metric, sizeof(metric), "%s_pte", name);
	bench_report(metric, (double)(after.pte_kb - before.pte_kb) / n,
		     "KB/task");

	BENCH_CHECK(co_chan_close(ch));
	BENCH_CHECK(co_wg_wait(&exited));
	co_chan_free(ch);
}

static void task_main(void *arg)
{
	long n = bench_scaled(N);

	(void)arg;
	BENCH_CHECK(co_wg_init(&exited));
	round_run("park1m", n);
	round_run("park1m_warm", n);
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(task_main);
}
