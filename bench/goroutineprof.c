/* SPDX-License-Identifier: MIT */
/*
 * goroutineprof.c - how long writing the goroutine profile takes with many
 * parked tasks, and how long a task spinning on another worker is stalled
 * meanwhile.  Go twin: bench/go/goroutineprof/main.go.
 *
 * GPROF_TASKS tasks (default 100000, scaled by COPPER_BENCH_SCALE) park on
 * one channel from three call sites.  A spinner task reads the clock in a
 * loop on the other worker and keeps the longest gap it saw.  Each debug
 * level is written once to /dev/null to warm the symbol cache, then once
 * measured.  Output, with <n> the task count in thousands:
 *
 *   gprof<n>k_d0: ms   gprof<n>k_d1: ms   gprof<n>k_d2: ms
 *   gprof<n>k_d0_stall: ms   ...d1_stall   ...d2_stall
 *   gprof<n>k_d0_noise: ms   ...   the longest gap the spinner sees while
 *                                  the writer just sleeps as long: the
 *                                  machine's own floor (a VM's vCPU is
 *                                  descheduled for milliseconds at times)
 *   gprof<n>k_d0_stall_own: ms ...  the longest gap during the write less
 *                                  the time the kernel kept the spinner's
 *                                  thread waiting for a CPU meanwhile
 *
 * Why _stall_own: on this 2-CPU machine the kernel's own threads (kdamond
 * every half second, rcu_preempt, page-reporting workers) take a CPU for
 * 1.5-23 ms at a time; when they pick the spinner's, the gap is theirs,
 * not the profiler's (perf sched timehist shows each such gap ending the
 * moment one of them is switched out).  The thread's run_delay in
 * /proc/thread-self/schedstat counts exactly that waiting, so a gap less
 * the run_delay that grew during it is what the writer itself caused.
 * The spinner reads it after any gap over OWN_CHECK_GAP and every
 * OWN_CHECK_EVERY, so the waiting it subtracts is the gap's own.
 */
#include <fcntl.h>
#include <stdatomic.h>

#include "bench.h"

static co_chan *never;
static _Atomic int parked;
static _Atomic int stop;
static _Atomic int64_t max_gap;
static _Atomic int spinning;
static _Atomic int64_t max_own; /* longest gap less its run_delay */
static _Atomic int64_t window;  /* when the current measurement began */

#define OWN_CHECK_GAP 50000     /* ns: gaps worth explaining */
#define OWN_CHECK_EVERY 5000000 /* ns: keeps the run_delay reading fresh */

/* Nanoseconds this thread has waited for a CPU while runnable (the second
 * field of /proc/thread-self/schedstat), or -1 if the kernel does not
 * say. */
static int64_t run_delay(void)
{
	char buf[128];
	unsigned long long run, wait;
	int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (int64_t)wait : -1;
}

/* Keeps the longest gap, counting only its part after the measurement
 * window opened (a gap that began before belongs to the last one). */
static void keep_max(_Atomic int64_t *max, int64_t v, int64_t end)
{
	int64_t in = end - atomic_load(&window);

	if (v > in)
		v = in;
	if (v > atomic_load_explicit(max, memory_order_relaxed))
		atomic_store_explicit(max, v, memory_order_relaxed);
}

static void window_open(void)
{
	atomic_store(&window, bench_now());
	atomic_store(&max_gap, 0);
	atomic_store(&max_own, 0);
}

__attribute__((noinline)) static void task_site_a(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_recv(never, NULL);
}

__attribute__((noinline)) static void task_site_b(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_recv(never, NULL);
}

__attribute__((noinline)) static void task_site_c(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_recv(never, NULL);
}

static void task_spinner(void *arg)
{
	int64_t last = bench_now(), checked = last, delay = run_delay();
	(void)arg;

	atomic_store(&spinning, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int64_t now = bench_now(), gap = now - last;

		keep_max(&max_gap, gap, now);
		if (gap <= OWN_CHECK_GAP && now - checked < OWN_CHECK_EVERY) {
			keep_max(&max_own, gap, now);
			last = now;
			continue;
		}
		/* The task never yields, so this is still its worker's
		 * thread. */
		int64_t d = run_delay();
		int64_t waited = delay >= 0 && d >= delay ? d - delay : 0;
		keep_max(&max_own, gap > waited ? gap - waited : 0, now);
		delay = d;
		/* The read's own time belongs to no gap. */
		last = checked = bench_now();
	}
}

/* The machine's own noise: the longest gap the spinner sees while the
 * writer merely sleeps for as long as a write took.  A stall is only
 * Copper's if it stands above this. */
static double noise_floor(double ms)
{
	window_open();
	co_sleep((int64_t)(ms * 1e6));
	return (double)atomic_load(&max_gap) / 1e6;
}

static void write_level(co_profile *p, int debug, double *ms, double *stall,
			double *own)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int64_t start;

	if (fd < 0)
		bench_fail("open /dev/null: %s", strerror(errno));
	window_open();
	start = bench_now();
	BENCH_CHECK(co_profile_write(p, fd, debug));
	*ms = (double)(bench_now() - start) / 1e6;
	*stall = (double)atomic_load(&max_gap) / 1e6;
	*own = (double)atomic_load(&max_own) / 1e6;
	close(fd);
}

static void main_task(void *arg)
{
	void (*sites[3])(void *) = {task_site_a, task_site_b, task_site_c};
	const char *env = getenv("GPROF_TASKS");
	long n = bench_scaled(env ? atol(env) : 100000);
	co_profile *p = co_profile_lookup("goroutine");
	double ms[3], stall[3], noise[3], own[3];
	char metric[64];
	(void)arg;

	if (!p || !(never = co_chan_new(1, 0)))
		bench_fail("set-up failed");
	for (long i = 0; i < n; i++)
		BENCH_GO(sites[i % 3], NULL);
	BENCH_GO(task_spinner, NULL);
	while (atomic_load(&parked) < n || !atomic_load(&spinning))
		co_sleep(1000000);
	for (int d = 0; d <= 2; d++)
		write_level(p, d, &ms[d], &stall[d], &own[d]); /* warm-up */
	for (int d = 0; d <= 2; d++) {
		write_level(p, d, &ms[d], &stall[d], &own[d]);
		noise[d] = noise_floor(ms[d]);
	}
	for (int d = 0; d <= 2; d++) {
		snprintf(metric, sizeof(metric), "gprof%ldk_d%d", n / 1000, d);
		bench_report(metric, ms[d], "ms");
	}
	for (int d = 0; d <= 2; d++) {
		snprintf(metric, sizeof(metric), "gprof%ldk_d%d_stall", n / 1000, d);
		bench_report(metric, stall[d], "ms");
	}
	for (int d = 0; d <= 2; d++) {
		snprintf(metric, sizeof(metric), "gprof%ldk_d%d_noise", n / 1000, d);
		bench_report(metric, noise[d], "ms");
	}
	for (int d = 0; d <= 2; d++) {
		snprintf(metric, sizeof(metric), "gprof%ldk_d%d_stall_own",
			 n / 1000, d);
		bench_report(metric, own[d], "ms");
	}
	atomic_store(&stop, 1);
	fflush(stdout);
	_exit(0); /* the parked tasks need no teardown */
}

int main(void)
{
	bench_default_procs(2);
	return bench_main(main_task);
}
