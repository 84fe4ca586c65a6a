/* SPDX-License-Identifier: MIT */
/*
 * test_sched.c - tests of runtime/sched.c: co_run, co_go, co_go_named,
 * co_yield, co_self and co_num_tasks.
 *
 * Scenario groups:
 *   1. Spawning      co_go runs fn(arg) once per call and returns the new
 *                    task's id, also when another worker ran that task to
 *                    its end before co_go returned; co_go(NULL) and co_go
 *                    outside co_run
 *                    return 0; co_go_named copies the name; the creator
 *                    keeps running after co_go (Go semantics: the new task
 *                    is queued, not run at once).
 *   2. Identity      co_self is 0 outside tasks and 1 in the task co_run
 *                    starts; ids are unique and never reused within a run,
 *                    also when tasks on several workers spawn at once.
 *   3. Yielding      co_yield lets the other tasks run; alone, or outside
 *                    a task, it returns at once.
 *   4. Counting      co_num_tasks counts live tasks and drops back to 1
 *                    (only task 1) when the children are done; 0 outside.
 *   5. Life cycle    co_run returns when task 1 returns although other
 *                    tasks are alive (they are abandoned, never run again
 *                    and keep no memory); co_run runs again afterwards;
 *                    co_run inside a task, or from another thread while a
 *                    runtime runs, returns -EBUSY; co_run(NULL) returns
 *                    -EINVAL.
 *
 * The suite is registered with the default worker count and with
 * COPPER_PROCS=1, 2 and 4; checks that only hold on one worker ask
 * testing_nprocs().
 */
#include <malloc.h>
#include <pthread.h>

#include "test_util.h"

#include "runtime/testing.h"

#ifdef TU_ASAN
/* From AddressSanitizer's allocator_interface.h, which GCC 12 lacks. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define NTASKS 200

/* ------------------------------------------------------------------------
 * 1. Spawning
 * ---------------------------------------------------------------------- */

struct go_slot {
	_Atomic int ran;        /* times task_record ran with this slot */
	_Atomic uint64_t self;  /* co_self() inside it */
	uint64_t id;            /* what co_go returned for it */
};

static struct go_slot go_slots[NTASKS];
static _Atomic long go_done;

static void task_record(void *arg)
{
	struct go_slot *s = arg;

	atomic_fetch_add(&s->ran, 1);
	atomic_store(&s->self, co_self());
	atomic_fetch_add(&go_done, 1);
}

static void task_main_go_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < NTASKS; i++) {
		go_slots[i].id = co_go(task_record, &go_slots[i]);
		CHECK(go_slots[i].id != 0);
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&go_done) == NTASKS, 10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_sched_go_runs_fn_once_with_arg(void **state)
{
	(void)state;
	memset(go_slots, 0, sizeof(go_slots));
	atomic_store(&go_done, 0);
	tu_run(task_main_go_many, NULL);
	assert_int_equal(atomic_load(&go_done), NTASKS);
	for (int i = 0; i < NTASKS; i++) {
		assert_int_equal(atomic_load(&go_slots[i].ran), 1);
		assert_int_equal(atomic_load(&go_slots[i].self), go_slots[i].id);
	}
}

/* co_go must return the id of the task it started even when that task
 * was taken by another worker and finished (its slot freed, or reused by
 * a newer task) before co_go returned. */
#define NRACE 20000

static uint64_t *race_ids;           /* what co_go returned, by index */
static _Atomic uint64_t *race_self;  /* co_self() in the task, by index */
static _Atomic long race_done;

static void task_race_record(void *arg)
{
	atomic_store(&race_self[(uintptr_t)arg], co_self());
	atomic_fetch_add(&race_done, 1);
}

static void task_main_go_race(void *arg)
{
	long n = (long)(intptr_t)arg;

	/* Bursts that overflow the run queue: co_go then takes the global
	 * queue's lock after publishing the task in runnext, and the other
	 * workers, stealing, have time to run it to its end. */
	for (long i = 0; i < n; i++) {
		race_ids[i] = co_go(task_race_record, (void *)(uintptr_t)i);
		if (i % 1024 == 1023)
			co_yield();
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&race_done) == n, 30 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_sched_go_returns_id_of_finished_task(void **state)
{
	long n = tu_scale(NRACE);
	long zero = 0, wrong = 0, first = -1;

	(void)state;
	race_ids = calloc((size_t)n, sizeof(*race_ids));
	race_self = calloc((size_t)n, sizeof(*race_self));
	assert_non_null(race_ids);
	assert_non_null(race_self);
	atomic_store(&race_done, 0);
	tu_run(task_main_go_race, (void *)(intptr_t)n);
	for (long i = 0; i < n; i++) {
		if (race_ids[i] == 0)
			zero++;
		else if (race_ids[i] != atomic_load(&race_self[i]))
			wrong++;
		else
			continue;
		if (first < 0)
			first = i;
	}
	if (zero || wrong)
		fail_msg("co_go returned 0 for %ld and another task's id for %ld "
			 "of %ld tasks that all ran (first: #%ld returned %llu, "
			 "the task was %llu)",
			 zero, wrong, n, first,
			 (unsigned long long)race_ids[first],
			 (unsigned long long)atomic_load(&race_self[first]));
	assert_int_equal(atomic_load(&race_done), n);
	free(race_ids);
	free((void *)race_self);
}

static _Atomic int never_ran;

static void task_never(void *arg)
{
	(void)arg;
	atomic_fetch_add(&never_ran, 1);
}

static void task_main_go_null(void *arg)
{
	(void)arg;
	CHECK_EQ(co_go(NULL, NULL), 0);
	CHECK_EQ(co_go(NULL, &never_ran), 0);
	CHECK_EQ(co_go_named("nothing", NULL, NULL), 0);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK_EQ(testing_table_count(), 1);
}

static void test_sched_go_null_fn_returns_zero(void **state)
{
	(void)state;
	tu_run(task_main_go_null, NULL);
}

static void task_main_empty(void *arg)
{
	(void)arg;
	co_yield();
}

static void test_sched_go_outside_run_returns_zero(void **state)
{
	(void)state;
	atomic_store(&never_ran, 0);
	assert_int_equal(co_go(task_never, NULL), 0);
	assert_int_equal(co_go_named("outside", task_never, NULL), 0);
	/* Nothing was queued for a later runtime either. */
	tu_run(task_main_empty, NULL);
	assert_int_equal(atomic_load(&never_ran), 0);
}

#define LONG_NAME                                                          \
	"a-task-name-much-longer-than-the-inline-buffer-of-the-record-"    \
	"0123456789"

static _Atomic int named_ok;
static _Atomic int named_go;

static void task_named(void *arg)
{
	const char *want = arg;
	char status[32], name[128];
	uint64_t creator = 0;

	CHECK(TU_WAIT_UNTIL(atomic_load(&named_go), 5 * TU_SEC));
	CHECK_EQ(testing_task_status(co_self(), status, sizeof(status),
				     &creator, name, sizeof(name)),
		 0);
	CHECK_STR(name, want);
	CHECK_STR(status, "running");
	CHECK_EQ(creator, 1);
	atomic_fetch_add(&named_ok, 1);
}

static void task_main_go_named(void *arg)
{
	char shortbuf[16] = "worker-7";
	char longbuf[sizeof(LONG_NAME)] = LONG_NAME;

	(void)arg;
	CHECK(co_go_named(shortbuf, task_named, "worker-7") != 0);
	CHECK(co_go_named(longbuf, task_named, LONG_NAME) != 0);
	/* The runtime copied the names: overwrite ours before they read. */
	memset(shortbuf, 'x', sizeof(shortbuf) - 1);
	memset(longbuf, 'y', sizeof(longbuf) - 1);
	atomic_store(&named_go, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&named_ok) == 2, 5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_sched_go_named_copies_name(void **state)
{
	(void)state;
	atomic_store(&named_ok, 0);
	atomic_store(&named_go, 0);
	tu_run(task_main_go_named, NULL);
	assert_int_equal(atomic_load(&named_ok), 2);
}

static _Atomic int unnamed_ran;

static void task_unnamed(void *arg)
{
	char name[32] = "sentinel";

	(void)arg;
	CHECK_EQ(testing_task_status(co_self(), NULL, 0, NULL, name,
				     sizeof(name)),
		 0);
	CHECK_STR(name, "");
	atomic_fetch_add(&unnamed_ran, 1);
}

static void task_main_go_named_null(void *arg)
{
	(void)arg;
	CHECK(co_go_named(NULL, task_unnamed, NULL) != 0);
	CHECK(co_go(task_unnamed, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&unnamed_ran) == 2, 5 * TU_SEC));
}

static void test_sched_go_named_null_name_is_unnamed(void **state)
{
	(void)state;
	atomic_store(&unnamed_ran, 0);
	tu_run(task_main_go_named_null, NULL);
	assert_int_equal(atomic_load(&unnamed_ran), 2);
}

/* The creator keeps running after co_go: the child can only run on the
 * creator's worker once the creator has switched away (which it does only
 * after setting creator_past_go); with one worker it cannot run at all
 * until then. */
static _Atomic int creator_past_go;
static _Atomic int child_saw_past_go = -1;
static _Atomic int child_worker = -2;
static _Atomic int child_ran;

static void task_child_observer(void *arg)
{
	(void)arg;
	atomic_store(&child_saw_past_go, atomic_load(&creator_past_go));
	atomic_store(&child_worker, testing_worker_id());
	atomic_store(&child_ran, 1);
}

static void task_main_creator(void *arg)
{
	(void)arg;
	int me = testing_worker_id();
	uint64_t id = co_go(task_child_observer, NULL);
	/* Give a child that ran at once every chance to be seen: burn a
	 * little time without switching. */
	int64_t until = co_now() + 2 * TU_MS;
	while (co_now() < until)
		;
	CHECK_EQ(testing_worker_id(), me);
	if (testing_nprocs() == 1)
		CHECK_EQ(atomic_load(&child_ran), 0);
	atomic_store(&creator_past_go, 1);
	CHECK(id != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&child_ran), 5 * TU_SEC));
	if (atomic_load(&child_worker) == me)
		CHECK_EQ(atomic_load(&child_saw_past_go), 1);
	if (testing_nprocs() == 1)
		CHECK_EQ(atomic_load(&child_saw_past_go), 1);
}

static void test_sched_go_creator_keeps_running(void **state)
{
	(void)state;
	atomic_store(&creator_past_go, 0);
	atomic_store(&child_saw_past_go, -1);
	atomic_store(&child_worker, -2);
	atomic_store(&child_ran, 0);
	tu_run(task_main_creator, NULL);
	assert_int_equal(atomic_load(&child_ran), 1);
}

/* ------------------------------------------------------------------------
 * 2. Identity
 * ---------------------------------------------------------------------- */

static void test_sched_self_outside_run_is_zero(void **state)
{
	(void)state;
	assert_int_equal(co_self(), 0);
	tu_run(task_main_empty, NULL);
	assert_int_equal(co_self(), 0);
}

static void task_main_self_one(void *arg)
{
	uint64_t creator = 99;
	char status[32];

	(void)arg;
	CHECK_EQ(co_self(), 1);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK_EQ(testing_task_status(1, status, sizeof(status), &creator,
				     NULL, 0),
		 0);
	CHECK_EQ(creator, 0);
	CHECK_STR(status, "running");
	CHECK(testing_worker_id() >= 0);
	CHECK(testing_worker_id() < testing_nprocs());
	/* Still task 1 after a switch. */
	co_yield();
	co_sleep(1000);
	CHECK_EQ(co_self(), 1);
}

static void test_sched_self_main_is_task_one(void **state)
{
	(void)state;
	tu_run(task_main_self_one, NULL);
}

/* Ids of tasks that spawn tasks on every worker at once. */
#define ID_FANOUT 8
#define ID_DEPTH 4 /* 8 + 64 + 512 + 4096 tasks */

static uint64_t *ids_seen;          /* every id, by arrival */
static _Atomic size_t ids_count;    /* entries used in ids_seen */
static size_t ids_cap;

static void ids_note(uint64_t id)
{
	size_t i = atomic_fetch_add(&ids_count, 1);
	if (i < ids_cap)
		ids_seen[i] = id;
}

static void task_id_tree(void *arg)
{
	uintptr_t depth = (uintptr_t)arg;

	ids_note(co_self());
	if (depth == 0)
		return;
	for (int i = 0; i < ID_FANOUT; i++) {
		uint64_t id = co_go(task_id_tree, (void *)(depth - 1));
		CHECK(id != 0);
		if (i % 2)
			co_yield();
	}
}

static size_t tree_size(void)
{
	size_t n = 0, level = 1;
	for (int d = 0; d < ID_DEPTH; d++) {
		level *= ID_FANOUT;
		n += level;
	}
	return n;
}

/* Spawns one task at a time and waits for it to exit, so that its slot
 * is reused by the next: the id must not be. */
#define ID_SERIAL 500

static _Atomic int serial_done;

static void task_id_serial(void *arg)
{
	(void)arg;
	ids_note(co_self());
	atomic_fetch_add(&serial_done, 1);
}

static void task_main_ids(void *arg)
{
	(void)arg;
	ids_note(co_self());
	for (int i = 0; i < ID_SERIAL; i++) {
		CHECK(co_go(task_id_serial, NULL) != 0);
		if (!TU_WAIT_UNTIL(atomic_load(&serial_done) == i + 1,
				   5 * TU_SEC)) {
			CHECK(!"a serial task did not run");
			return;
		}
		CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	}
	for (int i = 0; i < ID_FANOUT; i++)
		CHECK(co_go(task_id_tree, (void *)(uintptr_t)(ID_DEPTH - 1)) !=
		      0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&ids_count) ==
				    1 + ID_SERIAL + tree_size(),
			    30 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_sched_ids_unique_never_reused(void **state)
{
	(void)state;
	ids_cap = 1 + ID_SERIAL + tree_size();
	ids_seen = calloc(ids_cap, sizeof(*ids_seen));
	assert_non_null(ids_seen);
	atomic_store(&ids_count, 0);
	atomic_store(&serial_done, 0);
	tu_run(task_main_ids, NULL);
	assert_int_equal(atomic_load(&ids_count), ids_cap);
	assert_int_equal(ids_seen[0], 1);
	qsort(ids_seen, ids_cap, sizeof(*ids_seen), cmp_u64);
	assert_int_equal(ids_seen[0], 1);
	for (size_t i = 1; i < ids_cap; i++) {
		if (ids_seen[i] == ids_seen[i - 1])
			fail_msg("task id %llu was given twice",
				 (unsigned long long)ids_seen[i]);
	}
	free(ids_seen);
	ids_seen = NULL;
}

/* ------------------------------------------------------------------------
 * 3. Yielding
 * ---------------------------------------------------------------------- */

#define PINGPONG_ROUNDS 2000

static _Atomic int turn;          /* whose move: 0 or 1 */
static _Atomic int moves[2];      /* moves made by each player */
static _Atomic int players_done;

/* Waits for its turn with co_yield only: if co_yield did not let the
 * partner run, one worker would spin here until the deadline. */
static void task_player(void *arg)
{
	int me = (int)(uintptr_t)arg;
	int64_t end = co_now() + 20 * TU_SEC;

	for (int i = 0; i < PINGPONG_ROUNDS; i++) {
		while (atomic_load(&turn) != me) {
			if (co_now() > end) {
				CHECK(!"co_yield never let the partner run");
				atomic_fetch_add(&players_done, 1);
				return;
			}
			co_yield();
		}
		atomic_fetch_add(&moves[me], 1);
		atomic_store(&turn, 1 - me);
	}
	atomic_fetch_add(&players_done, 1);
}

static void task_main_pingpong(void *arg)
{
	(void)arg;
	CHECK(co_go(task_player, (void *)0) != 0);
	CHECK(co_go(task_player, (void *)1) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&players_done) == 2, 30 * TU_SEC));
}

static void test_sched_yield_lets_others_run(void **state)
{
	(void)state;
	atomic_store(&turn, 0);
	atomic_store(&moves[0], 0);
	atomic_store(&moves[1], 0);
	atomic_store(&players_done, 0);
	tu_run(task_main_pingpong, NULL);
	assert_int_equal(atomic_load(&moves[0]), PINGPONG_ROUNDS);
	assert_int_equal(atomic_load(&moves[1]), PINGPONG_ROUNDS);
}

static _Atomic int alone_yields;

static void task_main_yield_alone(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++) {
		co_yield();
		atomic_fetch_add(&alone_yields, 1);
	}
	CHECK_EQ(co_self(), 1);
}

static void test_sched_yield_alone_returns(void **state)
{
	(void)state;
	atomic_store(&alone_yields, 0);
	co_yield(); /* outside a task: a no-op */
	tu_run(task_main_yield_alone, NULL);
	assert_int_equal(atomic_load(&alone_yields), 10000);
}

/* ------------------------------------------------------------------------
 * 4. Counting
 * ---------------------------------------------------------------------- */

#define NPARKED 300

static _Atomic int parked_started;
static _Atomic int parked_release;
static _Atomic int parked_done;

static void task_parked(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked_started, 1);
	while (!atomic_load(&parked_release))
		co_sleep(500 * 1000);
	atomic_fetch_add(&parked_done, 1);
}

static void task_main_count(void *arg)
{
	(void)arg;
	CHECK_EQ(co_num_tasks(), 1);
	for (int i = 0; i < NPARKED; i++)
		CHECK(co_go(task_parked, NULL) != 0);
	CHECK_EQ(co_num_tasks(), NPARKED + 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&parked_started) == NPARKED,
			    10 * TU_SEC));
	CHECK_EQ(co_num_tasks(), NPARKED + 1);
	atomic_store(&parked_release, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&parked_done) == NPARKED,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(co_num_tasks(), 1);
}

static void test_sched_num_tasks_counts_live(void **state)
{
	(void)state;
	assert_int_equal(co_num_tasks(), 0);
	atomic_store(&parked_started, 0);
	atomic_store(&parked_release, 0);
	atomic_store(&parked_done, 0);
	tu_run(task_main_count, NULL);
	assert_int_equal(atomic_load(&parked_done), NPARKED);
	assert_int_equal(co_num_tasks(), 0);
}

/* ------------------------------------------------------------------------
 * 5. Life cycle
 * ---------------------------------------------------------------------- */

#define NABANDON 40

static _Atomic long abandoned_spins;   /* progress of the yielders */
static _Atomic int abandoned_started;
static _Atomic int abandoned_finished; /* must stay 0 */

static void task_abandoned_yielder(void *arg)
{
	(void)arg;
	atomic_fetch_add(&abandoned_started, 1);
	for (;;) {
		atomic_fetch_add(&abandoned_spins, 1);
		co_yield();
	}
}

static void task_abandoned_sleeper(void *arg)
{
	(void)arg;
	atomic_fetch_add(&abandoned_started, 1);
	co_sleep(3600 * TU_SEC);
	atomic_fetch_add(&abandoned_finished, 1);
}

static void task_abandoned_queued(void *arg)
{
	(void)arg;
	atomic_fetch_add(&abandoned_finished, 1);
}

static void task_main_abandon(void *arg)
{
	(void)arg;
	for (int i = 0; i < NABANDON; i++) {
		CHECK(co_go(task_abandoned_yielder, NULL) != 0);
		CHECK(co_go_named("sleeper", task_abandoned_sleeper, NULL) != 0);
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&abandoned_started) == 2 * NABANDON,
			    10 * TU_SEC));
	CHECK_EQ(co_num_tasks(), 2 * NABANDON + 1);
	/* Queued last, never run: task 1 returns without switching. */
	if (testing_nprocs() == 1)
		CHECK(co_go(task_abandoned_queued, NULL) != 0);
}

static void task_main_after_abandon(void *arg)
{
	(void)arg;
	CHECK_EQ(co_self(), 1);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK_EQ(testing_table_count(), 1);
}

static void test_sched_run_returns_with_tasks_alive(void **state)
{
	(void)state;
	atomic_store(&abandoned_spins, 0);
	atomic_store(&abandoned_started, 0);
	atomic_store(&abandoned_finished, 0);
	int64_t t0 = co_now();
	tu_run(task_main_abandon, NULL);
	int64_t took = co_now() - t0;
	assert_true(took < 10 * TU_SEC);
	/* Abandoned tasks never run again. */
	long spins = atomic_load(&abandoned_spins);
	co_sleep(20 * TU_MS);
	assert_int_equal(atomic_load(&abandoned_spins), spins);
	assert_int_equal(atomic_load(&abandoned_finished), 0);
	/* The next runtime starts clean. */
	tu_run(task_main_after_abandon, NULL);
	assert_int_equal(atomic_load(&abandoned_spins), spins);
	assert_int_equal(atomic_load(&abandoned_finished), 0);
}

static _Atomic int runs_mains;
static _Atomic int runs_children;

static void task_run_child(void *arg)
{
	(void)arg;
	atomic_fetch_add(&runs_children, 1);
}

static void task_main_run_again(void *arg)
{
	(void)arg;
	CHECK_EQ(co_self(), 1);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK(co_go(task_run_child, NULL) > 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&runs_children) ==
				    atomic_load(&runs_mains) + 1,
			    5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	atomic_fetch_add(&runs_mains, 1);
}

static void test_sched_run_twice(void **state)
{
	(void)state;
	atomic_store(&runs_mains, 0);
	atomic_store(&runs_children, 0);
	tu_run(task_main_run_again, NULL);
	tu_run(task_main_run_again, NULL);
	assert_int_equal(atomic_load(&runs_mains), 2);
	assert_int_equal(atomic_load(&runs_children), 2);
}

static void test_sched_run_many_times(void **state)
{
	(void)state;
	atomic_store(&runs_mains, 0);
	atomic_store(&runs_children, 0);
	for (int i = 0; i < 20; i++)
		tu_run(task_main_run_again, NULL);
	assert_int_equal(atomic_load(&runs_mains), 20);
	assert_int_equal(atomic_load(&runs_children), 20);
}

static _Atomic int nested_checked;

static void task_nested_run(void *arg)
{
	(void)arg;
	CHECK_EQ(co_run(task_never, NULL), CO_EBUSY);
	CHECK_EQ(co_run(NULL, NULL), CO_EINVAL);
	atomic_fetch_add(&nested_checked, 1);
}

static void task_main_nested(void *arg)
{
	(void)arg;
	task_nested_run(NULL);
	CHECK(co_go(task_nested_run, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&nested_checked) == 2, 5 * TU_SEC));
	/* The failed nested calls did not stop this runtime. */
	CHECK_EQ(co_self(), 1);
	CHECK(co_go(task_run_child, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&runs_children) == 1, 5 * TU_SEC));
}

static void test_sched_run_inside_task_returns_ebusy(void **state)
{
	(void)state;
	atomic_store(&never_ran, 0);
	atomic_store(&nested_checked, 0);
	atomic_store(&runs_children, 0);
	tu_run(task_main_nested, NULL);
	assert_int_equal(atomic_load(&nested_checked), 2);
	assert_int_equal(atomic_load(&never_ran), 0);
}

/* co_run from a plain thread while another thread's co_run is running. */
struct other_thread {
	_Atomic int rc;          /* co_run's result there */
	_Atomic uint64_t self;   /* co_self() there */
	_Atomic int done;
};

static void *thread_run_again(void *arg)
{
	struct other_thread *o = arg;

	atomic_store(&o->self, co_self());
	atomic_store(&o->rc, co_run(task_never, NULL));
	atomic_store(&o->done, 1);
	return NULL;
}

static void task_main_other_thread(void *arg)
{
	struct other_thread *o = arg;
	pthread_t th;

	CHECK_EQ(pthread_create(&th, NULL, thread_run_again, o), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&o->done), 10 * TU_SEC));
	CHECK_EQ(pthread_join(th, NULL), 0);
}

static void test_sched_run_from_other_thread_returns_ebusy(void **state)
{
	struct other_thread o = {.rc = 1, .self = 99};

	(void)state;
	atomic_store(&never_ran, 0);
	tu_run(task_main_other_thread, &o);
	assert_int_equal(atomic_load(&o.rc), CO_EBUSY);
	assert_int_equal(atomic_load(&o.self), 0);
	assert_int_equal(atomic_load(&never_ran), 0);
}

/* Tasks abandoned when task 1 returns must not keep memory: co_run may run
 * again and again in one process.  Their names longer than the record's
 * inline buffer are heap copies. */
#define NLEAKY 2000

static void task_leaky_sleeper(void *arg)
{
	(void)arg;
	co_sleep(3600 * TU_SEC);
}

static void task_main_leave_named(void *arg)
{
	const char *name = arg;

	for (int i = 0; i < NLEAKY; i++)
		CHECK(co_go_named(name, task_leaky_sleeper, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(co_num_tasks() == NLEAKY + 1, 5 * TU_SEC));
	co_sleep(TU_MS);
}

static size_t heap_in_use(void)
{
#ifdef TU_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

static void test_sched_run_abandoned_tasks_leak_nothing(void **state)
{
	static const char long_name[] =
		"a-task-name-of-more-than-eighty-bytes-which-the-runtime-"
		"keeps-in-a-heap-copy-0123456789";

	(void)state;
	/* The same run with a short name first: one-time allocations. */
	tu_run(task_main_leave_named, "short");
	tu_run(task_main_leave_named, "short");
	size_t before = heap_in_use();
	tu_run(task_main_leave_named, (void *)long_name);
	size_t after = heap_in_use();
	long grew = (long)(after - before);
	if (grew > 32 * 1024)
		fail_msg("the heap grew by %ld bytes over a co_run that "
			 "abandoned %d tasks named with %zu bytes each",
			 grew, NLEAKY, sizeof(long_name));
}

static void test_sched_run_null_main_returns_einval(void **state)
{
	(void)state;
	assert_int_equal(co_run(NULL, NULL), CO_EINVAL);
	assert_int_equal(co_num_tasks(), 0);
	tu_run(task_main_empty, NULL);
}

/* ------------------------------------------------------------------------
 * introspect_self_stack (through testing_self_stack)
 * ---------------------------------------------------------------------- */

static uintptr_t self_pcs[64];
static int self_n;

/* The walk from inside a task reaches this function and its caller. */
__attribute__((noinline)) static void self_stack_here(void)
{
	self_n = testing_self_stack(self_pcs, 64);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

__attribute__((noinline)) static void task_self_stack(void *arg)
{
	(void)arg;
	self_stack_here();
	__asm__ volatile("" ::: "memory");
}

static bool pcs_hit(uintptr_t fn)
{
	for (int i = 0; i < self_n; i++)
		if (self_pcs[i] > fn && self_pcs[i] < fn + 512)
			return true;
	return false;
}

static void *thread_self_stack(void *arg)
{
	(void)arg;
	/* Unregistered: its stack's mapping is looked up once. */
	self_n = testing_self_stack(self_pcs, 64);
	int before = self_n;
	testing_thread_register();
	self_stack_here();
	return (void *)(intptr_t)before;
}

static void test_sched_self_stack_walks_own_frames(void **state)
{
	pthread_t th;
	void *before;

	(void)state;
	self_n = 0;
	tu_run(task_self_stack, NULL);
	assert_true(self_n >= 2);
	assert_true(pcs_hit((uintptr_t)self_stack_here));
	assert_true(pcs_hit((uintptr_t)task_self_stack));
	/* A thread of the program's: walked before it registers (the heap
	 * profiler walks such threads from malloc), and after. */
	assert_int_equal(pthread_create(&th, NULL, thread_self_stack, NULL), 0);
	assert_int_equal(pthread_join(th, &before), 0);
	assert_true((int)(intptr_t)before >= 1);
	assert_true(pcs_hit((uintptr_t)self_stack_here));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Spawning */
		cmocka_unit_test(test_sched_go_runs_fn_once_with_arg),
		cmocka_unit_test(test_sched_go_returns_id_of_finished_task),
		cmocka_unit_test(test_sched_go_null_fn_returns_zero),
		cmocka_unit_test(test_sched_go_outside_run_returns_zero),
		cmocka_unit_test(test_sched_go_named_copies_name),
		cmocka_unit_test(test_sched_go_named_null_name_is_unnamed),
		cmocka_unit_test(test_sched_go_creator_keeps_running),
		/* 2. Identity */
		cmocka_unit_test(test_sched_self_outside_run_is_zero),
		cmocka_unit_test(test_sched_self_main_is_task_one),
		cmocka_unit_test(test_sched_ids_unique_never_reused),
		/* 3. Yielding */
		cmocka_unit_test(test_sched_yield_lets_others_run),
		cmocka_unit_test(test_sched_yield_alone_returns),
		/* 4. Counting */
		cmocka_unit_test(test_sched_num_tasks_counts_live),
		/* 5. Life cycle */
		cmocka_unit_test(test_sched_run_returns_with_tasks_alive),
		cmocka_unit_test(test_sched_run_twice),
		cmocka_unit_test(test_sched_run_many_times),
		cmocka_unit_test(test_sched_run_inside_task_returns_ebusy),
		cmocka_unit_test(test_sched_run_from_other_thread_returns_ebusy),
		cmocka_unit_test(test_sched_run_abandoned_tasks_leak_nothing),
		cmocka_unit_test(test_sched_run_null_main_returns_einval),
		cmocka_unit_test(test_sched_self_stack_walks_own_frames),
	};
	return cmocka_run_group_tests_name("runtime.sched", tests, NULL, NULL);
}
