/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - the scheduler under load: hundreds of thousands of
 * tasks, run queues overflowing into the global queue, stealing, slot
 * reuse, and co_run started and stopped again and again.
 *
 * Scenario groups:
 *   1. Many tasks     300k tasks (scaled) that each yield a few times: every
 *                     one runs exactly once and yields exactly as often.
 *   2. Spawn trees    tasks that spawn tasks, on every worker at once.
 *   3. Ping-pong      many pairs taking turns through atomics and co_yield.
 *   4. Mixed parking  tasks that yield, sleep and call co_blocking in turn.
 *   5. Repeated runs  co_run 50 times in a row, each with work; and runs
 *                     whose task 1 returns while many tasks are alive.
 *
 * Every case ends with the counts, then cleanliness: only task 1 is left
 * (co_num_tasks() == 1 and the task table agrees) before task 1 returns,
 * and nothing after co_run returns.  Counts are multiplied by
 * COPPER_TEST_SCALE and divided by 10 under AddressSanitizer (tu_scale).
 * Registered with the default worker count and COPPER_PROCS=1, 2 and 4.
 */
#include "test_util.h"

#include "runtime/testing.h"

/* Waits until only task 1 is left, then checks that the table agrees. */
static void check_only_main_left(void)
{
	CHECK(tu_wait_num_tasks(1, 30 * TU_SEC));
	CHECK_EQ(co_num_tasks(), 1);
	CHECK_EQ(testing_table_count(), 1);
}

/* ------------------------------------------------------------------------
 * 1. Many tasks
 * ---------------------------------------------------------------------- */

#define YIELDS_PER_TASK 3
#define LIVE_MAX 20000  /* tasks spawned but not finished, at most */

static _Atomic long many_ran;
static _Atomic long many_yields;
static _Atomic long many_done;

static void task_yielder(void *arg)
{
	(void)arg;
	atomic_fetch_add(&many_ran, 1);
	for (int i = 0; i < YIELDS_PER_TASK; i++) {
		co_yield();
		atomic_fetch_add(&many_yields, 1);
	}
	atomic_fetch_add(&many_done, 1);
}

static void task_main_many(void *arg)
{
	long n = (long)(intptr_t)arg;

	for (long i = 0; i < n; i++) {
		if (!co_go(task_yielder, NULL)) {
			CHECK(!"co_go failed");
			break;
		}
		if (i % 1024 == 1023) {
			co_yield();
			if (i + 1 - atomic_load(&many_done) > LIVE_MAX)
				CHECK(TU_WAIT_UNTIL(
					i + 1 - atomic_load(&many_done) <=
						LIVE_MAX / 2,
					60 * TU_SEC));
		}
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&many_done) == n, 120 * TU_SEC));
	check_only_main_left();
}

static void test_stress_many_tasks_yielding(void **state)
{
	long n = tu_scale(300000);

	(void)state;
	atomic_store(&many_ran, 0);
	atomic_store(&many_yields, 0);
	atomic_store(&many_done, 0);
	tu_run(task_main_many, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&many_ran), n);
	assert_int_equal(atomic_load(&many_yields), n * YIELDS_PER_TASK);
	assert_int_equal(atomic_load(&many_done), n);
}

/* All at once: task 1 spawns them without yielding, so the run queue
 * overflows into the global queue and idle workers steal. */
static void task_main_burst(void *arg)
{
	long n = (long)(intptr_t)arg;

	for (long i = 0; i < n; i++)
		CHECK(co_go(task_yielder, NULL) != 0);
	CHECK(co_num_tasks() <= (size_t)n + 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&many_done) == n, 120 * TU_SEC));
	check_only_main_left();
}

static void test_stress_burst_overflows_run_queue(void **state)
{
	long n = tu_scale(50000);

	(void)state;
	atomic_store(&many_ran, 0);
	atomic_store(&many_yields, 0);
	atomic_store(&many_done, 0);
	tu_run(task_main_burst, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&many_ran), n);
	assert_int_equal(atomic_load(&many_yields), n * YIELDS_PER_TASK);
}

/* ------------------------------------------------------------------------
 * 2. Spawn trees
 * ---------------------------------------------------------------------- */

static _Atomic long tree_nodes;
static _Atomic long tree_failed;

static void task_node(void *arg)
{
	uintptr_t depth = (uintptr_t)arg;

	atomic_fetch_add(&tree_nodes, 1);
	if (depth == 0)
		return;
	for (int i = 0; i < 4; i++) {
		if (!co_go(task_node, (void *)(depth - 1)))
			atomic_fetch_add(&tree_failed, 1);
		co_yield();
	}
}

static long tree_count(int depth)
{
	long n = 0, level = 1;
	for (int d = 0; d <= depth; d++) {
		n += level;
		level *= 4;
	}
	return n;
}

static void task_main_tree(void *arg)
{
	int depth = (int)(intptr_t)arg;

	CHECK(co_go(task_node, (void *)(uintptr_t)depth) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&tree_nodes) == tree_count(depth),
			    60 * TU_SEC));
	check_only_main_left();
}

static void test_stress_spawn_tree(void **state)
{
	int depth = tu_scale(10) >= 10 ? 8 : 6; /* 87381 or 5461 tasks */

	(void)state;
	atomic_store(&tree_nodes, 0);
	atomic_store(&tree_failed, 0);
	tu_run(task_main_tree, (void *)(intptr_t)depth);
	assert_int_equal(atomic_load(&tree_failed), 0);
	assert_int_equal(atomic_load(&tree_nodes), tree_count(depth));
}

/* ------------------------------------------------------------------------
 * 3. Ping-pong
 * ---------------------------------------------------------------------- */

#define NPAIRS 64

struct pair {
	_Atomic int turn;     /* 0 or 1: who moves */
	_Atomic int moves[2]; /* moves made by each side */
};

static struct pair pairs[NPAIRS];
static _Atomic int pp_rounds;
static _Atomic int pp_done;
static _Atomic int pp_stuck;

static void task_pp_side(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	struct pair *p = &pairs[v / 2];
	int me = (int)(v % 2);
	int rounds = atomic_load(&pp_rounds);
	int64_t end = co_now() + 60 * TU_SEC;

	for (int i = 0; i < rounds; i++) {
		while (atomic_load(&p->turn) != me) {
			if (co_now() > end) {
				atomic_fetch_add(&pp_stuck, 1);
				goto out;
			}
			co_yield();
		}
		atomic_fetch_add(&p->moves[me], 1);
		atomic_store(&p->turn, 1 - me);
	}
out:
	atomic_fetch_add(&pp_done, 1);
}

static void task_main_pingpong(void *arg)
{
	(void)arg;
	for (uintptr_t i = 0; i < 2 * NPAIRS; i++)
		CHECK(co_go(task_pp_side, (void *)i) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&pp_done) == 2 * NPAIRS, 90 * TU_SEC));
	check_only_main_left();
}

static void test_stress_pingpong_pairs(void **state)
{
	int rounds = (int)tu_scale(500);

	(void)state;
	memset(pairs, 0, sizeof(pairs));
	atomic_store(&pp_rounds, rounds);
	atomic_store(&pp_done, 0);
	atomic_store(&pp_stuck, 0);
	tu_run(task_main_pingpong, NULL);
	assert_int_equal(atomic_load(&pp_stuck), 0);
	for (int i = 0; i < NPAIRS; i++) {
		assert_int_equal(atomic_load(&pairs[i].moves[0]), rounds);
		assert_int_equal(atomic_load(&pairs[i].moves[1]), rounds);
	}
}

/* ------------------------------------------------------------------------
 * 4. Mixed parking
 * ---------------------------------------------------------------------- */

static _Atomic long mix_yields, mix_sleeps, mix_blocks, mix_done;
static _Atomic long mix_errors;

static void blocking_tiny(void *arg)
{
	atomic_fetch_add((_Atomic long *)arg, 1);
}

static void task_mixed(void *arg)
{
	uint32_t r = (uint32_t)(uintptr_t)arg * 2654435761u + 1;

	for (int i = 0; i < 6; i++) {
		r ^= r << 13;
		r ^= r >> 17;
		r ^= r << 5;
		switch (r % 3) {
		case 0:
			co_yield();
			atomic_fetch_add(&mix_yields, 1);
			break;
		case 1:
			co_sleep((int64_t)(r % 200) * 1000);
			atomic_fetch_add(&mix_sleeps, 1);
			break;
		default:
			if (r % 16 == 2) {
				if (co_blocking(blocking_tiny, &mix_blocks) != 0)
					atomic_fetch_add(&mix_errors, 1);
			} else {
				co_yield();
				atomic_fetch_add(&mix_yields, 1);
			}
			break;
		}
	}
	atomic_fetch_add(&mix_done, 1);
}

static void task_main_mixed(void *arg)
{
	long n = (long)(intptr_t)arg;

	for (long i = 0; i < n; i++) {
		CHECK(co_go(task_mixed, (void *)(uintptr_t)i) != 0);
		if (i % 512 == 511)
			co_yield();
	}
	CHECK(TU_WAIT_UNTIL(atomic_load(&mix_done) == n, 60 * TU_SEC));
	check_only_main_left();
}

static void test_stress_mixed_parking(void **state)
{
	long n = tu_scale(20000);

	(void)state;
	atomic_store(&mix_yields, 0);
	atomic_store(&mix_sleeps, 0);
	atomic_store(&mix_blocks, 0);
	atomic_store(&mix_done, 0);
	atomic_store(&mix_errors, 0);
	tu_run(task_main_mixed, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&mix_done), n);
	assert_int_equal(atomic_load(&mix_errors), 0);
	assert_int_equal(atomic_load(&mix_yields) + atomic_load(&mix_sleeps) +
				 atomic_load(&mix_blocks),
			 6 * n);
	assert_true(atomic_load(&mix_blocks) > 0);
}

/* ------------------------------------------------------------------------
 * 5. Repeated runs
 * ---------------------------------------------------------------------- */

#define NRUNS 50

static _Atomic long run_children;
static _Atomic long run_mains;

static void task_run_child(void *arg)
{
	(void)arg;
	co_yield();
	atomic_fetch_add(&run_children, 1);
}

static void task_main_run(void *arg)
{
	long n = (long)(intptr_t)arg;
	long before = atomic_load(&run_children);

	CHECK_EQ(co_self(), 1);
	CHECK_EQ(co_num_tasks(), 1);
	CHECK_EQ(testing_table_count(), 1);
	for (long i = 0; i < n; i++)
		CHECK(co_go(task_run_child, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&run_children) == before + n,
			    30 * TU_SEC));
	check_only_main_left();
	atomic_fetch_add(&run_mains, 1);
}

static void test_stress_run_repeated(void **state)
{
	long n = tu_scale(2000);

	(void)state;
	atomic_store(&run_children, 0);
	atomic_store(&run_mains, 0);
	for (int i = 0; i < NRUNS; i++)
		tu_run(task_main_run, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&run_mains), NRUNS);
	assert_int_equal(atomic_load(&run_children), NRUNS * n);
}

static _Atomic long left_started;

static void task_left_behind(void *arg)
{
	uintptr_t kind = (uintptr_t)arg;

	atomic_fetch_add(&left_started, 1);
	if (kind % 2)
		co_sleep(3600 * TU_SEC);
	else
		for (;;)
			co_yield();
}

static void task_main_leave(void *arg)
{
	long n = (long)(intptr_t)arg;
	long before = atomic_load(&left_started);

	for (long i = 0; i < n; i++)
		CHECK(co_go(task_left_behind, (void *)(uintptr_t)i) != 0);
	/* Half of them started; the rest stay queued. */
	CHECK(TU_WAIT_UNTIL(atomic_load(&left_started) >= before + n / 2,
			    30 * TU_SEC));
}

static void test_stress_run_repeated_abandoning(void **state)
{
	long n = tu_scale(1000);

	(void)state;
	atomic_store(&left_started, 0);
	for (int i = 0; i < 20; i++)
		tu_run(task_main_leave, (void *)(intptr_t)n);
	assert_true(atomic_load(&left_started) >= 20 * (n / 2));
	/* The runtime after all that is as good as new. */
	atomic_store(&run_children, 0);
	atomic_store(&run_mains, 0);
	tu_run(task_main_run, (void *)(intptr_t)n);
	assert_int_equal(atomic_load(&run_children), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Many tasks */
		cmocka_unit_test(test_stress_many_tasks_yielding),
		cmocka_unit_test(test_stress_burst_overflows_run_queue),
		/* 2. Spawn trees */
		cmocka_unit_test(test_stress_spawn_tree),
		/* 3. Ping-pong */
		cmocka_unit_test(test_stress_pingpong_pairs),
		/* 4. Mixed parking */
		cmocka_unit_test(test_stress_mixed_parking),
		/* 5. Repeated runs */
		cmocka_unit_test(test_stress_run_repeated),
		cmocka_unit_test(test_stress_run_repeated_abandoning),
	};
	return cmocka_run_group_tests_name("runtime.stress", tests, NULL, NULL);
}
