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
 * 1.5-23 ms at a time; when they pick the spinner's, the gap is theirs
 * (perf sched timehist shows each such gap ending the moment one of them
 * is switched out).  The thread's run_delay in /proc/thread-self/schedstat
 * counts the time it waited for its CPU, so a gap less the run_delay that
 * grew during it is the part spent otherwise: in the spinner's own code,
 * in a signal handler, or with the vCPU itself descheduled.  It cannot
 * tell who took the CPU, so a thread the writer woke would be excused
 * too (the writer here wakes none): the raw _stall stays the gate, this
 * one says what the raw one is made of.  The spinner reads run_delay
 * after every gap over OWN_CHECK_GAP and every OWN_CHECK_EVERY, so little
 * of the waiting it subtracts belongs to earlier gaps; a reading on
 * another thread (the Go twin's goroutine may move) subtracts nothing.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "bench.h"

static co_chan *never;
static _Atomic int parked;
static _Atomic int stop;
static _Atomic int spinning;

/*
 * The measurement window.  The writer opens it (start, no end), closes it
 * when the write returns (end), and waits after each step until the
 * spinner has seen the change (win_gen), so no gap measured against an
 * old window lands in a new one and the gap still running at the end is
 * counted, up to the end, before the maxima are read.
 */
static _Atomic int64_t win_start, win_end;
static _Atomic uint64_t win_gen;  /* bumped by the writer at each change */
static _Atomic uint64_t seen_gen; /* the spinner's last look at win_gen */
static _Atomic int64_t max_gap;   /* longest gap inside the window */
static _Atomic int64_t max_own;   /* ... less its run_delay */

#define OWN_CHECK_GAP 20000     /* ns: gaps worth explaining */
#define OWN_CHECK_EVERY 2000000 /* ns: keeps the run_delay reading fresh */

/* Nanoseconds this thread has waited for a CPU while runnable (the second
 * field of /proc/thread-self/schedstat), or -1 if the kernel does not
 * say; *tid is the thread, so that a reading from another thread is
 * never subtracted from this one's. */
static int64_t run_delay(pid_t *tid)
{
	char buf[128];
	unsigned long long run, wait;
	int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	*tid = (pid_t)syscall(SYS_gettid);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (int64_t)wait : -1;
}

/* The part of [from, to) inside the window. */
static int64_t in_window(int64_t from, int64_t to)
{
	int64_t start = atomic_load(&win_start), end = atomic_load(&win_end);

	if (from < start)
		from = start;
	if (to > end)
		to = end;
	return to > from ? to - from : 0;
}

static void keep_max(_Atomic int64_t *max, int64_t v)
{
	if (v > atomic_load_explicit(max, memory_order_relaxed))
		atomic_store_explicit(max, v, memory_order_relaxed);
}

/* Waits until the spinner has finished a round that began after the
 * window's last change. */
static void window_sync(void)
{
	uint64_t gen = atomic_fetch_add(&win_gen, 1) + 1;

	while (atomic_load(&seen_gen) != gen)
		co_yield();
}

static void window_open(void)
{
	atomic_store(&win_end, INT64_MAX);
	atomic_store(&win_start, bench_now());
	window_sync();
	atomic_store(&max_gap, 0); /* whatever the last round stored */
	atomic_store(&max_own, 0);
}

/* Closes the window at `end` and returns once the gap running at `end`
 * (if any) has been counted up to it: the spinner's round that sees the
 * new end ends after it. */
static void window_close(int64_t end)
{
	atomic_store(&win_end, end);
	window_sync();
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
	int64_t last = bench_now(), own_from = last, checked = last;
	pid_t tid;
	int64_t delay = run_delay(&tid);
	(void)arg;

	atomic_store(&spinning, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t gen = atomic_load(&win_gen);
		int64_t now = bench_now();

		keep_max(&max_gap, in_window(last, now));
		if (now - last <= OWN_CHECK_GAP &&
		    now - checked < OWN_CHECK_EVERY) {
			keep_max(&max_own, in_window(own_from, now));
			own_from = now;
		} else {
			/* The gap less the time this thread waited for a CPU
			 * since the last reading, at most its part inside the
			 * window.  The reading is taken after every gap worth
			 * explaining and every OWN_CHECK_EVERY, so little of
			 * that waiting belongs to earlier gaps. */
			pid_t tid2;
			int64_t d = run_delay(&tid2);
			int64_t waited = delay >= 0 && d >= delay && tid2 == tid
						 ? d - delay
						 : 0;
			int64_t own = now - own_from - waited;
			int64_t in = in_window(own_from, now);
			keep_max(&max_own, own < in ? (own > 0 ? own : 0) : in);
			delay = d;
			tid = tid2;
			/* The read's own time is the bench's, not the
			 * writer's: left out of _own, kept in the raw gap. */
			checked = own_from = bench_now();
		}
		last = now;
		atomic_store(&seen_gen, gen);
	}
}

/* The machine's own noise: the longest gap the spinner sees while the
 * writer merely sleeps for as long as a write took.  A stall is only
 * Copper's if it stands above this. */
static double noise_floor(double ms)
{
	window_open();
	co_sleep((int64_t)(ms * 1e6));
	window_close(bench_now());
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
	int64_t end = bench_now();
	window_close(end);
	*ms = (double)(end - start) / 1e6;
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
