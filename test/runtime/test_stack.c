/* SPDX-License-Identifier: MIT */
/*
 * test_stack.c - tests of runtime/stack.c (stack slots, guard modes, the
 * task table) and of the overflow reports of runtime/fatal.c and sched.c.
 *
 * Scenario groups:
 *   1. Depth         a task recurses through most of its stack and comes
 *                    back, in every guard mode, switching on the way.
 *   2. Overflow      a task that overflows its stack ends the process with
 *                    exit status 2 and a stderr message with "stack
 *                    overflow", its id, its name and its creator's id: in
 *                    the default mode, with COPPER_TEST_GUARD_MODE=mprotect
 *                    (the fault in the guard page), and =canary (found at
 *                    the next switch: the helper overflows into the page
 *                    under the stack, unwinds and co_yields).  These run
 *                    test/helpers/stack_helper as a subprocess.
 *   3. Guard modes   testing_guard_mode reports the mode in force, and the
 *                    test door selects the fallbacks.
 *   4. Task table    testing_table_count equals co_num_tasks with N tasks
 *                    parked in co_sleep, and drops back to 1; exited tasks'
 *                    slots are not counted.
 *   5. Task status   testing_task_status shows "sleep", the creator's id
 *                    and the name of a parked named task; "running" for the
 *                    caller; -ENOENT for ids that are not live.
 *   6. Preparing     after a burst of spawns emptied the pool, an idle
 *                    worker fills it with fresh slots up to the target and
 *                    stops there; the prepared slots read as dead in the
 *                    task table, the next spawns take them without carving,
 *                    and in canary mode they carry their canaries (the
 *                    tasks switch with them).  COPPER_PROCS=1, so the only
 *                    idle time is the spawner's sleep: deterministic.
 */
#include "test_util.h"

#include "runtime/testing.h"

#define GUARD_MADVISE_NAME "guard pages (MADV_GUARD_INSTALL)"
#define GUARD_MPROTECT_NAME "guard pages (mprotect)"
#define GUARD_CANARY_NAME "canary"

static char *saved_mode;

static int setup_env(void **state)
{
	(void)state;
	const char *m = getenv("COPPER_TEST_GUARD_MODE");
	saved_mode = m ? strdup(m) : NULL;
	unsetenv("COPPER_TEST_GUARD_MODE");
	return 0;
}

static int teardown_env(void **state)
{
	(void)state;
	if (saved_mode)
		setenv("COPPER_TEST_GUARD_MODE", saved_mode, 1);
	else
		unsetenv("COPPER_TEST_GUARD_MODE");
	free(saved_mode);
	saved_mode = NULL;
	return 0;
}

/* ------------------------------------------------------------------------
 * 1. Depth
 * ---------------------------------------------------------------------- */

/* The default COPPER_STACK_SIZE (runtime/config.c). */
#define DEFAULT_STACK (256 * 1024)

/* Frames of a few hundred bytes, all written; stops limit bytes below
 * top, and yields every 64 frames so that switches (and the canary
 * check) happen at depth, possibly moving the task to another worker. */
__attribute__((noinline)) static unsigned dive(uintptr_t top, size_t limit,
					       unsigned depth)
{
	volatile unsigned char buf[256];
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(depth + i);
	if (depth % 64 == 63)
		co_yield();
	if (top - here >= limit)
		return buf[depth % sizeof(buf)];
	return dive(top, limit, depth + 1) + buf[(depth * 7) % sizeof(buf)];
}

static _Atomic int divers_done;

static void task_diver(void *arg)
{
	size_t limit = (size_t)(uintptr_t)arg;

	dive((uintptr_t)__builtin_frame_address(0), limit, 0);
	/* Still ours after the deep switches. */
	CHECK(co_self() != 0);
	atomic_fetch_add(&divers_done, 1);
}

static void task_main_deep(void *arg)
{
	(void)arg;
	/* Task 1, and 8 others diving side by side. */
	task_diver((void *)(uintptr_t)(DEFAULT_STACK * 3 / 4));
	for (int i = 0; i < 8; i++)
		CHECK(co_go(task_diver,
			    (void *)(uintptr_t)(DEFAULT_STACK * 3 / 4)) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&divers_done) == 9, 20 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void check_deep_in_mode(const char *mode)
{
	tu_setenv("COPPER_TEST_GUARD_MODE", mode);
	atomic_store(&divers_done, 0);
	tu_run(task_main_deep, NULL);
	assert_int_equal(atomic_load(&divers_done), 9);
}

static void test_stack_deep_recursion_within_size(void **state)
{
	(void)state;
	check_deep_in_mode(NULL);
}

static void test_stack_deep_recursion_mprotect_mode(void **state)
{
	(void)state;
	check_deep_in_mode("mprotect");
}

/* The canary must not fire for a stack used to three quarters. */
static void test_stack_deep_recursion_canary_mode(void **state)
{
	(void)state;
	check_deep_in_mode("canary");
}

/* ------------------------------------------------------------------------
 * 2. Overflow (subprocess)
 * ---------------------------------------------------------------------- */

struct overflow_run {
	const char *guard_env;   /* COPPER_TEST_GUARD_MODE, or NULL */
	const char *mode;        /* stack_helper's mode */
	const char *want_guard;  /* guard mode it must report; NULL: a
				    guard-page mode */
};

static struct tu_proc proc;


static void run_overflow(const struct overflow_run *r)
{
	char guard_env[64];
	const char *env[] = {guard_env, "COPPER_STACK_SIZE=64k",
			     "COPPER_PROCS=1", NULL};
	char *argv[] = {(char *)tu_helper("COPPER_TEST_STACK_HELPER"),
			(char *)r->mode, "65536", NULL};

	if (strcmp(r->mode, "overflow") == 0)
		argv[2] = NULL;
	if (r->guard_env)
		snprintf(guard_env, sizeof(guard_env),
			 "COPPER_TEST_GUARD_MODE=%s", r->guard_env);
	else
		snprintf(guard_env, sizeof(guard_env), "COPPER_TEST_GUARD_MODE");
	tu_proc_run(argv, env, &proc);

	/* What the helper says about itself. */
	const char *g = strstr(proc.out, "guard=");
	if (!g)
		fail_msg("the helper printed no guard mode; status 0x%x\n"
			 "stdout:\n%s\nstderr:\n%s",
			 proc.status, proc.out, proc.err);
	g += strlen("guard=");
	if (r->want_guard) {
		if (strncmp(g, r->want_guard, strlen(r->want_guard)) != 0)
			fail_msg("guard mode: want %s, helper says %.40s",
				 r->want_guard, g);
	} else if (strncmp(g, "guard pages", strlen("guard pages")) != 0) {
		fail_msg("default guard mode is not a guard-page mode: %.40s",
			 g);
	}
	unsigned long long id = 0, creator = 0;
	const char *ids = strstr(proc.out, "id=");
	assert_non_null(ids);
	assert_int_equal(sscanf(ids, "id=%llu creator=%llu", &id, &creator),
			 2);
	assert_true(id > 1);
	assert_true(creator > 1); /* "parent", not task 1 */
	assert_true(creator != id);

	/* How it died. */
	if (!WIFEXITED(proc.status) || WEXITSTATUS(proc.status) != 2)
		fail_msg("status 0x%x, want exit 2\nstdout:\n%s\nstderr:\n%s",
			 proc.status, proc.out, proc.err);
	if (!strstr(proc.err, "stack overflow"))
		fail_msg("no \"stack overflow\" in stderr:\n%s", proc.err);
	if (!tu_names_task(proc.err, "", id))
		fail_msg("stderr does not name task %llu:\n%s", id, proc.err);
	if (!tu_names_task(proc.err, "created by ", creator))
		fail_msg("stderr does not name creator %llu:\n%s", creator,
			 proc.err);
	if (!strstr(proc.err, "deep"))
		fail_msg("stderr does not name the task \"deep\":\n%s",
			 proc.err);
}

static void test_stack_overflow_default_mode_exits_2(void **state)
{
	static const struct overflow_run r = {NULL, "overflow", NULL};
	char head[64], id[32] = "";

	(void)state;
	run_overflow(&r);
	assert_null(strstr(proc.out, "after-dive"));
	/* The dying task's stack, symbolized as in debug=2 (by the monitor
	 * thread, off the broken stack), not raw addresses. */
	const char *p = strstr(proc.out, "id=");
	if (p)
		snprintf(id, sizeof(id), "%.*s", (int)strcspn(p + 3, " \n"),
			 p + 3);
	snprintf(head, sizeof(head), "goroutine %s [running", id);
	if (!strstr(proc.err, head) || !strstr(proc.err, "\ndive(...)\n\t") ||
	    !strstr(proc.err, "stack_helper.c:") || strstr(proc.err, "exe+"))
		fail_msg("the overflow does not show the symbolized stack of "
			 "task %s:\n%.2000s", id, proc.err);
}

static void test_stack_overflow_mprotect_mode_exits_2(void **state)
{
	static const struct overflow_run r = {"mprotect", "overflow",
					      GUARD_MPROTECT_NAME};

	(void)state;
	run_overflow(&r);
	assert_null(strstr(proc.out, "after-dive"));
}

/* A small overflow, just past the foot of the stack, faults in the guard
 * page too: the guard modes do not wait for a switch. */
static void test_stack_overflow_small_guard_mode_exits_2(void **state)
{
	static const struct overflow_run r = {NULL, "overflow-yield", NULL};

	(void)state;
	run_overflow(&r);
	assert_null(strstr(proc.out, "after-dive"));
}

static void test_stack_overflow_canary_mode_caught_at_yield(void **state)
{
	static const struct overflow_run r = {"canary", "overflow-yield",
					      GUARD_CANARY_NAME};

	(void)state;
	run_overflow(&r);
	/* The canary is only looked at when the task switches: it came back
	 * from the dive, and died in the co_yield (task 1 was runnable on
	 * the one worker, so the yield did switch). */
	assert_non_null(strstr(proc.out, "after-dive"));
	if (strstr(proc.out, "after-yield"))
		fail_msg("the canary was not checked at co_yield; stdout:\n%s",
			 proc.out);
}

/* ------------------------------------------------------------------------
 * 3. Guard modes
 * ---------------------------------------------------------------------- */

static char mode_seen[64];

static void task_noop(void *arg)
{
	(void)arg;
}

static void task_main_mode(void *arg)
{
	(void)arg;
	snprintf(mode_seen, sizeof(mode_seen), "%s", testing_guard_mode());
	/* Spawn enough to carve more than one batch of slots. */
	for (int i = 0; i < 200; i++)
		CHECK(co_go(task_noop, NULL) != 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_STR(testing_guard_mode(), mode_seen);
}

static void test_stack_guard_mode_reported(void **state)
{
	(void)state;
	tu_run(task_main_mode, NULL);
	if (strcmp(mode_seen, GUARD_MADVISE_NAME) != 0 &&
	    strcmp(mode_seen, GUARD_MPROTECT_NAME) != 0)
		fail_msg("default guard mode: %s", mode_seen);

	tu_setenv("COPPER_TEST_GUARD_MODE", "mprotect");
	tu_run(task_main_mode, NULL);
	assert_string_equal(mode_seen, GUARD_MPROTECT_NAME);

	tu_setenv("COPPER_TEST_GUARD_MODE", "canary");
	tu_run(task_main_mode, NULL);
	assert_string_equal(mode_seen, GUARD_CANARY_NAME);

	/* An unknown value keeps the default. */
	tu_setenv("COPPER_TEST_GUARD_MODE", "bogus");
	tu_run(task_main_mode, NULL);
	assert_string_not_equal(mode_seen, GUARD_CANARY_NAME);
}

/* ------------------------------------------------------------------------
 * 4. Task table
 * ---------------------------------------------------------------------- */

#define NSLEEPERS 1000

static _Atomic int sleepers_started;
static _Atomic int sleepers_release;
static _Atomic int sleepers_done;

static void task_sleeper(void *arg)
{
	(void)arg;
	atomic_fetch_add(&sleepers_started, 1);
	while (!atomic_load(&sleepers_release))
		co_sleep(2 * TU_MS);
	atomic_fetch_add(&sleepers_done, 1);
}

static void task_main_table(void *arg)
{
	(void)arg;
	CHECK_EQ(testing_table_count(), 1);
	for (int i = 0; i < NSLEEPERS; i++)
		CHECK(co_go(task_sleeper, NULL) != 0);
	/* Queued but not yet run: counted by both already. */
	CHECK_EQ(co_num_tasks(), NSLEEPERS + 1);
	CHECK_EQ(testing_table_count(), NSLEEPERS + 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sleepers_started) == NSLEEPERS,
			    10 * TU_SEC));
	CHECK_EQ(co_num_tasks(), NSLEEPERS + 1);
	CHECK_EQ(testing_table_count(), co_num_tasks());
	atomic_store(&sleepers_release, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sleepers_done) == NSLEEPERS,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(testing_table_count(), 1);
	/* Reused slots: a second round counts the same. */
	atomic_store(&sleepers_release, 0);
	atomic_store(&sleepers_started, 0);
	for (int i = 0; i < NSLEEPERS / 2; i++)
		CHECK(co_go(task_sleeper, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sleepers_started) == NSLEEPERS / 2,
			    10 * TU_SEC));
	CHECK_EQ(testing_table_count(), NSLEEPERS / 2 + 1);
	CHECK_EQ(co_num_tasks(), NSLEEPERS / 2 + 1);
	atomic_store(&sleepers_release, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sleepers_done) ==
				    NSLEEPERS + NSLEEPERS / 2,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(testing_table_count(), 1);
}

static void test_stack_table_count_matches_num_tasks(void **state)
{
	(void)state;
	atomic_store(&sleepers_started, 0);
	atomic_store(&sleepers_release, 0);
	atomic_store(&sleepers_done, 0);
	tu_run(task_main_table, NULL);
	assert_int_equal(atomic_load(&sleepers_done), NSLEEPERS * 3 / 2);
}

/* ------------------------------------------------------------------------
 * 5. Task status
 * ---------------------------------------------------------------------- */

static _Atomic uint64_t napper_id;
static _Atomic uint64_t middle_id;
static _Atomic int napper_release;
static _Atomic int napper_done;

static void task_napper(void *arg)
{
	(void)arg;
	while (!atomic_load(&napper_release))
		co_sleep(5 * TU_MS);
	atomic_store(&napper_done, 1);
}

static void task_middle(void *arg)
{
	(void)arg;
	atomic_store(&middle_id, co_self());
	atomic_store(&napper_id, co_go_named("napper", task_napper, NULL));
}

static void task_main_status(void *arg)
{
	char status[32], name[32];
	uint64_t creator = 0;

	(void)arg;
	CHECK(co_go(task_middle, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&napper_id) != 0, 5 * TU_SEC));
	uint64_t id = atomic_load(&napper_id);
	CHECK(TU_WAIT_UNTIL(testing_task_status(id, status, sizeof(status),
						&creator, name,
						sizeof(name)) == 0 &&
				    strcmp(status, "sleep") == 0,
			    5 * TU_SEC));
	CHECK_STR(status, "sleep");
	CHECK_EQ(creator, atomic_load(&middle_id));
	CHECK_STR(name, "napper");
	/* The middle task is gone; its child lives on. */
	CHECK(TU_WAIT_UNTIL(co_num_tasks() == 2, 5 * TU_SEC));
	CHECK_EQ(testing_task_status(atomic_load(&middle_id), status,
				     sizeof(status), NULL, NULL, 0),
		 -ENOENT);
	/* The caller itself. */
	CHECK_EQ(testing_task_status(co_self(), status, sizeof(status),
				     &creator, name, sizeof(name)),
		 0);
	CHECK_STR(status, "running");
	CHECK_EQ(creator, 0);
	/* Ids that are not live. */
	CHECK_EQ(testing_task_status(0, status, sizeof(status), NULL, NULL, 0),
		 -ENOENT);
	CHECK_EQ(testing_task_status(id + 100000, status, sizeof(status),
				     NULL, NULL, 0),
		 -ENOENT);
	/* A short buffer is cut, not overrun. */
	char tiny[3] = {'x', 'x', 'x'};
	CHECK_EQ(testing_task_status(id, tiny, sizeof(tiny), NULL, NULL, 0), 0);
	CHECK(tiny[2] == '\0');
	atomic_store(&napper_release, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&napper_done), 5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(testing_task_status(id, status, sizeof(status), NULL, NULL, 0),
		 -ENOENT);
}

static void test_stack_task_status_sleep_creator_name(void **state)
{
	(void)state;
	atomic_store(&napper_id, 0);
	atomic_store(&middle_id, 0);
	atomic_store(&napper_release, 0);
	atomic_store(&napper_done, 0);
	tu_run(task_main_status, NULL);
	assert_int_equal(atomic_load(&napper_done), 1);
}

/* ------------------------------------------------------------------------
 * 6. Preparing ahead
 * ---------------------------------------------------------------------- */

#define NBURST 2000
#define PREPARE_TARGET 512 /* stack.c */
#define PREPARE_BATCH 16   /* stack.c */

static co_chan *burst_chan;
static _Atomic int burst_parked;

static void task_burst(void *arg)
{
	(void)arg;
	co_yield(); /* a switch: in canary mode, checks this slot's canary */
	atomic_fetch_add(&burst_parked, 1);
	CHECK_EQ(co_chan_recv(burst_chan, NULL), CO_EPIPE);
}

static void task_main_prepare(void *arg)
{
	size_t carved0, carved1, carved2, pooled;

	(void)arg;
	burst_chan = co_chan_new(sizeof(int), 0);
	CHECK(burst_chan != NULL);
	for (int i = 0; i < NBURST; i++)
		CHECK(co_go(task_burst, NULL) != 0);
	testing_stack_counts(&carved0, &pooled);
	CHECK(carved0 >= NBURST + 1);
	/* The one worker runs the burst, then, idle, prepares. */
	CHECK(TU_WAIT_UNTIL((testing_stack_counts(NULL, &pooled),
			     pooled >= PREPARE_TARGET),
			    10 * TU_SEC));
	CHECK_EQ(atomic_load(&burst_parked), NBURST);
	co_sleep(20 * TU_MS); /* more idle time: it must have stopped */
	testing_stack_counts(&carved1, &pooled);
	CHECK(carved1 - carved0 >= PREPARE_TARGET);
	CHECK(carved1 - carved0 <= PREPARE_TARGET + PREPARE_BATCH);
	CHECK(pooled <= PREPARE_TARGET + PREPARE_BATCH);
	/* Prepared slots hold no task. */
	CHECK_EQ(testing_table_count(), NBURST + 1);
	/* The next spawns take them: nothing new is carved. */
	for (int i = 0; i < PREPARE_TARGET / 2; i++)
		CHECK(co_go(task_burst, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&burst_parked) ==
				    NBURST + PREPARE_TARGET / 2,
			    10 * TU_SEC));
	testing_stack_counts(&carved2, NULL);
	CHECK_EQ(carved2, carved1);
	CHECK_EQ(co_num_tasks(), NBURST + PREPARE_TARGET / 2 + 1);
	CHECK_EQ(co_chan_close(burst_chan), 0);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
	co_chan_free(burst_chan);
}

static void run_prepare(const char *mode)
{
	tu_setenv("COPPER_PROCS", "1");
	tu_setenv("COPPER_TEST_GUARD_MODE", mode);
	atomic_store(&burst_parked, 0);
	tu_run(task_main_prepare, NULL);
	tu_setenv("COPPER_PROCS", NULL);
	assert_int_equal(atomic_load(&burst_parked),
			 NBURST + PREPARE_TARGET / 2);
}

static void test_stack_prepare_fills_pool_after_burst(void **state)
{
	(void)state;
	run_prepare(NULL);
}

static void test_stack_prepare_canary_mode(void **state)
{
	(void)state;
	run_prepare("canary");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_env, teardown_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Depth */
		T(test_stack_deep_recursion_within_size),
		T(test_stack_deep_recursion_mprotect_mode),
		T(test_stack_deep_recursion_canary_mode),
		/* 2. Overflow */
		T(test_stack_overflow_default_mode_exits_2),
		T(test_stack_overflow_mprotect_mode_exits_2),
		T(test_stack_overflow_small_guard_mode_exits_2),
		T(test_stack_overflow_canary_mode_caught_at_yield),
		/* 3. Guard modes */
		T(test_stack_guard_mode_reported),
		/* 4. Task table */
		T(test_stack_table_count_matches_num_tasks),
		/* 5. Task status */
		T(test_stack_task_status_sleep_creator_name),
		/* 6. Preparing ahead */
		T(test_stack_prepare_fills_pool_after_burst),
		T(test_stack_prepare_canary_mode),
	};
	return cmocka_run_group_tests_name("runtime.stack", tests, NULL, NULL);
}
