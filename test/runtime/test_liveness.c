/* SPDX-License-Identifier: MIT */
/*
 * test_liveness.c - liveness of the scheduler and of co_run: tasks that
 * never park must not strand others, co_run must return when task 1
 * returns and leave nothing dangerous behind, spawning stays bounded, the
 * stack guard holds for large frames, select's choices are random per
 * run, and a runtime with many parked tasks tears down.
 *
 * Scenario groups:
 *   1. Stranding     a task that waits behind a task that never parks is
 *                    taken by the other, idle worker within 100 ms (the
 *                    runtime promises 1 ms); COPPER_PROCS=2.  Three ways to
 *                    be waiting: in the worker's yield slot (co_yield), in
 *                    its run queue and runnext (co_go), in runnext after a
 *                    channel send readied it.  20 rounds each, every one
 *                    begun with a 1 ms sleep so that the other worker is
 *                    asleep in its loop, not spinning.  In the yield-slot
 *                    case task 1 waits 0-45 us (by round) between co_go
 *                    and its first co_yield: the other worker, woken by
 *                    co_go, is then part-way through its bounded spin
 *                    when the slot fills, which is when it was missed
 *                    (without that, one round in hundreds stranded).
 *   2. Abandoning    co_run returns within 1 s of task 1 returning while
 *                    other tasks spin or loop on usleep without ever
 *                    parking; co_run meanwhile returns -EBUSY, and works
 *                    again once they have returned.  COPPER_PROCS=1, 2, 4.
 *                    In the helper: it leaves threads behind.
 *   3. Abandoned     channels, mutexes, conds and wait groups that tasks
 *      objects       of one co_run were parked on are safe to use in the
 *                    next, and those tasks never run again.  COPPER_PROCS=
 *                    1, 2, 4.  In the helper: today it crashes.
 *   4. Spawn storm   8 tasks spawning 100,000 children each, without
 *                    parking, keep fewer than 20,000 tasks alive at once
 *                    (sampled every 1024 spawns).  Past 100,000 the
 *                    spawners stop: the bound is long broken, and 800,000
 *                    live stacks would cost gigabytes.
 *   5. Big frame     a 300 KiB frame (more than the guard page and the
 *                    stack) ends the process with "fatal error: stack
 *                    overflow" naming the task, exit status 2, and faults
 *                    before its lowest byte is written (the helper is
 *                    built with -fstack-clash-protection; unprobed, that
 *                    byte lands in a neighbour's stack and the fault
 *                    comes only later, from the writes upwards).
 *   6. Select seed   the choices of co_select among ready cases differ
 *                    from one run of a program to the next.
 *   7. Teardown      co_run returns 0 with 200,000 tasks parked for ever
 *                    on one channel, and the next co_run works.
 *   8. Kernel-stuck  both workers blocked in write(2) on a full pipe for
 *                    1.5 s: a task ticking every 10 ms keeps ticking
 *                    (the monitor adds a worker).
 *   9. Stalls        COPPER_STALL_MS=50 and a task computing for 300 ms:
 *                    the report on stderr names it, with its labels and
 *                    symbolized stack, and the JSON dump its longest run.
 *  10. Misuse        unlocking what nobody holds, closing a closed
 *                    channel, sending on it, a wait group below zero: the
 *                    codes stay, and COPPER_MISUSE reports (once per call
 *                    site), stops the program (fatal) or stays silent.
 *  11. SIGQUIT       kill -QUIT prints every task (debug=2) on stderr and
 *                    exits 2, as Go does; COPPER_SIGQUIT=0 leaves the
 *                    signal to the program.
 *
 * How waits end.  Every wait has a deadline kept by something that
 * cannot be stranded: in this process a plain pthread (the watchdog),
 * which after 2 s without progress sets the flag the spinning task waits
 * for and records a failure that says what hung; for the helper, this
 * process, which kills it after a timeout (and the helper has a watchdog
 * thread of its own that names the step it was in).
 *
 * Each case sets the COPPER_PROCS it needs; setup saves the suite's value
 * and teardown puts it back.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <signal.h>
#include <time.h>

#include "test_util.h"

#include "runtime/testing.h"

static char *saved_procs;

static int setup_env(void **state)
{
	(void)state;
	const char *p = getenv("COPPER_PROCS");
	saved_procs = p ? strdup(p) : NULL;
	unsetenv("COPPER_PROCS");
	return 0;
}

static void wd_stop(void);

static int teardown_env(void **state)
{
	(void)state;
	wd_stop();
	if (saved_procs)
		setenv("COPPER_PROCS", saved_procs, 1);
	else
		unsetenv("COPPER_PROCS");
	free(saved_procs);
	saved_procs = NULL;
	return 0;
}

/* ------------------------------------------------------------------------
 * The watchdog: a plain thread.  While the scenario names what it waits
 * for (wd_what non-NULL), wd.progress() must change at least every
 * timeout; otherwise the watchdog sets *wd.release (the flag the spinning
 * task polls), so that the stuck task can run again, and records a
 * failure naming what hung.
 * ---------------------------------------------------------------------- */

static struct {
	pthread_t th;
	bool running;
	long (*progress)(void);
	_Atomic int *release;
	int64_t timeout_ns;
	_Atomic int stop;
	_Atomic int fired;
} wd;

static _Atomic(const char *) wd_what; /* NULL: nothing is watched */
static _Atomic int wd_round;          /* the scenario's round, for messages */

static void *wd_thread(void *arg)
{
	(void)arg;
	long last = wd.progress();
	int64_t since = co_now();

	while (!atomic_load(&wd.stop)) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
		long p = wd.progress();
		int64_t now = co_now();
		const char *what = atomic_load(&wd_what);
		if (p != last || !what) {
			last = p;
			since = now;
			continue;
		}
		if (now - since < wd.timeout_ns)
			continue;
		atomic_store(wd.release, 1);
		atomic_fetch_add(&wd.fired, 1);
		tu_fail(__FILE__, __LINE__,
			"round %d: no progress for %lld ms: %s (the watchdog "
			"set the release flag)",
			atomic_load(&wd_round), (long long)((now - since) / TU_MS),
			what);
		since = now;
	}
	return NULL;
}

static void wd_start(long (*progress)(void), _Atomic int *release,
		     int64_t timeout_ns)
{
	wd.progress = progress;
	wd.release = release;
	wd.timeout_ns = timeout_ns;
	atomic_store(&wd.stop, 0);
	atomic_store(&wd.fired, 0);
	atomic_store(&wd_what, NULL);
	atomic_store(&wd_round, 0);
	assert_int_equal(pthread_create(&wd.th, NULL, wd_thread, NULL), 0);
	wd.running = true;
}

static void wd_stop(void)
{
	if (!wd.running)
		return;
	atomic_store(&wd.stop, 1);
	pthread_join(wd.th, NULL);
	wd.running = false;
}

/* co_run under the watchdog started by the caller; stops it, then asserts
 * co_run's result, the failures recorded, and that nothing is left. */
static void run_watched(void (*main_fn)(void *), void *arg)
{
	int rc = co_run(main_fn, arg);

	wd_stop();
	assert_int_equal(rc, 0);
	tu_assert_no_failures();
	assert_int_equal(co_num_tasks(), 0);
	assert_int_equal(co_self(), 0);
}

/* ------------------------------------------------------------------------
 * Running the helper with a timeout
 * ---------------------------------------------------------------------- */

static struct tu_proc proc, proc2;


/* Runs the liveness helper in mode with COPPER_PROCS=procs (0: unset)
 * and the environment changes in extra (as tu_proc_run's env; may be
 * NULL); returns true if it had to be killed after timeout_s. */
static bool run_helper_env(const char *mode, int procs,
			   const char *const *extra, int timeout_s,
			   struct tu_proc *p)
{
	char procs_env[32];
	const char *env[8] = {procs_env};
	char *argv[] = {(char *)tu_helper("COPPER_TEST_LIVENESS_HELPER"),
			(char *)mode, NULL};
	size_t n = 1;

	if (procs > 0)
		snprintf(procs_env, sizeof(procs_env), "COPPER_PROCS=%d", procs);
	else
		snprintf(procs_env, sizeof(procs_env), "COPPER_PROCS");
	for (size_t i = 0; extra && extra[i]; i++) {
		assert_true(n + 1 < sizeof(env) / sizeof(env[0]));
		env[n++] = extra[i];
	}
	env[n] = NULL;
	return tu_proc_run_timeout(argv, env, p, timeout_s * 1000);
}

static bool run_helper(const char *mode, int procs, int timeout_s,
		       struct tu_proc *p)
{
	return run_helper_env(mode, procs, NULL, timeout_s, p);
}

/* "exit 1", "killed by signal 11 (Segmentation fault)", ... */
static const char *status_text(int status, bool killed, int timeout_s)
{
	static char buf[128];

	if (killed)
		snprintf(buf, sizeof(buf),
			 "still running after %d s: killed by this test",
			 timeout_s);
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, sizeof(buf), "status 0x%x", status);
	return buf;
}

/* The last "ok <step>" line of the helper's stdout, or "(none)". */
static const char *last_ok(const char *out)
{
	static char buf[256];
	const char *last = NULL;

	for (const char *p = out; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "ok ", 3) == 0)
			last = p + 3;
	}
	if (!last)
		return "(none)";
	size_t n = strcspn(last, "\n");
	snprintf(buf, sizeof(buf), "%.*s", (int)n, last);
	return buf;
}

/* Copies the value after "key=" in text (up to a space or newline) into
 * buf; false if absent. */
static bool find_value(const char *text, const char *key, char *buf,
		       size_t len)
{
	char want[64];
	snprintf(want, sizeof(want), "%s=", key);
	const char *p = strstr(text, want);
	if (!p)
		return false;
	p += strlen(want);
	size_t n = strcspn(p, " \n");
	snprintf(buf, len, "%.*s", (int)n, p);
	return true;
}

/* The line of text that says most about how the helper failed: its own
 * "FAIL:" or "timed out" line, a sanitizer's or the runtime's error
 * line; else its first line; "(nothing)" for an empty text. */
static const char *key_line(const char *text)
{
	static const char *const marks[] = {
		"FAIL:", "timed out", "ERROR: AddressSanitizer", "runtime error",
		"fatal error",
	};
	static char buf[480];
	const char *at = NULL;

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]) && !at; i++)
		at = strstr(text, marks[i]);
	if (at) {
		while (at > text && at[-1] != '\n')
			at--;
	} else {
		at = text + strspn(text, "\n");
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(at, "\n"), at);
	return buf[0] ? buf : "(nothing)";
}

/* Writes each line of text to stderr behind a bar (never to stdout: the
 * helper prints lines like "ok <step>", which TAP would read). */
static void dump_lines(const char *title, const char *text)
{
	fprintf(stderr, "  %s:\n", title);
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		fprintf(stderr, "  | %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* Fails the case: the helper's whole output goes to stderr first (cmocka
 * cuts messages at 1 KiB), then the summary, with the key line of the
 * helper's stderr. */
#define helper_fail(p, ...)                                                \
	do {                                                               \
		char sum_[640];                                            \
		snprintf(sum_, sizeof(sum_), __VA_ARGS__);                 \
		dump_lines("helper stdout", (p)->out);                     \
		dump_lines("helper stderr", (p)->err);                     \
		fail_msg("%s; helper stderr: \"%s\"", sum_,              \
			 key_line((p)->err));                              \
	} while (0)

/* ------------------------------------------------------------------------
 * 1. Stranding behind a task that never parks
 * ---------------------------------------------------------------------- */

#define STRAND_ROUNDS 20
#define STRAND_BOUND (100 * TU_MS)     /* the promise is 1 ms */
#define STRAND_WATCHDOG (2 * TU_SEC)

static _Atomic int sp_release;  /* the spinning task stops once set */
static _Atomic int sp_started;  /* B began spinning */
static _Atomic int sp_done;     /* B saw the release */
static _Atomic long sp_progress; /* bumped whenever the waiting side runs */
static int64_t sp_worst;        /* the slowest round, ns */

static long sp_progress_get(void) { return atomic_load(&sp_progress); }

/* B: spins, never parks nor yields, until released. */
static void task_spin_until_release(void *arg)
{
	(void)arg;
	atomic_store(&sp_started, 1);
	while (!atomic_load_explicit(&sp_release, memory_order_relaxed))
		;
	atomic_store(&sp_done, 1);
}

/* Task 1 waits in co_yield, i.e. in its worker's yield slot, while B spins
 * on that worker. */
static void task_main_yield_slot(void *arg)
{
	(void)arg;
	for (int r = 0; r < STRAND_ROUNDS; r++) {
		co_sleep(TU_MS); /* the other worker goes to sleep */
		atomic_store(&wd_round, r);
		atomic_store(&sp_started, 0);
		atomic_store(&sp_done, 0);
		atomic_store(&sp_release, 0);
		int64_t t0 = co_now();
		if (!co_go(task_spin_until_release, NULL)) {
			CHECK(!"co_go failed");
			return;
		}
		/* 0 to 45 us before the first yield, each twice: the other
		 * worker, woken by co_go, has spun for that long when the
		 * slot fills (its spin is bounded: a slot filled late in it
		 * must still be found). */
		int64_t until = co_now() + (r % 10) * 5000;
		while (co_now() < until)
			;
		atomic_store(&wd_what,
			     "task 1, yielding (in its worker's yield slot), "
			     "did not run while task B spun on the same worker "
			     "without parking: the other worker stayed idle");
		while (!atomic_load(&sp_started) && !atomic_load(&sp_release)) {
			atomic_fetch_add(&sp_progress, 1);
			co_yield();
		}
		atomic_fetch_add(&sp_progress, 1);
		int64_t seen = co_now() - t0;
		atomic_store(&sp_release, 1);
		atomic_store(&wd_what,
			     "task 1 waited for B to finish after releasing it");
		while (!atomic_load(&sp_done)) {
			atomic_fetch_add(&sp_progress, 1);
			co_yield();
		}
		atomic_store(&wd_what, NULL);
		int64_t took = co_now() - t0;
		if (took > sp_worst)
			sp_worst = took;
		if (took > STRAND_BOUND) {
			tu_fail(__FILE__, __LINE__,
				"round %d of %d took %lld ms (task 1 saw B "
				"start after %lld ms), want under %lld ms: "
				"task 1 waited in the yield slot behind a task "
				"that never parks while the other worker idled",
				r, STRAND_ROUNDS, (long long)(took / TU_MS),
				(long long)(seen / TU_MS),
				(long long)(STRAND_BOUND / TU_MS));
			break;
		}
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_liveness_yield_slot_not_stranded(void **state)
{
	(void)state;
	tu_setenv("COPPER_PROCS", "2");
	sp_worst = 0;
	tu_reset();
	wd_start(sp_progress_get, &sp_release, STRAND_WATCHDOG);
	run_watched(task_main_yield_slot, NULL);
	printf("# yield slot: slowest round %lld us\n",
	       (long long)(sp_worst / 1000));
}

/* Readied tasks note when they ran, relative to sp_t0. */
static _Atomic int64_t sp_t0;
static _Atomic int64_t sp_lat[2]; /* -1 until the task ran */

static void task_note_latency(void *arg)
{
	int i = (int)(intptr_t)arg;

	atomic_store(&sp_lat[i], co_now() - atomic_load(&sp_t0));
	atomic_fetch_add(&sp_progress, 1);
}

/* After each round: the tasks that ran late (or not before the release),
 * and waiting for those that have not run yet, now that task 1 parks. */
static bool sp_round_end(int r, int n, const char *how)
{
	bool ok = true;

	atomic_store(&wd_what, NULL);
	for (int i = 0; i < n; i++) {
		int64_t lat = atomic_load(&sp_lat[i]);
		if (lat >= 0 && lat <= STRAND_BOUND) {
			if (lat > sp_worst)
				sp_worst = lat;
			continue;
		}
		if (ok)
			tu_fail(__FILE__, __LINE__,
				"round %d of %d: a task readied by %s waited "
				"%s%lld ms while its worker ran a task that "
				"never parks (want under %lld ms: the other, "
				"idle worker must take it)",
				r, STRAND_ROUNDS, how, lat < 0 ? "over " : "",
				(long long)((lat < 0 ? STRAND_WATCHDOG : lat) /
					    TU_MS),
				(long long)(STRAND_BOUND / TU_MS));
		ok = false;
	}
	/* Task 1 parks now: its own worker runs whatever is left. */
	CHECK(TU_WAIT_UNTIL(atomic_load(&sp_lat[0]) >= 0 &&
				    (n < 2 || atomic_load(&sp_lat[1]) >= 0),
			    5 * TU_SEC));
	return ok;
}

/* Task 1 spins without parking after two co_go: the first child sits in
 * its worker's run queue (pushed there by the second), the second in
 * runnext. */
static void task_main_runnext(void *arg)
{
	(void)arg;
	for (int r = 0; r < STRAND_ROUNDS; r++) {
		co_sleep(TU_MS); /* the other worker goes to sleep */
		atomic_store(&wd_round, r);
		atomic_store(&sp_lat[0], -1);
		atomic_store(&sp_lat[1], -1);
		atomic_store(&sp_release, 0);
		atomic_store(&sp_t0, co_now());
		if (!co_go(task_note_latency, (void *)0) ||
		    !co_go(task_note_latency, (void *)1)) {
			CHECK(!"co_go failed");
			return;
		}
		atomic_store(&wd_what,
			     "two tasks task 1 started with co_go (one in its "
			     "worker's run queue, one in runnext) did not run "
			     "while task 1 spun without parking: the other "
			     "worker stayed idle");
		while ((atomic_load_explicit(&sp_lat[0], memory_order_relaxed) <
				0 ||
			atomic_load_explicit(&sp_lat[1], memory_order_relaxed) <
				0) &&
		       !atomic_load_explicit(&sp_release, memory_order_relaxed))
			;
		if (!sp_round_end(r, 2, "co_go (run queue and runnext)"))
			break;
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_liveness_runnext_not_stranded(void **state)
{
	(void)state;
	tu_setenv("COPPER_PROCS", "2");
	sp_worst = 0;
	tu_reset();
	wd_start(sp_progress_get, &sp_release, STRAND_WATCHDOG);
	run_watched(task_main_runnext, NULL);
	printf("# co_go while spinning: slowest start %lld us\n",
	       (long long)(sp_worst / 1000));
}

/* A receiver parks on an unbuffered channel; once the other worker is
 * asleep, task 1 sends (the receiver goes to task 1's runnext) and spins
 * without parking. */
static co_chan *wake_chan;

static void task_wake_receiver(void *arg)
{
	int v = -1;

	(void)arg;
	CHECK_EQ(co_chan_recv(wake_chan, &v), 0);
	atomic_store(&sp_lat[0], co_now() - atomic_load(&sp_t0));
	atomic_fetch_add(&sp_progress, 1);
}

static void task_main_chan_wake(void *arg)
{
	(void)arg;
	wake_chan = co_chan_new(sizeof(int), 0);
	if (!wake_chan) {
		CHECK(!"co_chan_new failed");
		return;
	}
	for (int r = 0; r < STRAND_ROUNDS; r++) {
		atomic_store(&wd_round, r);
		atomic_store(&sp_lat[0], -1);
		atomic_store(&sp_release, 0);
		uint64_t id = co_go(task_wake_receiver, NULL);
		if (!id) {
			CHECK(!"co_go failed");
			break;
		}
		if (!TU_WAIT_UNTIL(status_is(id, "chan receive"), 5 * TU_SEC)) {
			CHECK(!"the receiver never parked in chan receive");
			break;
		}
		co_sleep(TU_MS); /* the other worker goes to sleep */
		int v = r;
		atomic_store(&sp_t0, co_now());
		CHECK_EQ(co_chan_send(wake_chan, &v), 0);
		atomic_store(&wd_what,
			     "a receiver readied by task 1's channel send did "
			     "not run while task 1 spun without parking: the "
			     "other worker stayed idle");
		while (atomic_load_explicit(&sp_lat[0], memory_order_relaxed) <
			       0 &&
		       !atomic_load_explicit(&sp_release, memory_order_relaxed))
			;
		if (!sp_round_end(r, 1, "a channel send"))
			break;
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(wake_chan);
	wake_chan = NULL;
}

static void test_liveness_chan_wake_not_stranded(void **state)
{
	(void)state;
	tu_setenv("COPPER_PROCS", "2");
	sp_worst = 0;
	tu_reset();
	wd_start(sp_progress_get, &sp_release, STRAND_WATCHDOG);
	run_watched(task_main_chan_wake, NULL);
	printf("# channel wake-up while spinning: slowest start %lld us\n",
	       (long long)(sp_worst / 1000));
}

/* ------------------------------------------------------------------------
 * 2. co_run returns when task 1 returns (helper: it leaves threads)
 * ---------------------------------------------------------------------- */

#define ABANDON_TIMEOUT_S 30

static void check_abandon(int procs)
{
	bool killed = run_helper("abandon", procs, ABANDON_TIMEOUT_S, &proc);
	char ms[32] = "?";

	find_value(proc.out, "return_ms", ms, sizeof(ms));
	printf("# COPPER_PROCS=%d: co_run returned %s ms after task 1\n",
	       procs, ms);
	if (killed || !WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 0)
		helper_fail(&proc,
			    "COPPER_PROCS=%d: the abandon helper ended with %s "
			    "(want exit 0)",
			    procs,
			    status_text(proc.status, killed, ABANDON_TIMEOUT_S));
}

static void test_liveness_run_returns_p1(void **state)
{
	(void)state;
	check_abandon(1);
}

static void test_liveness_run_returns_p2(void **state)
{
	(void)state;
	check_abandon(2);
}

static void test_liveness_run_returns_p4(void **state)
{
	(void)state;
	check_abandon(4);
}

/* ------------------------------------------------------------------------
 * 3. Objects abandoned by one co_run, used in the next (helper)
 * ---------------------------------------------------------------------- */

#define OBJECTS_TIMEOUT_S 40

static void check_objects(int procs)
{
	bool killed = run_helper("objects", procs, OBJECTS_TIMEOUT_S, &proc);

	if (killed || !WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 0)
		helper_fail(&proc,
			    "COPPER_PROCS=%d: the objects helper ended with %s "
			    "(want exit 0); last step done: %s",
			    procs,
			    status_text(proc.status, killed, OBJECTS_TIMEOUT_S),
			    last_ok(proc.out));
}

static void test_liveness_abandoned_objects_p1(void **state)
{
	(void)state;
	check_objects(1);
}

static void test_liveness_abandoned_objects_p2(void **state)
{
	(void)state;
	check_objects(2);
}

static void test_liveness_abandoned_objects_p4(void **state)
{
	(void)state;
	check_objects(4);
}

/* Objects whose waiters were tasks of a run that ended, used from plain
 * code before any new run: the waiters are forgotten (no crash in the
 * waiter queues), and the channel frees. */
static co_chan *between_ch;
static co_mutex between_mu;

static void task_between_recv(void *arg)
{
	(void)arg;
	co_chan_recv(between_ch, NULL);
}

static void task_between_lock(void *arg)
{
	(void)arg;
	co_mutex_lock(&between_mu);
}

static void task_main_between(void *arg)
{
	(void)arg;
	between_ch = co_chan_new(sizeof(int), 0);
	CHECK(between_ch != NULL);
	CHECK_EQ(co_mutex_init(&between_mu), 0);
	CHECK_EQ(co_mutex_lock(&between_mu), 0);
	CHECK(co_go(task_between_recv, NULL) != 0);
	CHECK(co_go(task_between_lock, NULL) != 0);
	co_sleep(20 * TU_MS); /* both park */
}

static void test_liveness_objects_between_runs(void **state)
{
	(void)state;
	tu_run(task_main_between, NULL);
	assert_int_equal(co_chan_close(between_ch), 0);
	assert_int_equal(co_mutex_unlock(&between_mu), 0);
	assert_int_equal(co_mutex_trylock(&between_mu), 0);
	assert_int_equal(co_mutex_unlock(&between_mu), 0);
	co_chan_free(between_ch);
}

/* ------------------------------------------------------------------------
 * 4. Spawn storm
 * ---------------------------------------------------------------------- */

#define STORM_SPAWNERS 8
#define STORM_CHILDREN 100000   /* per spawner, scaled */
#define STORM_BOUND 20000       /* live tasks the runtime may reach */
#define STORM_CAP 100000        /* spawners stop here: the bound is long
				   broken and memory is not free */
#define STORM_WATCHDOG (10 * TU_SEC)

static co_wg storm_wg;
static _Atomic size_t storm_peak;
static _Atomic long storm_spawned, storm_ran;
static _Atomic int storm_abort;  /* spawners stop spawning */
static _Atomic int storm_capped; /* a spawner stopped at STORM_CAP */

static long storm_progress(void)
{
	return atomic_load(&storm_spawned) + atomic_load(&storm_ran);
}

static void storm_note(size_t n)
{
	size_t peak = atomic_load(&storm_peak);
	while (n > peak && !atomic_compare_exchange_weak(&storm_peak, &peak, n))
		;
}

static void task_storm_child(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&storm_ran, 1, memory_order_relaxed);
	CHECK_EQ(co_wg_done(&storm_wg), 0);
}

static void task_storm_spawner(void *arg)
{
	long n = (long)(intptr_t)arg;

	for (long i = 0; i < n && !atomic_load_explicit(&storm_abort,
						       memory_order_relaxed);
	     i++) {
		CHECK_EQ(co_wg_add(&storm_wg, 1), 0);
		if (!co_go(task_storm_child, NULL)) {
			CHECK(!"co_go failed in the spawn storm");
			co_wg_done(&storm_wg);
			break;
		}
		atomic_fetch_add_explicit(&storm_spawned, 1,
					  memory_order_relaxed);
		if ((i & 1023) == 1023) {
			size_t live = co_num_tasks();
			storm_note(live);
			if (live > STORM_CAP) {
				atomic_store(&storm_capped, 1);
				break;
			}
		}
	}
	CHECK_EQ(co_wg_done(&storm_wg), 0);
}

static void task_main_storm(void *arg)
{
	long n = (long)(intptr_t)arg;

	CHECK_EQ(co_wg_init(&storm_wg), 0);
	CHECK_EQ(co_wg_add(&storm_wg, STORM_SPAWNERS), 0);
	for (int i = 0; i < STORM_SPAWNERS; i++)
		if (!co_go(task_storm_spawner, (void *)(intptr_t)n)) {
			CHECK(!"co_go failed");
			co_wg_done(&storm_wg);
		}
	atomic_store(&wd_what,
		     "the spawn storm: neither a spawn nor a child's run");
	CHECK_EQ(co_wg_wait(&storm_wg), 0);
	atomic_store(&wd_what, NULL);
	CHECK_EQ(atomic_load(&storm_ran), atomic_load(&storm_spawned));
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
}

static void test_liveness_spawn_storm_bounded(void **state)
{
	long n = tu_scale(STORM_CHILDREN);

	(void)state;
	tu_setenv("COPPER_PROCS", "2");
	atomic_store(&storm_peak, 0);
	atomic_store(&storm_spawned, 0);
	atomic_store(&storm_ran, 0);
	atomic_store(&storm_abort, 0);
	atomic_store(&storm_capped, 0);
	tu_reset();
	wd_start(storm_progress, &storm_abort, STORM_WATCHDOG);
	int64_t t0 = co_now();
	run_watched(task_main_storm, (void *)(intptr_t)n);
	size_t peak = atomic_load(&storm_peak);
	printf("# spawn storm: %ld spawns in %lld ms, peak %zu live tasks\n",
	       atomic_load(&storm_spawned),
	       (long long)((co_now() - t0) / TU_MS), peak);
	if (atomic_load(&storm_capped))
		fail_msg("the spawn storm (%d spawners x %ld children, never "
			 "parking) passed %d live tasks, where the spawners "
			 "stopped (want under %d at any time)",
			 STORM_SPAWNERS, n, STORM_CAP, STORM_BOUND);
	if (peak >= STORM_BOUND)
		fail_msg("the spawn storm (%d spawners x %ld children, never "
			 "parking) reached %zu live tasks (want under %d)",
			 STORM_SPAWNERS, n, peak, STORM_BOUND);
}

/* ------------------------------------------------------------------------
 * 5. A frame larger than the guard page (helper)
 * ---------------------------------------------------------------------- */


#define BIGFRAME_TIMEOUT_S 30

static void test_liveness_bigframe_overflow(void **state)
{
	(void)state;
	/* The default stack and guard, whatever the caller's environment. */
	static const char *const env[] = {"COPPER_STACK_SIZE=256k",
					  "COPPER_TEST_GUARD_MODE", NULL};
	bool killed = run_helper_env("bigframe", 0, env, BIGFRAME_TIMEOUT_S,
				     &proc);
	const char *st = status_text(proc.status, killed, BIGFRAME_TIMEOUT_S);

	if (strstr(proc.out, "after-bigframe"))
		helper_fail(&proc,
			    "a 300 KiB frame did not fault in the guard page: "
			    "the task came back (%s)",
			    st);
	if (strstr(proc.out, "wrote-lowest"))
		helper_fail(&proc,
			    "the lowest byte of a 300 KiB frame was written, "
			    "300 KiB below the top of a 256 KiB stack, before "
			    "any fault: the frame was not probed page by page "
			    "(%s)",
			    st);
	if (killed || !WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 2)
		helper_fail(&proc,
			    "the bigframe helper ended with %s, want exit 2 "
			    "from the stack overflow report",
			    st);
	if (!strstr(proc.err, "fatal error: stack overflow"))
		helper_fail(&proc, "no \"fatal error: stack overflow\" in its "
				   "stderr");
	if (!strstr(proc.err, "bigframe"))
		helper_fail(&proc, "its stderr does not name the task "
				   "\"bigframe\"");
	unsigned long long id = 0, creator = 0;
	const char *ids = strstr(proc.out, "id=");
	if (!ids || sscanf(ids, "id=%llu creator=%llu", &id, &creator) != 2)
		helper_fail(&proc, "the helper printed no ids");
	assert_true(creator > 1); /* "parent", not task 1 */
	if (!tu_names_task(proc.err, "", id))
		helper_fail(&proc, "its stderr does not name task %llu", id);
	if (!tu_names_task(proc.err, "created by ", creator))
		helper_fail(&proc, "its stderr does not name creator %llu",
			    creator);
}

/* ------------------------------------------------------------------------
 * 6. select is random across runs (helper, twice)
 * ---------------------------------------------------------------------- */

#define SELECT_TIMEOUT_S 30

static void select_seq(struct tu_proc *p, char *seq, size_t len)
{
	bool killed = run_helper("select", 1, SELECT_TIMEOUT_S, p);

	if (killed || !WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
		helper_fail(p, "the select helper ended with %s (want exit 0)",
			    status_text(p->status, killed, SELECT_TIMEOUT_S));
	if (!find_value(p->out, "seq", seq, len) || strlen(seq) != 64 ||
	    strspn(seq, "01") != 64)
		helper_fail(p, "the select helper printed no sequence of 64 "
			       "choices");
	if (!strchr(seq, '0') || !strchr(seq, '1'))
		fail_msg("64 selects over two ready cases always chose the "
			 "same one: %s",
			 seq);
}

static void test_liveness_select_random_across_runs(void **state)
{
	char a[80], b[80];

	(void)state;
	select_seq(&proc, a, sizeof(a));
	select_seq(&proc2, b, sizeof(b));
	printf("# run 1: %s\n# run 2: %s\n", a, b);
	if (strcmp(a, b) == 0)
		fail_msg("two runs of a program chose the same 64 cases in a "
			 "row among two ready ones (%s): select's random seed "
			 "is the same in every run",
			 a);
}

/* ------------------------------------------------------------------------
 * 7. Teardown with many parked tasks
 * ---------------------------------------------------------------------- */

#define NPARKED_FOREVER 200000

static co_chan *forever_chan; /* nobody sends; kept reachable */
static _Atomic long forever_parking, forever_woke;
static _Atomic int64_t forever_t1_return;

static void task_park_forever(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&forever_parking, 1, memory_order_relaxed);
	co_chan_recv(forever_chan, NULL);
	atomic_fetch_add(&forever_woke, 1);
}

static void task_main_park_many(void *arg)
{
	long n = (long)(intptr_t)arg;

	forever_chan = co_chan_new(sizeof(int), 0);
	if (!forever_chan) {
		CHECK(!"co_chan_new failed");
		return;
	}
	for (long i = 0; i < n; i++)
		if (!co_go(task_park_forever, NULL)) {
			CHECK(!"co_go failed");
			return;
		}
	CHECK(TU_WAIT_UNTIL(atomic_load(&forever_parking) == n, 60 * TU_SEC));
	co_sleep(TU_MS); /* the last of them park */
	atomic_store(&forever_t1_return, co_now());
}

static void task_main_after_park_many(void *arg)
{
	(void)arg;
	CHECK_EQ(co_self(), 1);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK(co_go(task_note_latency, (void *)0) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sp_lat[0]) >= 0, 5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_liveness_teardown_many_parked(void **state)
{
	long n = tu_scale(NPARKED_FOREVER);

	(void)state;
	atomic_store(&forever_parking, 0);
	atomic_store(&forever_woke, 0);
	atomic_store(&forever_t1_return, 0);
	tu_reset();
	assert_int_equal(co_run(task_main_park_many, (void *)(intptr_t)n), 0);
	int64_t back = co_now();
	tu_assert_no_failures();
	assert_int_equal(co_num_tasks(), 0);
	printf("# %ld parked tasks: co_run returned %lld ms after task 1\n", n,
	       (long long)((back - atomic_load(&forever_t1_return)) / TU_MS));
	atomic_store(&sp_t0, co_now());
	atomic_store(&sp_lat[0], -1);
	tu_run(task_main_after_park_many, NULL);
	assert_int_equal(atomic_load(&forever_woke), 0);
}

/* ------------------------------------------------------------------------
 * 8. Every worker blocked in the kernel (the monitor)
 * ---------------------------------------------------------------------- */

#define KSTUCK_WRITE (1 << 20)          /* per writer; a pipe holds 64 KiB */
#define KSTUCK_HOLD (1500 * TU_MS)      /* how long the writers stay stuck */
#define KSTUCK_MIN_TICKS 50             /* of ~150 10 ms ticks */

static int kstuck_pipe[2];
static _Atomic int kstuck_writing, kstuck_written;
static _Atomic long kstuck_ticks;
static _Atomic int kstuck_stop;

/* One write of 1 MiB into a pipe nobody reads yet: the worker's thread
 * sits in the kernel, as on a full stderr pipe. */
static void task_kstuck_writer(void *arg)
{
	static char buf[KSTUCK_WRITE];
	size_t off = 0;

	(void)arg;
	atomic_fetch_add(&kstuck_writing, 1);
	while (off < sizeof(buf)) {
		ssize_t n = write(kstuck_pipe[1], buf + off, sizeof(buf) - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			CHECK(!"write to the pipe failed");
			break;
		}
		off += (size_t)n;
	}
	atomic_fetch_add(&kstuck_written, 1);
}

static void task_kstuck_ticker(void *arg)
{
	(void)arg;
	while (!atomic_load(&kstuck_stop)) {
		co_sleep(10 * TU_MS);
		atomic_fetch_add(&kstuck_ticks, 1);
	}
}

/* A plain thread drains the pipe after KSTUCK_HOLD: the test's task 1 may
 * itself wait behind the writers, so it cannot be the one to free them. */
static void *kstuck_drain(void *arg)
{
	char buf[65536];
	struct timespec hold = {KSTUCK_HOLD / TU_SEC, KSTUCK_HOLD % TU_SEC};
	struct pollfd pfd = {.fd = kstuck_pipe[0], .events = POLLIN};
	int64_t end;

	(void)arg;
	nanosleep(&hold, NULL);
	/* Non-blocking reads with a deadline: the last writer may count
	 * itself done just after the pipe ran empty. */
	end = co_now() + 30 * TU_SEC;
	while (atomic_load(&kstuck_written) < 2 && co_now() < end)
		if (poll(&pfd, 1, 10) > 0 &&
		    read(kstuck_pipe[0], buf, sizeof(buf)) < 0 &&
		    errno != EAGAIN && errno != EINTR)
			break;
	return NULL;
}

/*
 * The goroutine profile while both writers sit in write(2): libc's write
 * has no frame pointer of its own, and the frame chain through it must
 * end cleanly or go on through the writer's frames, never print a frame
 * that is not code ("?(...)").  The writers show as running in
 * task_kstuck_writer.
 */
static void kstuck_check_profile(void)
{
	static char text[65536];
	int fd = memfd_create("kstuck-profile", MFD_CLOEXEC);
	ssize_t n = -1;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_EQ(co_profile_write(co_profile_lookup("goroutine"), fd, 2), 0);
	if (lseek(fd, 0, SEEK_SET) == 0)
		n = read(fd, text, sizeof(text) - 1);
	close(fd);
	CHECK(n > 0);
	if (n <= 0)
		return;
	text[n] = '\0';
	CHECK(strstr(text, "task_kstuck_writer(...)") != NULL);
	if (strstr(text, "\n?("))
		tu_fail(__FILE__, __LINE__, "a frame that is not code in:\n%.3000s",
			text);
}

static void task_main_kstuck(void *arg)
{
	long ticks_held;

	(void)arg;
	CHECK(co_go(task_kstuck_ticker, NULL) != 0);
	co_sleep(20 * TU_MS);
	CHECK(co_go(task_kstuck_writer, NULL) != 0);
	CHECK(co_go(task_kstuck_writer, NULL) != 0);
	/* Task 1 keeps parking too: it must get a worker as well. */
	co_sleep(KSTUCK_HOLD / 2);
	kstuck_check_profile();
	co_sleep(KSTUCK_HOLD / 2 - 200 * TU_MS);
	ticks_held = atomic_load(&kstuck_ticks);
	printf("# both workers in write(2) for ~%lld ms: %ld ticks of 10 ms\n",
	       (long long)(KSTUCK_HOLD / TU_MS), ticks_held);
	CHECK_EQ(atomic_load(&kstuck_writing), 2);
	CHECK(ticks_held >= KSTUCK_MIN_TICKS);
	CHECK(TU_WAIT_UNTIL(atomic_load(&kstuck_written) == 2, 10 * TU_SEC));
	atomic_store(&kstuck_stop, 1);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

/*
 * COPPER_PROCS=2; both workers run a task blocked in write(2) on a full
 * pipe for 1.5 s; a task ticking every 10 ms keeps ticking (Go's sysmon
 * hands the P on; Copper's monitor adds a worker) and task 1 runs too.
 */
static void test_liveness_kernel_stuck_workers(void **state)
{
	pthread_t drain;

	(void)state;
	tu_setenv("COPPER_PROCS", "2");
	assert_int_equal(pipe(kstuck_pipe), 0);
	assert_int_equal(fcntl(kstuck_pipe[0], F_SETFL, O_NONBLOCK), 0);
	atomic_store(&kstuck_writing, 0);
	atomic_store(&kstuck_written, 0);
	atomic_store(&kstuck_ticks, 0);
	atomic_store(&kstuck_stop, 0);
	assert_int_equal(pthread_create(&drain, NULL, kstuck_drain, NULL), 0);
	tu_run(task_main_kstuck, NULL);
	pthread_join(drain, NULL);
	close(kstuck_pipe[0]);
	close(kstuck_pipe[1]);
}

/* ------------------------------------------------------------------------
 * 9. Stall reports (COPPER_STALL_MS)
 * ---------------------------------------------------------------------- */

#define STALL_TIMEOUT_S 30

static void want_in(const char *text, const char *what, const char *where)
{
	if (!strstr(text, what))
		helper_fail(&proc, "the stall report lacks %s in %s", what,
			    where);
}

/*
 * COPPER_STALL_MS=50, a task computing 300 ms without a switch: stderr has
 * the report while it runs (its id, name, labels, the function it
 * computes in with file:line, its creator) and the total when it
 * switched; the JSON dump carries its longest run.
 */
static void test_liveness_stall_report(void **state)
{
	static const char *const env[] = {"COPPER_STALL_MS=50", NULL};
	char id[32] = "", key[64], head[128];

	(void)state;
	bool killed = run_helper_env("stall", 2, env, STALL_TIMEOUT_S, &proc);
	if (killed || !WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 0)
		helper_fail(&proc, "the stall helper ended with %s (want exit 0)",
			    status_text(proc.status, killed, STALL_TIMEOUT_S));
	if (!find_value(proc.out, "cruncher", id, sizeof(id)))
		helper_fail(&proc, "the helper did not print the task's id");
	snprintf(head, sizeof(head), "copper: stall: goroutine %s has run for ",
		 id);
	want_in(proc.err, head, "stderr");
	want_in(proc.err, "without a switch:", "stderr");
	snprintf(head, sizeof(head), "goroutine %s [running labels:{", id);
	want_in(proc.err, head, "stderr");
	want_in(proc.err, "\"copper.name\": \"cruncher\"", "stderr");
	want_in(proc.err, "\"job\": \"crunch\"", "stderr");
	want_in(proc.err, "stall_crunch(...)\n\t", "stderr");
	want_in(proc.err, "liveness_helper.c:", "stderr");
	want_in(proc.err, "created by task_main_stall in goroutine 1", "stderr");
	snprintf(head, sizeof(head), "copper: stall: goroutine %s ran for about ",
		 id);
	want_in(proc.err, head, "stderr");

	/* {"id":<id>,...,"longest_run_ns":<ns>,...} in the JSON dump. */
	snprintf(key, sizeof(key), "{\"id\":%s,", id);
	const char *rec = strstr(proc.out, key);
	const char *lr = rec ? strstr(rec, "\"longest_run_ns\":") : NULL;
	if (!lr)
		helper_fail(&proc, "the JSON dump has no longest_run_ns for "
				   "task %s", id);
	long long ns = atoll(lr + strlen("\"longest_run_ns\":"));
	printf("# stall: task %s, longest run %lld ms\n", id, ns / 1000000);
	assert_true(ns >= 50 * TU_MS);
}

/* ------------------------------------------------------------------------
 * 10. Misuse reports (COPPER_MISUSE)
 * ---------------------------------------------------------------------- */

static int count_of(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

static void run_misuse(const char *setting)
{
	const char *env[] = {setting, NULL};
	bool killed = run_helper_env("misuse", 2, env, 30, &proc);

	if (killed || !WIFEXITED(proc.status))
		helper_fail(&proc, "%s: the misuse helper ended with %s",
			    setting, status_text(proc.status, killed, 30));
}

/* Default: every call returns its code, each misuse is reported once per
 * call site with the task's symbolized stack. */
static void test_liveness_misuse_reported(void **state)
{
	static const char *const kinds[] = {
		"copper: misuse: co_rwmutex_runlock of unlocked rwmutex",
		"copper: misuse: co_rwmutex_unlock of unlocked rwmutex",
		"copper: misuse: close of closed channel",
		"copper: misuse: negative co_wg counter",
	};

	(void)state;
	run_misuse("COPPER_MISUSE");
	if (WEXITSTATUS(proc.status) != 0 || !strstr(proc.out, "codes-ok"))
		helper_fail(&proc, "a misused call did not return its code");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (count_of(proc.err, kinds[i]) != 1)
			helper_fail(&proc, "want one \"%s\"", kinds[i]);
	/* Two call sites of co_mutex_unlock, one of them hit twice. */
	if (count_of(proc.err, "copper: misuse: co_mutex_unlock of unlocked "
			       "mutex") != 2)
		helper_fail(&proc, "want the mutex misuse once per call site");
	/* The send directly and the send in a select: two sites. */
	if (count_of(proc.err, "copper: misuse: send on closed channel") != 2)
		helper_fail(&proc, "want both sends on the closed channel");
	if (!strstr(proc.err, "\"copper.name\": \"misuser\"") ||
	    !strstr(proc.err, "unlock_twice(...)\n\t") ||
	    !strstr(proc.err, "task_misuser(...)\n\t") ||
	    !strstr(proc.err, "co_chan_close(...)\n\t") ||
	    !strstr(proc.err, "liveness_helper.c:"))
		helper_fail(&proc, "the reports lack the task or its stack");
}

/* COPPER_MISUSE=fatal: Go's fatal error at the first misuse, exit 2. */
static void test_liveness_misuse_fatal(void **state)
{
	(void)state;
	run_misuse("COPPER_MISUSE=fatal");
	if (WEXITSTATUS(proc.status) != 2 ||
	    strncmp(proc.err, "fatal error: co_mutex_unlock of unlocked mutex",
		    46) != 0 ||
	    !strstr(proc.err, "unlock_twice(...)") ||
	    strstr(proc.out, "codes-ok"))
		helper_fail(&proc, "COPPER_MISUSE=fatal: want exit 2 with "
				   "\"fatal error: co_mutex_unlock of unlocked "
				   "mutex\" and the stack");
}

/* COPPER_MISUSE=silent: only the codes. */
static void test_liveness_misuse_silent(void **state)
{
	(void)state;
	run_misuse("COPPER_MISUSE=silent");
	if (WEXITSTATUS(proc.status) != 0 || !strstr(proc.out, "codes-ok") ||
	    strstr(proc.err, "misuse"))
		helper_fail(&proc, "COPPER_MISUSE=silent: want the codes and "
				   "no report");
}

/* ------------------------------------------------------------------------
 * 11. SIGQUIT: every task on stderr, exit 2 (Go's behaviour)
 * ---------------------------------------------------------------------- */

/* Starts the helper in mode quit with setting in its environment, waits
 * for its "ready", sends it sig, and collects it into proc. */
static void run_quit(const char *setting, int sig)
{
	const char *env[] = {setting, NULL};
	char *argv[] = {(char *)tu_helper("COPPER_TEST_LIVENESS_HELPER"),
			(char *)"quit", NULL};
	bool sent;

	tu_proc_run_signal(argv, env, &proc, 20000, "ready", sig, &sent);
	if (!sent)
		helper_fail(&proc, "the quit helper never said ready");
}

static void test_liveness_sigquit_dumps_and_exits_2(void **state)
{
	(void)state;
	run_quit("COPPER_SIGQUIT=1", SIGQUIT);
	if (!WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 2 ||
	    strncmp(proc.err, "SIGQUIT: quit\n", 14) != 0 ||
	    !strstr(proc.err, "goroutine 1 [sleep]:") ||
	    !strstr(proc.err, "[chan receive labels:{\"copper.name\": "
			      "\"stuckone\"}]:") ||
	    !strstr(proc.err, "task_main_quit(...)"))
		helper_fail(&proc, "SIGQUIT: want exit 2 with every task on "
				   "stderr");
}

static void test_liveness_sigquit_0_leaves_it_alone(void **state)
{
	(void)state;
	run_quit("COPPER_SIGQUIT=0", SIGQUIT);
	if (!WIFSIGNALED(proc.status) || WTERMSIG(proc.status) != SIGQUIT ||
	    strstr(proc.err, "SIGQUIT: quit"))
		helper_fail(&proc, "COPPER_SIGQUIT=0: want the default action "
				   "(killed by SIGQUIT), no dump");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_env, teardown_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Stranding */
		T(test_liveness_yield_slot_not_stranded),
		T(test_liveness_runnext_not_stranded),
		T(test_liveness_chan_wake_not_stranded),
		/* 2. Abandoning */
		T(test_liveness_run_returns_p1),
		T(test_liveness_run_returns_p2),
		T(test_liveness_run_returns_p4),
		/* 3. Abandoned objects */
		T(test_liveness_abandoned_objects_p1),
		T(test_liveness_abandoned_objects_p2),
		T(test_liveness_abandoned_objects_p4),
		T(test_liveness_objects_between_runs),
		/* 4. Spawn storm */
		T(test_liveness_spawn_storm_bounded),
		/* 5. Big frame */
		T(test_liveness_bigframe_overflow),
		/* 6. Select seed */
		T(test_liveness_select_random_across_runs),
		/* 7. Teardown */
		T(test_liveness_teardown_many_parked),
		/* 8. Every worker in the kernel */
		T(test_liveness_kernel_stuck_workers),
		/* 9. Stall reports */
		T(test_liveness_stall_report),
		/* 10. Misuse reports */
		T(test_liveness_misuse_reported),
		T(test_liveness_misuse_fatal),
		T(test_liveness_misuse_silent),
		/* 11. SIGQUIT */
		T(test_liveness_sigquit_dumps_and_exits_2),
		T(test_liveness_sigquit_0_leaves_it_alone),
	};
	return cmocka_run_group_tests_name("runtime.liveness", tests, NULL,
					   NULL);
}
