/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c - the runtime's events (runtime/introspect.h, "Events";
 * runtime/hooks.c): several subscribers on one event, what each event
 * carries, that they come outside the runtime's locks, and that
 * unsubscribing ends the calls.
 *
 * The suite links the static library, so it can call the hidden
 * introspect_* functions the profilers use.  Counters are atomics: hooks
 * run on every worker.
 */
#include "test_util.h"

#include <pthread.h>

#include "runtime/introspect.h"

#define NCHILD 10

struct counts {
	_Atomic long ev[INTROSPECT_NEVENTS];
	_Atomic int bad;                 /* an event missing what it carries */
};

static struct counts A, B, C;

static void count_hook(const struct introspect_event_info *ev, void *arg)
{
	struct counts *c = arg;

	atomic_fetch_add(&c->ev[ev->event], 1);
	switch (ev->event) {
	case INTROSPECT_EV_SPAWN:
	case INTROSPECT_EV_EXIT:
	case INTROSPECT_EV_PARK:
	case INTROSPECT_EV_UNPARK:
	case INTROSPECT_EV_BLOCK:
		if (!ev->task || ev->id == 0)
			atomic_fetch_add(&c->bad, 1);
		break;
	case INTROSPECT_EV_WORKER_START:
	case INTROSPECT_EV_WORKER_STOP:
		if (ev->worker < 0 || ev->tid <= 0)
			atomic_fetch_add(&c->bad, 1);
		break;
	default:
		break;
	}
}

static void task_child(void *arg)
{
	(void)arg;
}

static void task_main_spawns(void *arg)
{
	(void)arg;
	for (int i = 0; i < NCHILD; i++)
		CHECK(co_go(task_child, NULL) != 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

/* Two subscribers on SPAWN, one of them on EXIT too: both see every
 * spawn (task 1's included), only one the exits, and after they leave,
 * a run sees nothing. */
static void test_hooks_several_subscribers(void **state)
{
	(void)state;
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	int a = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_SPAWN) |
					     INTROSPECT_EV(INTROSPECT_EV_EXIT),
				     count_hook, &A);
	int b = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_SPAWN),
				     count_hook, &B);
	assert_true(a >= 0 && b >= 0 && a != b);
	tu_run(task_main_spawns, NULL);
	introspect_unsubscribe(a);
	introspect_unsubscribe(b);
	assert_int_equal(atomic_load(&A.ev[INTROSPECT_EV_SPAWN]), NCHILD + 1);
	assert_int_equal(atomic_load(&B.ev[INTROSPECT_EV_SPAWN]), NCHILD + 1);
	assert_int_equal(atomic_load(&A.ev[INTROSPECT_EV_EXIT]), NCHILD + 1);
	assert_int_equal(atomic_load(&B.ev[INTROSPECT_EV_EXIT]), 0);
	assert_int_equal(atomic_load(&A.bad) + atomic_load(&B.bad), 0);

	tu_run(task_main_spawns, NULL); /* nobody listens now */
	assert_int_equal(atomic_load(&A.ev[INTROSPECT_EV_SPAWN]), NCHILD + 1);
	assert_int_equal(atomic_load(&B.ev[INTROSPECT_EV_SPAWN]), NCHILD + 1);
}

static void test_hooks_subscribe_errors(void **state)
{
	int ids[16], n = 0, rc;

	(void)state;
	assert_int_equal(introspect_subscribe(0, count_hook, &A), -EINVAL);
	assert_int_equal(introspect_subscribe(
				 INTROSPECT_EV(INTROSPECT_EV_SPAWN), NULL, &A),
			 -EINVAL);
	assert_int_equal(introspect_subscribe(1u << INTROSPECT_NEVENTS,
					      count_hook, &A),
			 -EINVAL);
	while ((rc = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_EXIT),
					  count_hook, &C)) >= 0 &&
	       n < 16)
		ids[n++] = rc;
	assert_int_equal(rc, -ENOSPC);
	assert_true(n >= 2);
	for (int i = 0; i < n; i++)
		introspect_unsubscribe(ids[i]);
	introspect_unsubscribe(-1); /* ignored */
	introspect_unsubscribe(99);
}

/* Park, unpark and block, around one channel receive. */
static co_chan *chan;
static const void *main_handle;
static _Atomic int park_ok, unpark_ok, block_ok;
static _Atomic uint64_t receiver_id;

static void pub_hook(const struct introspect_event_info *ev, void *arg)
{
	(void)arg;
	if (ev->id != atomic_load(&receiver_id))
		return;
	if (ev->event == INTROSPECT_EV_PARK && ev->object == chan &&
	    ev->reason != 0) {
		struct task_info ti;
		/* The handle reads back through introspect_task_info. */
		if (introspect_task_info(ev->task, &ti) && ti.id == ev->id)
			atomic_store(&park_ok, 1);
	}
	if (ev->event == INTROSPECT_EV_UNPARK && ev->other == main_handle)
		atomic_store(&unpark_ok, 1);
	if (ev->event == INTROSPECT_EV_BLOCK && ev->object == chan &&
	    ev->ns >= 20 * TU_MS)
		atomic_store(&block_ok, 1);
}

static void spawn_hook(const struct introspect_event_info *ev, void *arg)
{
	(void)arg;
	if (ev->id == 1)
		main_handle = ev->task; /* the waker below */
}

static void task_receiver(void *arg)
{
	int v;

	(void)arg;
	atomic_store(&receiver_id, co_self());
	CHECK_EQ(co_chan_recv(chan, &v), 0);
}

static void task_main_wake(void *arg)
{
	int v = 7;

	(void)arg;
	chan = co_chan_new(sizeof(int), 0);
	CHECK(co_go(task_receiver, NULL) != 0);
	co_sleep(30 * TU_MS); /* it parks */
	CHECK_EQ(co_chan_send(chan, &v), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(chan);
}

static void test_hooks_park_unpark_block(void **state)
{
	(void)state;
	atomic_store(&park_ok, 0);
	atomic_store(&unpark_ok, 0);
	atomic_store(&block_ok, 0);
	int s = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_SPAWN),
				     spawn_hook, NULL);
	int p = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_PARK) |
					     INTROSPECT_EV(INTROSPECT_EV_UNPARK) |
					     INTROSPECT_EV(INTROSPECT_EV_BLOCK),
				     pub_hook, NULL);
	assert_true(s >= 0 && p >= 0);
	tu_run(task_main_wake, NULL);
	introspect_unsubscribe(p);
	introspect_unsubscribe(s);
	assert_true(atomic_load(&park_ok));
	assert_true(atomic_load(&unpark_ok));
	assert_true(atomic_load(&block_ok));
}

/* Contention on a co_mutex and on a co_rwmutex: the unlocker reports the
 * lock and how long its waiter waited. */
static co_mutex mu;
static co_rwmutex rw;
static _Atomic int mu_seen, rw_seen;

static void contended_hook(const struct introspect_event_info *ev, void *arg)
{
	(void)arg;
	if (ev->object == (void *)&mu && ev->ns >= 10 * TU_MS)
		atomic_store(&mu_seen, 1);
	if (ev->object == (void *)&rw && ev->ns >= 10 * TU_MS)
		atomic_store(&rw_seen, 1);
}

static void task_mu_waiter(void *arg)
{
	(void)arg;
	CHECK_EQ(co_mutex_lock(&mu), 0);
	CHECK_EQ(co_mutex_unlock(&mu), 0);
}

static void task_rw_waiter(void *arg)
{
	(void)arg;
	CHECK_EQ(co_rwmutex_lock(&rw), 0);
	CHECK_EQ(co_rwmutex_unlock(&rw), 0);
}

static void task_main_contend(void *arg)
{
	(void)arg;
	CHECK_EQ(co_mutex_init(&mu), 0);
	CHECK_EQ(co_rwmutex_init(&rw), 0);
	CHECK_EQ(co_mutex_lock(&mu), 0);
	CHECK_EQ(co_rwmutex_rlock(&rw), 0);
	CHECK(co_go(task_mu_waiter, NULL) != 0);
	CHECK(co_go(task_rw_waiter, NULL) != 0);
	co_sleep(30 * TU_MS); /* both park */
	CHECK_EQ(co_mutex_unlock(&mu), 0);
	CHECK_EQ(co_rwmutex_runlock(&rw), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_hooks_contention_mutex_and_rwmutex(void **state)
{
	(void)state;
	atomic_store(&mu_seen, 0);
	atomic_store(&rw_seen, 0);
	int c = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_CONTENDED),
				     contended_hook, NULL);
	assert_true(c >= 0);
	tu_run(task_main_contend, NULL);
	introspect_unsubscribe(c);
	assert_true(atomic_load(&mu_seen));
	assert_true(atomic_load(&rw_seen));
}

/* Every worker's thread starts and stops once per run, with its tid. */
static void test_hooks_worker_start_stop(void **state)
{
	(void)state;
	memset(&C, 0, sizeof(C));
	int w = introspect_subscribe(
		INTROSPECT_EV(INTROSPECT_EV_WORKER_START) |
			INTROSPECT_EV(INTROSPECT_EV_WORKER_STOP),
		count_hook, &C);
	assert_true(w >= 0);
	tu_run(task_main_spawns, NULL);
	introspect_unsubscribe(w);
	long starts = atomic_load(&C.ev[INTROSPECT_EV_WORKER_START]);
	assert_true(starts >= 1);
	assert_int_equal(atomic_load(&C.ev[INTROSPECT_EV_WORKER_STOP]), starts);
	assert_int_equal(atomic_load(&C.bad), 0);
}

/* Life-cycle parts: started in the order added, after the profiler's
 * own; stopped in reverse; a failing start stops those before it, and
 * co_run returns its error. */
static char lc_log[64];
static bool lc_fail;

static void lc_note(char c)
{
	size_t n = strlen(lc_log);
	if (n + 1 < sizeof(lc_log))
		lc_log[n] = c, lc_log[n + 1] = 0;
}
static int lc_start_a(void) { lc_note('A'); return 0; }
static void lc_stop_a(void) { lc_note('a'); }
static int lc_start_b(void) { lc_note('B'); return lc_fail ? -EMFILE : 0; }
static void lc_stop_b(void) { lc_note('b'); }
static int lc_start_c(void) { lc_note('C'); return 0; }
static void lc_stop_c(void) { lc_note('c'); }

static void task_lc(void *arg)
{
	(void)arg;
	lc_note('1');
}

/* The trace's recorder (tracebuf.c) beside a subscriber: a ping-pong
 * recorded into rings of 64 events.  Each ring keeps its last 64, oldest
 * first and in time order; the rest are counted as dropped; every unpark
 * got a time (the next event's); the subscriber still sees every park. */
static co_chan *rec_ping, *rec_pong;
static co_wg rec_done;

static void task_rec_partner(void *arg)
{
	int v;
	(void)arg;
	while (co_chan_recv(rec_ping, &v) == 0)
		co_chan_send(rec_pong, &v);
	co_wg_done(&rec_done);
}

static void task_main_recorded(void *arg)
{
	(void)arg;
	rec_ping = co_chan_new(sizeof(int), 0);
	rec_pong = co_chan_new(sizeof(int), 0);
	co_wg_init(&rec_done);
	co_wg_add(&rec_done, 1);
	CHECK(co_go(task_rec_partner, NULL) != 0);
	for (int i = 0; i < 1000; i++) {
		int v = i;
		co_chan_send(rec_ping, &v);
		co_chan_recv(rec_pong, &v);
	}
	co_chan_close(rec_ping);
	co_wg_wait(&rec_done); /* a task's wake-up among the last events */
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(rec_ping);
	co_chan_free(rec_pong);
}

static void test_hooks_trace_recorder(void **state)
{
	struct introspect_trace_ev *ev = NULL;
	size_t n = 99;
	uint64_t dropped = 0;
	(void)state;

	assert_int_equal(introspect_trace_end(&ev, &n, &dropped), -EINVAL);
	assert_int_equal(introspect_trace_begin(0), -EINVAL);
	assert_int_equal(introspect_trace_begin(48), -EINVAL);
	memset(&A, 0, sizeof(A));
	int a = introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_PARK),
				     count_hook, &A);
	assert_true(a >= 0);
	assert_int_equal(introspect_trace_begin(64), 0);
	assert_int_equal(introspect_trace_begin(64), -EBUSY);
	tu_run(task_main_recorded, NULL);
	assert_int_equal(introspect_trace_end(&ev, &n, &dropped), 0);
	introspect_unsubscribe(a);
	assert_true(atomic_load(&A.ev[INTROSPECT_EV_PARK]) >= 2000);
	assert_int_equal(atomic_load(&A.bad), 0);
	/* A ring's 64 records were kept (a switch record holds a park and
	 * a run), far more were dropped: 1,000 round trips make 4,000. */
	assert_true(n >= 64 && dropped > 3000);
	long runs = 0, unparks = 0;
	for (size_t i = 0; i < n; i++) {
		assert_true(ev[i].ts != 0);
		assert_true(ev[i].type >= 0 && ev[i].type < INTROSPECT_NEVENTS);
		runs += ev[i].type == INTROSPECT_EV_RUN;
		/* Woken by a task (a timer's wake-up, from the wait for the
		 * partner's exit, has none). */
		unparks += ev[i].type == INTROSPECT_EV_UNPARK && ev[i].other;
		/* A ring's events come in time order. */
		if (i && ev[i].worker == ev[i - 1].worker)
			assert_true(ev[i].ts >= ev[i - 1].ts);
	}
	assert_true(runs > 0 && unparks > 0);
	free(ev);
	/* Ended: a new trace can begin, and end with what little ran. */
	assert_int_equal(introspect_trace_begin(2), 0);
	assert_int_equal(introspect_trace_end(&ev, &n, &dropped), 0);
	free(ev);
}

static void test_hooks_lifecycle(void **state)
{
	(void)state;
	assert_int_equal(introspect_add_lifecycle(lc_start_a, lc_stop_a), 0);
	assert_int_equal(introspect_add_lifecycle(lc_start_b, lc_stop_b), 0);
	assert_int_equal(introspect_add_lifecycle(lc_start_c, lc_stop_c), 0);
	lc_log[0] = 0;
	assert_int_equal(co_run(task_lc, NULL), 0);
	assert_string_equal(lc_log, "ABC1cba");
	lc_log[0] = 0;
	lc_fail = true;
	assert_int_equal(co_run(task_lc, NULL), -EMFILE);
	assert_string_equal(lc_log, "ABa");
	lc_fail = false;
	/* The list is bounded. */
	int err = 0;
	for (int i = 0; i < 32 && err == 0; i++)
		err = introspect_add_lifecycle(NULL, NULL);
	assert_int_equal(err, -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hooks_several_subscribers),
		cmocka_unit_test(test_hooks_subscribe_errors),
		cmocka_unit_test(test_hooks_park_unpark_block),
		cmocka_unit_test(test_hooks_contention_mutex_and_rwmutex),
		cmocka_unit_test(test_hooks_worker_start_stop),
		cmocka_unit_test(test_hooks_trace_recorder),
		cmocka_unit_test(test_hooks_lifecycle),
	};
	return cmocka_run_group_tests_name("runtime.hooks", tests, NULL, NULL);
}
