/* SPDX-License-Identifier: MIT */
/*
 * test_sleep.c - tests of co_sleep and co_now (runtime/sched.c's sleeping
 * half and runtime/timer.c's per-worker heaps).
 *
 * Scenario groups:
 *   1. Order         sleepers wake in the order of their deadlines, whatever
 *                    the order they went to sleep in: exactly on one worker,
 *                    and across workers for deadlines 20 ms apart.
 *   2. Precision     a sleep never ends before the time asked, for
 *                    sub-millisecond sleeps too, and not absurdly late.
 *   3. Non-positive  co_sleep(0) and co_sleep(<0) yield: they return at
 *                    once and let the others run.
 *   4. Many          thousands of concurrent sleepers all wake, each no
 *                    earlier than asked, in about the longest sleep.
 *   5. Clock         co_now is monotonic in a task, across workers and
 *                    outside the runtime; co_sleep outside a task sleeps.
 *   6. Huge          co_sleep(INT64_MAX) and its neighbours do not come
 *                    back (the deadline must not wrap around).
 *
 * Registered with is_parallel: false, so that lateness bounds measure the
 * runtime and not other test programs.
 */
#include "test_util.h"

#include "runtime/testing.h"

/* How late a sleep may end.  The median is the runtime's precision; the
 * worst case only has to be sane, because a 2-core machine may deschedule
 * a worker for tens of milliseconds.  A lost wake-up shows up as seconds. */
#ifdef TU_ASAN
#define LATE_MAX (1000 * TU_MS)  /* one sleep, worst case */
#define LATE_MEDIAN (20 * TU_MS) /* typical */
#else
#define LATE_MAX (250 * TU_MS)
#define LATE_MEDIAN (5 * TU_MS)
#endif

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------
 * 1. Order
 * ---------------------------------------------------------------------- */

#define NORDER 8

/* Deadlines in steps, deliberately not in spawn order. */
static const int order_steps[NORDER] = {4, 1, 7, 3, 2, 6, 5, 8};
static int order_woke[NORDER];     /* wake rank of each sleeper */
static _Atomic int order_next;     /* next wake rank */
static _Atomic int64_t order_step; /* ns per step */

static void task_order_sleeper(void *arg)
{
	int i = (int)(uintptr_t)arg;
	co_sleep(order_steps[i] * atomic_load(&order_step));
	order_woke[i] = atomic_fetch_add(&order_next, 1);
}

static void task_main_order(void *arg)
{
	(void)arg;
	for (int i = 0; i < NORDER; i++)
		CHECK(co_go(task_order_sleeper, (void *)(uintptr_t)i) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&order_next) == NORDER, 5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

/* Runs the sleepers with step_ns between deadlines; false (and msg) if
 * one woke out of turn. */
static bool order_run(int64_t step_ns, char *msg, size_t len)
{
	atomic_store(&order_next, 0);
	atomic_store(&order_step, step_ns);
	tu_run(task_main_order, NULL);
	assert_int_equal(atomic_load(&order_next), NORDER);
	for (int i = 0; i < NORDER; i++) {
		int rank = order_steps[i] - 1;
		if (order_woke[i] != rank) {
			snprintf(msg, len, "the sleeper due at step %d woke "
				 "%d-th (steps of %lld ns)", order_steps[i],
				 order_woke[i] + 1, (long long)step_ns);
			return false;
		}
	}
	return true;
}

/* One worker: one timer heap, so the order is exact even for deadlines
 * 1 ms apart, and even when the machine delays the worker so that several
 * are due at once. */
static void test_sleep_order_follows_deadlines(void **state)
{
	const char *old = getenv("COPPER_PROCS");
	char *saved = old ? strdup(old) : NULL;
	char msg[128];

	(void)state;
	tu_setenv("COPPER_PROCS", "1");
	bool ok = order_run(TU_MS, msg, sizeof(msg));
	tu_setenv("COPPER_PROCS", saved);
	free(saved);
	if (!ok)
		fail_msg("%s", msg);
}

/* Several workers, several heaps: the order holds as far as the machine
 * runs the workers on time, so the steps are 20 ms and a miss is measured
 * again (three attempts). */
static void test_sleep_order_across_workers(void **state)
{
	char msg[128];

	(void)state;
	for (int attempt = 1; !order_run(20 * TU_MS, msg, sizeof(msg));
	     attempt++) {
		if (attempt == 3)
			fail_msg("%s (attempt %d)", msg, attempt);
		fprintf(stderr, "# attempt %d: %s; measuring again\n",
			attempt, msg);
	}
}

/* ------------------------------------------------------------------------
 * 2. Precision
 * ---------------------------------------------------------------------- */

#define NPRECISE 40

static const int64_t precise_ns[] = {
	1000, 50 * 1000, 100 * 1000, 250 * 1000, 500 * 1000, 900 * 1000,
	2 * TU_MS, 5 * TU_MS,
};
#define NSIZES (sizeof(precise_ns) / sizeof(precise_ns[0]))

static int64_t late[NSIZES][NPRECISE];  /* actual - asked, per sleep */

static void task_main_precise(void *arg)
{
	(void)arg;
	for (size_t s = 0; s < NSIZES; s++) {
		for (int i = 0; i < NPRECISE; i++) {
			int64_t t0 = co_now();
			co_sleep(precise_ns[s]);
			late[s][i] = co_now() - t0 - precise_ns[s];
		}
	}
}

/* Fills msg and returns false if one size's sleeps ended early, or late
 * beyond the bounds.  Early is a bug whatever the load; late may be the
 * machine's doing, so callers measure again before they fail. */
static bool lateness_ok(const char *who, char *msg, size_t len)
{
	int64_t sorted[NPRECISE];

	for (size_t s = 0; s < NSIZES; s++) {
		long long asked = (long long)precise_ns[s];
		memcpy(sorted, late[s], sizeof(sorted));
		qsort(sorted, NPRECISE, sizeof(*sorted), cmp_i64);
		if (sorted[0] < 0) {
			snprintf(msg, len, "%s: a %lld ns sleep ended %lld ns "
				 "early", who, asked, (long long)-sorted[0]);
			return false;
		}
		if (sorted[NPRECISE / 2] > LATE_MEDIAN) {
			snprintf(msg, len, "%s: %lld ns sleeps end %lld ns "
				 "late (median)", who, asked,
				 (long long)sorted[NPRECISE / 2]);
			return false;
		}
		if (sorted[NPRECISE - 1] > LATE_MAX) {
			snprintf(msg, len, "%s: a %lld ns sleep ended %lld ns "
				 "late", who, asked,
				 (long long)sorted[NPRECISE - 1]);
			return false;
		}
	}
	return true;
}

/* Runs main_fn up to three times until the lateness is within bounds;
 * an early wake-up fails at once. */
static void check_precision(const char *who, void (*main_fn)(void *))
{
	char msg[256];

	for (int attempt = 1;; attempt++) {
		tu_run(main_fn, NULL);
		if (lateness_ok(who, msg, sizeof(msg)))
			return;
		if (strstr(msg, "early") || attempt == 3)
			fail_msg("%s (attempt %d)", msg, attempt);
		fprintf(stderr, "# attempt %d: %s; measuring again\n",
			attempt, msg);
	}
}

static void test_sleep_submillisecond_not_early_not_late(void **state)
{
	(void)state;
	check_precision("alone", task_main_precise);
}

/* The same while other tasks keep the workers busy: a sleeper must be
 * woken by the busy worker's switch path, not only by an idle one. */
static _Atomic int busy_stop;
static _Atomic long busy_rounds;

static void task_busy_yielder(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_stop)) {
		atomic_fetch_add(&busy_rounds, 1);
		co_yield();
	}
}

static void task_main_precise_busy(void *arg)
{
	(void)arg;
	atomic_store(&busy_stop, 0);
	for (int i = 0; i < 4; i++)
		CHECK(co_go(task_busy_yielder, NULL) != 0);
	task_main_precise(NULL);
	atomic_store(&busy_stop, 1);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_sleep_submillisecond_among_busy_tasks(void **state)
{
	(void)state;
	atomic_store(&busy_rounds, 0);
	check_precision("busy", task_main_precise_busy);
	assert_true(atomic_load(&busy_rounds) > 0);
}

/* ------------------------------------------------------------------------
 * 3. Non-positive durations
 * ---------------------------------------------------------------------- */

static _Atomic int flag_set;
static _Atomic long zero_rounds;

static void task_flag_setter(void *arg)
{
	(void)arg;
	atomic_store(&flag_set, 1);
}

/* Waits with co_sleep(ns) only: with one worker, only a yield lets the
 * setter run. */
static void task_main_sleep_nonpositive(void *arg)
{
	int64_t ns = (int64_t)(intptr_t)arg;
	int64_t end = co_now() + 10 * TU_SEC;

	CHECK(co_go(task_flag_setter, NULL) != 0);
	while (!atomic_load(&flag_set) && co_now() < end) {
		co_sleep(ns);
		atomic_fetch_add(&zero_rounds, 1);
	}
	CHECK(atomic_load(&flag_set));
	/* Alone it returns at once: 1000 calls in far less than 1 ms each. */
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	int64_t t0 = co_now();
	for (int i = 0; i < 1000; i++)
		co_sleep(ns);
	CHECK(co_now() - t0 < 1000 * TU_MS);
}

static void test_sleep_zero_yields(void **state)
{
	(void)state;
	atomic_store(&flag_set, 0);
	atomic_store(&zero_rounds, 0);
	tu_run(task_main_sleep_nonpositive, (void *)(intptr_t)0);
	assert_int_equal(atomic_load(&flag_set), 1);
}

static void test_sleep_negative_yields(void **state)
{
	(void)state;
	atomic_store(&flag_set, 0);
	atomic_store(&zero_rounds, 0);
	tu_run(task_main_sleep_nonpositive, (void *)(intptr_t)-5000000);
	assert_int_equal(atomic_load(&flag_set), 1);
	atomic_store(&flag_set, 0);
	tu_run(task_main_sleep_nonpositive, (void *)(intptr_t)INT64_MIN);
	assert_int_equal(atomic_load(&flag_set), 1);
}

/* ------------------------------------------------------------------------
 * 4. Many sleepers
 * ---------------------------------------------------------------------- */

#define MANY_MAX_MS 50

static _Atomic long many_woke;
static _Atomic long many_early;

static void task_many_sleeper(void *arg)
{
	int64_t ns = (int64_t)(uintptr_t)arg;
	int64_t t0 = co_now();

	co_sleep(ns);
	if (co_now() - t0 < ns)
		atomic_fetch_add(&many_early, 1);
	atomic_fetch_add(&many_woke, 1);
}

static void task_main_many(void *arg)
{
	long n = (long)(intptr_t)arg;
	uint32_t r = 12345;
	int64_t t0 = co_now();

	for (long i = 0; i < n; i++) {
		r = r * 1103515245u + 12345u;
		int64_t ns = (int64_t)(r >> 8) % (MANY_MAX_MS * TU_MS) + 1000;
		CHECK(co_go(task_many_sleeper, (void *)(uintptr_t)ns) != 0);
		if (i % 256 == 255)
			co_yield();
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&many_woke) == n, 30 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	/* All of them slept at the same time, not one after the other. */
	CHECK(co_now() - t0 < 10 * TU_SEC);
}

static void test_sleep_many_concurrent_sleepers(void **state)
{
	long n = tu_scale(20000);

	(void)state;
	atomic_store(&many_woke, 0);
	atomic_store(&many_early, 0);
	tu_run(task_main_many, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&many_woke), n);
	assert_int_equal(atomic_load(&many_early), 0);
}

/* ------------------------------------------------------------------------
 * 5. Clock
 * ---------------------------------------------------------------------- */

static _Atomic int64_t clock_last;  /* latest co_now() seen by anyone */
static _Atomic long clock_backwards;
static _Atomic int clock_done;

/* Each reading must be >= the latest one any task published before it
 * read: the clock is one monotonic clock for all workers. */
static void task_clock_reader(void *arg)
{
	(void)arg;
	int64_t mine = 0;
	for (int i = 0; i < 20000; i++) {
		int64_t seen = atomic_load(&clock_last);
		int64_t now = co_now();
		if (now < seen || now < mine)
			atomic_fetch_add(&clock_backwards, 1);
		mine = now;
		int64_t cur = seen;
		while (cur < now &&
		       !atomic_compare_exchange_weak(&clock_last, &cur, now))
			;
		if (i % 100 == 0)
			co_yield();
	}
	atomic_fetch_add(&clock_done, 1);
}

static void task_main_clock(void *arg)
{
	(void)arg;
	for (int i = 0; i < 4; i++)
		CHECK(co_go(task_clock_reader, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&clock_done) == 4, 20 * TU_SEC));
}

static void test_sleep_now_monotonic(void **state)
{
	(void)state;
	int64_t before = co_now();
	assert_true(before > 0);
	atomic_store(&clock_last, 0);
	atomic_store(&clock_backwards, 0);
	atomic_store(&clock_done, 0);
	tu_run(task_main_clock, NULL);
	assert_int_equal(atomic_load(&clock_done), 4);
	assert_int_equal(atomic_load(&clock_backwards), 0);
	assert_true(atomic_load(&clock_last) >= before);
	assert_true(co_now() >= atomic_load(&clock_last));
}

static void test_sleep_outside_task_sleeps(void **state)
{
	(void)state;
	int64_t t0 = co_now();
	co_sleep(3 * TU_MS);
	int64_t took = co_now() - t0;
	assert_true(took >= 3 * TU_MS);
	assert_true(took < 3 * TU_MS + LATE_MAX);
	t0 = co_now();
	co_sleep(0);
	co_sleep(-1);
	assert_true(co_now() - t0 < LATE_MAX);
}

/* ------------------------------------------------------------------------
 * 6. Huge durations
 * ---------------------------------------------------------------------- */

static _Atomic int huge_woke;   /* sleepers that came back: must stay 0 */

static void task_huge_sleeper(void *arg)
{
	co_sleep((int64_t)(intptr_t)arg);
	atomic_fetch_add(&huge_woke, 1);
}

/* co_sleep(ns) sleeps at least ns, for any ns: a deadline past the end of
 * the clock means "never" (Go's time.Sleep(math.MaxInt64) does not
 * return), not a wrapped, negative deadline that is already due. */
static void task_main_huge(void *arg)
{
	(void)arg;
	CHECK(co_go(task_huge_sleeper, (void *)(intptr_t)INT64_MAX) != 0);
	CHECK(co_go(task_huge_sleeper, (void *)(intptr_t)(INT64_MAX - 1)) !=
	      0);
	CHECK(co_go(task_huge_sleeper, (void *)(intptr_t)(INT64_MAX / 2)) !=
	      0);
	co_sleep(50 * TU_MS);
	/* Task 1 returns and abandons the sleepers. */
}

static void test_sleep_huge_duration_never_wakes(void **state)
{
	(void)state;
	atomic_store(&huge_woke, 0);
	tu_run(task_main_huge, NULL);
	if (atomic_load(&huge_woke) != 0)
		fail_msg("%d task(s) sleeping INT64_MAX-ish ns woke within "
			 "50 ms",
			 atomic_load(&huge_woke));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Order */
		cmocka_unit_test(test_sleep_order_follows_deadlines),
		cmocka_unit_test(test_sleep_order_across_workers),
		/* 2. Precision */
		cmocka_unit_test(test_sleep_submillisecond_not_early_not_late),
		cmocka_unit_test(test_sleep_submillisecond_among_busy_tasks),
		/* 3. Non-positive durations */
		cmocka_unit_test(test_sleep_zero_yields),
		cmocka_unit_test(test_sleep_negative_yields),
		/* 4. Many sleepers */
		cmocka_unit_test(test_sleep_many_concurrent_sleepers),
		/* 5. Clock */
		cmocka_unit_test(test_sleep_now_monotonic),
		cmocka_unit_test(test_sleep_outside_task_sleeps),
		/* 6. Huge durations (last: UBSan may stop the program) */
		cmocka_unit_test(test_sleep_huge_duration_never_wakes),
	};
	return cmocka_run_group_tests_name("runtime.sleep", tests, NULL, NULL);
}
