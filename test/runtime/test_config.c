/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - tests of runtime/config.c: the COPPER_PROCS and
 * COPPER_STACK_SIZE environment variables that co_run reads.
 *
 * Scenario groups:
 *   1. COPPER_PROCS valid        the runtime starts that many workers
 *                                (testing_nprocs); unset, one per CPU.
 *   2. COPPER_PROCS invalid      "0", "abc", "-1", "2x", "99999", "1k", ...
 *                                make co_run return -EINVAL without running
 *                                task 1, after printing a message that names
 *                                the variable and the value.
 *   3. COPPER_STACK_SIZE valid   plain bytes and k/m suffixes start the
 *                                runtime; the size is honoured: a helper
 *                                recursing 900 KB deep survives with "1m"
 *                                and overflows by default, and the overflow
 *                                message gives the configured size (rounded
 *                                up to pages).
 *   4. COPPER_STACK_SIZE invalid "100", "abc", "2g", ... as for procs.
 *   5. After a refusal           the process is as before: nothing counted,
 *                                and co_run with good values works.
 *
 * Variables are set with setenv in this process for co_run, and in the
 * environment of the helper program for the stack checks; each case
 * restores them.
 */
#include "test_util.h"

#include "runtime/testing.h"

static char *saved_procs, *saved_stack;

static int setup_env(void **state)
{
	(void)state;
	const char *p = getenv("COPPER_PROCS"), *s = getenv("COPPER_STACK_SIZE");
	saved_procs = p ? strdup(p) : NULL;
	saved_stack = s ? strdup(s) : NULL;
	unsetenv("COPPER_PROCS");
	unsetenv("COPPER_STACK_SIZE");
	return 0;
}

static int teardown_env(void **state)
{
	(void)state;
	if (saved_procs)
		setenv("COPPER_PROCS", saved_procs, 1);
	else
		unsetenv("COPPER_PROCS");
	if (saved_stack)
		setenv("COPPER_STACK_SIZE", saved_stack, 1);
	else
		unsetenv("COPPER_STACK_SIZE");
	free(saved_procs);
	free(saved_stack);
	saved_procs = saved_stack = NULL;
	return 0;
}

static _Atomic int main_ran;
static _Atomic int seen_nprocs;

static void task_main_nprocs(void *arg)
{
	(void)arg;
	atomic_fetch_add(&main_ran, 1);
	atomic_store(&seen_nprocs, testing_nprocs());
	CHECK_EQ(co_self(), 1);
}

/* ------------------------------------------------------------------------
 * 1. COPPER_PROCS valid
 * ---------------------------------------------------------------------- */

static void check_procs(const char *value, int want)
{
	tu_setenv("COPPER_PROCS", value);
	atomic_store(&main_ran, 0);
	atomic_store(&seen_nprocs, 0);
	tu_run(task_main_nprocs, NULL);
	assert_int_equal(atomic_load(&main_ran), 1);
	if (atomic_load(&seen_nprocs) != want)
		fail_msg("COPPER_PROCS=%s: %d workers, want %d",
			 value ? value : "(unset)", atomic_load(&seen_nprocs),
			 want);
}

static void test_config_procs_valid_honoured(void **state)
{
	(void)state;
	check_procs("1", 1);
	check_procs("2", 2);
	check_procs("3", 3);
	check_procs("8", 8);
	check_procs("007", 7);
	check_procs("1024", 1024); /* the largest allowed */
}

static void test_config_procs_unset_is_cpu_count(void **state)
{
	(void)state;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	assert_true(ncpu > 0);
	check_procs(NULL, (int)(ncpu < 1024 ? ncpu : 1024));
}

/* ------------------------------------------------------------------------
 * 2. and 4. Invalid values
 * ---------------------------------------------------------------------- */

/* co_run with name=value must return -EINVAL, not run task 1, and print a
 * message naming name and value on stderr. */
static void check_refused(const char *name, const char *value)
{
	struct tu_capture cap;
	char err[4096];

	tu_setenv(name, value);
	atomic_store(&main_ran, 0);
	tu_capture_begin(&cap);
	int rc = co_run(task_main_nprocs, NULL);
	tu_capture_end(&cap, err, sizeof(err));
	tu_setenv(name, NULL);
	if (rc != CO_EINVAL)
		fail_msg("%s=\"%s\": co_run returned %d (%s), want -EINVAL",
			 name, value, rc, co_errname(rc));
	assert_int_equal(atomic_load(&main_ran), 0);
	if (!strstr(err, name))
		fail_msg("%s=\"%s\": the message does not name the variable: "
			 "\"%s\"",
			 name, value, err);
	if (*value && !strstr(err, value))
		fail_msg("%s=\"%s\": the message does not quote the value: "
			 "\"%s\"",
			 name, value, err);
	/* Nothing half-started is left behind. */
	assert_int_equal(co_num_tasks(), 0);
	assert_int_equal(co_self(), 0);
}

static void test_config_procs_invalid_refused(void **state)
{
	static const char *const bad[] = {
		"0", "abc", "-1", "2x", "99999", "1k", "1025", " 2", "2 ",
		"+2", "0x4", "1.5", "18446744073709551617",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_refused("COPPER_PROCS", bad[i]);
}

static void test_config_stack_invalid_refused(void **state)
{
	static const char *const bad[] = {
		"100", "abc", "2g", "16383", "-65536", "64q", "64kb", "1t",
		"1025m", "k", " 64k", "18446744073709551615k",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_refused("COPPER_STACK_SIZE", bad[i]);
}

static void test_config_stall_ms_invalid_refused(void **state)
{
	static const char *const bad[] = {
		"abc", "-1", "50ms", "3600001", " 5", "1.5", "0x10",
		"18446744073709551617",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_refused("COPPER_STALL_MS", bad[i]);
}

static void test_config_misuse_invalid_refused(void **state)
{
	static const char *const bad[] = {"", "Fatal", "loud", "report "};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_refused("COPPER_MISUSE", bad[i]);
}

static void test_config_sigquit_invalid_refused(void **state)
{
	static const char *const bad[] = {"", "2", "yes", "01", "1 "};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_refused("COPPER_SIGQUIT", bad[i]);
}

static void test_config_stall_ms_valid_starts(void **state)
{
	static const char *const good[] = {"0", "1", "50", "3600000"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tu_setenv("COPPER_STALL_MS", good[i]);
		atomic_store(&main_ran, 0);
		tu_reset();
		int rc = co_run(task_main_nprocs, NULL);
		tu_setenv("COPPER_STALL_MS", NULL);
		if (rc != 0)
			fail_msg("COPPER_STALL_MS=%s: co_run returned %d",
				 good[i], rc);
		tu_assert_no_failures();
		assert_int_equal(atomic_load(&main_ran), 1);
	}
}

/* ------------------------------------------------------------------------
 * 3. COPPER_STACK_SIZE valid
 * ---------------------------------------------------------------------- */

static void test_config_stack_valid_starts(void **state)
{
	static const char *const good[] = {
		"16k", "16384", "64k", "64K", "65536", "20000", "1m", "1M",
#ifndef TU_ASAN
		/* The largest allowed.  Not under AddressSanitizer: there
		 * stack_destroy unpoisons every region whole, committing
		 * region/8 bytes of shadow (1024 slots of 1 GiB: 128 GiB),
		 * and the OOM killer ends the machine's other programs too. */
		"1g",
#endif
	};

	(void)state;
#ifdef TU_ASAN
	fprintf(stderr, "# %s: COPPER_STACK_SIZE=1g not tried under "
			"AddressSanitizer (shadow of whole regions)\n",
		__func__);
#endif
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tu_setenv("COPPER_STACK_SIZE", good[i]);
		atomic_store(&main_ran, 0);
		tu_reset();
		int rc = co_run(task_main_nprocs, NULL);
		if (rc != 0)
			fail_msg("COPPER_STACK_SIZE=%s: co_run returned %d",
				 good[i], rc);
		tu_assert_no_failures();
		assert_int_equal(atomic_load(&main_ran), 1);
	}
}

/* Runs the stack helper with COPPER_STACK_SIZE=size (NULL: unset). */
static void run_helper(const char *size, const char *mode, const char *bytes,
		       struct tu_proc *p)
{
	char env_size[64];
	const char *env[] = {env_size, NULL};
	char *argv[] = {(char *)tu_helper("COPPER_TEST_STACK_HELPER"),
			(char *)mode, (char *)bytes, NULL};

	if (size)
		snprintf(env_size, sizeof(env_size), "COPPER_STACK_SIZE=%s",
			 size);
	else
		snprintf(env_size, sizeof(env_size), "COPPER_STACK_SIZE");
	tu_proc_run(argv, env, p);
}

static void expect_exit(const struct tu_proc *p, int code, const char *what)
{
	if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != code)
		fail_msg("%s: status 0x%x, want exit %d\nstdout:\n%s\nstderr:\n%s",
			 what, p->status, code, p->out, p->err);
}

static void test_config_stack_size_honoured(void **state)
{
	static struct tu_proc p;

	(void)state;
	run_helper("1m", "recurse", "900000", &p);
	expect_exit(&p, 0, "COPPER_STACK_SIZE=1m, 900 KB deep");
	assert_non_null(strstr(p.out, "ok"));
	/* The default is smaller: the same depth overflows. */
	run_helper(NULL, "recurse", "900000", &p);
	expect_exit(&p, 2, "default stack size, 900 KB deep");
	assert_non_null(strstr(p.err, "stack overflow"));
}

/* The overflow message gives the stack's usable size: the configured size
 * rounded up to whole pages, less at most the task record at its top. */
static void check_overflow_size(const char *size, long want)
{
	static struct tu_proc p;
	char what[64];

	snprintf(what, sizeof(what), "COPPER_STACK_SIZE=%s overflow", size);
	run_helper(size, "overflow", NULL, &p);
	expect_exit(&p, 2, what);
	const char *s = strstr(p.err, "overflowed its ");
	if (!s)
		fail_msg("%s: no size in \"%s\"", what, p.err);
	long got = strtol(s + strlen("overflowed its "), NULL, 10);
	if (got > want || got < want - 1024)
		fail_msg("%s: the message says a %ld-byte stack, want about %ld",
			 what, got, want);
}

static void test_config_stack_size_in_overflow_message(void **state)
{
	(void)state;
	check_overflow_size("64k", 65536);
	check_overflow_size("20000", 20480);
	check_overflow_size("16k", 16384);
}

/* ------------------------------------------------------------------------
 * 5. After a refusal
 * ---------------------------------------------------------------------- */

static void test_config_refusal_leaves_runtime_usable(void **state)
{
	(void)state;
	check_refused("COPPER_PROCS", "0");
	check_refused("COPPER_STACK_SIZE", "1");
	check_procs("2", 2);
	/* One bad variable among good ones is still refused. */
	tu_setenv("COPPER_PROCS", "2");
	check_refused("COPPER_STACK_SIZE", "2g");
	tu_setenv("COPPER_STACK_SIZE", "64k");
	check_refused("COPPER_PROCS", "two");
	check_procs("1", 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_env, teardown_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. COPPER_PROCS valid */
		T(test_config_procs_valid_honoured),
		T(test_config_procs_unset_is_cpu_count),
		/* 2. COPPER_PROCS invalid */
		T(test_config_procs_invalid_refused),
		/* 3. COPPER_STACK_SIZE valid */
		T(test_config_stack_valid_starts),
		T(test_config_stack_size_honoured),
		T(test_config_stack_size_in_overflow_message),
		/* 4. COPPER_STACK_SIZE invalid */
		T(test_config_stack_invalid_refused),
		T(test_config_stall_ms_invalid_refused),
		T(test_config_stall_ms_valid_starts),
		T(test_config_misuse_invalid_refused),
		T(test_config_sigquit_invalid_refused),
		/* 5. After a refusal */
		T(test_config_refusal_leaves_runtime_usable),
	};
	return cmocka_run_group_tests_name("runtime.config", tests, NULL, NULL);
}
