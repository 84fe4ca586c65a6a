/* SPDX-License-Identifier: MIT */
/*
 * test_contention.c - tests of profiler/contention.c (the block and mutex
 * profiles) and profiler/threadcreate.c (the threadcreate profile), read
 * as a user reads them: the debug=1 text parsed line by line, the debug=0
 * proto through `go tool pprof` (skipped without go).
 *
 * Every wait or unlock happens in a function of this file with a known
 * name (wait_chan_here, contend_here, unlock_here, ...), so that a record
 * is found by its frames, whatever else the (cumulative) profiles hold.
 *
 * Scenario groups:
 *   1. Block profile     rate 1: channel waits, co_mutex waits and
 *                        co_rwmutex waits at known sites, each counted
 *                        exactly and timed; sleeps left out; the waiting
 *                        task's labels on the record; debug=1 layout
 *                        ("--- contention:", cycles/second, "<cycles>
 *                        <count> @ ..."); a rate below every wait keeps
 *                        them all unscaled; rate 0 records nothing.
 *   2. Mutex profile     fraction 1: co_mutex and co_rwmutex unlocks
 *                        charged to the unlocker's site, with the summed
 *                        waits of the readers a writer admits; debug=1
 *                        "--- mutex:" and "sampling period=";
 *                        negative fraction -EINVAL, previous returned.
 *   3. go tool pprof     debug=0 of both read with -raw and -traces:
 *                        sample types, function names, labels.
 *   4. Concurrency       64 tasks waiting at one site, released together,
 *                        counted exactly on COPPER_PROCS=1, 2 and 4, while
 *                        32 tasks fight over 4 mutexes.
 *   5. Environment       COPPER_BLOCKPROFILERATE and
 *                        COPPER_MUTEXPROFILEFRACTION: good values turn the
 *                        profiles on; bad ones (junk, negative, overflow)
 *                        stop co_run with a message naming the variable.
 *   6. threadcreate      the count grows by workers + monitor +
 *                        service thread per run; the text total equals
 *                        the count and shows co_run as the creator.
 */
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "profile_test.h"
#include "runtime/testing.h"
#include "test_util.h"

/* ------------------------------------------------------------------------
 * Reading the text (debug=1) the way a user does
 * ---------------------------------------------------------------------- */

/* The totals of every record that has a frame in function fn (and, if
 * labels is not NULL, exactly that labels line), and a layout check of
 * the whole text. */
struct cont_sum {
	long long cycles;
	long long count;
	int records;
	char labels[256];      /* of the last matching record */
	char leaf[128];        /* first frame's function, last match */
};

static bool cont_parse(const char *text, bool mutex, const char *fn,
		       const char *labels, struct cont_sum *out, char *err,
		       size_t errlen)
{
	regex_t re_at, re_frame, re_labels;
	regmatch_t m[4];
	struct pt_lines L;
	size_t i = 0;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	pt_regex(&re_at, "^([0-9]+) ([0-9]+) @( 0x[0-9a-f]+)*$");
	pt_regex(&re_frame, "^#\t+0x[0-9a-f]+\t+([^\t ]+)\\+0x[0-9a-f]+\t+"
			    "[^\t ]+:[0-9]+$");
	pt_regex(&re_labels, "^# labels: (\\{.*\\})$");
	if (!pt_lines_split(text, strlen(text), &L)) {
		snprintf(err, errlen, "out of memory");
		goto out_re;
	}
	if (L.n < 3 || strcmp(L.line[0], mutex ? "--- mutex:" :
					       "--- contention:") ||
	    strcmp(L.line[1], "cycles/second=1000000000")) {
		snprintf(err, errlen, "bad header: \"%s\"", L.line[0]);
		goto out;
	}
	i = 2;
	if (mutex && strncmp(L.line[i++], "sampling period=", 16) != 0) {
		snprintf(err, errlen, "no sampling period line");
		goto out;
	}
	long long last_cycles = LLONG_MAX;
	while (i < L.n - 1) {
		long long cycles, count;
		const char *lab = "";
		bool match = false;
		char leaf[128] = "";

		if (regexec(&re_at, L.line[i], 3, m, 0) != 0) {
			snprintf(err, errlen, "line %zu: bad record \"%s\"",
				 i + 1, L.line[i]);
			goto out;
		}
		cycles = strtoll(L.line[i], NULL, 10);
		count = strtoll(L.line[i] + m[2].rm_so, NULL, 10);
		if (cycles > last_cycles || count < 1) {
			snprintf(err, errlen, "line %zu: not sorted by cycles "
				 "or count < 1", i + 1);
			goto out;
		}
		last_cycles = cycles;
		i++;
		if (i < L.n && regexec(&re_labels, L.line[i], 2, m, 0) == 0)
			lab = L.line[i++] + m[1].rm_so;
		for (; i < L.n && L.line[i][0] == '#'; i++) {
			if (regexec(&re_frame, L.line[i], 2, m, 0) != 0) {
				snprintf(err, errlen, "line %zu: bad frame "
					 "\"%s\"", i + 1, L.line[i]);
				goto out;
			}
			char *f = pt_group(L.line[i], m, 1);
			if (!leaf[0])
				snprintf(leaf, sizeof(leaf), "%s", f);
			if (strcmp(f, fn) == 0)
				match = true;
			free(f);
		}
		if (i >= L.n || L.line[i][0] != '\0') {
			snprintf(err, errlen, "line %zu: record not ended by "
				 "an empty line", i + 1);
			goto out;
		}
		i++;
		if (match && (!labels || strcmp(labels, lab) == 0)) {
			out->cycles += cycles;
			out->count += count;
			out->records++;
			snprintf(out->labels, sizeof(out->labels), "%s", lab);
			snprintf(out->leaf, sizeof(out->leaf), "%s", leaf);
		}
	}
	ok = true;
out:
	pt_lines_free(&L);
out_re:
	regfree(&re_at);
	regfree(&re_frame);
	regfree(&re_labels);
	return ok;
}

/* The sums for fn in profile name (block or mutex), asserting the layout. */
static struct cont_sum sum_of(const char *name, const char *fn,
			      const char *labels)
{
	struct pt_buf b;
	struct cont_sum s;
	char err[256];

	assert_int_equal(pt_capture_profile(name, 1, &b), 0);
	if (!cont_parse(b.data, strcmp(name, "mutex") == 0, fn, labels, &s,
			err, sizeof(err)))
		fail_msg("%s debug=1: %s\n%s", name, err, b.data);
	pt_buf_free(&b);
	return s;
}

/* ------------------------------------------------------------------------
 * Known sites
 * ---------------------------------------------------------------------- */

#define NWAITS 10
#define HOLD_NS (2 * TU_MS)

static co_chan *ch;
static co_mutex mu;
static co_rwmutex rw;
static co_wg gate;

__attribute__((noinline)) static void wait_chan_here(void)
{
	int v;
	CHECK_EQ(co_chan_recv(ch, &v), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void contend_here(void)
{
	CHECK_EQ(co_mutex_lock(&mu), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void unlock_here(void)
{
	CHECK_EQ(co_mutex_unlock(&mu), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void rlock_here(void)
{
	CHECK_EQ(co_rwmutex_rlock(&rw), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void rw_unlock_here(void)
{
	CHECK_EQ(co_rwmutex_unlock(&rw), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void sleep_here(void)
{
	co_sleep(HOLD_NS);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void wait_unprofiled(void)
{
	int v;
	CHECK_EQ(co_chan_recv(ch, &v), 0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void wait_gate_here(void)
{
	CHECK_EQ(co_wg_wait(&gate), 0);
	__asm__ volatile("" ::: "memory");
}

static void task_chan_waiter(void *arg)
{
	bool profiled = arg != NULL;

	CHECK_EQ(co_labels_set("role", "waiter", NULL), 0);
	for (int i = 0; i < NWAITS; i++) {
		if (profiled)
			wait_chan_here();
		else
			wait_unprofiled();
	}
}

/* Sends NWAITS values, each once the receiver is parked (so each
 * receive waits), HOLD_NS later. */
static void send_to_parked(uint64_t receiver)
{
	for (int i = 0; i < NWAITS; i++) {
		WAIT_STATUS(receiver, "chan receive");
		co_sleep(HOLD_NS);
		CHECK_EQ(co_chan_send(ch, &i), 0);
	}
}

/* ------------------------------------------------------------------------
 * 1. Block profile
 * ---------------------------------------------------------------------- */

static void task_main_block_chan(void *arg)
{
	(void)arg;
	ch = co_chan_new(sizeof(int), 0);
	uint64_t id = co_go(task_chan_waiter, (void *)1);
	send_to_parked(id);
	co_sleep(TU_MS);
	sleep_here();
	co_chan_free(ch);
}

static void test_block_chan_counted_timed_labelled(void **state)
{
	(void)state;
	co_set_block_profile_rate(1);
	tu_run(task_main_block_chan, NULL);
	struct cont_sum s = sum_of("block", "wait_chan_here",
				   "{\"role\":\"waiter\"}");
	assert_int_equal(s.count, NWAITS);
	assert_true(s.cycles >= NWAITS * HOLD_NS);
	assert_true(s.cycles < 100 * NWAITS * HOLD_NS);
	/* The stack starts at the public call, as Go's at chanrecv1. */
	assert_string_equal(s.leaf, "co_chan_recv");
	/* Sleeps are not blocking events (Go leaves out time.Sleep). */
	assert_int_equal(sum_of("block", "sleep_here", NULL).records, 0);
	assert_true(co_profile_count(co_profile_lookup("block")) >= 1);
	co_set_block_profile_rate(0);
}

static void test_block_rate_below_waits_counts_all(void **state)
{
	(void)state;
	const char *lab = "{\"role\":\"waiter\"}";
	struct cont_sum s0 = sum_of("block", "wait_chan_here", lab);
	/* Every wait lasts HOLD_NS or more: all kept, none scaled. */
	co_set_block_profile_rate(HOLD_NS / 4);
	tu_run(task_main_block_chan, NULL);
	co_set_block_profile_rate(0);
	struct cont_sum s = sum_of("block", "wait_chan_here", lab);
	assert_int_equal(s.count - s0.count, NWAITS);
	assert_true(s.cycles - s0.cycles >= NWAITS * HOLD_NS);
}

static void task_locker(void *arg)
{
	(void)arg;
	contend_here();
	unlock_here();
}

static void task_main_mutex(void *arg)
{
	uint64_t ids[NWAITS];

	(void)arg;
	co_mutex_init(&mu);
	CHECK_EQ(co_mutex_lock(&mu), 0);
	for (int i = 0; i < NWAITS; i++)
		ids[i] = co_go(task_locker, NULL);
	for (int i = 0; i < NWAITS; i++)
		WAIT_STATUS(ids[i], "co_mutex_lock");
	co_sleep(HOLD_NS);
	unlock_here();
	while (co_num_tasks() > 1)
		co_sleep(TU_MS);
}

static void test_block_and_mutex_co_mutex(void **state)
{
	(void)state;
	co_set_block_profile_rate(1);
	assert_true(co_set_mutex_profile_fraction(1) >= 0);
	tu_run(task_main_mutex, NULL);
	struct cont_sum b = sum_of("block", "contend_here", NULL);
	/* Every locker parked at least once; a woken one that lost the
	 * lock to a newcomer parks again (Go's normal mode). */
	assert_true(b.count >= NWAITS);
	assert_true(b.cycles >= NWAITS * HOLD_NS);
	assert_string_equal(b.leaf, "co_mutex_lock");
	struct cont_sum m = sum_of("mutex", "unlock_here", NULL);
	assert_true(m.count >= 1);
	assert_true(m.cycles >= HOLD_NS);
	assert_string_equal(m.leaf, "co_mutex_unlock");
	/* Charged to the unlocker: its stack, not the lockers'. */
	assert_int_equal(sum_of("mutex", "contend_here", NULL).records, 0);
	co_set_block_profile_rate(0);
	assert_int_equal(co_set_mutex_profile_fraction(0), 1);
}

static void task_reader(void *arg)
{
	(void)arg;
	rlock_here();
	CHECK_EQ(co_rwmutex_runlock(&rw), 0);
}

static void task_main_rwmutex(void *arg)
{
	uint64_t ids[NWAITS];

	(void)arg;
	co_rwmutex_init(&rw);
	CHECK_EQ(co_rwmutex_lock(&rw), 0);
	for (int i = 0; i < NWAITS; i++)
		ids[i] = co_go(task_reader, NULL);
	for (int i = 0; i < NWAITS; i++)
		WAIT_STATUS(ids[i], "co_rwmutex_rlock");
	co_sleep(HOLD_NS);
	rw_unlock_here();
	while (co_num_tasks() > 1)
		co_sleep(TU_MS);
}

static void test_block_and_mutex_co_rwmutex(void **state)
{
	(void)state;
	struct cont_sum m0 = sum_of("mutex", "rw_unlock_here", NULL);
	co_set_block_profile_rate(1);
	co_set_mutex_profile_fraction(1);
	tu_run(task_main_rwmutex, NULL);
	struct cont_sum b = sum_of("block", "rlock_here", NULL);
	assert_int_equal(b.count, NWAITS);
	assert_true(b.cycles >= NWAITS * HOLD_NS);
	/* One unlock admitted every reader: charged their waits summed
	 * (Go 1.22+), one contention. */
	struct cont_sum m = sum_of("mutex", "rw_unlock_here", NULL);
	assert_int_equal(m.count - m0.count, 1);
	assert_string_equal(m.leaf, "co_rwmutex_unlock");
	assert_string_equal(b.leaf, "co_rwmutex_rlock");
	assert_true(m.cycles - m0.cycles >= NWAITS * HOLD_NS);
	assert_true(m.cycles - m0.cycles <= b.cycles + NWAITS * TU_SEC / 10);
	co_set_block_profile_rate(0);
	co_set_mutex_profile_fraction(0);
}

static void task_main_block_unprofiled(void *arg)
{
	(void)arg;
	ch = co_chan_new(sizeof(int), 0);
	uint64_t id = co_go(task_chan_waiter, NULL);
	send_to_parked(id);
	co_chan_free(ch);
}

static void test_block_rate_zero_records_nothing(void **state)
{
	(void)state;
	co_set_block_profile_rate(0);
	co_set_mutex_profile_fraction(0);
	tu_run(task_main_block_unprofiled, NULL);
	assert_int_equal(sum_of("block", "wait_unprofiled", NULL).records, 0);
}

/* ------------------------------------------------------------------------
 * 2. Mutex profile: the rate's contract
 * ---------------------------------------------------------------------- */

static void test_mutex_fraction_negative_einval_previous(void **state)
{
	(void)state;
	assert_int_equal(co_set_mutex_profile_fraction(0), 0);
	assert_int_equal(co_set_mutex_profile_fraction(-1), CO_EINVAL);
	assert_int_equal(co_set_mutex_profile_fraction(5), 0);
	assert_int_equal(co_set_mutex_profile_fraction(-7), CO_EINVAL);
	assert_int_equal(co_set_mutex_profile_fraction(0), 5);
	struct pt_buf b;
	assert_int_equal(pt_capture_profile("mutex", 1, &b), 0);
	assert_non_null(strstr(b.data, "\nsampling period=0\n"));
	pt_buf_free(&b);
	/* debug=2 is not a level these profiles have (Go prints 1). */
	int fd = pt_memfd();
	assert_int_equal(co_profile_write(co_profile_lookup("mutex"), fd, 2),
			 CO_EINVAL);
	close(fd);
}

/* ------------------------------------------------------------------------
 * 3. go tool pprof
 * ---------------------------------------------------------------------- */

static void go_pprof(const char *name, const char *flag, struct pt_buf *out)
{
	char path[] = "/tmp/test_contention_XXXXXX.pb.gz", cmd[512];
	struct pt_buf b;

	assert_int_equal(pt_capture_profile(name, 0, &b), 0);
	assert_true(b.len > 2 && (unsigned char)b.data[0] == 0x1f &&
		    (unsigned char)b.data[1] == 0x8b);
	assert_int_equal(pt_write_temp(path, 6, b.data, b.len), 0);
	pt_buf_free(&b);
	snprintf(cmd, sizeof(cmd), "go tool pprof %s %s", flag, path);
	int st = pt_shell(cmd, out);
	unlink(path);
	if (st != 0)
		fail_msg("%s exited with %d:\n%s", cmd, st, out->data);
}

static void test_go_tool_pprof_reads_block_and_mutex(void **state)
{
	struct pt_buf out;

	(void)state;
	if (!pt_have("go")) {
		printf("# go is not on PATH: skipping go tool pprof\n");
		skip();
	}
	co_set_block_profile_rate(1);
	co_set_mutex_profile_fraction(1);
	tu_run(task_main_block_chan, NULL);
	tu_run(task_main_mutex, NULL);
	co_set_block_profile_rate(0);
	co_set_mutex_profile_fraction(0);

	go_pprof("block", "-raw", &out);
	assert_non_null(strstr(out.data, "PeriodType: contentions count\n"));
	assert_non_null(strstr(out.data, "contentions/count delay/nanoseconds"));
	assert_non_null(strstr(out.data, " wait_chan_here "));
	assert_non_null(strstr(out.data, "role:[waiter]"));
	pt_buf_free(&out);
	go_pprof("block", "-traces", &out);
	assert_non_null(strstr(out.data, "Type: delay\n"));
	assert_non_null(strstr(out.data, "wait_chan_here\n"));
	assert_non_null(strstr(out.data, "co_chan_recv\n"));
	assert_non_null(strstr(out.data, "contend_here\n"));
	pt_buf_free(&out);
	go_pprof("mutex", "-traces", &out);
	assert_non_null(strstr(out.data, "Type: delay\n"));
	assert_non_null(strstr(out.data, "unlock_here\n"));
	assert_non_null(strstr(out.data, "co_mutex_unlock\n"));
	pt_buf_free(&out);
	go_pprof("threadcreate", "-traces", &out);
	assert_non_null(strstr(out.data, "Type: threadcreate\n"));
	assert_non_null(strstr(out.data, "co_run\n"));
	pt_buf_free(&out);
}

/* ------------------------------------------------------------------------
 * 4. Concurrency
 * ---------------------------------------------------------------------- */

#define NGATE 64
#define NFIGHT 32
#define FIGHT_ROUNDS 200

static co_mutex fight[4];

static void task_gate_waiter(void *arg)
{
	(void)arg;
	wait_gate_here();
}

static void task_fighter(void *arg)
{
	uintptr_t k = (uintptr_t)arg;

	for (int i = 0; i < FIGHT_ROUNDS; i++) {
		co_mutex *m = &fight[(k + (uintptr_t)i) % 4];
		CHECK_EQ(co_mutex_lock(m), 0);
		if (i % 8 == 0)
			co_yield();
		CHECK_EQ(co_mutex_unlock(m), 0);
	}
}

static void task_main_concurrent(void *arg)
{
	uint64_t ids[NGATE];

	(void)arg;
	co_wg_init(&gate);
	co_wg_add(&gate, 1);
	for (int i = 0; i < 4; i++)
		co_mutex_init(&fight[i]);
	for (int i = 0; i < NFIGHT; i++)
		co_go(task_fighter, (void *)(uintptr_t)i);
	for (int i = 0; i < NGATE; i++)
		ids[i] = co_go(task_gate_waiter, NULL);
	for (int i = 0; i < NGATE; i++)
		WAIT_STATUS(ids[i], "co_wg_wait");
	co_wg_done(&gate);
	while (co_num_tasks() > 1)
		co_sleep(TU_MS);
}

static void run_concurrent(const char *procs)
{
	struct cont_sum before = sum_of("block", "wait_gate_here", NULL);

	tu_setenv("COPPER_PROCS", procs);
	co_set_block_profile_rate(1);
	co_set_mutex_profile_fraction(1);
	tu_run(task_main_concurrent, NULL);
	co_set_block_profile_rate(0);
	co_set_mutex_profile_fraction(0);
	tu_setenv("COPPER_PROCS", NULL);
	struct cont_sum after = sum_of("block", "wait_gate_here", NULL);
	assert_int_equal(after.count - before.count, NGATE);
	/* The mutex text stays well formed under the fight. */
	(void)sum_of("mutex", "task_fighter", NULL);
}

static void test_concurrent_exact_procs1(void **state)
{
	(void)state;
	run_concurrent("1");
}

static void test_concurrent_exact_procs2(void **state)
{
	(void)state;
	run_concurrent("2");
}

static void test_concurrent_exact_procs4(void **state)
{
	(void)state;
	run_concurrent("4");
}

/* ------------------------------------------------------------------------
 * 5. Environment (this test binary run again as a helper)
 * ---------------------------------------------------------------------- */

static char self_path[4096];

/* The helper: one profiled channel wait run, then prints the block and
 * mutex texts; exits with co_run's result. */
static int helper_main(void)
{
	int err = co_run(task_main_block_chan, NULL);

	if (err) {
		printf("co_run: %d\n", err);
		return 3;
	}
	fflush(stdout);
	co_profile_write(co_profile_lookup("block"), 1, 1);
	co_profile_write(co_profile_lookup("mutex"), 1, 1);
	return 0;
}

static void run_helper(const char *env1, const char *env2, struct tu_proc *p)
{
	char *argv[] = {self_path, "--helper", NULL};
	const char *env[] = {"COPPER_BLOCKPROFILERATE",
			     "COPPER_MUTEXPROFILEFRACTION", env1, env2, NULL};
	tu_proc_run_timeout(argv, env, p, 30000);
}

static void test_env_good_values_turn_profiles_on(void **state)
{
	struct tu_proc p;

	(void)state;
	run_helper("COPPER_BLOCKPROFILERATE=1",
		   "COPPER_MUTEXPROFILEFRACTION=3", &p);
	if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0)
		fail_msg("helper failed:\n%s\n%s", p.out, p.err);
	assert_non_null(strstr(p.out, "--- contention:\n"));
	assert_non_null(strstr(p.out, "wait_chan_here+0x"));
	assert_non_null(strstr(p.out, "--- mutex:\ncycles/second=1000000000\n"
				      "sampling period=3\n"));
}

static void test_env_bad_values_stop_co_run(void **state)
{
	static const char *const bad[][2] = {
		{"COPPER_BLOCKPROFILERATE=abc", "COPPER_BLOCKPROFILERATE"},
		{"COPPER_BLOCKPROFILERATE=-5", "COPPER_BLOCKPROFILERATE"},
		{"COPPER_BLOCKPROFILERATE=", "COPPER_BLOCKPROFILERATE"},
		{"COPPER_BLOCKPROFILERATE=99999999999999999999",
		 "COPPER_BLOCKPROFILERATE"},
		{"COPPER_BLOCKPROFILERATE=10ms", "COPPER_BLOCKPROFILERATE"},
		{"COPPER_MUTEXPROFILEFRACTION=-1", "COPPER_MUTEXPROFILEFRACTION"},
		{"COPPER_MUTEXPROFILEFRACTION=2147483648",
		 "COPPER_MUTEXPROFILEFRACTION"},
		{"COPPER_MUTEXPROFILEFRACTION=x1", "COPPER_MUTEXPROFILEFRACTION"},
	};
	struct tu_proc p;
	char want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_helper(bad[i][0], NULL, &p);
		if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 3)
			fail_msg("%s: want exit 3, got status %d:\n%s\n%s",
				 bad[i][0], p.status, p.out, p.err);
		snprintf(want, sizeof(want), "copper: invalid %s=\"%s\": want ",
			 bad[i][1], strchr(bad[i][0], '=') + 1);
		if (!strstr(p.err, want))
			fail_msg("%s: stderr lacks '%s':\n%s", bad[i][0], want,
				 p.err);
		snprintf(want, sizeof(want), "co_run: %d\n", CO_EINVAL);
		assert_non_null(strstr(p.out, want));
	}
}

/* ------------------------------------------------------------------------
 * 6. threadcreate
 * ---------------------------------------------------------------------- */

static void task_main_nothing(void *arg)
{
	(void)arg;
}

static void test_threadcreate_counts_runtime_threads(void **state)
{
	co_profile *p = co_profile_lookup("threadcreate");
	struct pt_buf b;
	char want[64];

	(void)state;
	assert_non_null(p);
	tu_setenv("COPPER_PROCS", "3");
	tu_setenv("COPPER_SIGDUMP", NULL);
	int before = co_profile_count(p);
	tu_run(task_main_nothing, NULL);
	/* Three workers, the monitor, the profiler's service thread (up
	 * for the SIGUSR1 dump). */
	assert_int_equal(co_profile_count(p) - before, 3 + 1 + 1);
	tu_setenv("COPPER_SIGDUMP", "0");
	before = co_profile_count(p);
	tu_run(task_main_nothing, NULL);
	assert_int_equal(co_profile_count(p) - before, 3 + 1);
	tu_setenv("COPPER_SIGDUMP", NULL);
	tu_setenv("COPPER_PROCS", NULL);

	assert_int_equal(pt_capture_profile("threadcreate", 1, &b), 0);
	snprintf(want, sizeof(want), "threadcreate profile: total %d\n",
		 co_profile_count(p));
	assert_true(strncmp(b.data, want, strlen(want)) == 0);
	/* Records' counts sum to the total; the creator is co_run. */
	long sum = 0;
	for (const char *l = strchr(b.data, '\n'); l && l[1]; l = strchr(l + 1, '\n'))
		if (l[1] >= '0' && l[1] <= '9')
			sum += strtol(l + 1, NULL, 10);
	assert_int_equal(sum, co_profile_count(p));
	assert_non_null(strstr(b.data, "\tco_run+0x"));
	assert_non_null(strstr(b.data, "\ttest_threadcreate_counts_runtime_"
				       "threads+0x"));
	pt_buf_free(&b);
}

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n > 0)
		self_path[n] = '\0';
	if (argc > 1 && strcmp(argv[1], "--helper") == 0)
		return helper_main();

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_chan_counted_timed_labelled),
		cmocka_unit_test(test_block_rate_below_waits_counts_all),
		cmocka_unit_test(test_block_and_mutex_co_mutex),
		cmocka_unit_test(test_block_and_mutex_co_rwmutex),
		cmocka_unit_test(test_block_rate_zero_records_nothing),
		cmocka_unit_test(test_mutex_fraction_negative_einval_previous),
		cmocka_unit_test(test_go_tool_pprof_reads_block_and_mutex),
		cmocka_unit_test(test_concurrent_exact_procs1),
		cmocka_unit_test(test_concurrent_exact_procs2),
		cmocka_unit_test(test_concurrent_exact_procs4),
		cmocka_unit_test(test_env_good_values_turn_profiles_on),
		cmocka_unit_test(test_env_bad_values_stop_co_run),
		cmocka_unit_test(test_threadcreate_counts_runtime_threads),
	};

	if (getenv("COPPER_TEST_FILTER"))
		cmocka_set_test_filter(getenv("COPPER_TEST_FILTER"));
	return cmocka_run_group_tests_name("profiler.contention", tests, NULL,
					   NULL);
}
