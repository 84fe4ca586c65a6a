/* SPDX-License-Identifier: MIT */
/*
 * test_blocking.c - tests of co_blocking (runtime/sched.c's blocking calls
 * on libuv's thread pool).
 *
 * Scenario groups:
 *   1. Where it runs   fn runs once, with its argument, on a thread that is
 *                      not the caller's worker; co_blocking returns 0 after
 *                      fn returned, with fn's writes visible, in the same
 *                      task.
 *   2. Worker stays    while fn blocks, the caller's worker runs other tasks
 *   free               (one worker, so there is no other to run them).
 *   3. Task state      the caller shows as "syscall" in the task table while
 *                      fn runs.
 *   4. Errors          -EINVAL for a NULL fn; -EPERM outside a task, also
 *                      from inside a blocking fn (a pool thread is not a
 *                      task); fn is then not called.
 *   5. Many            hundreds of concurrent calls all complete, in
 *                      parallel on the pool; callers that reuse their stack
 *                      the moment co_blocking returns (on another worker)
 *                      are not disturbed by the completion.
 *   6. Signals         the pool's threads block the process-directed
 *                      signals every worker blocks (SIGTERM, SIGUSR2, a
 *                      dump signal chosen later), even when worker 0, the
 *                      program's thread, started the pool.  Runs first:
 *                      the pool starts once per process.
 *
 * Registered with the default worker count and with COPPER_PROCS=1, 2
 * and 4; the worker-stays-free case sets COPPER_PROCS=1 itself.
 */
#include <pthread.h>
#include <signal.h>

#include "test_util.h"

#include "runtime/testing.h"

/* ------------------------------------------------------------------------
 * 1. Where it runs
 * ---------------------------------------------------------------------- */

struct call {
	_Atomic int ran;          /* times fn ran */
	pthread_t thread;         /* where it ran */
	int value;                /* written by fn, read by the task after */
};

static void blocking_record(void *arg)
{
	struct call *c = arg;

	c->thread = pthread_self();
	usleep(2000);
	c->value = 42;
	atomic_fetch_add(&c->ran, 1);
}

static void task_main_where(void *arg)
{
	struct call *c = arg;
	pthread_t worker = pthread_self();
	uint64_t self = co_self();

	CHECK_EQ(co_blocking(blocking_record, c), 0);
	CHECK_EQ(atomic_load(&c->ran), 1);
	CHECK_EQ(c->value, 42);
	CHECK(!pthread_equal(c->thread, worker));
	CHECK_EQ(co_self(), self);
	/* Again, after having been resumed by the completion. */
	c->value = 0;
	CHECK_EQ(co_blocking(blocking_record, c), 0);
	CHECK_EQ(atomic_load(&c->ran), 2);
	CHECK_EQ(c->value, 42);
	CHECK(!pthread_equal(c->thread, pthread_self()));
}

static void test_blocking_runs_on_another_thread(void **state)
{
	struct call c = {0};

	(void)state;
	tu_run(task_main_where, &c);
	assert_int_equal(atomic_load(&c.ran), 2);
	assert_false(pthread_equal(c.thread, pthread_self()));
}

/* ------------------------------------------------------------------------
 * 2. The worker stays free
 * ---------------------------------------------------------------------- */

static _Atomic long ticks;          /* progress of task_ticker */
static _Atomic int ticker_stop;
static _Atomic int blocked_saw_ticks; /* ticks fn saw while it waited */

/* Waits (up to 5 s) until the ticker made 100 ticks after fn started:
 * possible only if the caller's worker runs the ticker meanwhile. */
static void blocking_wait_for_ticks(void *arg)
{
	(void)arg;
	long start = atomic_load(&ticks);
	int64_t end = co_now() + 5 * TU_SEC;
	while (atomic_load(&ticks) < start + 100 && co_now() < end)
		usleep(100);
	atomic_store(&blocked_saw_ticks, (int)(atomic_load(&ticks) - start));
}

static void task_ticker(void *arg)
{
	(void)arg;
	while (!atomic_load(&ticker_stop)) {
		atomic_fetch_add(&ticks, 1);
		co_yield();
	}
}

static void task_main_worker_free(void *arg)
{
	(void)arg;
	CHECK_EQ(testing_nprocs(), 1);
	CHECK(co_go(task_ticker, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&ticks) > 0, 5 * TU_SEC));
	CHECK_EQ(co_blocking(blocking_wait_for_ticks, NULL), 0);
	atomic_store(&ticker_stop, 1);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_blocking_worker_runs_other_tasks(void **state)
{
	const char *old = getenv("COPPER_PROCS");
	char *saved = old ? strdup(old) : NULL;

	(void)state;
	atomic_store(&ticks, 0);
	atomic_store(&ticker_stop, 0);
	atomic_store(&blocked_saw_ticks, 0);
	tu_setenv("COPPER_PROCS", "1");
	tu_run(task_main_worker_free, NULL);
	tu_setenv("COPPER_PROCS", saved);
	free(saved);
	assert_true(atomic_load(&blocked_saw_ticks) >= 100);
}

/* ------------------------------------------------------------------------
 * 3. Task state
 * ---------------------------------------------------------------------- */

static _Atomic int blocker_release;
static _Atomic int blocker_in_fn;
static _Atomic int blocker_returned;
static _Atomic uint64_t blocker_id;

static void blocking_until_released(void *arg)
{
	(void)arg;
	atomic_store(&blocker_in_fn, 1);
	int64_t end = co_now() + 10 * TU_SEC;
	while (!atomic_load(&blocker_release) && co_now() < end)
		usleep(200);
}

static void task_blocker(void *arg)
{
	(void)arg;
	atomic_store(&blocker_id, co_self());
	CHECK_EQ(co_blocking(blocking_until_released, NULL), 0);
	atomic_store(&blocker_returned, 1);
}

static void task_main_status(void *arg)
{
	char status[32] = "", name[32] = "";
	uint64_t creator = 0;

	(void)arg;
	uint64_t id = co_go_named("blocker", task_blocker, NULL);
	CHECK(id != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&blocker_in_fn), 5 * TU_SEC));
	CHECK_EQ(atomic_load(&blocker_id), id);
	CHECK(TU_WAIT_UNTIL(testing_task_status(id, status, sizeof(status),
						&creator, name,
						sizeof(name)) == 0 &&
				    strcmp(status, "syscall") == 0,
			    5 * TU_SEC));
	CHECK_STR(status, "syscall");
	CHECK_STR(name, "blocker");
	CHECK_EQ(creator, 1);
	/* Still counted as live while blocked. */
	CHECK_EQ(co_num_tasks(), 2);
	CHECK_EQ(testing_table_count(), 2);
	atomic_store(&blocker_release, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&blocker_returned), 10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(testing_task_status(id, status, sizeof(status), NULL, NULL, 0),
		 -ENOENT);
}

static void test_blocking_status_is_syscall(void **state)
{
	(void)state;
	atomic_store(&blocker_release, 0);
	atomic_store(&blocker_in_fn, 0);
	atomic_store(&blocker_returned, 0);
	atomic_store(&blocker_id, 0);
	tu_run(task_main_status, NULL);
	assert_int_equal(atomic_load(&blocker_returned), 1);
}

/* ------------------------------------------------------------------------
 * 4. Errors
 * ---------------------------------------------------------------------- */

static _Atomic int count_ran;

static void blocking_count(void *arg)
{
	(void)arg;
	atomic_fetch_add(&count_ran, 1);
}

static void task_main_null_fn(void *arg)
{
	(void)arg;
	CHECK_EQ(co_blocking(NULL, NULL), CO_EINVAL);
	CHECK_EQ(co_blocking(NULL, &count_ran), CO_EINVAL);
	/* The task goes on normally afterwards. */
	CHECK_EQ(co_blocking(blocking_count, NULL), 0);
	CHECK_EQ(atomic_load(&count_ran), 1);
}

static void test_blocking_null_fn_returns_einval(void **state)
{
	(void)state;
	atomic_store(&count_ran, 0);
	tu_run(task_main_null_fn, NULL);
	assert_int_equal(atomic_load(&count_ran), 1);
}

static void test_blocking_outside_task_returns_eperm(void **state)
{
	(void)state;
	atomic_store(&count_ran, 0);
	assert_int_equal(co_blocking(blocking_count, NULL), CO_EPERM);
	assert_true(co_blocking(NULL, NULL) < 0);
	assert_int_equal(atomic_load(&count_ran), 0);
}

static _Atomic int nested_result = 1;

static void blocking_nested(void *arg)
{
	(void)arg;
	atomic_store(&nested_result, co_blocking(blocking_count, NULL));
}

static void task_main_nested(void *arg)
{
	(void)arg;
	CHECK_EQ(co_blocking(blocking_nested, NULL), 0);
	CHECK_EQ(atomic_load(&nested_result), CO_EPERM);
}

static void test_blocking_from_pool_thread_returns_eperm(void **state)
{
	(void)state;
	atomic_store(&count_ran, 0);
	atomic_store(&nested_result, 1);
	tu_run(task_main_nested, NULL);
	assert_int_equal(atomic_load(&nested_result), CO_EPERM);
	assert_int_equal(atomic_load(&count_ran), 0);
}

/* ------------------------------------------------------------------------
 * 5. Many concurrent calls
 * ---------------------------------------------------------------------- */

#define NCALLS 256
#define CALL_US 2000

static _Atomic int calls_done;
static _Atomic int calls_failed;
static _Atomic int calls_in_fn;      /* fns running now */
static _Atomic int calls_in_fn_max;  /* the most at once */

static void blocking_slow(void *arg)
{
	(void)arg;
	int now = atomic_fetch_add(&calls_in_fn, 1) + 1;
	int max = atomic_load(&calls_in_fn_max);
	while (now > max &&
	       !atomic_compare_exchange_weak(&calls_in_fn_max, &max, now))
		;
	usleep(CALL_US);
	atomic_fetch_sub(&calls_in_fn, 1);
}

static void task_caller(void *arg)
{
	(void)arg;
	if (co_blocking(blocking_slow, NULL) != 0)
		atomic_fetch_add(&calls_failed, 1);
	atomic_fetch_add(&calls_done, 1);
}

static void task_main_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < NCALLS; i++)
		CHECK(co_go(task_caller, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&calls_done) == NCALLS, 30 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_blocking_many_concurrent_calls(void **state)
{
	(void)state;
	atomic_store(&calls_done, 0);
	atomic_store(&calls_failed, 0);
	atomic_store(&calls_in_fn, 0);
	atomic_store(&calls_in_fn_max, 0);
	tu_run(task_main_many, NULL);
	assert_int_equal(atomic_load(&calls_done), NCALLS);
	assert_int_equal(atomic_load(&calls_failed), 0);
	assert_int_equal(atomic_load(&calls_in_fn), 0);
	/* The pool ran them side by side (libuv's default pool has 4). */
	assert_true(atomic_load(&calls_in_fn_max) >= 2);
}

/* The caller's frame holds the request: once the caller is readied it may
 * run on another worker, return from co_blocking and reuse that stack at
 * once, so the completion must not read the request after readying it.
 * Each caller scribbles over its old frame right after every call. */
#define NSCRIBBLERS 64
#define SCRIBBLE_CALLS 500

static _Atomic long scribble_calls;
static _Atomic int scribblers_done;

static void blocking_nothing(void *arg)
{
	atomic_fetch_add((_Atomic long *)arg, 1);
}

__attribute__((noinline)) static void scribble(void)
{
	volatile unsigned char junk[1024];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = 0xa5;
}

static void task_scribbler(void *arg)
{
	(void)arg;
	for (int i = 0; i < SCRIBBLE_CALLS; i++) {
		CHECK_EQ(co_blocking(blocking_nothing, &scribble_calls), 0);
		scribble();
	}
	atomic_fetch_add(&scribblers_done, 1);
}

static void task_main_scribble(void *arg)
{
	(void)arg;
	for (int i = 0; i < NSCRIBBLERS; i++)
		CHECK(co_go(task_scribbler, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&scribblers_done) == NSCRIBBLERS,
			    20 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

/* Plain threads that keep the CPUs busy meanwhile. */
static _Atomic int hogs_stop;

static void *thread_hog(void *arg)
{
	(void)arg;
	while (!atomic_load(&hogs_stop))
		for (volatile int i = 0; i < 1000; i++)
			;
	return NULL;
}

/* The window is between readying the caller and the completion's last
 * line.  More workers than cores, and threads hogging the cores, make a
 * worker often lose its CPU right there, which is when another worker
 * runs the caller. */
static void test_blocking_caller_reuses_frame_at_once(void **state)
{
	const char *old = getenv("COPPER_PROCS");
	char *saved = old ? strdup(old) : NULL;
	pthread_t hogs[3];

	(void)state;
	atomic_store(&scribble_calls, 0);
	atomic_store(&scribblers_done, 0);
	atomic_store(&hogs_stop, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&hogs[i], NULL, thread_hog, NULL),
				 0);
	tu_setenv("COPPER_PROCS", "8");
	tu_run(task_main_scribble, NULL);
	tu_setenv("COPPER_PROCS", saved);
	free(saved);
	atomic_store(&hogs_stop, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(hogs[i], NULL), 0);
	assert_int_equal(atomic_load(&scribblers_done), NSCRIBBLERS);
	assert_int_equal(atomic_load(&scribble_calls),
			 NSCRIBBLERS * SCRIBBLE_CALLS);
}

/* ------------------------------------------------------------------------
 * 6. Signals
 * ---------------------------------------------------------------------- */

static _Atomic unsigned long long pool_sigblk; /* SigBlk of a pool thread */

/* The calling thread's blocked-signal mask, from /proc (0 if unreadable). */
static unsigned long long thread_sigblk(void)
{
	unsigned long long mask = 0;

	if (!tu_status_sigmask("/proc/thread-self/status", "SigBlk", &mask))
		return 0;
	return mask;
}

static void fn_read_mask(void *arg)
{
	(void)arg;
	atomic_store(&pool_sigblk, thread_sigblk());
}

static void task_main_pool_mask(void *arg)
{
	(void)arg;
	CHECK_EQ(testing_worker_id(), 0);
	/* Workers are the runtime's threads: they leave these to the
	 * program's own threads, co_run's caller among them. */
	CHECK((thread_sigblk() & (1ull << (SIGTERM - 1))) != 0);
	CHECK_EQ(co_blocking(fn_read_mask, NULL), 0);
}

static void test_blocking_pool_blocks_async_signals(void **state)
{
	const char *old = getenv("COPPER_PROCS");
	char *saved = old ? strdup(old) : NULL;
	unsigned long long m;

	(void)state;
	tu_setenv("COPPER_PROCS", "1");
	tu_run(task_main_pool_mask, NULL);
	/* co_run left its caller's mask as it was. */
	assert_false(thread_sigblk() & (1ull << (SIGTERM - 1)));
	tu_setenv("COPPER_PROCS", saved);
	free(saved);
	m = atomic_load(&pool_sigblk);
	assert_true(m & (1ull << (SIGTERM - 1)));
	assert_true(m & (1ull << (SIGUSR2 - 1)));
	assert_true(m & (1ull << (SIGINT - 1)));
	/* Faults still reach their handlers; SIGURG is the runtime's. */
	assert_false(m & (1ull << (SIGSEGV - 1)));
	assert_false(m & (1ull << (SIGURG - 1)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 6. Signals: first, while the pool does not exist yet */
		cmocka_unit_test(test_blocking_pool_blocks_async_signals),
		/* 1. Where it runs */
		cmocka_unit_test(test_blocking_runs_on_another_thread),
		/* 2. The worker stays free */
		cmocka_unit_test(test_blocking_worker_runs_other_tasks),
		/* 3. Task state */
		cmocka_unit_test(test_blocking_status_is_syscall),
		/* 4. Errors */
		cmocka_unit_test(test_blocking_null_fn_returns_einval),
		cmocka_unit_test(test_blocking_outside_task_returns_eperm),
		cmocka_unit_test(test_blocking_from_pool_thread_returns_eperm),
		/* 5. Many concurrent calls */
		cmocka_unit_test(test_blocking_many_concurrent_calls),
		cmocka_unit_test(test_blocking_caller_reuses_frame_at_once),
	};
	return cmocka_run_group_tests_name("runtime.blocking", tests, NULL,
					   NULL);
}
