/* SPDX-License-Identifier: MIT */
/*
 * test_select.c - tests of runtime/select.c: co_select over send and
 * receive cases, with Go's semantics for default, timeouts, closed and nil
 * channels, and a uniform choice among ready cases.
 *
 * Scenario groups:
 *   1. Default       timeout 0: -ETIMEDOUT at once when no case is ready
 *                    (and nothing is touched), the ready case otherwise;
 *                    also outside a task.
 *   2. Timeout       a finite timeout returns -ETIMEDOUT no earlier than
 *                    asked (also with only NULL channels, or no cases); a
 *                    case that becomes ready first wins; a timed-out select
 *                    leaves no waiter behind on its channels.
 *   3. Forever       timeout -1 parks as "select" until a case fires.
 *   4. Mixed cases   send and receive cases in one select, ready at once
 *                    or after parking; the value moves in the right
 *                    direction and result is 0.
 *   5. Closed        a receive case on a closed channel fires with result
 *                    -EPIPE and a zeroed element (after the buffer drains);
 *                    a send case fires with -EPIPE; a close wakes a parked
 *                    select.
 *   6. Nil cases     cases on NULL channels never fire; only-NULL cases
 *                    park as "select"; co_select(NULL, 0, -1) parks as
 *                    "select (no cases)".
 *   7. Bad input     an invalid op, NULL cases with n > 0, a send case
 *                    with a NULL element: -EINVAL and no case performed;
 *                    a select that would block outside a task: -EPERM.
 *   8. Fairness      among ready cases the choice is uniform: counts over
 *                    100k selects stay within 5 binomial standard
 *                    deviations of n/k (2 and 3 cases, receive and send).
 *   9. Many cases    more than 8 cases (the heap-allocated path): the
 *                    ready case fires, a parked select wakes on any case,
 *                    and the choice among 16 ready cases is uniform.
 *  10. Same channel  one channel in two cases: either may fire, a select
 *                    never rendezvouses with itself, and only one value
 *                    is taken.
 *  11. Races         many selectors against many senders, selectors as
 *                    senders, and select-to-select exchanges with short
 *                    timeouts: no value is lost or duplicated.
 *
 * Tasks record failures with CHECK (test_util.h).  The suite also runs
 * with COPPER_PROCS=1, 2 and 4.
 */
#include "test_util.h"

#include "runtime/testing.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* status_is, WAIT_STATUS: test_util.h */

static co_case case_recv(co_chan *c, void *elem)
{
	return (co_case){.op = CO_RECV, .chan = c, .elem = elem, .result = 1};
}

static co_case case_send(co_chan *c, void *elem)
{
	return (co_case){.op = CO_SEND, .chan = c, .elem = elem, .result = 1};
}

/* A task that runs one co_select and records what it returned. */
struct sel {
	co_case cases[4];
	size_t n;
	int64_t timeout;
	_Atomic int ret;    /* co_select's return, valid once done */
	_Atomic int done;
	uint64_t id;
};

static void task_selector(void *arg)
{
	struct sel *s = arg;

	atomic_store(&s->ret, co_select(s->cases, s->n, s->timeout));
	atomic_store(&s->done, 1);
}

/* Starts task_selector(s) and waits until it parks as "select". */
static void start_parked_select(struct sel *s)
{
	atomic_store(&s->done, 0);
	s->id = co_go(task_selector, s);
	CHECK(s->id != 0);
	WAIT_STATUS(s->id, "select");
	CHECK_EQ(atomic_load(&s->done), 0);
}

static bool sel_done(struct sel *s)
{
	return TU_WAIT_UNTIL(atomic_load(&s->done) == 1, 5 * TU_SEC);
}

/* Sends *(int *)value on c after a delay. */
struct later {
	co_chan *c;
	int value;
	int64_t delay;
	bool close;         /* close instead of sending */
};

static void task_send_later(void *arg)
{
	struct later *l = arg;

	co_sleep(l->delay);
	if (l->close)
		CHECK_EQ(co_chan_close(l->c), 0);
	else
		CHECK_EQ(co_chan_send(l->c, &l->value), 0);
}

/* ------------------------------------------------------------------------
 * 1. Default
 * ---------------------------------------------------------------------- */

static void task_main_default(void *arg)
{
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_chan *full = co_chan_new(sizeof(int), 1);
	int in = 0x5a5a, out = 9;

	(void)arg;
	CHECK_EQ(co_chan_send(full, &(int){1}), 0);
	co_case cs[2] = {case_recv(u, &in), case_send(full, &out)};
	int64_t t0 = co_now();
	CHECK_EQ(co_select(cs, 2, 0), CO_ETIMEDOUT);
	CHECK(co_now() - t0 < 50 * TU_MS);
	CHECK_EQ(in, 0x5a5a);               /* nothing received */
	CHECK_EQ(co_chan_len(full), 1);     /* nothing sent */

	/* A ready case fires under timeout 0. */
	CHECK_EQ(co_chan_recv(full, &in), 0);
	cs[0] = case_recv(u, &in);
	cs[1] = case_send(full, &out);
	CHECK_EQ(co_select(cs, 2, 0), 1);
	CHECK_EQ(cs[1].result, 0);
	CHECK_EQ(co_chan_len(full), 1);
	CHECK_EQ(co_chan_recv(full, &in), 0);
	CHECK_EQ(in, 9);
	co_chan_free(u);
	co_chan_free(full);
}

static void test_select_default_none_ready_returns_etimedout(void **state)
{
	(void)state;
	tu_run(task_main_default, NULL);
}

static void test_select_default_outside_task(void **state)
{
	int v = 0;

	(void)state;
	co_chan *b = co_chan_new(sizeof(int), 1);
	co_case cs[1] = {case_recv(b, &v)};
	assert_int_equal(co_select(cs, 1, 0), CO_ETIMEDOUT);
	assert_int_equal(co_chan_send(b, &(int){4}), 0);
	cs[0] = case_recv(b, &v);
	assert_int_equal(co_select(cs, 1, 0), 0);
	assert_int_equal(cs[0].result, 0);
	assert_int_equal(v, 4);
	assert_int_equal(co_select(NULL, 0, 0), CO_ETIMEDOUT);
	co_chan_free(b);
}

/* ------------------------------------------------------------------------
 * 2. Timeout
 * ---------------------------------------------------------------------- */

static void task_main_timeout(void *arg)
{
	static const int64_t waits[] = {1 * TU_MS, 5 * TU_MS, 30 * TU_MS};
	co_chan *u = co_chan_new(sizeof(int), 0);
	int v;

	(void)arg;
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		co_case cs[2] = {case_recv(u, &v), case_send(u, &v)};
		int64_t t0 = co_now();
		int r = co_select(cs, 2, waits[i]);
		int64_t took = co_now() - t0;
		CHECK_EQ(r, CO_ETIMEDOUT);
		if (took < waits[i])
			tu_fail(__FILE__, __LINE__,
				"select(%lld ns) timed out after %lld ns",
				(long long)waits[i], (long long)took);
		CHECK(took < waits[i] + 2 * TU_SEC);
	}
	co_chan_free(u);
}

static void test_select_timeout_not_early(void **state)
{
	(void)state;
	tu_run(task_main_timeout, NULL);
}

static void task_main_timeout_nil(void *arg)
{
	int v;
	co_case cs[2] = {case_recv(NULL, &v), case_send(NULL, NULL)};

	(void)arg;
	int64_t t0 = co_now();
	CHECK_EQ(co_select(cs, 2, 10 * TU_MS), CO_ETIMEDOUT);
	CHECK(co_now() - t0 >= 10 * TU_MS);
	t0 = co_now();
	CHECK_EQ(co_select(NULL, 0, 10 * TU_MS), CO_ETIMEDOUT);
	CHECK(co_now() - t0 >= 10 * TU_MS);
	CHECK_EQ(co_select(cs, 2, 0), CO_ETIMEDOUT);
}

static void test_select_timeout_only_nil_cases(void **state)
{
	(void)state;
	tu_run(task_main_timeout_nil, NULL);
}

static void task_main_case_beats_timeout(void *arg)
{
	co_chan *u = co_chan_new(sizeof(int), 0);
	struct later l = {.c = u, .value = 71, .delay = 10 * TU_MS};
	int v = 0;

	(void)arg;
	CHECK(co_go(task_send_later, &l) != 0);
	co_case cs[1] = {case_recv(u, &v)};
	int64_t t0 = co_now();
	CHECK_EQ(co_select(cs, 1, 5 * TU_SEC), 0);
	CHECK(co_now() - t0 < 4 * TU_SEC);
	CHECK_EQ(cs[0].result, 0);
	CHECK_EQ(v, 71);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(u);
}

static void test_select_case_beats_timeout(void **state)
{
	(void)state;
	tu_run(task_main_case_beats_timeout, NULL);
}

static void task_main_timeout_no_waiter(void *arg)
{
	co_chan *u = co_chan_new(sizeof(int), 0);
	int v = 0;

	(void)arg;
	for (int i = 0; i < 20; i++) {
		co_case cs[2] = {case_recv(u, &v), case_send(u, &v)};
		CHECK_EQ(co_select(cs, 2, 100000), CO_ETIMEDOUT);
	}
	/* No stale receiver or sender: both directions find nobody. */
	co_case s[1] = {case_send(u, &v)};
	CHECK_EQ(co_select(s, 1, 0), CO_ETIMEDOUT);
	co_case r[1] = {case_recv(u, &v)};
	CHECK_EQ(co_select(r, 1, 0), CO_ETIMEDOUT);
	co_chan_free(u); /* and nothing waits: freed quietly */
}

static void test_select_timeout_leaves_no_waiter(void **state)
{
	(void)state;
	tu_run(task_main_timeout_no_waiter, NULL);
}

/* ------------------------------------------------------------------------
 * 3. Forever
 * ---------------------------------------------------------------------- */

static void task_main_forever(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 0);
	int va = 0, vb = 0;
	struct sel s = {.n = 2, .timeout = -1};

	(void)arg;
	s.cases[0] = case_recv(a, &va);
	s.cases[1] = case_recv(b, &vb);
	start_parked_select(&s);
	co_sleep(20 * TU_MS);
	CHECK(status_is(s.id, "select"));
	CHECK_EQ(co_chan_send(b, &(int){55}), 0);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 1);
	CHECK_EQ(s.cases[1].result, 0);
	CHECK_EQ(vb, 55);
	CHECK_EQ(va, 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(a);
	co_chan_free(b);
}

static void test_select_forever_until_case_fires(void **state)
{
	(void)state;
	tu_run(task_main_forever, NULL);
}

/* ------------------------------------------------------------------------
 * 4. Mixed cases
 * ---------------------------------------------------------------------- */

struct op {
	co_chan *c;
	int value;
	_Atomic int result;
	_Atomic int done;
};

static void task_recv_op(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->result, co_chan_recv(o->c, &o->value));
	atomic_store(&o->done, 1);
}

static void task_main_mixed(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 0);
	int in = 0, out = 808;
	struct sel s = {.n = 2, .timeout = -1};

	(void)arg;
	/* Parked first; a receiver on b takes the send case. */
	s.cases[0] = case_recv(a, &in);
	s.cases[1] = case_send(b, &out);
	start_parked_select(&s);
	int got = 0;
	CHECK_EQ(co_chan_recv(b, &got), 0);
	CHECK_EQ(got, 808);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 1);
	CHECK_EQ(s.cases[1].result, 0);
	CHECK_EQ(in, 0);

	/* Parked again; a sender on a fills the receive case. */
	s.cases[0] = case_recv(a, &in);
	s.cases[1] = case_send(b, &out);
	start_parked_select(&s);
	CHECK_EQ(co_chan_send(a, &(int){909}), 0);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 0);
	CHECK_EQ(s.cases[0].result, 0);
	CHECK_EQ(in, 909);

	/* Ready first: a parked receiver on b, then the select. */
	struct op o = {.c = b};
	CHECK(co_go(task_recv_op, &o) != 0);
	CHECK(TU_WAIT_UNTIL(co_num_tasks() == 2, 5 * TU_SEC));
	co_sleep(2 * TU_MS);
	co_case cs[2] = {case_recv(a, &in), case_send(b, &(int){1001})};
	CHECK_EQ(co_select(cs, 2, 0), 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&o.done) == 1, 5 * TU_SEC));
	CHECK_EQ(atomic_load(&o.result), 0);
	CHECK_EQ(o.value, 1001);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(a);
	co_chan_free(b);
}

static void test_select_send_and_recv_cases_mixed(void **state)
{
	(void)state;
	tu_run(task_main_mixed, NULL);
}

static void task_main_buffered_send_case(void *arg)
{
	co_chan *b = co_chan_new(sizeof(int), 2);
	co_chan *u = co_chan_new(sizeof(int), 0);
	int in = 0, v;

	(void)arg;
	co_case cs[2] = {case_recv(u, &in), case_send(b, &(int){12})};
	CHECK_EQ(co_select(cs, 2, -1), 1); /* room in the buffer */
	CHECK_EQ(co_chan_len(b), 1);
	CHECK_EQ(co_chan_recv(b, &v), 0);
	CHECK_EQ(v, 12);
	co_chan_free(b);
	co_chan_free(u);
}

static void test_select_send_case_buffered_room(void **state)
{
	(void)state;
	tu_run(task_main_buffered_send_case, NULL);
}

/* ------------------------------------------------------------------------
 * 5. Closed
 * ---------------------------------------------------------------------- */

static void task_main_closed(void *arg)
{
	co_chan *b = co_chan_new(sizeof(int), 2);
	co_chan *u = co_chan_new(sizeof(int), 0);
	int v;

	(void)arg;
	CHECK_EQ(co_chan_send(b, &(int){3}), 0);
	CHECK_EQ(co_chan_close(b), 0);
	CHECK_EQ(co_chan_close(u), 0);

	/* The buffered value first, with result 0. */
	v = -1;
	co_case r[1] = {case_recv(b, &v)};
	CHECK_EQ(co_select(r, 1, -1), 0);
	CHECK_EQ(r[0].result, 0);
	CHECK_EQ(v, 3);
	/* Then -EPIPE with the zero value, every time. */
	for (int i = 0; i < 3; i++) {
		v = 0x5a5a;
		r[0] = case_recv(b, &v);
		CHECK_EQ(co_select(r, 1, -1), 0);
		CHECK_EQ(r[0].result, CO_EPIPE);
		CHECK_EQ(v, 0);
	}
	/* A send case on a closed channel fires with -EPIPE. */
	co_case s[1] = {case_send(u, &(int){1})};
	CHECK_EQ(co_select(s, 1, 0), 0);
	CHECK_EQ(s[0].result, CO_EPIPE);
	s[0] = case_send(b, &(int){1});
	CHECK_EQ(co_select(s, 1, -1), 0);
	CHECK_EQ(s[0].result, CO_EPIPE);
	CHECK_EQ(co_chan_len(b), 0);
	/* A receive case with a NULL element on a closed channel. */
	r[0] = case_recv(u, NULL);
	CHECK_EQ(co_select(r, 1, 0), 0);
	CHECK_EQ(r[0].result, CO_EPIPE);
	co_chan_free(b);
	co_chan_free(u);
}

static void test_select_closed_case_fires_epipe(void **state)
{
	(void)state;
	tu_run(task_main_closed, NULL);
}

static void task_main_close_wakes(void *arg)
{
	bool send = (uintptr_t)arg;
	co_chan *a = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 0);
	int va = 0x5a5a, vb = 0x5a5a;
	struct sel s = {.n = 2, .timeout = send ? 5 * TU_SEC : -1};

	s.cases[0] = case_recv(a, &va);
	s.cases[1] = send ? case_send(b, &vb) : case_recv(b, &vb);
	start_parked_select(&s);
	CHECK_EQ(co_chan_close(b), 0);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 1);
	CHECK_EQ(s.cases[1].result, CO_EPIPE);
	CHECK_EQ(vb, send ? 0x5a5a : 0);
	CHECK_EQ(va, 0x5a5a);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	/* The case on a is gone from a's queue. */
	co_case t[1] = {case_send(a, &va)};
	CHECK_EQ(co_select(t, 1, 0), CO_ETIMEDOUT);
	co_chan_free(a);
	co_chan_free(b);
}

static void test_select_close_wakes_parked_select(void **state)
{
	(void)state;
	tu_run(task_main_close_wakes, (void *)(uintptr_t)0);
	tu_run(task_main_close_wakes, (void *)(uintptr_t)1);
}

/* ------------------------------------------------------------------------
 * 6. Nil cases
 * ---------------------------------------------------------------------- */

static void task_main_nil_never(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 1);
	int v = 0, w = 0;

	(void)arg;
	for (int i = 0; i < 200; i++) {
		CHECK_EQ(co_chan_send(a, &i), 0);
		co_case cs[3] = {case_recv(NULL, &w), case_send(NULL, &w),
				 case_recv(a, &v)};
		CHECK_EQ(co_select(cs, 3, -1), 2);
		CHECK_EQ(cs[2].result, 0);
		CHECK_EQ(v, i);
		CHECK_EQ(w, 0);
	}
	/* Parked: only the real channel can wake it. */
	struct later l = {.c = a, .value = 77, .delay = 5 * TU_MS};
	CHECK(co_go(task_send_later, &l) != 0);
	co_case cs[3] = {case_recv(NULL, &w), case_recv(a, &v),
			 case_send(NULL, &w)};
	CHECK_EQ(co_select(cs, 3, 5 * TU_SEC), 1);
	CHECK_EQ(v, 77);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(a);
}

static void test_select_nil_cases_never_fire(void **state)
{
	(void)state;
	tu_run(task_main_nil_never, NULL);
}

static _Atomic int nil_returned; /* must stay 0 */

static void task_select_no_cases(void *arg)
{
	(void)arg;
	co_select(NULL, 0, -1);
	atomic_fetch_add(&nil_returned, 1);
}

static void task_select_only_nil(void *arg)
{
	int v;
	co_case cs[2] = {case_recv(NULL, &v), case_send(NULL, &v)};

	(void)arg;
	co_select(cs, 2, -1);
	atomic_fetch_add(&nil_returned, 1);
}

static void task_main_park_forever(void *arg)
{
	(void)arg;
	uint64_t none = co_go(task_select_no_cases, NULL);
	uint64_t nil = co_go(task_select_only_nil, NULL);
	CHECK(none != 0 && nil != 0);
	WAIT_STATUS(none, "select (no cases)");
	WAIT_STATUS(nil, "select");
	co_sleep(20 * TU_MS);
	CHECK(status_is(none, "select (no cases)"));
	CHECK(status_is(nil, "select"));
	CHECK_EQ(atomic_load(&nil_returned), 0);
	/* Both stay parked; co_run returns with them abandoned. */
}

static void test_select_no_cases_parks_forever(void **state)
{
	(void)state;
	atomic_store(&nil_returned, 0);
	tu_run(task_main_park_forever, NULL);
	assert_int_equal(atomic_load(&nil_returned), 0);
}

/* ------------------------------------------------------------------------
 * 7. Bad input
 * ---------------------------------------------------------------------- */

static void task_main_einval(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 1);
	int v = 0;

	(void)arg;
	CHECK_EQ(co_chan_send(a, &(int){6}), 0);
	static const int bad_ops[] = {0, 3, -1, 99};
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++) {
		co_case cs[2] = {case_recv(a, &v), case_recv(a, &v)};
		cs[1].op = (enum co_case_op)bad_ops[i];
		CHECK_EQ(co_select(cs, 2, 0), CO_EINVAL);
		CHECK_EQ(co_select(cs, 2, -1), CO_EINVAL);
		/* Validated before anything is performed. */
		CHECK_EQ(co_chan_len(a), 1);
		CHECK_EQ(v, 0);
	}
	CHECK_EQ(co_select(NULL, 1, 0), CO_EINVAL);
	CHECK_EQ(co_select(NULL, 3, -1), CO_EINVAL);
	co_case s[2] = {case_recv(a, &v), case_send(a, NULL)};
	CHECK_EQ(co_select(s, 2, 0), CO_EINVAL);
	CHECK_EQ(co_chan_len(a), 1);
	/* A receive case may drop the value. */
	co_case r[1] = {case_recv(a, NULL)};
	CHECK_EQ(co_select(r, 1, 0), 0);
	CHECK_EQ(co_chan_len(a), 0);
	co_chan_free(a);
}

static void test_select_invalid_cases_return_einval(void **state)
{
	(void)state;
	tu_run(task_main_einval, NULL);
}

static void test_select_would_block_outside_task_returns_eperm(void **state)
{
	int v;

	(void)state;
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_case cs[1] = {case_recv(u, &v)};
	assert_int_equal(co_select(cs, 1, -1), CO_EPERM);
	assert_int_equal(co_select(cs, 1, 1000), CO_EPERM);
	assert_int_equal(co_select(NULL, 0, -1), CO_EPERM);
	co_chan_free(u);
}

/* ------------------------------------------------------------------------
 * 8. Fairness
 * ---------------------------------------------------------------------- */

#define FAIR_N 100000
#define FAIR_SIGMAS 5.0

/* Square root by Newton's method (the suite does not link libm). */
static double root(double x)
{
	double r = x > 1 ? x : 1;

	for (int i = 0; i < 100; i++)
		r = (r + x / r) / 2;
	return r;
}

/* Fails unless count is within FAIR_SIGMAS binomial standard deviations
 * of n * p. */
static void check_binomial(const char *what, long count, long n, double p)
{
	double mean = (double)n * p;
	double sd = root((double)n * p * (1 - p));
	double dev = (double)count - mean;

	if (dev > FAIR_SIGMAS * sd || -dev > FAIR_SIGMAS * sd)
		tu_fail(__FILE__, __LINE__,
			"%s: chosen %ld of %ld times; expected %.0f +- %.0f "
			"(%.0f sigma)",
			what, count, n, mean, FAIR_SIGMAS * sd, FAIR_SIGMAS);
}

/* k always-ready receive cases on k buffered channels. */
static void fair_recv(size_t k)
{
	co_chan *c[3];
	long hits[3] = {0};
	int v;

	for (size_t i = 0; i < k; i++) {
		c[i] = co_chan_new(sizeof(int), 1);
		CHECK_EQ(co_chan_send(c[i], &(int){(int)i}), 0);
	}
	for (long n = 0; n < FAIR_N; n++) {
		co_case cs[3];
		for (size_t i = 0; i < k; i++)
			cs[i] = case_recv(c[i], &v);
		int r = co_select(cs, k, 0);
		if (r < 0 || (size_t)r >= k) {
			CHECK(r >= 0 && (size_t)r < k);
			break;
		}
		CHECK_EQ(v, r);
		hits[r]++;
		CHECK_EQ(co_chan_send(c[r], &r), 0); /* ready again */
	}
	for (size_t i = 0; i < k; i++) {
		char what[64];
		snprintf(what, sizeof(what), "recv case %zu of %zu", i, k);
		check_binomial(what, hits[i], FAIR_N, 1.0 / (double)k);
		co_chan_free(c[i]);
	}
}

/* k always-ready send cases on k buffered channels with room. */
static void fair_send(size_t k)
{
	co_chan *c[3];
	long hits[3] = {0};
	int v = 1;

	for (size_t i = 0; i < k; i++)
		c[i] = co_chan_new(sizeof(int), 1);
	for (long n = 0; n < FAIR_N; n++) {
		co_case cs[3];
		for (size_t i = 0; i < k; i++)
			cs[i] = case_send(c[i], &v);
		int r = co_select(cs, k, -1);
		if (r < 0 || (size_t)r >= k) {
			CHECK(r >= 0 && (size_t)r < k);
			break;
		}
		hits[r]++;
		CHECK_EQ(co_chan_recv(c[r], NULL), 0); /* room again */
	}
	for (size_t i = 0; i < k; i++) {
		char what[64];
		snprintf(what, sizeof(what), "send case %zu of %zu", i, k);
		check_binomial(what, hits[i], FAIR_N, 1.0 / (double)k);
		co_chan_free(c[i]);
	}
}

static void task_main_fair(void *arg)
{
	(void)arg;
	fair_recv(2);
	fair_recv(3);
	fair_send(2);
}

static void test_select_fairness_binomial(void **state)
{
	(void)state;
	tu_run(task_main_fair, NULL);
}

/* ------------------------------------------------------------------------
 * 9. Many cases
 * ---------------------------------------------------------------------- */

#define NMANY 20

static void task_main_many(void *arg)
{
	co_chan *c[NMANY];
	int vals[NMANY];
	co_case cs[NMANY];

	(void)arg;
	for (int i = 0; i < NMANY; i++)
		c[i] = co_chan_new(sizeof(int), 1);
	/* Only case 13 is ready. */
	CHECK_EQ(co_chan_send(c[13], &(int){1313}), 0);
	for (int i = 0; i < NMANY; i++) {
		vals[i] = -1;
		cs[i] = case_recv(c[i], &vals[i]);
	}
	CHECK_EQ(co_select(cs, NMANY, 0), 13);
	CHECK_EQ(vals[13], 1313);
	CHECK_EQ(cs[13].result, 0);

	/* Parked over 20 cases (half of them sends on full channels), then
	 * woken on case 17 by a sender. */
	for (int i = 0; i < NMANY; i += 2)
		CHECK_EQ(co_chan_send(c[i], &i), 0);
	for (int i = 0; i < NMANY; i++) {
		vals[i] = -1;
		cs[i] = i % 2 ? case_recv(c[i], &vals[i])
			      : case_send(c[i], &vals[i]);
	}
	struct later l = {.c = c[17], .value = 1717, .delay = 5 * TU_MS};
	CHECK(co_go(task_send_later, &l) != 0);
	CHECK_EQ(co_select(cs, NMANY, 5 * TU_SEC), 17);
	CHECK_EQ(vals[17], 1717);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	/* Every other waiter was taken off: the even (full) channels still
	 * hold exactly their one value, the odd ones are empty. */
	for (int i = 0; i < NMANY; i++)
		CHECK_EQ(co_chan_len(c[i]), i % 2 ? 0 : 1);
	co_case t[1] = {case_send(c[3], &(int){0})};
	CHECK_EQ(co_select(t, 1, 0), 0); /* room, no stale receiver */
	CHECK_EQ(co_chan_len(c[3]), 1);

	/* A timeout over many cases: every channel full, all sends. */
	for (int i = 0; i < NMANY; i++) {
		if (co_chan_len(c[i]) == 0)
			CHECK_EQ(co_chan_send(c[i], &i), 0);
		cs[i] = case_send(c[i], &vals[i]);
	}
	int64_t t0 = co_now();
	CHECK_EQ(co_select(cs, NMANY, 5 * TU_MS), CO_ETIMEDOUT);
	CHECK(co_now() - t0 >= 5 * TU_MS);
	for (int i = 0; i < NMANY; i++)
		co_chan_free(c[i]);
}

static void test_select_more_than_8_cases(void **state)
{
	(void)state;
	tu_run(task_main_many, NULL);
}

#define NFAIRMANY 16
#define FAIRMANY_N 32000

static void task_main_many_fair(void *arg)
{
	co_chan *c[NFAIRMANY];
	long hits[NFAIRMANY] = {0};
	co_case cs[NFAIRMANY];
	int v;

	(void)arg;
	for (int i = 0; i < NFAIRMANY; i++) {
		c[i] = co_chan_new(sizeof(int), 1);
		CHECK_EQ(co_chan_send(c[i], &i), 0);
	}
	for (long n = 0; n < FAIRMANY_N; n++) {
		for (int i = 0; i < NFAIRMANY; i++)
			cs[i] = case_recv(c[i], &v);
		int r = co_select(cs, NFAIRMANY, 0);
		if (r < 0 || r >= NFAIRMANY) {
			CHECK(r >= 0 && r < NFAIRMANY);
			break;
		}
		CHECK_EQ(v, r);
		hits[r]++;
		CHECK_EQ(co_chan_send(c[r], &r), 0);
	}
	for (int i = 0; i < NFAIRMANY; i++) {
		char what[64];
		snprintf(what, sizeof(what), "case %d of %d", i, NFAIRMANY);
		check_binomial(what, hits[i], FAIRMANY_N,
			       1.0 / NFAIRMANY);
		co_chan_free(c[i]);
	}
}

static void test_select_many_cases_fair(void **state)
{
	(void)state;
	tu_run(task_main_many_fair, NULL);
}

/* ------------------------------------------------------------------------
 * 10. Same channel
 * ---------------------------------------------------------------------- */

#define SAME_N 4000

static void task_main_same_ready(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 1);
	long hits[2] = {0};
	int v0, v1;

	(void)arg;
	for (int n = 0; n < SAME_N; n++) {
		CHECK_EQ(co_chan_send(a, &n), 0);
		v0 = v1 = -1;
		co_case cs[2] = {case_recv(a, &v0), case_recv(a, &v1)};
		int r = co_select(cs, 2, 0);
		CHECK(r == 0 || r == 1);
		if (r != 0 && r != 1)
			break;
		hits[r]++;
		CHECK_EQ(r == 0 ? v0 : v1, n);
		CHECK_EQ(r == 0 ? v1 : v0, -1); /* one value, one case */
		CHECK_EQ(co_chan_len(a), 0);
	}
	check_binomial("same channel, case 0", hits[0], SAME_N, 0.5);
	co_chan_free(a);
}

static void test_select_same_channel_twice_ready(void **state)
{
	(void)state;
	tu_run(task_main_same_ready, NULL);
}

static void task_main_same_parked(void *arg)
{
	co_chan *a = co_chan_new(sizeof(int), 0);
	int in = -1, out = 4242, got = 0;
	struct sel s = {.n = 2, .timeout = -1};

	(void)arg;
	/* A send and a receive on one unbuffered channel: the select must
	 * not meet itself, so it parks. */
	s.cases[0] = case_send(a, &out);
	s.cases[1] = case_recv(a, &in);
	start_parked_select(&s);
	CHECK_EQ(co_chan_recv(a, &got), 0);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 0);
	CHECK_EQ(got, 4242);
	CHECK_EQ(in, -1);

	s.cases[0] = case_send(a, &out);
	s.cases[1] = case_recv(a, &in);
	start_parked_select(&s);
	CHECK_EQ(co_chan_send(a, &(int){99}), 0);
	CHECK(sel_done(&s));
	CHECK_EQ(atomic_load(&s.ret), 1);
	CHECK_EQ(in, 99);

	/* Two receive cases parked on one channel: one send, one case. */
	int v0 = -1, v1 = -1;
	s.cases[0] = case_recv(a, &v0);
	s.cases[1] = case_recv(a, &v1);
	start_parked_select(&s);
	CHECK_EQ(co_chan_send(a, &(int){5}), 0);
	CHECK(sel_done(&s));
	int r = atomic_load(&s.ret);
	CHECK((r == 0 && v0 == 5 && v1 == -1) ||
	      (r == 1 && v1 == 5 && v0 == -1));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	/* The other case's waiter is gone: a send finds no receiver. */
	co_case t[1] = {case_send(a, &out)};
	CHECK_EQ(co_select(t, 1, 0), CO_ETIMEDOUT);
	co_chan_free(a);
}

static void test_select_same_channel_twice_parked(void **state)
{
	(void)state;
	tu_run(task_main_same_parked, NULL);
}

/* ------------------------------------------------------------------------
 * 11. Races
 * ---------------------------------------------------------------------- */

#define RACE_SEL 8   /* selecting tasks */
#define RACE_SEND 4  /* plain tasks per channel */

struct race {
	co_chan *a, *b;
	long per;                    /* values per sending task */
	long total;                  /* values in all */
	_Atomic long next;           /* value dispenser for senders */
	_Atomic int next_receiver;   /* channel dispenser for receivers */
	_Atomic int senders_done;
	_Atomic int receivers_done;
	_Atomic long count;
	_Atomic long long sum;
	_Atomic unsigned char *seen;
};

static void race_tally(struct race *r, long v, long *n, long long *sum)
{
	if (v < 0 || v >= r->total) {
		tu_fail(__FILE__, __LINE__, "value %ld out of range", v);
		return;
	}
	if (atomic_fetch_add(&r->seen[v], 1) != 0)
		tu_fail(__FILE__, __LINE__, "value %ld received twice", v);
	(*n)++;
	*sum += v;
}

static void race_add(struct race *r, long n, long long sum)
{
	atomic_fetch_add(&r->count, n);
	atomic_fetch_add(&r->sum, sum);
	atomic_fetch_add(&r->receivers_done, 1);
}

/* Plain sender: per values on one channel (a for even tasks, b for odd). */
static void task_plain_sender(void *arg)
{
	struct race *r = arg;
	long first = atomic_fetch_add(&r->next, r->per);
	co_chan *c = (first / r->per) % 2 ? r->b : r->a;

	for (long v = first; v < first + r->per; v++)
		CHECK_EQ(co_chan_send(c, &v), 0);
	atomic_fetch_add(&r->senders_done, 1);
}

/* Selecting receiver over a and b until both are closed; a closed
 * channel's case is disabled by setting it to NULL, Go's idiom. */
static void task_select_receiver(void *arg)
{
	struct race *r = arg;
	co_chan *a = r->a, *b = r->b;
	long va, vb, n = 0;
	long long sum = 0;

	while (a || b) {
		co_case cs[2] = {case_recv(a, &va), case_recv(b, &vb)};
		int i = co_select(cs, 2, -1);
		if (i != 0 && i != 1) {
			CHECK(i == 0 || i == 1);
			break;
		}
		if (cs[i].result == CO_EPIPE) {
			if (i == 0)
				a = NULL;
			else
				b = NULL;
			continue;
		}
		CHECK_EQ(cs[i].result, 0);
		race_tally(r, i == 0 ? va : vb, &n, &sum);
	}
	race_add(r, n, sum);
}

/* Selecting sender: per values, each on whichever of a, b is ready. */
static void task_select_sender(void *arg)
{
	struct race *r = arg;
	long first = atomic_fetch_add(&r->next, r->per);

	for (long v = first; v < first + r->per; v++) {
		co_case cs[2] = {case_send(r->a, &v), case_send(r->b, &v)};
		int i = co_select(cs, 2, -1);
		CHECK(i == 0 || i == 1);
		if (i == 0 || i == 1)
			CHECK_EQ(cs[i].result, 0);
	}
	atomic_fetch_add(&r->senders_done, 1);
}

/* Plain receiver on one channel until it is closed. */
static void task_plain_receiver(void *arg)
{
	struct race *r = arg;
	co_chan *c = atomic_fetch_add(&r->next_receiver, 1) % 2 ? r->b : r->a;
	long v, n = 0;
	long long sum = 0;
	int ret;

	while ((ret = co_chan_recv(c, &v)) == 0)
		race_tally(r, v, &n, &sum);
	CHECK_EQ(ret, CO_EPIPE);
	race_add(r, n, sum);
}

/* A task's private xorshift generator. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Select with a short timeout on both sides, and short random pauses, so
 * that timers fire while a partner arrives: a sender retries its value
 * until a select reports it sent; a receiver polls until the channel is
 * closed.  A timeout that races a rendezvous must not lose the value or
 * deliver it twice. */
static void task_timed_sender(void *arg)
{
	struct race *r = arg;
	long first = atomic_fetch_add(&r->next, r->per);
	uint32_t seed = (uint32_t)co_self() * 2654435761u | 1;

	for (long v = first; v < first + r->per; v++) {
		if (rnd(&seed) % 4 == 0)
			co_sleep(1000 + rnd(&seed) % 30000);
		for (;;) {
			co_case cs[1] = {case_send(r->a, &v)};
			int i = co_select(cs, 1, 1000 + rnd(&seed) % 20000);
			if (i == 0) {
				CHECK_EQ(cs[0].result, 0);
				break;
			}
			CHECK_EQ(i, CO_ETIMEDOUT);
			if (i != CO_ETIMEDOUT)
				break;
		}
	}
	atomic_fetch_add(&r->senders_done, 1);
}

static void task_timed_receiver(void *arg)
{
	struct race *r = arg;
	long v, n = 0;
	long long sum = 0;
	uint32_t seed = (uint32_t)co_self() * 2246822519u | 1;

	for (;;) {
		if (rnd(&seed) % 4 == 0)
			co_sleep(1000 + rnd(&seed) % 30000);
		co_case cs[1] = {case_recv(r->a, &v)};
		int i = co_select(cs, 1, 1000 + rnd(&seed) % 20000);
		if (i == CO_ETIMEDOUT)
			continue;
		CHECK_EQ(i, 0);
		if (i != 0 || cs[0].result == CO_EPIPE)
			break;
		CHECK_EQ(cs[0].result, 0);
		race_tally(r, v, &n, &sum);
	}
	race_add(r, n, sum);
}

enum race_kind { RACE_SELECT_RECV, RACE_SELECT_SEND, RACE_TIMED };

struct race_run {
	struct race *r;
	enum race_kind kind;
};

static void task_main_race(void *arg)
{
	struct race_run *rr = arg;
	struct race *r = rr->r;
	void (*sender)(void *), (*receiver)(void *);
	int nsend, nrecv;

	switch (rr->kind) {
	case RACE_SELECT_RECV:
		sender = task_plain_sender;
		receiver = task_select_receiver;
		nsend = 2 * RACE_SEND;
		nrecv = RACE_SEL;
		break;
	case RACE_SELECT_SEND:
		sender = task_select_sender;
		receiver = task_plain_receiver;
		nsend = RACE_SEL;
		nrecv = 2 * RACE_SEND;
		break;
	default:
		sender = task_timed_sender;
		receiver = task_timed_receiver;
		nsend = RACE_SEL / 2;
		nrecv = RACE_SEL / 2;
		break;
	}
	for (int i = 0; i < nrecv; i++)
		CHECK(co_go(receiver, r) != 0);
	for (int i = 0; i < nsend; i++)
		CHECK(co_go(sender, r) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&r->senders_done) == nsend,
			    60 * TU_SEC));
	CHECK_EQ(co_chan_close(r->a), 0);
	CHECK_EQ(co_chan_close(r->b), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&r->receivers_done) == nrecv,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void race_run(enum race_kind kind, long per, size_t cap)
{
	struct race r = {.per = per};
	struct race_run rr = {&r, kind};
	int nsend = kind == RACE_SELECT_RECV	 ? 2 * RACE_SEND
		    : kind == RACE_SELECT_SEND ? RACE_SEL
					       : RACE_SEL / 2;

	r.total = nsend * per;
	r.a = co_chan_new(sizeof(long), cap);
	r.b = co_chan_new(sizeof(long), cap);
	r.seen = calloc((size_t)r.total, 1);
	assert_non_null(r.a);
	assert_non_null(r.b);
	assert_non_null(r.seen);
	tu_run(task_main_race, &rr);
	assert_int_equal(atomic_load(&r.count), r.total);
	assert_true(atomic_load(&r.sum) ==
		    (long long)r.total * (r.total - 1) / 2);
	for (long v = 0; v < r.total; v++)
		if (r.seen[v] != 1)
			fail_msg("value %ld received %d times", v, r.seen[v]);
	co_chan_free(r.a);
	co_chan_free(r.b);
	free((void *)r.seen);
}

static void test_select_race_selectors_receive(void **state)
{
	(void)state;
	race_run(RACE_SELECT_RECV, tu_scale(10000), 0);
	race_run(RACE_SELECT_RECV, tu_scale(10000), 16);
}

static void test_select_race_selectors_send(void **state)
{
	(void)state;
	race_run(RACE_SELECT_SEND, tu_scale(10000), 0);
	race_run(RACE_SELECT_SEND, tu_scale(10000), 16);
}

static void test_select_race_timeouts_lose_nothing(void **state)
{
	(void)state;
	race_run(RACE_TIMED, tu_scale(5000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Default */
		cmocka_unit_test(test_select_default_none_ready_returns_etimedout),
		cmocka_unit_test(test_select_default_outside_task),
		/* 2. Timeout */
		cmocka_unit_test(test_select_timeout_not_early),
		cmocka_unit_test(test_select_timeout_only_nil_cases),
		cmocka_unit_test(test_select_case_beats_timeout),
		cmocka_unit_test(test_select_timeout_leaves_no_waiter),
		/* 3. Forever */
		cmocka_unit_test(test_select_forever_until_case_fires),
		/* 4. Mixed cases */
		cmocka_unit_test(test_select_send_and_recv_cases_mixed),
		cmocka_unit_test(test_select_send_case_buffered_room),
		/* 5. Closed */
		cmocka_unit_test(test_select_closed_case_fires_epipe),
		cmocka_unit_test(test_select_close_wakes_parked_select),
		/* 6. Nil cases */
		cmocka_unit_test(test_select_nil_cases_never_fire),
		cmocka_unit_test(test_select_no_cases_parks_forever),
		/* 7. Bad input */
		cmocka_unit_test(test_select_invalid_cases_return_einval),
		cmocka_unit_test(test_select_would_block_outside_task_returns_eperm),
		/* 8. Fairness */
		cmocka_unit_test(test_select_fairness_binomial),
		/* 9. Many cases */
		cmocka_unit_test(test_select_more_than_8_cases),
		cmocka_unit_test(test_select_many_cases_fair),
		/* 10. Same channel */
		cmocka_unit_test(test_select_same_channel_twice_ready),
		cmocka_unit_test(test_select_same_channel_twice_parked),
		/* 11. Races */
		cmocka_unit_test(test_select_race_selectors_receive),
		cmocka_unit_test(test_select_race_selectors_send),
		cmocka_unit_test(test_select_race_timeouts_lose_nothing),
	};
	return cmocka_run_group_tests_name("runtime.select", tests, NULL,
					   NULL);
}
