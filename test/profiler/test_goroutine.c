/* SPDX-License-Identifier: MIT */
/*
 * test_goroutine.c - tests of profiler/goroutine.c (the goroutine profile
 * at debug=0, 1 and 2, and the JSON dump), with the parts it stands on
 * that users call directly: registry.c (co_profile_*), labels.c
 * (co_labels_*) and leakcheck.c (co_leakcheck_*).
 *
 * Formats are checked against ../shared/reference/pprof-formats.md (1.1-1.4,
 * 2.0, 2.2, 2.3, 3, 5; Go 1.27's text where it differs from 1.19), line by
 * line, with the strict readers of profile_test.h, and with real clients:
 * the protobuf-c decoder, `go tool pprof` and python3's json module.
 *
 * Scenario groups:
 *   1. The zoo, debug=1   a known set of tasks (5 parked on a channel at
 *                         one call site, 3 at another, 2 sleeping, 1 with
 *                         labels {"worker":"ingest","tier":"a"} at the
 *                         first site, a named nil-channel receiver, select
 *                         with no cases, a mutex, a wait group, a
 *                         co_blocking call) profiled once: header total =
 *                         sum of counts = co_num_tasks(); "<count> @ 0x.."
 *                         records sorted by count then key; the labels line
 *                         right after the @ line; TAB-only frame columns
 *                         aligned as Go's tabwriter aligns them; every
 *                         frame pc + 1 in the @ list; the first frame is
 *                         the public call (co_chan_recv, co_sleep, ...),
 *                         then the task function at its source line.
 *   2. The zoo, debug=2   blocks that the panicparse/goleak header
 *                         expression reads, one empty line between them
 *                         and none at the end; the caller first as
 *                         [running]; Go's wait reasons; "func(...)" and
 *                         "\tfile:line +0x.."; "created by F in goroutine
 *                         N" for every task but 1; names and labels in Go
 *                         1.27's ` labels:{"k": "v"}` form.
 *   3. The zoo, debug=0   gzip + profile.proto decoded with protobuf-c:
 *                         sample and period types, values, string labels,
 *                         functions with files and lines, mapping 1 = this
 *                         binary with its build id; `go tool pprof -raw`
 *                         and `-traces` (skipped without go).
 *   4. The zoo, JSON      python3 reads co_dump_json's output (skipped
 *                         without python3): ids, names, states, creators,
 *                         labels, frames.
 *   5. Not started        tasks still waiting for their first run show
 *                         their start function (Go: the function at its
 *                         entry, no +0x) at every level.
 *   6. Churn              1000 parked tasks, spawners whose tasks come and
 *                         go, a task spinning without ever parking, on
 *                         COPPER_PROCS=2 and 4: 50 profiles taken from the
 *                         task and from the blocking pool each hold every
 *                         parked task exactly once, no task twice, no
 *                         exited task, and the spinner as [running] inside
 *                         its spin loop; debug=1 totals equal the sum of
 *                         the counts, debug=0 values likewise.
 *   7. Registry           co_profile_lookup("nope") is NULL; bad debug
 *                         levels and a NULL profile give -EINVAL, a closed
 *                         fd -EBADF, /dev/full -ENOSPC; co_profile_count.
 *   8. Labels             -EPERM outside a task, -EINVAL for an empty key
 *                         or an odd list (all or nothing), -EINVAL for 65
 *                         pairs and -ERANGE past 64 labels; override, ""
 *                         removes, inheritance by children created after
 *                         (not before), co_labels_get errors, Go's %q
 *                         quoting in both text forms.
 *   9. Leak checks        nothing leaked: 0; a task blocked on a channel:
 *                         -EBUSY and a report naming it, its wait reason
 *                         and its function; grace lets a slow task finish.
 *
 * Task bodies that a profile must show are named task_<role>; the line of
 * the call a task is parked in is recorded with MARK() on that same line,
 * so that the expected file:line is __LINE__.  No task body ends with the
 * parking call (a tail call would take the body off the stack).
 */
#include <limits.h>
#include <time.h>

#include "profile_test.h"

#include "runtime/testing.h"

#define MARK(var) atomic_store_explicit(&(var), __LINE__, memory_order_relaxed)
#define LINE(var) atomic_load_explicit(&(var), memory_order_relaxed)

static const char this_file[] = "test_goroutine.c";

/* True if path names this source file. */
static bool is_this_file(const char *path)
{
	size_t n = strlen(path), k = strlen(this_file);
	return n > k && path[n - k - 1] == '/' &&
	       strcmp(path + n - k, this_file) == 0;
}

/* ------------------------------------------------------------------------
 * 1-4. The zoo: a known set of tasks, profiled once at every level
 * ---------------------------------------------------------------------- */

#define ZOO_SITE_A 5
#define ZOO_SITE_B 3
#define ZOO_SLEEPERS 2
/* Task 1, both sites, the sleepers, the labelled receiver, nil channel,
 * select, mutex, wait group, co_blocking. */
#define ZOO_TOTAL (1 + ZOO_SITE_A + ZOO_SITE_B + ZOO_SLEEPERS + 6)
#define ZOO_NAME "nil-waiter"

static struct zoo {
	bool taken;                   /* the fixture ran */
	uint64_t site_a[ZOO_SITE_A];  /* ids, as co_go returned them */
	uint64_t site_b[ZOO_SITE_B];
	uint64_t sleepers[ZOO_SLEEPERS];
	uint64_t labeller;            /* sets labels, starts `labelled`, exits */
	_Atomic uint64_t labelled;
	uint64_t nil, select, mutex, wg, blocking;
	size_t num_before, num_after; /* co_num_tasks around the captures */
	int count;                    /* co_profile_count */
	int err[4];                   /* captures: debug 0, 1, 2, JSON */
	struct pt_buf text[4];        /* their output */
} zoo;

enum { ZOO_D0, ZOO_D1, ZOO_D2, ZOO_JSON };

static co_chan *zoo_chan_a, *zoo_chan_b;
static co_mutex zoo_mu;
static co_wg zoo_wg;
static _Atomic int zoo_release_blocking;
static _Atomic int zoo_returned;  /* tasks whose wait ended */

/* Source lines of the parking calls and of the co_go calls. */
static _Atomic int line_site_a, line_site_b, line_sleep, line_nil,
	line_select, line_mutex, line_wg, line_blocking;
static _Atomic int line_go_a, line_go_b, line_go_sleep, line_go_nil,
	line_go_select, line_go_mutex, line_go_wg, line_go_blocking,
	line_go_labelled;

static void task_zoo_site_a(void *arg)
{
	(void)arg;
	MARK(line_site_a); co_chan_recv(zoo_chan_a, NULL);
	atomic_fetch_add(&zoo_returned, 1);
}

static void task_zoo_site_b(void *arg)
{
	(void)arg;
	MARK(line_site_b); co_chan_recv(zoo_chan_b, NULL);
	atomic_fetch_add(&zoo_returned, 1);
}

static void task_zoo_sleeper(void *arg)
{
	(void)arg;
	MARK(line_sleep); co_sleep(3600 * TU_SEC);
	atomic_fetch_add(&zoo_returned, 1); /* never: abandoned */
}

static void task_zoo_nil_chan(void *arg)
{
	(void)arg;
	MARK(line_nil); co_chan_recv(NULL, NULL);
	atomic_fetch_add(&zoo_returned, 1); /* never: abandoned */
}

static void task_zoo_select(void *arg)
{
	(void)arg;
	MARK(line_select); co_select(NULL, 0, -1);
	atomic_fetch_add(&zoo_returned, 1); /* never: abandoned */
}

static void task_zoo_mutex(void *arg)
{
	(void)arg;
	MARK(line_mutex); co_mutex_lock(&zoo_mu);
	co_mutex_unlock(&zoo_mu);
	atomic_fetch_add(&zoo_returned, 1);
}

static void task_zoo_wg(void *arg)
{
	(void)arg;
	MARK(line_wg); co_wg_wait(&zoo_wg);
	atomic_fetch_add(&zoo_returned, 1);
}

static void zoo_block_fn(void *arg)
{
	struct timespec ms = {0, 1000000};
	(void)arg;
	while (!atomic_load(&zoo_release_blocking))
		nanosleep(&ms, NULL);
}

static void task_zoo_blocking(void *arg)
{
	(void)arg;
	MARK(line_blocking); co_blocking(zoo_block_fn, NULL);
	atomic_fetch_add(&zoo_returned, 1);
}

/* Sets labels, then starts a receiver at site A: its stack is the same as
 * the five others', its labels are not. */
static void task_zoo_labeller(void *arg)
{
	(void)arg;
	CHECK_EQ(co_labels_set("worker", "ingest", "tier", "a", NULL), 0);
	MARK(line_go_labelled); atomic_store(&zoo.labelled, co_go(task_zoo_site_a, NULL));
	CHECK(atomic_load(&zoo.labelled) != 0);
}

static bool zoo_status_is(uint64_t id, const char *want)
{
	char status[64];
	return testing_task_status(id, status, sizeof(status), NULL, NULL, 0) == 0 &&
	       strcmp(status, want) == 0;
}

static bool zoo_all_parked(void)
{
	for (int i = 0; i < ZOO_SITE_A; i++)
		if (!zoo_status_is(zoo.site_a[i], "chan receive"))
			return false;
	for (int i = 0; i < ZOO_SITE_B; i++)
		if (!zoo_status_is(zoo.site_b[i], "chan receive"))
			return false;
	for (int i = 0; i < ZOO_SLEEPERS; i++)
		if (!zoo_status_is(zoo.sleepers[i], "sleep"))
			return false;
	return zoo_status_is(atomic_load(&zoo.labelled), "chan receive") &&
	       testing_task_status(zoo.labeller, NULL, 0, NULL, NULL, 0) == -ENOENT &&
	       zoo_status_is(zoo.nil, "chan receive (nil chan)") &&
	       zoo_status_is(zoo.select, "select (no cases)") &&
	       zoo_status_is(zoo.mutex, "co_mutex_lock") &&
	       zoo_status_is(zoo.wg, "co_wg_wait") &&
	       zoo_status_is(zoo.blocking, "syscall");
}

/* The co_go calls: "created by" names this function, whether or not the
 * compiler inlined it into task_main_zoo (Go names the function that holds
 * the go statement, inlined or not). */
static void zoo_spawn(void)
{
	for (int i = 0; i < ZOO_SITE_A; i++) {
		MARK(line_go_a); zoo.site_a[i] = co_go(task_zoo_site_a, NULL);
	}
	for (int i = 0; i < ZOO_SITE_B; i++) {
		MARK(line_go_b); zoo.site_b[i] = co_go(task_zoo_site_b, NULL);
	}
	for (int i = 0; i < ZOO_SLEEPERS; i++) {
		MARK(line_go_sleep); zoo.sleepers[i] = co_go(task_zoo_sleeper, NULL);
	}
	zoo.labeller = co_go(task_zoo_labeller, NULL);
	MARK(line_go_nil); zoo.nil = co_go_named(ZOO_NAME, task_zoo_nil_chan, NULL);
	MARK(line_go_select); zoo.select = co_go(task_zoo_select, NULL);
	MARK(line_go_mutex); zoo.mutex = co_go(task_zoo_mutex, NULL);
	MARK(line_go_wg); zoo.wg = co_go(task_zoo_wg, NULL);
	MARK(line_go_blocking); zoo.blocking = co_go(task_zoo_blocking, NULL);
}

static void task_main_zoo(void *arg)
{
	(void)arg;
	zoo_chan_a = co_chan_new(sizeof(int), 0);
	zoo_chan_b = co_chan_new(sizeof(int), 0);
	CHECK(zoo_chan_a && zoo_chan_b);
	CHECK_EQ(co_mutex_init(&zoo_mu), 0);
	CHECK_EQ(co_mutex_lock(&zoo_mu), 0);
	CHECK_EQ(co_wg_init(&zoo_wg), 0);
	CHECK_EQ(co_wg_add(&zoo_wg, 1), 0);
	atomic_store(&zoo_release_blocking, 0);
	atomic_store(&zoo_returned, 0);
	zoo_spawn();
	CHECK(TU_WAIT_UNTIL(zoo_all_parked(), 10 * TU_SEC));

	zoo.num_before = co_num_tasks();
	zoo.count = co_profile_count(co_profile_lookup("goroutine"));
	zoo.err[ZOO_D1] = pt_capture(1, &zoo.text[ZOO_D1]);
	zoo.err[ZOO_D2] = pt_capture(2, &zoo.text[ZOO_D2]);
	zoo.err[ZOO_D0] = pt_capture(0, &zoo.text[ZOO_D0]);
	zoo.err[ZOO_JSON] = pt_capture_json(&zoo.text[ZOO_JSON]);
	zoo.num_after = co_num_tasks();

	/* Release everyone who can be released; the rest are abandoned. */
	CHECK_EQ(co_chan_close(zoo_chan_a), 0);
	CHECK_EQ(co_chan_close(zoo_chan_b), 0);
	CHECK_EQ(co_mutex_unlock(&zoo_mu), 0);
	CHECK_EQ(co_wg_done(&zoo_wg), 0);
	atomic_store(&zoo_release_blocking, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&zoo_returned) ==
				    ZOO_SITE_A + 1 + ZOO_SITE_B + 3,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1 + ZOO_SLEEPERS + 2, 10 * TU_SEC));
	co_chan_free(zoo_chan_a);
	co_chan_free(zoo_chan_b);
}

/* Runs the zoo once for every test of groups 1-4. */
static const struct zoo *zoo_get(void)
{
	if (!zoo.taken) {
		zoo.taken = true;
		tu_run(task_main_zoo, NULL);
	}
	for (int i = 0; i < 4; i++)
		if (zoo.err[i] != 0)
			fail_msg("capture %d failed: %s", i, co_strerror(zoo.err[i]));
	return &zoo;
}

static void zoo_parse_d1(struct pt_d1 *d)
{
	const struct pt_buf *t = &zoo_get()->text[ZOO_D1];

	if (!pt_parse_debug1(t->data, t->len, d))
		fail_msg("debug=1 is not Go's count profile: %s\n%s", d->err,
			 t->data);
}

static void zoo_parse_d2(struct pt_d2 *d)
{
	const struct pt_buf *t = &zoo_get()->text[ZOO_D2];

	if (!pt_parse_debug2(t->data, t->len, d))
		fail_msg("debug=2 is not Go's traceback dump: %s\n%s", d->err,
			 t->data);
}

/* The ids of every zoo task with the status debug=2 must show. */
struct zoo_expect {
	uint64_t id;
	const char *status;
	const char *func;       /* task function */
	int line;               /* of the parking call in it */
	const char *first;      /* the first frame: the public call */
	const char *creator;    /* created by */
	int go_line;            /* of the co_go call */
};

static size_t zoo_expected(struct zoo_expect *e)
{
	size_t n = 0;

	for (int i = 0; i < ZOO_SITE_A; i++)
		e[n++] = (struct zoo_expect){zoo.site_a[i], "chan receive",
			"task_zoo_site_a", LINE(line_site_a), "co_chan_recv",
			"zoo_spawn", LINE(line_go_a)};
	for (int i = 0; i < ZOO_SITE_B; i++)
		e[n++] = (struct zoo_expect){zoo.site_b[i], "chan receive",
			"task_zoo_site_b", LINE(line_site_b), "co_chan_recv",
			"zoo_spawn", LINE(line_go_b)};
	for (int i = 0; i < ZOO_SLEEPERS; i++)
		e[n++] = (struct zoo_expect){zoo.sleepers[i], "sleep",
			"task_zoo_sleeper", LINE(line_sleep), "co_sleep",
			"zoo_spawn", LINE(line_go_sleep)};
	e[n++] = (struct zoo_expect){atomic_load(&zoo.labelled), "chan receive",
		"task_zoo_site_a", LINE(line_site_a), "co_chan_recv",
		"task_zoo_labeller", LINE(line_go_labelled)};
	e[n++] = (struct zoo_expect){zoo.nil, "chan receive (nil chan)",
		"task_zoo_nil_chan", LINE(line_nil), "co_chan_recv",
		"zoo_spawn", LINE(line_go_nil)};
	e[n++] = (struct zoo_expect){zoo.select, "select (no cases)",
		"task_zoo_select", LINE(line_select), "co_select",
		"zoo_spawn", LINE(line_go_select)};
	e[n++] = (struct zoo_expect){zoo.mutex, "co_mutex_lock",
		"task_zoo_mutex", LINE(line_mutex), "co_mutex_lock",
		"zoo_spawn", LINE(line_go_mutex)};
	e[n++] = (struct zoo_expect){zoo.wg, "co_wg_wait", "task_zoo_wg",
		LINE(line_wg), "co_wg_wait", "zoo_spawn", LINE(line_go_wg)};
	e[n++] = (struct zoo_expect){zoo.blocking, "syscall",
		"task_zoo_blocking", LINE(line_blocking), "co_blocking",
		"zoo_spawn", LINE(line_go_blocking)};
	return n;
}

/* ---- 1. debug=1 -------------------------------------------------------- */

static void test_goroutine_debug1_total_equals_num_tasks(void **state)
{
	struct pt_d1 d;
	long sum = 0;

	(void)state;
	zoo_parse_d1(&d);
	for (size_t i = 0; i < d.n; i++)
		sum += d.rec[i].count;
	assert_int_equal(zoo.num_before, ZOO_TOTAL);
	assert_int_equal(zoo.num_after, ZOO_TOTAL);
	assert_int_equal(zoo.count, ZOO_TOTAL);
	assert_int_equal(d.total, ZOO_TOTAL);
	assert_int_equal(sum, d.total);
	pt_d1_free(&d);
}

static void test_goroutine_debug1_sorted_by_count_then_key(void **state)
{
	struct pt_d1 d;
	char ka[8192], kb[8192];

	(void)state;
	zoo_parse_d1(&d);
	for (size_t i = 0; i + 1 < d.n; i++) {
		const struct pt_d1_record *a = &d.rec[i], *b = &d.rec[i + 1];
		if (a->count != b->count) {
			if (a->count < b->count)
				fail_msg("record %zu (count %ld) before record %zu "
					 "(count %ld)", i, a->count, i + 1, b->count);
			continue;
		}
		/* Go's key: "@ 0x.. 0x.." plus "\n# labels: {...}". */
		snprintf(ka, sizeof(ka), "%s%s%s", strchr(a->at_line, '@'),
			 a->labels ? "\n# labels: " : "", a->labels ? a->labels : "");
		snprintf(kb, sizeof(kb), "%s%s%s", strchr(b->at_line, '@'),
			 b->labels ? "\n# labels: " : "", b->labels ? b->labels : "");
		if (strcmp(ka, kb) >= 0)
			fail_msg("records %zu and %zu (count %ld) not in key order:\n"
				 "%s\n%s", i, i + 1, a->count, ka, kb);
	}
	pt_d1_free(&d);
}

static void test_goroutine_debug1_frame_pcs_in_at_list(void **state)
{
	struct pt_d1 d;

	(void)state;
	zoo_parse_d1(&d);
	for (size_t i = 0; i < d.n; i++) {
		const struct pt_d1_record *r = &d.rec[i];
		int at = 0;
		assert_true(r->npcs > 0);
		assert_true(r->nframes > 0);
		for (int k = 0; k < r->nframes; k++) {
			uintptr_t want = r->frames[k].pc + 1;
			/* In order: an inlined chain shares one entry. */
			while (at < r->npcs && r->pcs[at] != want)
				at++;
			if (at == r->npcs)
				fail_msg("record %zu: frame %s at %#" PRIxPTR
					 ": %#" PRIxPTR " is not in (the rest of) "
					 "the @ list\n%s", i, r->frames[k].func,
					 r->frames[k].pc, want, r->at_line);
		}
	}
	pt_d1_free(&d);
}

static void test_goroutine_debug1_sites_counts_and_lines(void **state)
{
	static const struct {
		const char *func;
		int count;
		const char *first;
		_Atomic int *line;
	} want[] = {
		{"task_zoo_site_a", ZOO_SITE_A, "co_chan_recv", &line_site_a},
		{"task_zoo_site_b", ZOO_SITE_B, "co_chan_recv", &line_site_b},
		{"task_zoo_sleeper", ZOO_SLEEPERS, "co_sleep", &line_sleep},
	};
	struct pt_d1 d;

	(void)state;
	zoo_parse_d1(&d);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct pt_d1_record *r = pt_d1_find(&d, want[i].func, "");
		if (!r)
			fail_msg("no record for %s\n%s", want[i].func,
				 zoo.text[ZOO_D1].data);
		assert_int_equal(r->count, want[i].count);
		assert_true(r->nframes >= 2);
		assert_string_equal(r->frames[0].func, want[i].first);
		assert_string_equal(r->frames[1].func, want[i].func);
		assert_int_equal(r->frames[1].line, LINE(*want[i].line));
		assert_true(is_this_file(r->frames[1].file));
		/* Nothing after the task function: its entry is hidden. */
		assert_int_equal(r->nframes, 2);
	}
	/* Task 1 is in the profile once, in task_main_zoo. */
	const struct pt_d1_record *self = pt_d1_find(&d, "task_main_zoo", NULL);
	assert_non_null(self);
	assert_int_equal(self->count, 1);
	pt_d1_free(&d);
}

static void test_goroutine_debug1_labels_line_after_at_line(void **state)
{
	static const char labels[] = "{\"tier\":\"a\", \"worker\":\"ingest\"}";
	struct pt_d1 d;
	size_t labelled = 0;

	(void)state;
	zoo_parse_d1(&d);
	const struct pt_d1_record *plain = pt_d1_find(&d, "task_zoo_site_a", "");
	const struct pt_d1_record *lab = pt_d1_find(&d, "task_zoo_site_a", labels);
	if (!lab)
		fail_msg("no record with # labels: %s\n%s", labels,
			 zoo.text[ZOO_D1].data);
	assert_non_null(plain);
	assert_int_equal(lab->count, 1);
	/* The same stack, a separate record because of the labels. */
	assert_string_equal(strchr(lab->at_line, '@'), strchr(plain->at_line, '@'));
	for (size_t i = 0; i < d.n; i++)
		labelled += d.rec[i].labels != NULL;
	assert_int_equal(labelled, 1);
	/* Directly after the @ line, in the text itself. */
	char want[512];
	snprintf(want, sizeof(want), "%s\n# labels: %s\n#\t", lab->at_line, labels);
	assert_non_null(strstr(zoo.text[ZOO_D1].data, want));
	pt_d1_free(&d);
}

/* Copper's runtime frames (sched_park, park_forever, ...) are hidden at
 * the top of a stack as Go hides runtime.gopark: the first frame shown
 * is the public call the task made, also when the compiler inlined
 * runtime helpers into it. */
static void test_goroutine_debug1_first_frame_is_public_call(void **state)
{
	struct zoo_expect e[ZOO_TOTAL];
	size_t n, bad = 0;
	char msg[4096] = "";
	struct pt_d1 d;

	(void)state;
	zoo_parse_d1(&d);
	n = zoo_expected(e);
	for (size_t i = 0; i < n; i++) {
		const struct pt_d1_record *r = pt_d1_find(&d, e[i].func, NULL);
		int k = -1;
		if (!r)
			fail_msg("no record for %s", e[i].func);
		for (int j = 0; j < r->nframes && k < 0; j++)
			if (strcmp(r->frames[j].func, e[i].func) == 0)
				k = j;
		if (k == 1 && strcmp(r->frames[0].func, e[i].first) == 0 &&
		    r->frames[1].line == e[i].line)
			continue;
		bad++;
		size_t len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len,
			 "\n  %s: want %s then %s:%d; shown:", e[i].func,
			 e[i].first, e[i].func, e[i].line);
		for (int j = 0; j <= k && j < r->nframes; j++) {
			len = strlen(msg);
			snprintf(msg + len, sizeof(msg) - len, " %s:%d",
				 r->frames[j].func, r->frames[j].line);
		}
	}
	pt_d1_free(&d);
	if (bad)
		fail_msg("%zu record(s) do not start at the public call:%s", bad,
			 msg);
}

/* ---- 2. debug=2 -------------------------------------------------------- */

static void test_goroutine_debug2_blocks_parse_like_goleak(void **state)
{
	regex_t re;
	struct pt_d2 d;
	size_t headers = 0;

	(void)state;
	zoo_parse_d2(&d);
	assert_int_equal(d.n, ZOO_TOTAL);
	/* Every header line, counted independently of the parser. */
	pt_regex(&re, "^goroutine ([0-9]+) \\[([^]]+)\\]:$");
	for (size_t i = 0; i < d.lines.n; i++)
		headers += strncmp(d.lines.line[i], "goroutine ", 10) == 0;
	assert_int_equal(headers, ZOO_TOTAL);
	for (size_t i = 0; i < d.n; i++) {
		assert_int_equal(regexec(&re, d.b[i].header, 0, NULL, 0), 0);
		for (size_t k = i + 1; k < d.n; k++)
			if (d.b[i].id == d.b[k].id)
				fail_msg("goroutine %" PRIu64 " twice", d.b[i].id);
	}
	regfree(&re);
	/* One empty line between blocks, none at the end. */
	const struct pt_buf *t = &zoo.text[ZOO_D2];
	assert_null(strstr(t->data, "\n\n\n"));
	assert_true(t->len > 2 && t->data[t->len - 1] == '\n' &&
		    t->data[t->len - 2] != '\n');
	pt_d2_free(&d);
}

static void test_goroutine_debug2_caller_first_running(void **state)
{
	struct pt_d2 d;

	(void)state;
	zoo_parse_d2(&d);
	assert_int_equal(d.b[0].id, 1);
	assert_string_equal(d.b[0].bracket, "running");
	assert_true(pt_d2_frame_index(&d.b[0], "task_main_zoo") >= 0);
	assert_false(d.b[0].created); /* like goroutine 1 */
	/* Then the others by id. */
	for (size_t i = 2; i < d.n; i++)
		assert_true(d.b[i - 1].id < d.b[i].id);
	pt_d2_free(&d);
}

static void test_goroutine_debug2_wait_reasons(void **state)
{
	struct zoo_expect e[ZOO_TOTAL];
	struct pt_d2 d;
	size_t n;

	(void)state;
	zoo_parse_d2(&d);
	n = zoo_expected(e);
	for (size_t i = 0; i < n; i++) {
		const struct pt_d2_block *b = pt_d2_find(&d, e[i].id);
		if (!b)
			fail_msg("no block for goroutine %" PRIu64 " (%s)", e[i].id,
				 e[i].func);
		assert_string_equal(b->status, e[i].status);
		/* Neither minutes nor "locked to thread" after seconds. */
		assert_null(strstr(b->bracket, " minutes"));
		assert_null(strstr(b->bracket, "locked to thread"));
		if (e[i].id != zoo.nil && e[i].id != atomic_load(&zoo.labelled))
			assert_string_equal(b->bracket, e[i].status);
	}
	pt_d2_free(&d);
}

static void test_goroutine_debug2_frames_func_and_position(void **state)
{
	struct pt_d1 d1;
	struct pt_d2 d;

	(void)state;
	zoo_parse_d2(&d);
	for (size_t i = 0; i < d.n; i++) {
		const struct pt_d2_block *b = &d.b[i];
		assert_true(b->nframes > 0);
		assert_false(b->unavailable);
		for (int k = 0; k < b->nframes; k++) {
			assert_string_equal(b->frames[k].args, "...");
			assert_true(b->frames[k].file[0] == '/');
			assert_true(b->frames[k].line > 0);
		}
	}
	const struct pt_d2_block *b = pt_d2_find(&d, zoo.site_a[0]);
	assert_non_null(b);
	int k = pt_d2_frame_index(b, "task_zoo_site_a");
	assert_true(k >= 1);
	assert_string_equal(b->frames[k - 1].func, "co_chan_recv");
	assert_int_equal(b->frames[k].line, LINE(line_site_a));
	assert_true(is_this_file(b->frames[k].file));
	assert_true(b->frames[k].has_off);
	assert_true(b->frames[k - 1].has_off);
	/* debug=1 prints the same frame at pc - 1, so its +0x is one less
	 * (pprof-formats.md 2.0). */
	zoo_parse_d1(&d1);
	const struct pt_d1_record *r = pt_d1_find(&d1, "task_zoo_site_a", "");
	assert_non_null(r);
	assert_int_equal(r->frames[1].off + 1, b->frames[k].off);
	pt_d1_free(&d1);
	pt_d2_free(&d);
}

static void test_goroutine_debug2_created_by_every_task_but_1(void **state)
{
	struct zoo_expect e[ZOO_TOTAL];
	struct pt_d2 d;
	size_t n;

	(void)state;
	zoo_parse_d2(&d);
	for (size_t i = 0; i < d.n; i++)
		assert_true(d.b[i].created == (d.b[i].id != 1));
	n = zoo_expected(e);
	for (size_t i = 0; i < n; i++) {
		const struct pt_d2_block *b = pt_d2_find(&d, e[i].id);
		assert_non_null(b);
		assert_string_equal(b->created_func, e[i].creator);
		assert_int_equal(b->created_in,
				 e[i].id == atomic_load(&zoo.labelled) ? zoo.labeller
								       : 1);
		assert_true(is_this_file(b->created_pos.file));
		assert_int_equal(b->created_pos.line, e[i].go_line);
		assert_true(b->created_pos.has_off);
	}
	pt_d2_free(&d);
}

static void test_goroutine_debug2_named_task_shows_name_label(void **state)
{
	struct pt_d2 d;

	(void)state;
	zoo_parse_d2(&d);
	const struct pt_d2_block *b = pt_d2_find(&d, zoo.nil);
	assert_non_null(b);
	assert_string_equal(b->bracket, "chan receive (nil chan) labels:{"
					"\"copper.name\": \"" ZOO_NAME "\"}");
	assert_string_equal(b->labels, "{\"copper.name\": \"" ZOO_NAME "\"}");
	pt_d2_free(&d);
}

static void test_goroutine_debug2_labels_go127_form(void **state)
{
	struct pt_d2 d;
	size_t labelled = 0;
	char want[256];

	(void)state;
	zoo_parse_d2(&d);
	const struct pt_d2_block *b = pt_d2_find(&d, atomic_load(&zoo.labelled));
	assert_non_null(b);
	/* Sorted by key, ": " inside a pair, ", " between, after a space. */
	snprintf(want, sizeof(want), "goroutine %" PRIu64 " [chan receive "
		 "labels:{\"tier\": \"a\", \"worker\": \"ingest\"}]:",
		 atomic_load(&zoo.labelled));
	assert_string_equal(b->header, want);
	assert_string_equal(b->status, "chan receive");
	for (size_t i = 0; i < d.n; i++)
		labelled += d.b[i].labels != NULL;
	assert_int_equal(labelled, 2); /* this one and the named one */
	pt_d2_free(&d);
}

/* The same rule as debug=1: the first frame is the public call. */
static void test_goroutine_debug2_first_frame_is_public_call(void **state)
{
	struct zoo_expect e[ZOO_TOTAL];
	char msg[4096] = "";
	size_t n, bad = 0;
	struct pt_d2 d;

	(void)state;
	zoo_parse_d2(&d);
	n = zoo_expected(e);
	for (size_t i = 0; i < n; i++) {
		const struct pt_d2_block *b = pt_d2_find(&d, e[i].id);
		assert_non_null(b);
		int k = pt_d2_frame_index(b, e[i].func);
		if (k == 1 && strcmp(b->frames[0].func, e[i].first) == 0)
			continue;
		bad++;
		size_t len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len,
			 "\n  goroutine %" PRIu64 " [%s]: want %s then %s; shown:",
			 b->id, b->status, e[i].first, e[i].func);
		for (int j = 0; j <= k && j < b->nframes; j++) {
			len = strlen(msg);
			snprintf(msg + len, sizeof(msg) - len, " %s",
				 b->frames[j].func);
		}
	}
	pt_d2_free(&d);
	if (bad)
		fail_msg("%zu block(s) do not start at the public call:%s", bad,
			 msg);
}

/* ---- 3. debug=0 -------------------------------------------------------- */

static pt_pb_profile *zoo_decode(void)
{
	const struct pt_buf *t = &zoo_get()->text[ZOO_D0];
	char err[256];
	pt_pb_profile *p = pt_decode(t->data, t->len, err, sizeof(err));

	if (!p)
		fail_msg("debug=0 does not decode: %s", err);
	return p;
}

static void test_goroutine_debug0_types_and_period(void **state)
{
	pt_pb_profile *p;

	(void)state;
	p = zoo_decode();
	assert_true(p->n_string_table > 0);
	assert_string_equal(p->string_table[0], "");
	assert_int_equal(p->n_sample_type, 1);
	assert_string_equal(pt_pb_str(p, p->sample_type[0]->type), "goroutine");
	assert_string_equal(pt_pb_str(p, p->sample_type[0]->unit), "count");
	assert_non_null(p->period_type);
	assert_string_equal(pt_pb_str(p, p->period_type->type), "goroutine");
	assert_string_equal(pt_pb_str(p, p->period_type->unit), "count");
	assert_int_equal(p->period, 1);
	assert_int_equal(p->default_sample_type, 0);
	assert_int_equal(p->duration_nanos, 0);
	assert_true(p->time_nanos > 0);
	pt_pb_free(p);
}

static void test_goroutine_debug0_values_sum_to_tasks(void **state)
{
	pt_pb_profile *p;
	int64_t sum = 0, site_a = 0, site_a_labelled = 0, site_b = 0, sleep = 0;

	(void)state;
	p = zoo_decode();
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		assert_int_equal(s->n_value, 1);
		assert_true(s->value[0] >= 1);
		sum += s->value[0];
		if (pt_pb_sample_has_function(p, s, "task_zoo_site_a")) {
			if (s->n_label > 0)
				site_a_labelled += s->value[0];
			else
				site_a += s->value[0];
		}
		if (pt_pb_sample_has_function(p, s, "task_zoo_site_b"))
			site_b += s->value[0];
		if (pt_pb_sample_has_function(p, s, "task_zoo_sleeper"))
			sleep += s->value[0];
	}
	assert_int_equal(sum, ZOO_TOTAL);
	assert_int_equal(site_a, ZOO_SITE_A);
	assert_int_equal(site_a_labelled, 1);
	assert_int_equal(site_b, ZOO_SITE_B);
	assert_int_equal(sleep, ZOO_SLEEPERS);
	pt_pb_free(p);
}

static void test_goroutine_debug0_string_labels(void **state)
{
	pt_pb_profile *p;
	size_t labelled = 0;

	(void)state;
	p = zoo_decode();
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		bool tier = false, worker = false;
		if (!s->n_label)
			continue;
		labelled++;
		assert_true(pt_pb_sample_has_function(p, s, "task_zoo_site_a"));
		assert_int_equal(s->value[0], 1);
		assert_int_equal(s->n_label, 2); /* map order: any */
		for (size_t k = 0; k < s->n_label; k++) {
			const Perftools__Profiles__Label *l = s->label[k];
			const char *key = pt_pb_str(p, l->key);
			const char *str = pt_pb_str(p, l->str);
			assert_non_null(key);
			assert_non_null(str);
			assert_int_equal(l->num, 0);
			assert_int_equal(l->num_unit, 0);
			if (strcmp(key, "tier") == 0 && strcmp(str, "a") == 0)
				tier = true;
			else if (strcmp(key, "worker") == 0 &&
				 strcmp(str, "ingest") == 0)
				worker = true;
			else
				fail_msg("unexpected label %s=%s", key, str);
		}
		assert_true(tier && worker);
	}
	assert_int_equal(labelled, 1);
	pt_pb_free(p);
}

static void test_goroutine_debug0_functions_files_lines(void **state)
{
	static const struct {
		const char *name;
		_Atomic int *line;
	} want[] = {
		{"task_zoo_site_a", &line_site_a},
		{"task_zoo_site_b", &line_site_b},
		{"task_zoo_sleeper", &line_sleep},
		{"task_zoo_nil_chan", &line_nil},
		{"task_zoo_select", &line_select},
		{"task_zoo_mutex", &line_mutex},
		{"task_zoo_wg", &line_wg},
		{"task_zoo_blocking", &line_blocking},
	};
	pt_pb_profile *p;

	(void)state;
	p = zoo_decode();
	/* Ids non-zero and unique; every line resolves. */
	for (size_t i = 0; i < p->n_function; i++) {
		assert_true(p->function[i]->id != 0);
		for (size_t k = i + 1; k < p->n_function; k++)
			assert_true(p->function[i]->id != p->function[k]->id);
	}
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];
		assert_true(l->id != 0);
		assert_true(l->n_line > 0);
		for (size_t k = 0; k < l->n_line; k++) {
			assert_non_null(pt_pb_function(p, l->line[k]->function_id));
			assert_true(l->line[k]->line > 0);
		}
	}
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < p->n_location && !found; i++) {
			const Perftools__Profiles__Location *l = p->location[i];
			for (size_t k = 0; k < l->n_line; k++) {
				const Perftools__Profiles__Function *f =
					pt_pb_function(p, l->line[k]->function_id);
				if (strcmp(pt_pb_str(p, f->name), want[w].name) != 0)
					continue;
				assert_string_equal(pt_pb_str(p, f->system_name),
						    want[w].name);
				assert_true(is_this_file(pt_pb_str(p, f->filename)));
				assert_int_equal(l->line[k]->line, LINE(*want[w].line));
				found = true;
			}
		}
		if (!found)
			fail_msg("no location in %s", want[w].name);
	}
	pt_pb_free(p);
}

static void test_goroutine_debug0_mapping_is_test_binary(void **state)
{
	char exe[PATH_MAX];
	pt_pb_profile *p;

	(void)state;
	assert_non_null(realpath("/proc/self/exe", exe));
	p = zoo_decode();
	assert_true(p->n_mapping >= 1);
	const Perftools__Profiles__Mapping *m = p->mapping[0];
	assert_int_equal(m->id, 1);
	assert_string_equal(pt_pb_str(p, m->filename), exe);
	const char *build_id = pt_pb_str(p, m->build_id);
	assert_non_null(build_id);
	assert_true(strlen(build_id) >= 16);
	assert_int_equal(strspn(build_id, "0123456789abcdef"), strlen(build_id));
	assert_true(m->memory_start < m->memory_limit);
	assert_true(m->has_functions);
	/* The task functions' locations lie in it. */
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];
		const Perftools__Profiles__Function *f =
			pt_pb_function(p, l->line[l->n_line - 1]->function_id);
		if (strncmp(pt_pb_str(p, f->name), "task_zoo_", 9) != 0)
			continue;
		assert_int_equal(l->mapping_id, 1);
		assert_true(l->address >= m->memory_start &&
			    l->address < m->memory_limit);
	}
	pt_pb_free(p);
}

/* Writes the zoo's debug=0 to a temporary file and runs go tool pprof. */
static void zoo_go_pprof(const char *flag, struct pt_buf *out)
{
	char path[] = "/tmp/test_goroutine_XXXXXX.pb.gz", cmd[512];
	const struct pt_buf *t = &zoo_get()->text[ZOO_D0];

	assert_int_equal(pt_write_temp(path, 6, t->data, t->len), 0);
	snprintf(cmd, sizeof(cmd), "go tool pprof %s %s", flag, path);
	int st = pt_shell(cmd, out);
	unlink(path);
	if (st != 0)
		fail_msg("%s exited with %d:\n%s", cmd, st, out->data);
}

static void test_goroutine_debug0_go_tool_raw(void **state)
{
	struct pt_buf out;

	(void)state;
	if (!pt_have("go")) {
		printf("# go is not on PATH: skipping go tool pprof -raw\n");
		skip();
	}
	zoo_go_pprof("-raw", &out);
	assert_non_null(strstr(out.data, "PeriodType: goroutine count\n"));
	assert_non_null(strstr(out.data, "Period: 1\n"));
	assert_non_null(strstr(out.data, "goroutine/count\n"));
	assert_non_null(strstr(out.data, "tier:[a] worker:[ingest]"));
	assert_non_null(strstr(out.data, "\n          5: "));
	assert_non_null(strstr(out.data, "\n          3: "));
	char want[256];
	snprintf(want, sizeof(want), " task_zoo_site_a %s", "");
	assert_non_null(strstr(out.data, want));
	snprintf(want, sizeof(want), "test_goroutine.c:%d ", LINE(line_site_b));
	assert_non_null(strstr(out.data, want));
	assert_non_null(strstr(out.data, " task_zoo_sleeper "));
	assert_non_null(strstr(out.data, "[FN]"));
	pt_buf_free(&out);
}

static void test_goroutine_debug0_go_tool_traces(void **state)
{
	struct pt_buf out;

	(void)state;
	if (!pt_have("go")) {
		printf("# go is not on PATH: skipping go tool pprof -traces\n");
		skip();
	}
	zoo_go_pprof("-traces", &out);
	assert_non_null(strstr(out.data, "Type: goroutine\n"));
	assert_non_null(strstr(out.data, "      tier:  a\n"));
	assert_non_null(strstr(out.data, "    worker:  ingest\n"));
	assert_non_null(strstr(out.data, "         5   "));
	assert_non_null(strstr(out.data, "         3   "));
	assert_non_null(strstr(out.data, "task_zoo_site_a\n"));
	assert_non_null(strstr(out.data, "task_zoo_site_b\n"));
	assert_non_null(strstr(out.data, "task_zoo_blocking\n"));
	pt_buf_free(&out);
}

/* ---- 4. JSON ----------------------------------------------------------- */

/* Loads the dump with json.load and prints one TAB-separated line per
 * task: id, name or -, status, creator, k=v labels or -, frames as
 * function@file:line. */
static const char json_script[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1]))\n"
	"assert isinstance(d, list), 'not a list'\n"
	"for t in d:\n"
	"    for k in ('id', 'name', 'status', 'waiting_ns', 'creator',\n"
	"              'labels', 'frames'):\n"
	"        assert k in t, 'no ' + k\n"
	"    assert isinstance(t['waiting_ns'], int) and t['waiting_ns'] >= 0\n"
	"    fr = ','.join('%s@%s:%d' % (f['function'],\n"
	"                  f['file'].rsplit('/', 1)[-1], f['line'])\n"
	"                  for f in t['frames'])\n"
	"    lab = ','.join('%s=%s' % kv for kv in sorted(t['labels'].items()))\n"
	"    print('%d\\t%s\\t%s\\t%d\\t%s\\t%s' % (t['id'], t['name'] or '-',\n"
	"          t['status'], t['creator'], lab or '-', fr))\n";

struct json_task {
	uint64_t id, creator;
	char *name, *status, *labels, *frames;
};

static size_t json_read(struct json_task *out, size_t max)
{
	char jpath[] = "/tmp/test_goroutine_XXXXXX.json";
	char spath[] = "/tmp/test_goroutine_XXXXXX.py";
	char cmd[512];
	struct pt_buf res;
	const struct pt_buf *t = &zoo_get()->text[ZOO_JSON];
	size_t n = 0;

	assert_int_equal(pt_write_temp(jpath, 5, t->data, t->len), 0);
	assert_int_equal(pt_write_temp(spath, 3, json_script,
				       strlen(json_script)), 0);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", spath, jpath);
	int st = pt_shell(cmd, &res);
	unlink(jpath);
	unlink(spath);
	if (st != 0)
		fail_msg("python3 cannot read the JSON (%d):\n%s\n%s", st,
			 res.data, t->data);
	for (char *save = NULL, *line = strtok_r(res.data, "\n", &save);
	     line && n < max; line = strtok_r(NULL, "\n", &save)) {
		char *f[6], *s2 = NULL;
		int k = 0;
		for (char *p = strtok_r(line, "\t", &s2); p && k < 6;
		     p = strtok_r(NULL, "\t", &s2))
			f[k++] = p;
		if (k != 6)
			fail_msg("python3 printed a short line");
		out[n].id = strtoull(f[0], NULL, 10);
		out[n].name = strdup(f[1]);
		out[n].status = strdup(f[2]);
		out[n].creator = strtoull(f[3], NULL, 10);
		out[n].labels = strdup(f[4]);
		out[n].frames = strdup(f[5]);
		n++;
	}
	pt_buf_free(&res);
	return n;
}

static void test_goroutine_json_python_reads_tasks(void **state)
{
	struct json_task jt[64];
	struct zoo_expect e[ZOO_TOTAL];
	size_t n, ne;
	char want[256];

	(void)state;
	if (!pt_have("python3")) {
		printf("# python3 is not on PATH: skipping the JSON reader\n");
		skip();
	}
	n = json_read(jt, 64);
	assert_int_equal(n, ZOO_TOTAL);
	assert_int_equal(jt[0].id, 1);
	assert_string_equal(jt[0].status, "running");
	assert_int_equal(jt[0].creator, 0);
	assert_non_null(strstr(jt[0].frames, "task_main_zoo@"));
	ne = zoo_expected(e);
	for (size_t i = 0; i < ne; i++) {
		struct json_task *j = NULL;
		for (size_t k = 0; k < n; k++)
			if (jt[k].id == e[i].id)
				j = &jt[k];
		if (!j)
			fail_msg("task %" PRIu64 " missing from the JSON", e[i].id);
		assert_string_equal(j->status, e[i].status);
		assert_int_equal(j->creator, e[i].id == atomic_load(&zoo.labelled)
						     ? zoo.labeller
						     : 1);
		snprintf(want, sizeof(want), "%s@%s:%d", e[i].func, this_file,
			 e[i].line);
		if (!strstr(j->frames, want))
			fail_msg("task %" PRIu64 ": no frame %s in %s", j->id, want,
				 j->frames);
		snprintf(want, sizeof(want), "%s@", e[i].first);
		assert_non_null(strstr(j->frames, want));
		if (e[i].id == zoo.nil)
			assert_string_equal(j->name, ZOO_NAME);
		else
			assert_string_equal(j->name, "-");
		if (e[i].id == atomic_load(&zoo.labelled))
			assert_string_equal(j->labels, "tier=a,worker=ingest");
		else
			assert_string_equal(j->labels, "-");
	}
	for (size_t k = 0; k < n; k++) {
		free(jt[k].name);
		free(jt[k].status);
		free(jt[k].labels);
		free(jt[k].frames);
	}
}

/* ------------------------------------------------------------------------
 * 5. Tasks that have not run yet
 * ---------------------------------------------------------------------- */

#define NS_TASKS 3

static struct {
	uint64_t ids[NS_TASKS];
	int ran_before;               /* tasks that ran before the captures */
	struct pt_buf text[3];        /* debug 0, 1, 2 */
	bool taken;
} ns;
static _Atomic int ns_ran;

static void task_not_started(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ns_ran, 1);
}

/* On one worker, without yielding: the new tasks stay in the queue. */
static void task_main_not_started(void *arg)
{
	(void)arg;
	atomic_store(&ns_ran, 0);
	for (int i = 0; i < NS_TASKS; i++)
		ns.ids[i] = co_go(task_not_started, NULL);
	for (int debug = 0; debug <= 2; debug++)
		CHECK_EQ(pt_capture(debug, &ns.text[debug]), 0);
	ns.ran_before = atomic_load(&ns_ran);
	CHECK(TU_WAIT_UNTIL(atomic_load(&ns_ran) == NS_TASKS, 5 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void ns_get(void)
{
	if (!ns.taken) {
		ns.taken = true;
		tu_setenv("COPPER_PROCS", "1");
		tu_run(task_main_not_started, NULL);
		tu_setenv("COPPER_PROCS", NULL);
	}
	assert_int_equal(ns.ran_before, 0);
}

/* Go shows a goroutine that has not started at its start function's
 * entry, without +0x (pprof-formats.md 2.3). */
static void test_goroutine_not_started_debug2_shows_start_function(void **state)
{
	struct pt_d2 d;

	(void)state;
	ns_get();
	if (!pt_parse_debug2(ns.text[2].data, ns.text[2].len, &d))
		fail_msg("%s\n%s", d.err, ns.text[2].data);
	for (int i = 0; i < NS_TASKS; i++) {
		const struct pt_d2_block *b = pt_d2_find(&d, ns.ids[i]);
		assert_non_null(b);
		assert_string_equal(b->status, "runnable");
		if (b->nframes < 1 || strcmp(b->frames[0].func, "task_not_started"))
			fail_msg("goroutine %" PRIu64 " [runnable] starts with "
				 "%s(...) at %s:%d, not task_not_started\n%s",
				 b->id, b->nframes ? b->frames[0].func : "no frame",
				 b->nframes ? b->frames[0].file : "-",
				 b->nframes ? b->frames[0].line : 0, ns.text[2].data);
		assert_true(is_this_file(b->frames[0].file));
		assert_false(b->frames[0].has_off);
		assert_string_equal(b->created_func, "task_main_not_started");
	}
	pt_d2_free(&d);
}

static void test_goroutine_not_started_debug1_shows_start_function(void **state)
{
	struct pt_d1 d;

	(void)state;
	ns_get();
	if (!pt_parse_debug1(ns.text[1].data, ns.text[1].len, &d))
		fail_msg("debug=1 is not Go's count profile: %s\n%s", d.err,
			 ns.text[1].data);
	const struct pt_d1_record *r = pt_d1_find(&d, "task_not_started", "");
	if (!r)
		fail_msg("no record for task_not_started\n%s", ns.text[1].data);
	assert_int_equal(r->count, NS_TASKS);
	assert_int_equal(r->frames[0].off, 0);
	assert_true(is_this_file(r->frames[0].file));
	pt_d1_free(&d);
}

static void test_goroutine_not_started_debug0_names_start_function(void **state)
{
	char err[256];
	int64_t n = 0;

	(void)state;
	ns_get();
	pt_pb_profile *p = pt_decode(ns.text[0].data, ns.text[0].len, err,
				     sizeof(err));
	if (!p)
		fail_msg("%s", err);
	for (size_t i = 0; i < p->n_sample; i++)
		if (pt_pb_sample_has_function(p, p->sample[i], "task_not_started"))
			n += p->sample[i]->value[0];
	assert_int_equal(n, NS_TASKS);
	pt_pb_free(p);
}

/* ------------------------------------------------------------------------
 * 6. Churn: exact counts while tasks come and go
 * ---------------------------------------------------------------------- */

#define CHURN_PARKED 1000
#define CHURN_PROFILES 50
#define CHURN_SPAWNERS 2
#define CHURN_MAX_ALIVE 64

static co_chan *churn_chan;
static uint64_t churn_ids[CHURN_PARKED];   /* sorted before the profiles */
static uint64_t churn_spin_id;
static _Atomic int churn_stop;
static _Atomic int churn_parked_started;
static _Atomic long churn_spins;
static _Atomic long churn_alive;           /* short tasks not yet done */
static _Atomic long churn_spawned;
static long churn_profiles_checked;

static void task_churn_parked(void *arg)
{
	(void)arg;
	atomic_fetch_add(&churn_parked_started, 1);
	co_chan_recv(churn_chan, NULL);
	atomic_fetch_sub(&churn_parked_started, 1);
}

/* Never parks, never yields: its worker must record it (SIGURG).  It
 * gives up after CHURN_SPIN_MAX, so that a task it starves cannot hang
 * the suite (the main task reports that as a failure). */
#define CHURN_SPIN_MAX (60 * TU_SEC)
static _Atomic int churn_spin_gave_up;

static void task_churn_spin(void *arg)
{
	int64_t end = co_now() + CHURN_SPIN_MAX;
	(void)arg;
	while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
		if ((atomic_fetch_add_explicit(&churn_spins, 1,
					       memory_order_relaxed) &
		     0xfffff) == 0 &&
		    co_now() > end) {
			atomic_store(&churn_spin_gave_up, 1);
			return;
		}
	}
}

static void task_churn_short(void *arg)
{
	(void)arg;
	if ((uintptr_t)arg & 1)
		co_yield();
	atomic_fetch_sub(&churn_alive, 1);
}

static void task_churn_spawner(void *arg)
{
	uintptr_t n = 0;
	(void)arg;
	while (!atomic_load(&churn_stop)) {
		if (atomic_load(&churn_alive) >= CHURN_MAX_ALIVE) {
			co_yield();
			continue;
		}
		atomic_fetch_add(&churn_alive, 1);
		if (co_go(task_churn_short, (void *)n++) == 0) {
			atomic_fetch_sub(&churn_alive, 1);
			CHECK(!"co_go failed");
		}
		atomic_fetch_add(&churn_spawned, 1);
		if (n % 8 == 0)
			co_yield();
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Checks one debug=2 profile taken under churn. */
static void churn_check_debug2(const struct pt_buf *t, uint64_t main_id,
			       bool from_task)
{
	struct pt_d2 d;
	uint64_t *ids;
	size_t found = 0;

	if (!pt_parse_debug2(t->data, t->len, &d)) {
		tu_fail(__FILE__, __LINE__, "churn debug=2: %s", d.err);
		pt_d2_free(&d);
		return;
	}
	ids = malloc(d.n * sizeof(*ids));
	CHECK(ids != NULL);
	/* Ids start at 1: a record with id 0 is a task that had exited. */
	for (size_t i = 0; i < d.n; i++) {
		const struct pt_d2_block *b = &d.b[i];
		if (b->id != 0)
			continue;
		tu_fail(__FILE__, __LINE__, "churn: a goroutine 0 (an exited "
			"task) in the profile: \"%s\", %d frame(s), first %s, "
			"created by %s", b->header, b->nframes,
			b->nframes ? b->frames[0].func : "-",
			b->created ? b->created_func : "-");
		break;
	}
	for (size_t i = 0; ids && i < d.n; i++)
		ids[i] = d.b[i].id;
	qsort(ids, d.n, sizeof(*ids), cmp_u64);
	for (size_t i = 1; ids && i < d.n; i++)
		if (ids[i] == ids[i - 1])
			tu_fail(__FILE__, __LINE__, "churn: goroutine %" PRIu64
				" twice in one profile", ids[i]);
	for (size_t i = 0; ids && i < CHURN_PARKED; i++)
		found += bsearch(&churn_ids[i], ids, d.n, sizeof(*ids),
				 cmp_u64) != NULL;
	CHECK_EQ(found, CHURN_PARKED);
	CHECK(d.n >= CHURN_PARKED + 2 + CHURN_SPAWNERS);
	CHECK(d.n <= CHURN_PARKED + 2 + CHURN_SPAWNERS + 2 * CHURN_MAX_ALIVE);
	const struct pt_d2_block *spin = pt_d2_find(&d, churn_spin_id);
	CHECK(spin != NULL);
	if (spin) {
		if (strcmp(spin->status, "running") != 0 ||
		    pt_d2_frame_index(spin, "task_churn_spin") < 0)
			tu_fail(__FILE__, __LINE__, "churn: the spinner shows as "
				"[%s] with %d frame(s), first %s", spin->bracket,
				spin->nframes,
				spin->nframes ? spin->frames[0].func : "-");
	}
	const struct pt_d2_block *self = pt_d2_find(&d, main_id);
	CHECK(self != NULL);
	if (self && from_task) {
		CHECK(self == &d.b[0]);
		CHECK_STR(self->status, "running");
	} else if (self) {
		CHECK_STR(self->status, "syscall");
	}
	free(ids);
	pt_d2_free(&d);
}

/*
 * debug=1 and debug=0 under churn: totals add up, the parked tasks are
 * one record (sample) of exactly CHURN_PARKED.  The debug=1 text is read
 * leniently here (header, "<count> @" lines and function names only):
 * its exact layout is group 1's business, this group is about counts.
 */
static void churn_count_debug1(const char *text, long *total, long *sum,
			       long *parked, long *spin)
{
	long count = 0;
	bool seen_parked = false, seen_spin = false;

	*total = *sum = *parked = *spin = -1;
	if (sscanf(text, "goroutine profile: total %ld\n", total) != 1)
		return;
	*sum = *parked = *spin = 0;
	for (const char *l = strchr(text, '\n'); l; l = strchr(l, '\n')) {
		l++;
		if (*l >= '0' && *l <= '9') {
			count = strtol(l, NULL, 10);
			*sum += count;
			seen_parked = seen_spin = false;
		} else if (*l == '#') {
			const char *eol = strchrnul(l, '\n');
			const char *p = strstr(l, "\ttask_churn_parked+");
			if (p && p < eol && !seen_parked) {
				*parked += count;
				seen_parked = true;
			}
			p = strstr(l, "\ttask_churn_spin+");
			if (p && p < eol && !seen_spin) {
				*spin += count;
				seen_spin = true;
			}
		}
	}
}

static void churn_check_debug1_debug0(void)
{
	struct pt_buf t;
	long total, sum, parked, spin;
	char err[256];

	CHECK_EQ(pt_capture(1, &t), 0);
	churn_count_debug1(t.data ? t.data : "", &total, &sum, &parked, &spin);
	CHECK(total >= CHURN_PARKED + 2 + CHURN_SPAWNERS);
	CHECK_EQ(sum, total);
	CHECK_EQ(parked, CHURN_PARKED);
	CHECK_EQ(spin, 1);
	pt_buf_free(&t);

	CHECK_EQ(pt_capture(0, &t), 0);
	pt_pb_profile *p = pt_decode(t.data, t.len, err, sizeof(err));
	CHECK(p != NULL);
	if (p) {
		int64_t total = 0, parked = 0;
		for (size_t i = 0; i < p->n_sample; i++) {
			total += p->sample[i]->value[0];
			if (pt_pb_sample_has_function(p, p->sample[i],
						      "task_churn_parked"))
				parked += p->sample[i]->value[0];
		}
		CHECK_EQ(parked, CHURN_PARKED);
		CHECK(total >= CHURN_PARKED + 2 + CHURN_SPAWNERS);
	}
	pt_pb_free(p);
	pt_buf_free(&t);
}

struct pool_capture {
	int debug;
	int err;
	struct pt_buf buf;
};

/* On the blocking pool: a thread that is not a task, as an admin
 * endpoint or a signal dump would be. */
static void pool_capture_fn(void *arg)
{
	struct pool_capture *pc = arg;
	pc->err = pt_capture(pc->debug, &pc->buf);
}

static void task_main_churn(void *arg)
{
	uint64_t main_id = co_self();
	(void)arg;

	churn_chan = co_chan_new(sizeof(int), 0);
	CHECK(churn_chan != NULL);
	for (int i = 0; i < CHURN_PARKED; i++) {
		churn_ids[i] = co_go(task_churn_parked, NULL);
		CHECK(churn_ids[i] != 0);
	}
	qsort(churn_ids, CHURN_PARKED, sizeof(churn_ids[0]), cmp_u64);
	/*
	 * In this order: a task that never parks keeps its worker forever
	 * (scheduling is cooperative), and whatever waits in that worker's
	 * own run queue waits with it unless another worker runs dry and
	 * steals.  So the spinner starts once the parked tasks have run, and
	 * the spawners once the spinner has its worker.  Task 1 waits for the
	 * spinner by sleeping, not with co_yield: a yielded task sits in its
	 * worker's yield slot, which no other worker may take, so if the
	 * spinner came next on that worker, task 1 would never run again.
	 */
	CHECK(TU_WAIT_UNTIL(atomic_load(&churn_parked_started) == CHURN_PARKED,
			    20 * TU_SEC));
	churn_spin_id = co_go(task_churn_spin, NULL);
	for (int64_t end = co_now() + 20 * TU_SEC;
	     atomic_load(&churn_spins) == 0 && co_now() < end;)
		co_sleep(TU_MS);
	CHECK(atomic_load(&churn_spins) > 0);
	for (int i = 0; i < CHURN_SPAWNERS; i++)
		CHECK(co_go(task_churn_spawner, NULL) != 0);
	if (!TU_WAIT_UNTIL(atomic_load(&churn_spawned) > 100, 20 * TU_SEC))
		tu_fail(__FILE__, __LINE__, "churn did not start: %d parked, "
			"%ld spins, %ld spawned",
			atomic_load(&churn_parked_started),
			atomic_load(&churn_spins), atomic_load(&churn_spawned));
	for (int i = 0; i < CHURN_PROFILES; i++) {
		struct pool_capture pc = {2, 0, {NULL, 0}};
		bool from_task = i % 2 == 0;
		if (from_task)
			pc.err = pt_capture(2, &pc.buf);
		else
			CHECK_EQ(co_blocking(pool_capture_fn, &pc), 0);
		CHECK_EQ(pc.err, 0);
		if (pc.err == 0)
			churn_check_debug2(&pc.buf, main_id, from_task);
		pt_buf_free(&pc.buf);
		if (i % 10 == 0)
			churn_check_debug1_debug0();
		churn_profiles_checked++;
		co_yield();
	}
	atomic_store(&churn_stop, 1);
	CHECK_EQ(co_chan_close(churn_chan), 0);
	CHECK(tu_wait_num_tasks(1, 20 * TU_SEC));
	co_chan_free(churn_chan);
	if (atomic_load(&churn_spin_gave_up))
		tu_fail(__FILE__, __LINE__, "task 1 was starved for %lld s by "
			"the spinner", (long long)(CHURN_SPIN_MAX / TU_SEC));
}

static void churn_run(const char *procs)
{
	atomic_store(&churn_stop, 0);
	atomic_store(&churn_parked_started, 0);
	atomic_store(&churn_spins, 0);
	atomic_store(&churn_alive, 0);
	atomic_store(&churn_spawned, 0);
	atomic_store(&churn_spin_gave_up, 0);
	churn_profiles_checked = 0;
	tu_setenv("COPPER_PROCS", procs);
	tu_run(task_main_churn, NULL);
	tu_setenv("COPPER_PROCS", NULL);
	assert_int_equal(churn_profiles_checked, CHURN_PROFILES);
	assert_int_equal(atomic_load(&churn_parked_started), 0);
	assert_true(atomic_load(&churn_spawned) > 100);
}

static void test_goroutine_churn_exact_counts_procs2(void **state)
{
	(void)state;
	churn_run("2");
}

static void test_goroutine_churn_exact_counts_procs4(void **state)
{
	(void)state;
	churn_run("4");
}

/*
 * The snapshot keeps its arena between profiles (profiler/snapshot.c,
 * "Keeping the arena").  A profile taken after a bigger one reuses an
 * arena holding the old records, one taken after a smaller one needs a
 * bigger arena: each must count exactly the tasks alive, with no record
 * of the previous profile showing through.
 */
#define KEPT_SMALL 3000
#define KEPT_BIG 20000

static co_chan *kept_chan;
static _Atomic int kept_parked;

static void task_kept_parked(void *arg)
{
	(void)arg;
	atomic_fetch_add(&kept_parked, 1);
	co_chan_recv(kept_chan, NULL);
	atomic_fetch_sub(&kept_parked, 1);
}

/* The debug=1 total, the sum of its counts and the count of the record
 * naming task_kept_parked. */
static void kept_check(long want_parked)
{
	struct pt_buf t;
	long total, sum, parked, spin;

	CHECK_EQ(pt_capture(1, &t), 0);
	churn_count_debug1(t.data ? t.data : "", &total, &sum, &parked,
			   &spin);
	CHECK_EQ(total, (long)co_num_tasks());
	CHECK_EQ(sum, total);
	CHECK_EQ(total, want_parked + 1);
	pt_buf_free(&t);
	(void)spin;
	CHECK_EQ(pt_capture(2, &t), 0);
	long blocks = 0;
	for (const char *l = t.data; l && (l = strstr(l, "\ngoroutine "));
	     l++)
		blocks++;
	/* The first block starts the text, without a newline before it. */
	if (t.data && strncmp(t.data, "goroutine ", 10) == 0)
		blocks++;
	CHECK_EQ(blocks, want_parked + 1);
	pt_buf_free(&t);
}

static void kept_release(int n)
{
	int before = atomic_load(&kept_parked);

	for (int i = 0; i < n; i++)
		CHECK_EQ(co_chan_send(kept_chan, &i), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&kept_parked) == before - n &&
				    co_num_tasks() == (size_t)(before - n + 1),
			    20 * TU_SEC));
}

static void kept_spawn(int n)
{
	int before = atomic_load(&kept_parked);

	for (int i = 0; i < n; i++)
		CHECK(co_go(task_kept_parked, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&kept_parked) == before + n,
			    20 * TU_SEC));
}

static void task_main_kept(void *arg)
{
	(void)arg;
	kept_chan = co_chan_new(sizeof(int), 0);
	CHECK(kept_chan != NULL);
	kept_spawn(KEPT_SMALL);
	kept_check(KEPT_SMALL);
	/* Fewer tasks: the kept arena is reused over the old records. */
	kept_release(KEPT_SMALL - 100);
	kept_check(100);
	kept_check(100);
	/* Many more: the kept arena is too small and is replaced. */
	kept_spawn(KEPT_BIG);
	kept_check(KEPT_BIG + 100);
	kept_release(KEPT_BIG);
	kept_check(100);
	CHECK_EQ(co_chan_close(kept_chan), 0);
	CHECK(tu_wait_num_tasks(1, 20 * TU_SEC));
	co_chan_free(kept_chan);
}

static void test_goroutine_kept_arena_shrink_and_grow(void **state)
{
	(void)state;
	atomic_store(&kept_parked, 0);
	tu_setenv("COPPER_PROCS", "2");
	tu_run(task_main_kept, NULL);
	tu_setenv("COPPER_PROCS", NULL);
	assert_int_equal(atomic_load(&kept_parked), 0);
}

/*
 * Tasks yielding at one line are one record.  co_yield has a fast path
 * (two tasks swapping through the yield slot) and a general one; both
 * switch at the same place, so the stack a yielded task leaves is the
 * same whichever it took, and debug=1 (which groups by pcs) shows one
 * record with count YIELDERS, however the yields interleaved.  (Before,
 * this test found two records in every run.)
 */
#define YIELDERS 2
#define YIELD_CAPTURES 60

static _Atomic int yield_stop;
static _Atomic int yield_started;
static _Atomic int yield_want;  /* task 1 waits for a kick */
static co_chan *yield_kick;

/* The first yielder also wakes task 1 when it asks: task 1 waits on a
 * channel, not a timer, because a pending timer sends every yield down
 * the general path.  So while task 1 waits the two yielders swap through
 * the fast path, and the kicker's next yield, with task 1 runnable, takes
 * the general one: a capture then finds one yielder left by each. */
__attribute__((noinline)) static void yield_kick_maybe(bool kicker, long i)
{
	int zero = 0;

	if (kicker && i % 64 == 0 && atomic_exchange(&yield_want, 0))
		CHECK_EQ(co_chan_send(yield_kick, &zero), 0);
}

/* One co_yield call site whatever the optimiser does: with the kicker's
 * test inline, -O3 unswitches the loop into a kicker's and a plain one,
 * two call sites and so two records. */
__attribute__((noinline)) static void task_yielder(void *arg)
{
	bool kicker = arg != NULL;

	atomic_fetch_add(&yield_started, 1);
	for (long i = 1; !atomic_load(&yield_stop); i++) {
		co_yield();
		yield_kick_maybe(kicker, i);
	}
}

static void task_main_yielders(void *arg)
{
	int v;

	(void)arg;
	yield_kick = co_chan_new(sizeof(int), 0);
	CHECK(yield_kick != NULL);
	for (int i = 0; i < YIELDERS; i++)
		CHECK(co_go(task_yielder, i == 0 ? (void *)1 : NULL) != 0);
	for (int64_t end = co_now() + 10 * TU_SEC;
	     atomic_load(&yield_started) < YIELDERS && co_now() < end;)
		co_yield();
	for (int c = 0; c < YIELD_CAPTURES; c++) {
		struct pt_buf t;
		long records = 0, count = 0, n = 0;

		atomic_store(&yield_want, 1);
		CHECK_EQ(co_chan_recv(yield_kick, &v), 0);
		CHECK_EQ(pt_capture(1, &t), 0);
		for (const char *l = t.data; l && *l; l = strchrnul(l, '\n')) {
			if (*l == '\n')
				l++;
			if (*l >= '0' && *l <= '9')
				n = strtol(l, NULL, 10);
			const char *eol = strchrnul(l, '\n');
			const char *p = strstr(l, "\ttask_yielder+");
			if (*l == '#' && p && p < eol) {
				records++;
				count += n;
			}
		}
		CHECK_EQ(records, 1);
		CHECK_EQ(count, YIELDERS);
		pt_buf_free(&t);
	}
	atomic_store(&yield_stop, 1);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
	co_chan_free(yield_kick);
}

static void test_goroutine_yielders_one_record(void **state)
{
	(void)state;
	atomic_store(&yield_stop, 0);
	atomic_store(&yield_started, 0);
	atomic_store(&yield_want, 0);
	tu_setenv("COPPER_PROCS", "1");
	tu_run(task_main_yielders, NULL);
	tu_setenv("COPPER_PROCS", NULL);
}

/* ------------------------------------------------------------------------
 * 7. Registry
 * ---------------------------------------------------------------------- */

static void test_registry_lookup_unknown_null(void **state)
{
	(void)state;
	assert_null(co_profile_lookup("nope"));
	assert_null(co_profile_lookup(""));
	assert_null(co_profile_lookup("Goroutine"));
	assert_null(co_profile_lookup(NULL));
	co_profile *p = co_profile_lookup("goroutine");
	assert_non_null(p);
	assert_ptr_equal(co_profile_lookup("goroutine"), p);
	assert_string_equal(co_profile_name(p), "goroutine");
}

static _Atomic int reg_results[16];
static co_chan *reg_chan;

static void task_registry_parked(void *arg)
{
	(void)arg;
	co_chan_recv(reg_chan, NULL);
	atomic_fetch_add(&reg_results[15], 1);
}

/* A closed descriptor: one this process does not have open. */
static int closed_fd(void)
{
	for (int fd = 900; fd < 1000; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			return fd;
	return -1;
}

static void task_main_registry_errors(void *arg)
{
	co_profile *p = co_profile_lookup("goroutine");
	int fd = pt_memfd(), full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	struct stat st;
	(void)arg;

	CHECK(fd >= 0 && full >= 0);
	reg_results[0] = co_profile_write(p, fd, 3);
	reg_results[1] = co_profile_write(p, fd, -1);
	reg_results[2] = co_profile_write(p, fd, INT_MAX);
	reg_results[3] = co_profile_write(NULL, fd, 1);
	reg_results[4] = co_profile_count(NULL);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 0); /* nothing written */
	int bad = closed_fd();
	CHECK(bad >= 0);
	for (int debug = 0; debug <= 2; debug++) {
		reg_results[5 + debug] = co_profile_write(p, bad, debug);
		reg_results[8 + debug] = co_profile_write(p, full, debug);
	}
	/* co_profile_count: the tasks alive now. */
	reg_chan = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < 10; i++)
		CHECK(co_go(task_registry_parked, NULL) != 0);
	reg_results[11] = co_profile_count(p);
	reg_results[12] = (int)co_num_tasks();
	CHECK_EQ(co_chan_close(reg_chan), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	reg_results[13] = co_profile_count(p);
	co_chan_free(reg_chan);
	close(fd);
	close(full);
}

static void test_registry_write_errors(void **state)
{
	(void)state;
	memset(reg_results, 0, sizeof(reg_results));
	tu_run(task_main_registry_errors, NULL);
	assert_int_equal(reg_results[0], -EINVAL);  /* debug 3 */
	assert_int_equal(reg_results[1], -EINVAL);  /* debug -1 */
	assert_int_equal(reg_results[2], -EINVAL);  /* debug INT_MAX */
	assert_int_equal(reg_results[3], -EINVAL);  /* NULL profile */
	assert_int_equal(reg_results[4], -EINVAL);  /* count(NULL) */
	for (int debug = 0; debug <= 2; debug++) {
		if (reg_results[5 + debug] != -EBADF)
			fail_msg("debug=%d to a closed fd: %s, want EBADF", debug,
				 co_errname(reg_results[5 + debug]));
		if (reg_results[8 + debug] != -ENOSPC)
			fail_msg("debug=%d to /dev/full: %s, want ENOSPC", debug,
				 co_errname(reg_results[8 + debug]));
	}
}

static void test_registry_count_is_live_tasks(void **state)
{
	(void)state;
	memset(reg_results, 0, sizeof(reg_results));
	tu_run(task_main_registry_errors, NULL);
	assert_int_equal(reg_results[11], 11);
	assert_int_equal(reg_results[12], 11);
	assert_int_equal(reg_results[13], 1);
	assert_int_equal(reg_results[15], 10);
	/* Outside co_run: no tasks. */
	assert_int_equal(co_profile_count(co_profile_lookup("goroutine")), 0);
}

/* ------------------------------------------------------------------------
 * 8. Labels
 * ---------------------------------------------------------------------- */

static struct {
	int set_empty_key, set_empty_later_key, set_odd, set_odd_first,
		get_after_bad;
	int too_many_pairs, full_new_key, full_override;
	int set_override, get_override;
	char override[32];
	int remove, get_removed, get_kept;
	char kept[32];
	int get_small, get_unknown, get_null_key;
	int child_before, child_after, child_after_own;
	char child_after_value[32];
	int parent_after_child;
	char parent_value[32];
	uint64_t before_id, after_id;
	struct pt_buf d1, d2, d0;
} lb;

static co_chan *lb_chan;
static _Atomic int lb_children_done;

static void task_labels_child_before(void *arg)
{
	char v[32];
	(void)arg;
	co_chan_recv(lb_chan, NULL);
	lb.child_before = co_labels_get("worker", v, sizeof(v));
	atomic_fetch_add(&lb_children_done, 1);
}

static void task_labels_child_after(void *arg)
{
	(void)arg;
	lb.child_after = co_labels_get("worker", lb.child_after_value,
				       sizeof(lb.child_after_value));
	co_chan_recv(lb_chan, NULL);
	/* A child's own labels do not reach its parent. */
	lb.child_after_own = co_labels_set("worker", "child", NULL);
	atomic_fetch_add(&lb_children_done, 1);
}

static void task_main_labels(void *arg)
{
	char v[32];
	(void)arg;

	lb_chan = co_chan_new(sizeof(int), 0);
	atomic_store(&lb_children_done, 0);
	lb.before_id = co_go(task_labels_child_before, NULL);
	lb.set_empty_key = co_labels_set("", "x", NULL);
	lb.set_empty_later_key = co_labels_set("a", "1", "", "2", NULL);
	/* Odd: a key whose value is the terminator. */
	lb.set_odd = co_labels_set("a", "1", "b", NULL);
	lb.set_odd_first = co_labels_set("a", NULL);
	lb.get_after_bad = co_labels_get("a", v, sizeof(v)); /* all or nothing */
	CHECK_EQ(co_labels_set("worker", "ingest", "tier", "a", NULL), 0);
	lb.set_override = co_labels_set("worker", "export", NULL);
	lb.get_override = co_labels_get("worker", lb.override, sizeof(lb.override));
	lb.remove = co_labels_set("tier", "", NULL);
	lb.get_removed = co_labels_get("tier", v, sizeof(v));
	lb.get_kept = co_labels_get("worker", lb.kept, sizeof(lb.kept));
	lb.get_small = co_labels_get("worker", v, 3);
	lb.get_unknown = co_labels_get("nope", v, sizeof(v));
	lb.get_null_key = co_labels_get(NULL, v, sizeof(v));
	lb.after_id = co_go(task_labels_child_after, NULL);
	CHECK(TU_WAIT_UNTIL(testing_task_status(lb.after_id, v, sizeof(v), NULL,
						NULL, 0) == 0 &&
				    strcmp(v, "chan receive") == 0 &&
				    testing_task_status(lb.before_id, v, sizeof(v),
							NULL, NULL, 0) == 0 &&
				    strcmp(v, "chan receive") == 0,
			    5 * TU_SEC));
	CHECK_EQ(pt_capture(1, &lb.d1), 0);
	CHECK_EQ(pt_capture(2, &lb.d2), 0);
	CHECK_EQ(pt_capture(0, &lb.d0), 0);
	CHECK_EQ(co_chan_close(lb_chan), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&lb_children_done) == 2, 5 * TU_SEC));
	lb.parent_after_child = co_labels_get("worker", lb.parent_value,
					      sizeof(lb.parent_value));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(lb_chan);
}

static void labels_run(void)
{
	static bool ran;
	if (!ran) {
		ran = true;
		memset(&lb, 0, sizeof(lb));
		tu_run(task_main_labels, NULL);
	}
}

static void test_labels_set_outside_task_eperm(void **state)
{
	char v[8];
	(void)state;
	assert_int_equal(co_labels_set("worker", "ingest", NULL), -EPERM);
	assert_int_equal(co_labels_get("worker", v, sizeof(v)), -ENOENT);
}

static void test_labels_set_bad_list_einval(void **state)
{
	(void)state;
	labels_run();
	assert_int_equal(lb.set_empty_key, -EINVAL);
	assert_int_equal(lb.set_empty_later_key, -EINVAL);
	assert_int_equal(lb.set_odd, -EINVAL);
	assert_int_equal(lb.set_odd_first, -EINVAL);
	assert_int_equal(lb.get_after_bad, -ENOENT);
}

/* 65 distinct pairs: one more than a call (and a task) may hold. */
#define LP1(k) #k, "v",
#define LP8(k) LP1(k##0) LP1(k##1) LP1(k##2) LP1(k##3) LP1(k##4) LP1(k##5) \
	LP1(k##6) LP1(k##7)
#define LP64 LP8(a) LP8(b) LP8(c) LP8(d) LP8(e) LP8(f) LP8(g) LP8(h)

static void task_main_labels_limits(void *arg)
{
	(void)arg;
	lb.too_many_pairs = co_labels_set(LP64 "z", "v", NULL);
	/* 64 labels, the most a task holds; then one more key. */
	CHECK_EQ(co_labels_set(LP64 NULL), 0);
	lb.full_new_key = co_labels_set("z", "v", NULL);
	lb.full_override = co_labels_set("a0", "w", NULL);
}

static void test_labels_set_limits(void **state)
{
	(void)state;
	tu_run(task_main_labels_limits, NULL);
	assert_int_equal(lb.too_many_pairs, -EINVAL);
	assert_int_equal(lb.full_new_key, -ERANGE);
	assert_int_equal(lb.full_override, 0);
}

static void test_labels_set_override_and_remove(void **state)
{
	(void)state;
	labels_run();
	assert_int_equal(lb.set_override, 0);
	assert_int_equal(lb.get_override, 0);
	assert_string_equal(lb.override, "export");
	assert_int_equal(lb.remove, 0);
	assert_int_equal(lb.get_removed, -ENOENT);
	assert_int_equal(lb.get_kept, 0);
	assert_string_equal(lb.kept, "export");
}

static void test_labels_get_errors(void **state)
{
	(void)state;
	labels_run();
	assert_int_equal(lb.get_small, -ERANGE);
	assert_int_equal(lb.get_unknown, -ENOENT);
	assert_int_equal(lb.get_null_key, -EINVAL);
}

static void test_labels_inherited_by_children_created_after(void **state)
{
	struct pt_d2 d;
	char want[256];

	(void)state;
	labels_run();
	assert_int_equal(lb.child_before, -ENOENT);
	assert_int_equal(lb.child_after, 0);
	assert_string_equal(lb.child_after_value, "export");
	assert_int_equal(lb.child_after_own, 0);
	assert_int_equal(lb.parent_after_child, 0);
	assert_string_equal(lb.parent_value, "export");
	/* And in the dump, as the tasks were then. */
	if (!pt_parse_debug2(lb.d2.data, lb.d2.len, &d))
		fail_msg("%s", d.err);
	const struct pt_d2_block *before = pt_d2_find(&d, lb.before_id);
	const struct pt_d2_block *after = pt_d2_find(&d, lb.after_id);
	assert_non_null(before);
	assert_non_null(after);
	assert_string_equal(before->bracket, "chan receive");
	snprintf(want, sizeof(want), "goroutine %" PRIu64
		 " [chan receive labels:{\"worker\": \"export\"}]:", lb.after_id);
	assert_string_equal(after->header, want);
	assert_string_equal(d.b[0].bracket, "running labels:{\"worker\": \"export\"}");
	pt_d2_free(&d);
}

static void test_labels_debug1_and_debug0_forms(void **state)
{
	struct pt_d1 d;
	char err[256];

	(void)state;
	labels_run();
	if (!pt_parse_debug1(lb.d1.data, lb.d1.len, &d))
		fail_msg("%s", d.err);
	const struct pt_d1_record *after =
		pt_d1_find(&d, "task_labels_child_after", "{\"worker\":\"export\"}");
	const struct pt_d1_record *before =
		pt_d1_find(&d, "task_labels_child_before", "");
	assert_non_null(after);
	assert_non_null(before);
	pt_d1_free(&d);
	pt_pb_profile *p = pt_decode(lb.d0.data, lb.d0.len, err, sizeof(err));
	if (!p)
		fail_msg("%s", err);
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		if (pt_pb_sample_has_function(p, s, "task_labels_child_before"))
			assert_int_equal(s->n_label, 0);
		if (pt_pb_sample_has_function(p, s, "task_labels_child_after")) {
			assert_int_equal(s->n_label, 1);
			assert_string_equal(pt_pb_str(p, s->label[0]->key), "worker");
			assert_string_equal(pt_pb_str(p, s->label[0]->str), "export");
		}
	}
	pt_pb_free(p);
	pt_buf_free(&lb.d0);
	pt_buf_free(&lb.d1);
	pt_buf_free(&lb.d2);
}

/* Go quotes keys and values with %q in both text forms. */
static struct pt_buf quote_d1, quote_d2;

static void task_main_labels_quoted(void *arg)
{
	(void)arg;
	CHECK_EQ(co_labels_set("q", "a\"b\nc\\d\te", "b", "\x01", NULL), 0);
	CHECK_EQ(pt_capture(1, &quote_d1), 0);
	CHECK_EQ(pt_capture(2, &quote_d2), 0);
}

static void test_labels_quoted_like_go(void **state)
{
	(void)state;
	tu_run(task_main_labels_quoted, NULL);
	/* debug=1: entries "%q:%q", sorted as strings, ", " between. */
	assert_non_null(strstr(quote_d1.data,
			       "\n# labels: {\"b\":\"\\x01\", "
			       "\"q\":\"a\\\"b\\nc\\\\d\\te\"}\n"));
	/* debug=2: "%q: %q" sorted by key. */
	assert_non_null(strstr(quote_d2.data,
			       "goroutine 1 [running labels:{\"b\": \"\\x01\", "
			       "\"q\": \"a\\\"b\\nc\\\\d\\te\"}]:\n"));
	pt_buf_free(&quote_d1);
	pt_buf_free(&quote_d2);
}

/* ------------------------------------------------------------------------
 * 9. Leak checks
 * ---------------------------------------------------------------------- */

static co_chan *leak_chan;
static _Atomic int line_leak;
static struct {
	int none, leaked, grace, grace_zero, null_lc;
	bool begin_null;
	uint64_t leaked_id, old_id;
	struct pt_buf report;
	int64_t grace_waited;
} lk;

static void task_leak_quick(void *arg)
{
	(void)arg;
	co_yield();
}

static void task_leak_recv(void *arg)
{
	(void)arg;
	MARK(line_leak); co_chan_recv(leak_chan, NULL);
	co_yield();
}

static void task_leak_slow(void *arg)
{
	co_sleep((int64_t)(intptr_t)arg);
	co_yield();
}

static bool leak_parked(uint64_t id)
{
	char status[64];
	return testing_task_status(id, status, sizeof(status), NULL, NULL, 0) == 0 &&
	       strcmp(status, "chan receive") == 0;
}

static int report_read(FILE *f, struct pt_buf *b)
{
	fflush(f);
	rewind(f);
	return pt_read_fd(fileno(f), b);
}

static void task_main_leakcheck(void *arg)
{
	co_leakcheck *lc;
	FILE *report = tmpfile();
	(void)arg;

	CHECK(report != NULL);
	leak_chan = co_chan_new(sizeof(int), 0);
	/* Parked before begin: not a leak of this check. */
	lk.old_id = co_go(task_leak_recv, NULL);
	CHECK(TU_WAIT_UNTIL(leak_parked(lk.old_id), 5 * TU_SEC));

	lc = co_leakcheck_begin();
	CHECK(lc != NULL);
	for (int i = 0; i < 10; i++)
		CHECK(co_go(task_leak_quick, NULL) != 0);
	lk.none = co_leakcheck_end(lc, 5 * TU_SEC, report);
	CHECK(ftell(report) == 0);

	lc = co_leakcheck_begin();
	lk.leaked_id = co_go(task_leak_recv, NULL);
	lk.leaked = co_leakcheck_end(lc, 20 * TU_MS, report);
	CHECK_EQ(report_read(report, &lk.report), 0);

	lc = co_leakcheck_begin();
	CHECK(co_go(task_leak_slow, (void *)(intptr_t)(50 * TU_MS)) != 0);
	int64_t t0 = co_now();
	lk.grace = co_leakcheck_end(lc, 10 * TU_SEC, NULL);
	lk.grace_waited = co_now() - t0;

	lc = co_leakcheck_begin();
	CHECK(co_go(task_leak_slow, (void *)(intptr_t)(300 * TU_MS)) != 0);
	lk.grace_zero = co_leakcheck_end(lc, 0, NULL);

	lk.null_lc = co_leakcheck_end(NULL, 0, NULL);
	CHECK_EQ(co_chan_close(leak_chan), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(leak_chan);
	fclose(report);
}

static void leakcheck_run(void)
{
	static bool ran;
	if (!ran) {
		ran = true;
		lk.begin_null = co_leakcheck_begin() == NULL;
		tu_run(task_main_leakcheck, NULL);
	}
}

static void test_leakcheck_nothing_leaked_zero(void **state)
{
	(void)state;
	leakcheck_run();
	assert_int_equal(lk.none, 0);
}

static void test_leakcheck_blocked_task_ebusy_report(void **state)
{
	struct pt_d2 d;
	char want[64];

	(void)state;
	leakcheck_run();
	assert_int_equal(lk.leaked, -EBUSY);
	/* The report: a line, an empty line, then debug=2 blocks. */
	const char *blocks = strstr(lk.report.data, "\n\ngoroutine ");
	if (!blocks)
		fail_msg("no goroutine block in the report:\n%s", lk.report.data);
	blocks += 2;
	if (!pt_parse_debug2(blocks, strlen(blocks), &d))
		fail_msg("%s\n%s", d.err, lk.report.data);
	assert_int_equal(d.n, 1); /* neither the old task nor the caller */
	assert_int_equal(d.b[0].id, lk.leaked_id);
	assert_string_equal(d.b[0].status, "chan receive");
	int k = pt_d2_frame_index(&d.b[0], "task_leak_recv");
	assert_true(k >= 0);
	assert_int_equal(d.b[0].frames[k].line, LINE(line_leak));
	assert_string_equal(d.b[0].created_func, "task_main_leakcheck");
	snprintf(want, sizeof(want), "goroutine %" PRIu64 " ", lk.old_id);
	assert_null(strstr(lk.report.data, want));
	pt_d2_free(&d);
	pt_buf_free(&lk.report);
}

static void test_leakcheck_grace_lets_slow_task_finish(void **state)
{
	(void)state;
	leakcheck_run();
	assert_int_equal(lk.grace, 0);
	assert_true(lk.grace_waited >= 40 * TU_MS);
	assert_true(lk.grace_waited < 5 * TU_SEC);
	assert_int_equal(lk.grace_zero, -EBUSY);
}

static void test_leakcheck_args(void **state)
{
	(void)state;
	leakcheck_run();
	assert_true(lk.begin_null); /* outside a task */
	assert_int_equal(lk.null_lc, -EINVAL);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_goroutine_debug1_total_equals_num_tasks),
		T(test_goroutine_debug1_sorted_by_count_then_key),
		T(test_goroutine_debug1_frame_pcs_in_at_list),
		T(test_goroutine_debug1_sites_counts_and_lines),
		T(test_goroutine_debug1_labels_line_after_at_line),
		T(test_goroutine_debug1_first_frame_is_public_call),
		T(test_goroutine_debug2_blocks_parse_like_goleak),
		T(test_goroutine_debug2_caller_first_running),
		T(test_goroutine_debug2_wait_reasons),
		T(test_goroutine_debug2_frames_func_and_position),
		T(test_goroutine_debug2_created_by_every_task_but_1),
		T(test_goroutine_debug2_named_task_shows_name_label),
		T(test_goroutine_debug2_labels_go127_form),
		T(test_goroutine_debug2_first_frame_is_public_call),
		T(test_goroutine_debug0_types_and_period),
		T(test_goroutine_debug0_values_sum_to_tasks),
		T(test_goroutine_debug0_string_labels),
		T(test_goroutine_debug0_functions_files_lines),
		T(test_goroutine_debug0_mapping_is_test_binary),
		T(test_goroutine_debug0_go_tool_raw),
		T(test_goroutine_debug0_go_tool_traces),
		T(test_goroutine_json_python_reads_tasks),
		T(test_goroutine_not_started_debug2_shows_start_function),
		T(test_goroutine_not_started_debug1_shows_start_function),
		T(test_goroutine_not_started_debug0_names_start_function),
		T(test_goroutine_churn_exact_counts_procs2),
		T(test_goroutine_churn_exact_counts_procs4),
		T(test_goroutine_kept_arena_shrink_and_grow),
		T(test_goroutine_yielders_one_record),
		T(test_registry_lookup_unknown_null),
		T(test_registry_write_errors),
		T(test_registry_count_is_live_tasks),
		T(test_labels_set_outside_task_eperm),
		T(test_labels_set_bad_list_einval),
		T(test_labels_set_limits),
		T(test_labels_set_override_and_remove),
		T(test_labels_get_errors),
		T(test_labels_inherited_by_children_created_after),
		T(test_labels_debug1_and_debug0_forms),
		T(test_labels_quoted_like_go),
		T(test_leakcheck_nothing_leaked_zero),
		T(test_leakcheck_blocked_task_ebusy_report),
		T(test_leakcheck_grace_lets_slow_task_finish),
		T(test_leakcheck_args),
	};

	/* COPPER_TEST_FILTER=test_labels* runs some of the cases. */
	if (getenv("COPPER_TEST_FILTER"))
		cmocka_set_test_filter(getenv("COPPER_TEST_FILTER"));
	return cmocka_run_group_tests_name("profiler.goroutine", tests, NULL,
					   NULL);
}
