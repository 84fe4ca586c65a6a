/* SPDX-License-Identifier: MIT */
/*
 * test_chan.c - tests of runtime/chan.c: co_chan_new, co_chan_send,
 * co_chan_recv, co_chan_close, co_chan_free, co_chan_len and co_chan_cap,
 * pinned to Go's channel semantics as a user sees them.
 *
 * Scenario groups:
 *   1. Creation      co_chan_new(0, n) and sizes that overflow return NULL;
 *                    co_chan_cap is the capacity and co_chan_len counts the
 *                    buffered elements; both are 0 for NULL.
 *   2. Unbuffered    a send parks ("chan send") until a receiver takes the
 *                    value, a receive parks ("chan receive") until a sender
 *                    comes; parked receivers are served in arrival order.
 *   3. Buffered      FIFO order, also across many turns of the ring; a send
 *                    to a full buffer parks, and the parked senders' values
 *                    follow the buffered ones in arrival order; a receive
 *                    from an empty buffer parks and gets the value directly.
 *   4. Element size  1 byte, 3 bytes, odd sizes, 4 KiB and 64 KiB elements
 *                    arrive byte-exact, unbuffered and buffered, and a
 *                    receive writes exactly elem_size bytes.
 *   5. Close         receivers drain the buffer, then get -EPIPE with a
 *                    zeroed element (every time); a send on a closed
 *                    channel and a second close return -EPIPE; close wakes
 *                    every parked receiver and sender with -EPIPE.
 *   6. Nil channels  a send or receive on NULL parks forever as "chan send
 *                    (nil chan)" / "chan receive (nil chan)"; co_run still
 *                    returns when task 1 does; outside a task -EPERM.
 *   7. Bad input     a NULL element to send is -EINVAL; a NULL element to
 *                    receive drops the value (buffer, parked sender, full
 *                    buffer with a parked sender); close(NULL) is -EINVAL;
 *                    a call that would block outside a task is -EPERM;
 *                    co_chan_free of a channel with waiters prints a
 *                    message and keeps the channel usable.
 *   8. Many tasks    producers and consumers on unbuffered and buffered
 *                    channels: every value arrives exactly once (exact
 *                    count, sum and a per-value tally).
 *
 * Tasks record failures with CHECK (test_util.h); a test asserts after
 * co_run returns.  The suite also runs with COPPER_PROCS=1, 2 and 4.
 */
#include "test_util.h"

#include "runtime/testing.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* status_is, WAIT_STATUS: test_util.h */

/* A task that does one send or receive of an int and records the result. */
struct op {
	co_chan *c;
	int value;           /* to send; or received */
	_Atomic int result;  /* the call's return value, valid once done */
	_Atomic int done;    /* 1 once the call returned */
	uint64_t id;         /* the task's id */
};

static void task_sender(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->result, co_chan_send(o->c, &o->value));
	atomic_store(&o->done, 1);
}

static void task_receiver(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->result, co_chan_recv(o->c, &o->value));
	atomic_store(&o->done, 1);
}

/* Starts f(o) and waits until it parks with status want. */
static void start_parked(void (*f)(void *), struct op *o, const char *want)
{
	atomic_store(&o->done, 0);
	o->id = co_go(f, o);
	CHECK(o->id != 0);
	WAIT_STATUS(o->id, want);
	CHECK_EQ(atomic_load(&o->done), 0);
}

static bool op_done(struct op *o)
{
	return TU_WAIT_UNTIL(atomic_load(&o->done) == 1, 5 * TU_SEC);
}

/* ------------------------------------------------------------------------
 * 1. Creation
 * ---------------------------------------------------------------------- */

static void test_chan_new_zero_elem_size_returns_null(void **state)
{
	(void)state;
	assert_null(co_chan_new(0, 0));
	assert_null(co_chan_new(0, 1));
	assert_null(co_chan_new(0, 16));
}

static void test_chan_new_overflowing_size_returns_null(void **state)
{
	(void)state;
	/* elem_size * capacity would wrap: refuse, never under-allocate. */
	assert_null(co_chan_new(SIZE_MAX, 1));
	assert_null(co_chan_new(SIZE_MAX, 2));
	assert_null(co_chan_new(1, SIZE_MAX));
	assert_null(co_chan_new(SIZE_MAX / 2 + 1, 2));
	assert_null(co_chan_new((size_t)1 << 33, (size_t)1 << 31));
}

static void test_chan_len_cap(void **state)
{
	int v = 7;

	(void)state;
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 5);
	assert_non_null(u);
	assert_non_null(b);
	assert_int_equal(co_chan_cap(u), 0);
	assert_int_equal(co_chan_len(u), 0);
	assert_int_equal(co_chan_cap(b), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(co_chan_len(b), i);
		/* Room in the buffer: no task needed, nothing blocks. */
		assert_int_equal(co_chan_send(b, &v), 0);
	}
	assert_int_equal(co_chan_len(b), 5);
	assert_int_equal(co_chan_cap(b), 5);
	for (int i = 5; i > 0; i--) {
		assert_int_equal(co_chan_recv(b, &v), 0);
		assert_int_equal(co_chan_len(b), i - 1);
	}
	assert_int_equal(co_chan_len(NULL), 0);
	assert_int_equal(co_chan_cap(NULL), 0);
	co_chan_free(u);
	co_chan_free(b);
}

/* ------------------------------------------------------------------------
 * 2. Unbuffered
 * ---------------------------------------------------------------------- */

static void task_main_send_parks(void *arg)
{
	struct op o = {.c = co_chan_new(sizeof(int), 0), .value = 42};
	int got = 0;

	(void)arg;
	start_parked(task_sender, &o, "chan send");
	co_sleep(5 * TU_MS);
	CHECK_EQ(atomic_load(&o.done), 0); /* still parked */
	CHECK_EQ(co_chan_len(o.c), 0);
	CHECK_EQ(co_chan_recv(o.c, &got), 0);
	CHECK_EQ(got, 42);
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(o.c);
}

static void test_chan_unbuffered_send_parks_until_recv(void **state)
{
	(void)state;
	tu_run(task_main_send_parks, NULL);
}

static void task_main_recv_parks(void *arg)
{
	struct op o = {.c = co_chan_new(sizeof(int), 0), .value = -1};
	int v = 1234;

	(void)arg;
	start_parked(task_receiver, &o, "chan receive");
	co_sleep(5 * TU_MS);
	CHECK_EQ(atomic_load(&o.done), 0);
	CHECK_EQ(o.value, -1);
	CHECK_EQ(co_chan_send(o.c, &v), 0);
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);
	CHECK_EQ(o.value, 1234);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(o.c);
}

static void test_chan_unbuffered_recv_parks_until_send(void **state)
{
	(void)state;
	tu_run(task_main_recv_parks, NULL);
}

#define NQUEUED 5

static void task_main_recv_fifo(void *arg)
{
	co_chan *c = co_chan_new(sizeof(int), (size_t)(uintptr_t)arg);
	struct op o[NQUEUED];

	for (int i = 0; i < NQUEUED; i++) {
		o[i] = (struct op){.c = c, .value = -1};
		start_parked(task_receiver, &o[i], "chan receive");
	}
	for (int i = 0; i < NQUEUED; i++) {
		int v = 100 + i;
		CHECK_EQ(co_chan_send(c, &v), 0);
	}
	for (int i = 0; i < NQUEUED; i++) {
		CHECK(op_done(&o[i]));
		CHECK_EQ(atomic_load(&o[i].result), 0);
		CHECK_EQ(o[i].value, 100 + i); /* first parked, first served */
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	CHECK_EQ(co_chan_len(c), 0);
	co_chan_free(c);
}

static void test_chan_unbuffered_receivers_served_in_order(void **state)
{
	(void)state;
	tu_run(task_main_recv_fifo, (void *)(uintptr_t)0);
}

struct pingpong {
	co_chan *ping, *pong;
	long n;
};

static void task_ponger(void *arg)
{
	struct pingpong *p = arg;
	long v;

	for (long i = 0; i < p->n; i++) {
		CHECK_EQ(co_chan_recv(p->ping, &v), 0);
		CHECK_EQ(v, 2 * i);
		v++;
		CHECK_EQ(co_chan_send(p->pong, &v), 0);
	}
}

static void task_main_pingpong(void *arg)
{
	struct pingpong p = {co_chan_new(sizeof(long), 0),
			     co_chan_new(sizeof(long), 0), tu_scale(20000)};
	long v;

	(void)arg;
	CHECK(co_go(task_ponger, &p) != 0);
	for (long i = 0; i < p.n; i++) {
		v = 2 * i;
		CHECK_EQ(co_chan_send(p.ping, &v), 0);
		CHECK_EQ(co_chan_recv(p.pong, &v), 0);
		CHECK_EQ(v, 2 * i + 1);
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(p.ping);
	co_chan_free(p.pong);
}

static void test_chan_unbuffered_pingpong(void **state)
{
	(void)state;
	tu_run(task_main_pingpong, NULL);
}

/* ------------------------------------------------------------------------
 * 3. Buffered
 * ---------------------------------------------------------------------- */

static void task_main_fifo(void *arg)
{
	co_chan *c = co_chan_new(sizeof(int), 8);
	int v;

	(void)arg;
	for (int i = 0; i < 8; i++)
		CHECK_EQ(co_chan_send(c, &i), 0);
	CHECK_EQ(co_chan_len(c), 8);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, i);
	}
	/* Many turns of the ring with 5 elements in flight. */
	for (int i = 0; i < 1000; i++) {
		CHECK_EQ(co_chan_send(c, &i), 0);
		if (i >= 5) {
			CHECK_EQ(co_chan_recv(c, &v), 0);
			CHECK_EQ(v, i - 5);
		}
	}
	CHECK_EQ(co_chan_len(c), 5);
	for (int i = 995; i < 1000; i++) {
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(co_chan_len(c), 0);
	co_chan_free(c);
}

static void test_chan_buffered_fifo(void **state)
{
	(void)state;
	tu_run(task_main_fifo, NULL);
}

static void task_main_full_senders(void *arg)
{
	co_chan *c = co_chan_new(sizeof(int), 4);
	struct op o[3];
	int v;

	(void)arg;
	for (int i = 0; i < 4; i++)
		CHECK_EQ(co_chan_send(c, &i), 0);
	for (int k = 0; k < 3; k++) {
		o[k] = (struct op){.c = c, .value = 100 + k};
		start_parked(task_sender, &o[k], "chan send");
	}
	CHECK_EQ(co_chan_len(c), 4);
	/* The buffered values first, then the parked senders' in order. */
	static const int want[] = {0, 1, 2, 3, 100, 101, 102};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, want[i]);
		CHECK(co_chan_len(c) <= 4);
	}
	for (int k = 0; k < 3; k++) {
		CHECK(op_done(&o[k]));
		CHECK_EQ(atomic_load(&o[k].result), 0);
	}
	CHECK_EQ(co_chan_len(c), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(c);
}

static void test_chan_buffered_full_send_parks_in_order(void **state)
{
	(void)state;
	tu_run(task_main_full_senders, NULL);
}

static void task_main_empty_recv(void *arg)
{
	struct op o = {.c = co_chan_new(sizeof(int), 3), .value = -1};
	int v = 77;

	(void)arg;
	start_parked(task_receiver, &o, "chan receive");
	CHECK_EQ(co_chan_send(o.c, &v), 0);
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);
	CHECK_EQ(o.value, 77);
	CHECK_EQ(co_chan_len(o.c), 0); /* handed over, not buffered */
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(o.c);
}

static void test_chan_buffered_empty_recv_parks(void **state)
{
	(void)state;
	tu_run(task_main_empty_recv, NULL);
}

static void test_chan_buffered_receivers_served_in_order(void **state)
{
	(void)state;
	tu_run(task_main_recv_fifo, (void *)(uintptr_t)2);
}

/* ------------------------------------------------------------------------
 * 4. Element size
 * ---------------------------------------------------------------------- */

#define GUARD 16      /* bytes checked on either side of a receive buffer */
#define SIZE_MSGS 64  /* elements per size and capacity */

struct size_case {
	co_chan *c;
	size_t size;
};

static unsigned char pattern(long seq, size_t j)
{
	return (unsigned char)(seq * 31 + (long)j * 7 + 1);
}

static void task_size_sender(void *arg)
{
	struct size_case *sc = arg;
	unsigned char *buf = malloc(sc->size);

	CHECK(buf != NULL);
	if (!buf)
		return;
	for (long s = 0; s < SIZE_MSGS; s++) {
		for (size_t j = 0; j < sc->size; j++)
			buf[j] = pattern(s, j);
		CHECK_EQ(co_chan_send(sc->c, buf), 0);
		/* The sender may reuse its buffer at once. */
		memset(buf, 0xee, sc->size);
		if (s % 7 == 3)
			co_sleep(100000); /* let the receiver park too */
	}
	free(buf);
}

/* Receives SIZE_MSGS elements of size sz through a channel of capacity
 * cap into a buffer with guard bytes around it. */
static void size_roundtrip(size_t sz, size_t cap)
{
	struct size_case sc = {co_chan_new(sz, cap), sz};
	unsigned char *buf = malloc(sz + 2 * GUARD);
	long bad = 0;

	CHECK(sc.c != NULL && buf != NULL);
	if (!sc.c || !buf)
		return;
	CHECK_EQ(co_chan_cap(sc.c), cap);
	CHECK(co_go(task_size_sender, &sc) != 0);
	for (long s = 0; s < SIZE_MSGS; s++) {
		memset(buf, 0x5a, sz + 2 * GUARD);
		if (s % 5 == 2)
			co_sleep(100000); /* let the sender park */
		CHECK_EQ(co_chan_recv(sc.c, buf + GUARD), 0);
		for (size_t j = 0; j < GUARD; j++)
			if (buf[j] != 0x5a || buf[GUARD + sz + j] != 0x5a)
				bad++;
		for (size_t j = 0; j < sz; j++)
			if (buf[GUARD + j] != pattern(s, j))
				bad++;
	}
	if (bad)
		tu_fail(__FILE__, __LINE__,
			"elem_size %zu, cap %zu: %ld wrong bytes", sz, cap,
			bad);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(sc.c);
	free(buf);
}

static void task_main_sizes(void *arg)
{
	static const size_t sizes[] = {1, 3, 7, 17, 1000, 4096, 65536};
	static const size_t caps[] = {0, 1, 5};

	(void)arg;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++)
			size_roundtrip(sizes[i], caps[k]);
}

static void test_chan_elem_sizes_byte_exact(void **state)
{
	(void)state;
	tu_run(task_main_sizes, NULL);
}

/* A 4 KiB struct sent from and received into task stack frames, the way a
 * user writes it, including the full-buffer path with a parked sender. */
struct big {
	uint32_t seq;
	unsigned char body[4096 - 2 * sizeof(uint32_t)];
	uint32_t check;
};

static void fill_big(struct big *b, uint32_t seq)
{
	b->seq = seq;
	for (size_t j = 0; j < sizeof(b->body); j++)
		b->body[j] = pattern(seq, j);
	b->check = ~seq;
}

static bool big_ok(const struct big *b, uint32_t seq)
{
	if (b->seq != seq || b->check != ~seq)
		return false;
	for (size_t j = 0; j < sizeof(b->body); j++)
		if (b->body[j] != pattern(seq, j))
			return false;
	return true;
}

static void task_big_sender(void *arg)
{
	co_chan *c = arg;
	struct big b;

	for (uint32_t s = 0; s < 50; s++) {
		fill_big(&b, s);
		CHECK_EQ(co_chan_send(c, &b), 0);
	}
}

static void task_main_big(void *arg)
{
	co_chan *c = co_chan_new(sizeof(struct big), (size_t)(uintptr_t)arg);
	struct big b;

	CHECK_EQ(sizeof(struct big), 4096);
	CHECK(co_go(task_big_sender, c) != 0);
	co_sleep(2 * TU_MS); /* the sender fills the buffer and parks */
	for (uint32_t s = 0; s < 50; s++) {
		memset(&b, 0, sizeof(b));
		CHECK_EQ(co_chan_recv(c, &b), 0);
		CHECK(big_ok(&b, s));
	}
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(c);
}

static void test_chan_elem_4k_struct(void **state)
{
	(void)state;
	tu_run(task_main_big, (void *)(uintptr_t)0);
	tu_run(task_main_big, (void *)(uintptr_t)3);
}

/* ------------------------------------------------------------------------
 * 5. Close
 * ---------------------------------------------------------------------- */

static void task_main_drain(void *arg)
{
	co_chan *c = co_chan_new(sizeof(int), 4);
	int v;

	(void)arg;
	for (int i = 1; i <= 3; i++)
		CHECK_EQ(co_chan_send(c, &i), 0);
	CHECK_EQ(co_chan_close(c), 0);
	CHECK_EQ(co_chan_len(c), 3);
	for (int i = 1; i <= 3; i++) {
		v = -1;
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, i);
	}
	for (int k = 0; k < 3; k++) {
		v = 0x5a5a5a5a;
		CHECK_EQ(co_chan_recv(c, &v), CO_EPIPE);
		CHECK_EQ(v, 0); /* the zero value, as in Go */
	}
	CHECK_EQ(co_chan_len(c), 0);
	CHECK_EQ(co_chan_recv(c, NULL), CO_EPIPE);
	co_chan_free(c);

	/* Unbuffered: closed means -EPIPE at once, zeroed element. */
	c = co_chan_new(sizeof(int), 0);
	CHECK_EQ(co_chan_close(c), 0);
	v = 99;
	CHECK_EQ(co_chan_recv(c, &v), CO_EPIPE);
	CHECK_EQ(v, 0);
	co_chan_free(c);
}

static void test_chan_recv_closed_drains_then_epipe(void **state)
{
	(void)state;
	tu_run(task_main_drain, NULL);
}

static void test_chan_send_closed_returns_epipe(void **state)
{
	int v = 5;

	(void)state;
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 4);
	assert_int_equal(co_chan_send(b, &v), 0);
	assert_int_equal(co_chan_close(u), 0);
	assert_int_equal(co_chan_close(b), 0);
	assert_int_equal(co_chan_send(u, &v), CO_EPIPE);
	assert_int_equal(co_chan_send(b, &v), CO_EPIPE); /* though room */
	assert_int_equal(co_chan_len(b), 1);
	v = 0;
	assert_int_equal(co_chan_recv(b, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(co_chan_recv(b, &v), CO_EPIPE);
	co_chan_free(u);
	co_chan_free(b);
}

static void test_chan_close_twice_returns_epipe(void **state)
{
	(void)state;
	co_chan *c = co_chan_new(1, 1);
	assert_int_equal(co_chan_close(c), 0);
	assert_int_equal(co_chan_close(c), CO_EPIPE);
	assert_int_equal(co_chan_close(c), CO_EPIPE);
	assert_int_equal(co_chan_close(NULL), CO_EINVAL);
	co_chan_free(c);
}

#define NWAKE 10

static void task_main_close_wakes(void *arg)
{
	bool senders = (uintptr_t)arg & 1;
	size_t cap = (uintptr_t)arg >> 1;
	co_chan *c = co_chan_new(sizeof(int), cap);
	struct op o[NWAKE];
	int v;

	/* Senders park on a full buffer, receivers on an empty one. */
	size_t fill = senders ? cap : 0;

	for (size_t i = 0; i < fill; i++)
		CHECK_EQ(co_chan_send(c, &(int){1000 + (int)i}), 0);
	for (int i = 0; i < NWAKE; i++) {
		o[i] = (struct op){.c = c, .value = 0x5a5a5a5a};
		start_parked(senders ? task_sender : task_receiver, &o[i],
			     senders ? "chan send" : "chan receive");
	}
	CHECK_EQ(co_chan_close(c), 0);
	for (int i = 0; i < NWAKE; i++) {
		CHECK(op_done(&o[i]));
		CHECK_EQ(atomic_load(&o[i].result), CO_EPIPE);
		/* A receiver woken by close gets the zero value; a sender's
		 * element is left alone. */
		CHECK_EQ(o[i].value, senders ? 0x5a5a5a5a : 0);
	}
	/* Buffered values survive the close and are drained. */
	for (size_t i = 0; i < fill; i++) {
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, 1000 + (int)i);
	}
	CHECK_EQ(co_chan_recv(c, &v), CO_EPIPE);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(c);
}

static void test_chan_close_wakes_all_receivers(void **state)
{
	(void)state;
	tu_run(task_main_close_wakes, (void *)(uintptr_t)(0 << 1 | 0));
	tu_run(task_main_close_wakes, (void *)(uintptr_t)(4 << 1 | 0));
}

static void test_chan_close_wakes_all_senders(void **state)
{
	(void)state;
	tu_run(task_main_close_wakes, (void *)(uintptr_t)(0 << 1 | 1));
	tu_run(task_main_close_wakes, (void *)(uintptr_t)(3 << 1 | 1));
}

/* ------------------------------------------------------------------------
 * 6. Nil channels
 * ---------------------------------------------------------------------- */

static _Atomic int nil_returned; /* must stay 0 */

static void task_nil_recv(void *arg)
{
	int v;

	(void)arg;
	co_chan_recv(NULL, &v);
	atomic_fetch_add(&nil_returned, 1);
}

static void task_nil_send(void *arg)
{
	int v = 1;

	(void)arg;
	co_chan_send(NULL, &v);
	atomic_fetch_add(&nil_returned, 1);
}

static void task_main_nil(void *arg)
{
	bool send = (uintptr_t)arg;
	uint64_t id = co_go(send ? task_nil_send : task_nil_recv, NULL);
	/* Two of them: neither ever runs again. */
	uint64_t id2 = co_go(send ? task_nil_send : task_nil_recv, NULL);
	const char *want = send ? "chan send (nil chan)"
				: "chan receive (nil chan)";

	CHECK(id != 0 && id2 != 0);
	WAIT_STATUS(id, want);
	WAIT_STATUS(id2, want);
	co_sleep(20 * TU_MS);
	CHECK(status_is(id, want));
	CHECK(status_is(id2, want));
	CHECK_EQ(atomic_load(&nil_returned), 0);
	CHECK_EQ(co_num_tasks(), 3);
	/* Return with both parked: co_run returns, as in Go. */
}

static void test_chan_nil_recv_parks_forever(void **state)
{
	(void)state;
	atomic_store(&nil_returned, 0);
	tu_run(task_main_nil, (void *)(uintptr_t)0);
	assert_int_equal(atomic_load(&nil_returned), 0);
}

static void test_chan_nil_send_parks_forever(void **state)
{
	(void)state;
	atomic_store(&nil_returned, 0);
	tu_run(task_main_nil, (void *)(uintptr_t)1);
	assert_int_equal(atomic_load(&nil_returned), 0);
}

static void test_chan_nil_outside_task_returns_eperm(void **state)
{
	int v = 1;

	(void)state;
	assert_int_equal(co_chan_send(NULL, &v), CO_EPERM);
	assert_int_equal(co_chan_recv(NULL, &v), CO_EPERM);
}

/* ------------------------------------------------------------------------
 * 7. Bad input
 * ---------------------------------------------------------------------- */

static void test_chan_send_null_elem_returns_einval(void **state)
{
	(void)state;
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 2);
	assert_int_equal(co_chan_send(u, NULL), CO_EINVAL);
	assert_int_equal(co_chan_send(b, NULL), CO_EINVAL);
	assert_int_equal(co_chan_len(b), 0); /* nothing was queued */
	co_chan_free(u);
	co_chan_free(b);
}

static void task_null_receiver(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->result, co_chan_recv(o->c, NULL));
	atomic_store(&o->done, 1);
}

static void task_main_recv_null(void *arg)
{
	co_chan *b = co_chan_new(sizeof(int), 2);
	co_chan *u = co_chan_new(sizeof(int), 0);
	struct op o;
	int v;

	(void)arg;
	/* From the buffer. */
	CHECK_EQ(co_chan_send(b, &(int){1}), 0);
	CHECK_EQ(co_chan_send(b, &(int){2}), 0);
	CHECK_EQ(co_chan_recv(b, NULL), 0);
	CHECK_EQ(co_chan_len(b), 1);
	CHECK_EQ(co_chan_recv(b, &v), 0);
	CHECK_EQ(v, 2);

	/* From a full buffer with a parked sender: its value moves in. */
	CHECK_EQ(co_chan_send(b, &(int){3}), 0);
	CHECK_EQ(co_chan_send(b, &(int){4}), 0);
	o = (struct op){.c = b, .value = 5};
	start_parked(task_sender, &o, "chan send");
	CHECK_EQ(co_chan_recv(b, NULL), 0); /* drops 3 */
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);
	CHECK_EQ(co_chan_len(b), 2);
	CHECK_EQ(co_chan_recv(b, &v), 0);
	CHECK_EQ(v, 4);
	CHECK_EQ(co_chan_recv(b, &v), 0);
	CHECK_EQ(v, 5);

	/* From a parked unbuffered sender. */
	o = (struct op){.c = u, .value = 6};
	start_parked(task_sender, &o, "chan send");
	CHECK_EQ(co_chan_recv(u, NULL), 0);
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);

	/* A parked receiver with a NULL element, served by a sender. */
	o = (struct op){.c = u};
	start_parked(task_null_receiver, &o, "chan receive");
	CHECK_EQ(co_chan_send(u, &(int){7}), 0);
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);

	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(b);
	co_chan_free(u);
}

static void test_chan_recv_null_elem_drops_value(void **state)
{
	(void)state;
	tu_run(task_main_recv_null, NULL);
}

static void test_chan_would_block_outside_task_returns_eperm(void **state)
{
	int v = 1;

	(void)state;
	co_chan *u = co_chan_new(sizeof(int), 0);
	co_chan *b = co_chan_new(sizeof(int), 1);
	assert_int_equal(co_chan_send(u, &v), CO_EPERM);
	assert_int_equal(co_chan_recv(u, &v), CO_EPERM);
	assert_int_equal(co_chan_recv(b, &v), CO_EPERM);
	assert_int_equal(co_chan_send(b, &v), 0);
	assert_int_equal(co_chan_send(b, &v), CO_EPERM);
	assert_int_equal(co_chan_len(b), 1);
	co_chan_free(u);
	co_chan_free(b);
}

/* Captures fd 2 around co_chan_free from inside a task (test_util.h's
 * capture asserts, which a task must not). */
static void free_captured(co_chan *c, char *out, size_t len)
{
	FILE *f = tmpfile();
	int saved;

	out[0] = '\0';
	CHECK(f != NULL);
	if (!f)
		return;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	CHECK(dup2(fileno(f), STDERR_FILENO) >= 0);
	co_chan_free(c);
	fflush(stderr);
	CHECK(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void task_main_free_busy(void *arg)
{
	bool senders = (uintptr_t)arg;
	co_chan *c = co_chan_new(sizeof(int), 0);
	struct op o = {.c = c, .value = 31};
	char msg[512];
	int v = 0;

	start_parked(senders ? task_sender : task_receiver, &o,
		     senders ? "chan send" : "chan receive");
	free_captured(c, msg, sizeof(msg));
	if (msg[0] == '\0')
		tu_fail(__FILE__, __LINE__,
			"co_chan_free with a waiter printed nothing");
	/* Refused, not freed: the channel still works. */
	if (senders) {
		CHECK_EQ(co_chan_recv(c, &v), 0);
		CHECK_EQ(v, 31);
	} else {
		CHECK_EQ(co_chan_send(c, &(int){32}), 0);
	}
	CHECK(op_done(&o));
	CHECK_EQ(atomic_load(&o.result), 0);
	if (!senders)
		CHECK_EQ(o.value, 32);
	free_captured(c, msg, sizeof(msg));
	CHECK_STR(msg, ""); /* freed now, quietly */
	co_chan_free(NULL);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void test_chan_free_with_waiters_refuses(void **state)
{
	(void)state;
	tu_run(task_main_free_busy, (void *)(uintptr_t)0);
	tu_run(task_main_free_busy, (void *)(uintptr_t)1);
}

/* ------------------------------------------------------------------------
 * 8. Many tasks
 * ---------------------------------------------------------------------- */

#define NPROD 8
#define NCONS 8

struct mpmc {
	co_chan *c;
	long per;                    /* values per producer */
	_Atomic int next_prod;       /* producer index dispenser */
	_Atomic int prods_done;
	_Atomic int cons_done;
	_Atomic long count;          /* values received */
	_Atomic long long sum;       /* their sum */
	_Atomic unsigned char *seen; /* tally per value */
};

static void task_producer(void *arg)
{
	struct mpmc *m = arg;
	long p = atomic_fetch_add(&m->next_prod, 1);

	for (long i = 0; i < m->per; i++) {
		long v = p * m->per + i;
		CHECK_EQ(co_chan_send(m->c, &v), 0);
	}
	atomic_fetch_add(&m->prods_done, 1);
}

static void task_consumer(void *arg)
{
	struct mpmc *m = arg;
	long v, n = 0, total = NPROD * m->per;
	long long sum = 0;
	int r;

	while ((r = co_chan_recv(m->c, &v)) == 0) {
		if (v < 0 || v >= total) {
			tu_fail(__FILE__, __LINE__, "value %ld out of range",
				v);
			continue;
		}
		atomic_fetch_add(&m->seen[v], 1);
		sum += v;
		n++;
	}
	CHECK_EQ(r, CO_EPIPE);
	atomic_fetch_add(&m->count, n);
	atomic_fetch_add(&m->sum, sum);
	atomic_fetch_add(&m->cons_done, 1);
}

static void task_main_mpmc(void *arg)
{
	struct mpmc *m = arg;

	for (int i = 0; i < NCONS; i++)
		CHECK(co_go(task_consumer, m) != 0);
	for (int i = 0; i < NPROD; i++)
		CHECK(co_go(task_producer, m) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&m->prods_done) == NPROD,
			    60 * TU_SEC));
	CHECK_EQ(co_chan_close(m->c), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&m->cons_done) == NCONS,
			    10 * TU_SEC));
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
}

static void mpmc_run(size_t cap)
{
	struct mpmc m = {.per = tu_scale(20000)};
	long total = NPROD * m.per;

	m.c = co_chan_new(sizeof(long), cap);
	m.seen = calloc((size_t)total, 1);
	assert_non_null(m.c);
	assert_non_null(m.seen);
	tu_run(task_main_mpmc, &m);
	assert_int_equal(atomic_load(&m.count), total);
	assert_true(atomic_load(&m.sum) ==
		    (long long)total * (total - 1) / 2);
	for (long v = 0; v < total; v++)
		if (m.seen[v] != 1)
			fail_msg("cap %zu: value %ld received %d times", cap,
				 v, m.seen[v]);
	co_chan_free(m.c);
	free((void *)m.seen);
}

static void test_chan_many_producers_consumers_unbuffered(void **state)
{
	(void)state;
	mpmc_run(0);
}

static void test_chan_many_producers_consumers_buffered(void **state)
{
	(void)state;
	mpmc_run(1);
	mpmc_run(64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Creation */
		cmocka_unit_test(test_chan_new_zero_elem_size_returns_null),
		cmocka_unit_test(test_chan_new_overflowing_size_returns_null),
		cmocka_unit_test(test_chan_len_cap),
		/* 2. Unbuffered */
		cmocka_unit_test(test_chan_unbuffered_send_parks_until_recv),
		cmocka_unit_test(test_chan_unbuffered_recv_parks_until_send),
		cmocka_unit_test(test_chan_unbuffered_receivers_served_in_order),
		cmocka_unit_test(test_chan_unbuffered_pingpong),
		/* 3. Buffered */
		cmocka_unit_test(test_chan_buffered_fifo),
		cmocka_unit_test(test_chan_buffered_full_send_parks_in_order),
		cmocka_unit_test(test_chan_buffered_empty_recv_parks),
		cmocka_unit_test(test_chan_buffered_receivers_served_in_order),
		/* 4. Element size */
		cmocka_unit_test(test_chan_elem_sizes_byte_exact),
		cmocka_unit_test(test_chan_elem_4k_struct),
		/* 5. Close */
		cmocka_unit_test(test_chan_recv_closed_drains_then_epipe),
		cmocka_unit_test(test_chan_send_closed_returns_epipe),
		cmocka_unit_test(test_chan_close_twice_returns_epipe),
		cmocka_unit_test(test_chan_close_wakes_all_receivers),
		cmocka_unit_test(test_chan_close_wakes_all_senders),
		/* 6. Nil channels */
		cmocka_unit_test(test_chan_nil_recv_parks_forever),
		cmocka_unit_test(test_chan_nil_send_parks_forever),
		cmocka_unit_test(test_chan_nil_outside_task_returns_eperm),
		/* 7. Bad input */
		cmocka_unit_test(test_chan_send_null_elem_returns_einval),
		cmocka_unit_test(test_chan_recv_null_elem_drops_value),
		cmocka_unit_test(test_chan_would_block_outside_task_returns_eperm),
		cmocka_unit_test(test_chan_free_with_waiters_refuses),
		/* 8. Many tasks */
		cmocka_unit_test(test_chan_many_producers_consumers_unbuffered),
		cmocka_unit_test(test_chan_many_producers_consumers_buffered),
	};
	return cmocka_run_group_tests_name("runtime.chan", tests, NULL, NULL);
}
