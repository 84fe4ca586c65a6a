/* SPDX-License-Identifier: MIT */
/*
 * test_deadlock.c - tests of the deadlock check in runtime/sched.c, as a
 * user sees it: a program whose tasks are all parked with nothing left to
 * wake them prints Go's message and the tasks, and exits with status 2.
 *
 * Each case runs test/helpers/deadlock_helper.c as a real subprocess
 * (meson passes its path in COPPER_TEST_DEADLOCK_HELPER).  The helper
 * prints "task <id> <reason>" for every task it blocks; the test checks the
 * report against those lines.
 *
 * Scenario groups:
 *   1. Deadlocks     all tasks blocked on channels (including NULL channels
 *                    and a select with no cases), on a wait group, on a
 *                    mutex, on rwmutex/cond/select; and a deadlock that
 *                    only exists once a sleeping task's timer has fired:
 *                    exit status 2, stderr starts with "fatal error: all
 *                    goroutines are asleep - deadlock!" and lists every
 *                    task as "goroutine <id> [<wait reason>...", one
 *                    header per live task, and the report appears once
 *                    (several idle workers must not all print it); with
 *                    1, 2 and 4 workers.
 *   2. Not deadlocks a task sleeping on a timer, a task inside co_blocking,
 *                    or a select with a finite timeout, while every other
 *                    task is blocked for good: the program finishes
 *                    normally (status 0, "ok", no report).
 */
#include <signal.h>

#include "test_util.h"

#define DEADLOCK_MSG "fatal error: all goroutines are asleep - deadlock!"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* Runs the helper with scenario and COPPER_PROCS=procs (0: unset). */
static void run_helper(const char *scenario, int procs, struct tu_proc *p)
{
	char procs_env[32];
	const char *env[3] = {NULL, NULL, NULL};
	char *argv[3];

	argv[0] = (char *)tu_helper("COPPER_TEST_DEADLOCK_HELPER");
	argv[1] = (char *)scenario;
	argv[2] = NULL;
	if (procs > 0) {
		snprintf(procs_env, sizeof(procs_env), "COPPER_PROCS=%d", procs);
		env[0] = procs_env;
	} else {
		env[0] = "COPPER_PROCS";
	}
	env[1] = "COPPER_SIGDUMP=0";
	tu_proc_run(argv, env, p);
}

/* Lines in text that start with "goroutine <digits> [". */
static int count_headers(const char *text)
{
	int n = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		unsigned long long id;
		char c;
		if (sscanf(l, "goroutine %llu %c", &id, &c) == 2 && c == '[')
			n++;
	}
	return n;
}

/* Whether err has a task header "goroutine <id> [<why>" followed by ']'
 * or ',' (Go adds ", N minutes" to long waits). */
static bool has_task(const char *err, unsigned long long id, const char *why)
{
	char want[160];
	int n = snprintf(want, sizeof(want), "goroutine %llu [%s", id, why);

	for (const char *at = strstr(err, want); at;
	     at = strstr(at + 1, want)) {
		bool line_start = at == err || at[-1] == '\n';
		char next = at[n];
		if (line_start && (next == ']' || next == ','))
			return true;
	}
	return false;
}

static const char *status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d%s", WTERMSIG(status),
			 WTERMSIG(status) == SIGALRM ? " (no deadlock report "
						       "within 20 s)"
						     : "");
	else
		snprintf(buf, len, "status 0x%x", status);
	return buf;
}

/* Runs a deadlocking scenario and checks the report. */
static void expect_deadlock(const char *scenario, int procs)
{
	static struct tu_proc p;
	char st[96];
	int tasks = 0;

	run_helper(scenario, procs, &p);
	if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 2)
		fail_msg("%s (procs %d): %s, want exit status 2\nstdout:\n%s"
			 "stderr:\n%s",
			 scenario, procs, status_text(p.status, st, sizeof(st)),
			 p.out, p.err);
	if (strncmp(p.err, DEADLOCK_MSG "\n", strlen(DEADLOCK_MSG) + 1) != 0)
		fail_msg("%s (procs %d): stderr does not start with Go's "
			 "message:\n%s",
			 scenario, procs, p.err);
	if (strstr(p.err + 1, DEADLOCK_MSG) != NULL)
		fail_msg("%s (procs %d): the report was printed more than "
			 "once:\n%s",
			 scenario, procs, p.err);
	for (const char *l = p.out; *l; l = strchr(l, '\n') + 1) {
		unsigned long long id;
		char why[64];
		if (sscanf(l, "task %llu %63[^\n]", &id, why) == 2) {
			tasks++;
			if (!has_task(p.err, id, why))
				fail_msg("%s (procs %d): the report does not "
					 "show task %llu as [%s]:\n%s",
					 scenario, procs, id, why, p.err);
		}
		if (!strchr(l, '\n'))
			break;
	}
	if (tasks < 2)
		fail_msg("%s (procs %d): the helper announced %d task(s):\n%s",
			 scenario, procs, tasks, p.out);
	if (count_headers(p.err) != tasks)
		fail_msg("%s (procs %d): %d task(s) in the report, %d live:\n%s",
			 scenario, procs, count_headers(p.err), tasks, p.err);
}

/* Runs a scenario that must finish normally. */
static void expect_no_deadlock(const char *scenario, int procs)
{
	static struct tu_proc p;
	char st[96];

	run_helper(scenario, procs, &p);
	if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0)
		fail_msg("%s (procs %d): %s, want exit status 0\nstdout:\n%s"
			 "stderr:\n%s",
			 scenario, procs, status_text(p.status, st, sizeof(st)),
			 p.out, p.err);
	assert_non_null(strstr(p.out, "ok\n"));
	assert_null(strstr(p.err, "deadlock"));
}

/* ------------------------------------------------------------------------
 * 1. Deadlocks
 * ---------------------------------------------------------------------- */

static void test_deadlock_all_blocked_on_channels(void **state)
{
	(void)state;
	expect_deadlock("chan", 0);
}

static void test_deadlock_all_blocked_on_wg(void **state)
{
	(void)state;
	expect_deadlock("wg", 0);
}

static void test_deadlock_all_blocked_on_mutex(void **state)
{
	(void)state;
	expect_deadlock("mutex", 0);
}

static void test_deadlock_all_blocked_on_rwmutex_cond_select(void **state)
{
	(void)state;
	expect_deadlock("sync", 0);
}

static void test_deadlock_found_after_timer_fired(void **state)
{
	(void)state;
	expect_deadlock("after-sleep", 0);
}

static void test_deadlock_any_worker_count(void **state)
{
	static const int procs[] = {1, 2, 4};

	(void)state;
	for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
		expect_deadlock("chan", procs[i]);
		expect_deadlock("mutex", procs[i]);
		expect_deadlock("after-sleep", procs[i]);
	}
}

/* ------------------------------------------------------------------------
 * 2. Not deadlocks
 * ---------------------------------------------------------------------- */

static void test_deadlock_not_while_task_sleeps(void **state)
{
	(void)state;
	expect_no_deadlock("sleeping", 0);
	expect_no_deadlock("sleeping", 1);
	expect_no_deadlock("sleeping", 4);
}

static void test_deadlock_not_while_task_in_blocking(void **state)
{
	(void)state;
	expect_no_deadlock("blocking", 0);
	expect_no_deadlock("blocking", 1);
	expect_no_deadlock("blocking", 4);
}

static void test_deadlock_not_while_select_times_out(void **state)
{
	(void)state;
	expect_no_deadlock("select-timeout", 0);
	expect_no_deadlock("select-timeout", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Deadlocks */
		cmocka_unit_test(test_deadlock_all_blocked_on_channels),
		cmocka_unit_test(test_deadlock_all_blocked_on_wg),
		cmocka_unit_test(test_deadlock_all_blocked_on_mutex),
		cmocka_unit_test(test_deadlock_all_blocked_on_rwmutex_cond_select),
		cmocka_unit_test(test_deadlock_found_after_timer_fired),
		cmocka_unit_test(test_deadlock_any_worker_count),
		/* 2. Not deadlocks */
		cmocka_unit_test(test_deadlock_not_while_task_sleeps),
		cmocka_unit_test(test_deadlock_not_while_task_in_blocking),
		cmocka_unit_test(test_deadlock_not_while_select_times_out),
	};
	return cmocka_run_group_tests_name("runtime.deadlock", tests, NULL,
					   NULL);
}
