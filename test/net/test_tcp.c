/* SPDX-License-Identifier: MIT */
/*
 * test_tcp.c - tests for net/: listeners, dialing, reads, writes,
 * deadlines and closing on real sockets (127.0.0.1, ::1, unix).
 *
 * Contents:
 *   1. Echo over each network: tcp4, tcp6, dual-stack, unix, abstract.
 *   2. Many concurrent connections (500 by default).
 *   3. Peers misbehaving: reset (SO_LINGER 0, no SIGPIPE), half-close,
 *      a slow client that sends a byte at a time while others run.
 *   4. Deadlines: read and write time out within tolerance, a change
 *      wakes a blocked reader, a past deadline, clearing.
 *   5. Closing: a reader and a writer blocked while another task closes
 *      the conn; co_listener_close wakes co_accept.
 *   6. Descriptors run out: co_accept and co_dial return -EMFILE and the
 *      listener keeps serving once descriptors are back.
 *   7. Resolution and dialing errors: "localhost", refused, bad input.
 */
#include "net_test.h"

#include <signal.h>

/* Deadline tolerance: a wake-up this late still passes (loaded CI). */
#define LATE_MS (NT_ASAN ? 400 : 200)

struct echo_ctx {
	const char *network; /* in: network to listen and dial on */
	const char *addr;    /* in: address to listen on */
	int conns;           /* in: concurrent clients */
	int rounds;          /* in: messages per client */
	co_listener *l;      /* the listener */
	char laddr[128];     /* its address */
	_Atomic int served;  /* connections the server finished */
	_Atomic int clients; /* clients that finished */
	co_wg wg;            /* clients */
};

/* ------------------------------------------------------------------------
 * Shared task bodies
 * ---------------------------------------------------------------------- */

/* Echoes until EOF, then closes. */
static void task_echo_conn(void *arg)
{
	co_conn *c = arg;
	char buf[4096];
	ssize_t n;

	while ((n = co_read(c, buf, sizeof(buf))) > 0)
		CHECK_EQ(co_write(c, buf, (size_t)n), n);
	CHECK_EQ(n, 0);
	co_close(c);
}

static void task_echo_server(void *arg)
{
	struct echo_ctx *e = arg;
	co_conn *c;
	int err;

	for (int i = 0; i < e->conns; i++) {
		c = co_accept(e->l, &err);
		CHECK(c != NULL);
		if (!c) {
			fprintf(stderr, "accept: %s\n", co_strerror(err));
			break;
		}
		co_go(task_echo_conn, c);
		atomic_fetch_add(&e->served, 1);
	}
}

static void task_echo_client(void *arg)
{
	struct echo_ctx *e = arg;
	char out[64], in[64];
	int err;
	co_conn *c = co_dial(e->network, e->laddr, &err);

	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "dial %s: %s\n", e->laddr, co_strerror(err));
		co_wg_done(&e->wg);
		return;
	}
	for (int r = 0; r < e->rounds; r++) {
		int len = snprintf(out, sizeof(out), "msg %d %p", r, (void *)c);
		size_t got = 0;
		CHECK_EQ(co_write(c, out, (size_t)len), len);
		while (got < (size_t)len) {
			ssize_t n = co_read(c, in + got, (size_t)len - got);
			CHECK(n > 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		CHECK(memcmp(in, out, (size_t)len) == 0);
	}
	CHECK_EQ(co_close_write(c), 0);
	CHECK_EQ(co_read(c, in, sizeof(in)), 0); /* the server's close */
	co_close(c);
	atomic_fetch_add(&e->clients, 1);
	co_wg_done(&e->wg);
}

static void main_echo(void *arg)
{
	struct echo_ctx *e = arg;
	int err;

	e->l = co_listen(e->network, e->addr, &err);
	CHECK(e->l != NULL);
	if (!e->l) {
		fprintf(stderr, "listen %s: %s\n", e->addr, co_strerror(err));
		return;
	}
	CHECK_EQ(co_listener_addr(e->l, e->laddr, sizeof(e->laddr)), 0);
	co_wg_init(&e->wg);
	co_wg_add(&e->wg, e->conns);
	co_go(task_echo_server, e);
	for (int i = 0; i < e->conns; i++)
		co_go(task_echo_client, e);
	co_wg_wait(&e->wg);
	co_listener_close(e->l);
}

static void run_echo(const char *network, const char *addr, int conns,
		     int rounds)
{
	struct echo_ctx e = {.network = network, .addr = addr,
			     .conns = conns, .rounds = rounds};

	nt_run(main_echo, &e);
	assert_int_equal(atomic_load(&e.clients), conns);
	assert_int_equal(atomic_load(&e.served), conns);
}

/* ------------------------------------------------------------------------
 * 1. Echo over each network
 * ---------------------------------------------------------------------- */

static void test_tcp_echo_ipv4(void **state)
{
	(void)state;
	run_echo("tcp4", "127.0.0.1:0", 4, 10);
}

static void test_tcp_echo_ipv6(void **state)
{
	(void)state;
	run_echo("tcp6", "[::1]:0", 4, 10);
}

static void test_tcp_echo_unix(void **state)
{
	char path[256];

	(void)state;
	nt_unix_path(path, sizeof(path), "echo");
	run_echo("unix", path, 4, 10);
	assert_int_equal(access(path, F_OK), -1); /* removed on close */
}

static void test_tcp_echo_unix_abstract(void **state)
{
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "@copper-net-%d", (int)getpid());
	run_echo("unix", name, 2, 5);
}

struct dual_ctx {
	_Atomic int ok; /* dials that reached the dual-stack listener */
};

static void main_dual_stack(void *arg)
{
	struct dual_ctx *d = arg;
	char laddr[128], dial[128];
	int err;
	co_listener *l = co_listen("tcp", ":0", &err);

	CHECK(l != NULL);
	if (!l)
		return;
	CHECK_EQ(co_listener_addr(l, laddr, sizeof(laddr)), 0);
	const char *port = strrchr(laddr, ':') + 1;
	const char *hosts[] = {"127.0.0.1", "[::1]"};
	for (int i = 0; i < 2; i++) {
		snprintf(dial, sizeof(dial), "%s:%s", hosts[i], port);
		co_conn *c = co_dial("tcp", dial, &err);
		co_conn *s = co_accept(l, &err);
		CHECK(c && s);
		if (c && s)
			atomic_fetch_add(&d->ok, 1);
		if (c)
			co_close(c);
		if (s)
			co_close(s);
	}
	co_listener_close(l);
}

static void test_tcp_listen_dual_stack(void **state)
{
	struct dual_ctx d = {0};

	(void)state;
	nt_run(main_dual_stack, &d);
	assert_int_equal(atomic_load(&d.ok), 2);
}

/* ------------------------------------------------------------------------
 * 2. Many concurrent connections
 * ---------------------------------------------------------------------- */

static void test_tcp_many_conns(void **state)
{
	(void)state;
	run_echo("tcp", "127.0.0.1:0", nt_scale(500), 20);
}

static void test_tcp_many_conns_unix(void **state)
{
	char path[256];

	(void)state;
	nt_unix_path(path, sizeof(path), "many");
	run_echo("unix", path, nt_scale(500), 20);
}

/* ------------------------------------------------------------------------
 * 3. Misbehaving peers
 * ---------------------------------------------------------------------- */

struct peer_ctx {
	co_listener *l;     /* listener the raw peer connects to */
	char laddr[128];    /* its address */
	int mode;           /* what the raw peer does */
	ssize_t read_rc;    /* server's last co_read result */
	ssize_t write_rc;   /* server's co_write after the peer left */
	_Atomic int ticks;  /* a bystander task's progress */
	_Atomic bool done;  /* the server finished */
	char got[64];       /* bytes the server read */
	size_t got_len;
};

enum { PEER_RESET, PEER_HALF_CLOSE, PEER_SLOW };

static void *peer_raw(void *arg)
{
	struct peer_ctx *p = arg;
	char buf[64];
	int fd = nt_raw_dial(p->laddr, 5000);

	if (fd < 0) {
		nt_fail(__FILE__, __LINE__, "raw dial %s: %s", p->laddr,
			strerror(errno));
		return NULL;
	}
	if (p->mode == PEER_RESET) {
		struct linger lg = {1, 0};
		nt_raw_write(fd, "bye", 3);
		usleep(50000);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else if (p->mode == PEER_HALF_CLOSE) {
		nt_raw_write(fd, "half", 4);
		shutdown(fd, SHUT_WR);
		size_t n = nt_raw_read_all(fd, buf, sizeof(buf));
		if (n != 5 || memcmp(buf, "reply", 5) != 0)
			nt_fail(__FILE__, __LINE__, "half-close reply %zu", n);
	} else {
		for (int i = 0; i < 10; i++) {
			nt_raw_write(fd, "s", 1);
			usleep(20000);
		}
		shutdown(fd, SHUT_WR);
		nt_raw_read_all(fd, buf, sizeof(buf));
	}
	close(fd);
	return NULL;
}

static void task_bystander(void *arg)
{
	struct peer_ctx *p = arg;

	while (!atomic_load(&p->done)) {
		atomic_fetch_add(&p->ticks, 1);
		co_sleep(NT_MS);
	}
}

/* Reads everything the peer sends until EOF or an error. */
static void peer_server_read(struct peer_ctx *p, co_conn *c)
{
	ssize_t n;

	while ((n = co_read(c, p->got + p->got_len,
			    sizeof(p->got) - 1 - p->got_len)) > 0)
		p->got_len += (size_t)n;
	p->read_rc = n;
}

static void main_peer(void *arg)
{
	struct peer_ctx *p = arg;
	int err;
	co_conn *c = co_accept(p->l, &err);

	co_go(task_bystander, p);
	CHECK(c != NULL);
	if (c) {
		peer_server_read(p, c);
		if (p->mode == PEER_RESET) {
			co_sleep(10 * NT_MS);
			p->write_rc = co_write(c, "x", 1); /* no SIGPIPE */
			if (p->write_rc == 1) /* the first may still go out */
				p->write_rc = co_write(c, "x", 1);
		} else {
			p->write_rc = co_write(c, "reply", 5);
		}
		co_close(c);
	}
	atomic_store(&p->done, true);
	co_listener_close(p->l);
}

static void run_peer(struct peer_ctx *p)
{
	int err;
	pthread_t th;

	p->l = co_listen("tcp", "127.0.0.1:0", &err);
	assert_non_null(p->l);
	assert_int_equal(co_listener_addr(p->l, p->laddr, sizeof(p->laddr)), 0);
	th = nt_thread(peer_raw, p);
	nt_run(main_peer, p);
	pthread_join(th, NULL);
}

static void test_tcp_peer_reset(void **state)
{
	struct peer_ctx p = {.mode = PEER_RESET};

	(void)state;
	run_peer(&p);
	assert_int_equal(p.got_len, 3);
	assert_int_equal(p.read_rc, CO_ECONNRESET);
	assert_true(p.write_rc == CO_EPIPE || p.write_rc == CO_ECONNRESET);
}

static void test_tcp_half_close(void **state)
{
	struct peer_ctx p = {.mode = PEER_HALF_CLOSE};

	(void)state;
	run_peer(&p);
	assert_int_equal(p.read_rc, 0); /* EOF after "half" */
	assert_int_equal(p.got_len, 4);
	assert_int_equal(p.write_rc, 5); /* the other half still works */
}

static void test_tcp_slow_client(void **state)
{
	struct peer_ctx p = {.mode = PEER_SLOW};

	(void)state;
	run_peer(&p);
	assert_int_equal(p.read_rc, 0);
	assert_int_equal(p.got_len, 10);
	/* ~200 ms of trickle: the bystander ran meanwhile. */
	assert_true(atomic_load(&p.ticks) >= 20);
}

/* ------------------------------------------------------------------------
 * 4. Deadlines, and 5. closing while blocked
 * ---------------------------------------------------------------------- */

/* A connected pair inside the runtime. */
struct pair {
	co_listener *l;
	co_conn *a; /* dialed end */
	co_conn *b; /* accepted end */
};

static bool pair_open(struct pair *p, const char *network, const char *addr)
{
	char laddr[128];
	int err;

	memset(p, 0, sizeof(*p));
	if (!(p->l = co_listen(network, addr, &err)))
		return false;
	co_listener_addr(p->l, laddr, sizeof(laddr));
	p->a = co_dial(network, laddr, &err);
	p->b = p->a ? co_accept(p->l, &err) : NULL;
	co_listener_close(p->l);
	if (!p->a || !p->b) {
		if (p->a)
			co_close(p->a);
		return false;
	}
	return true;
}

static void pair_close(struct pair *p)
{
	co_close(p->a);
	co_close(p->b);
}

static void main_deadline_read(void *arg)
{
	struct pair p;
	char buf[16];
	int64_t t0;

	(void)arg;
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	t0 = co_now();
	CHECK_EQ(co_set_deadline(p.b, t0 + 100 * NT_MS), 0);
	CHECK_EQ(co_read(p.b, buf, sizeof(buf)), CO_ETIMEDOUT);
	int64_t took = (co_now() - t0) / NT_MS;
	CHECK(took >= 100 && took < 100 + LATE_MS);
	/* Still timed out: the deadline is absolute, and it has passed,
	 * even with data waiting. */
	CHECK_EQ(co_write(p.a, "x", 1), 1);
	co_sleep(10 * NT_MS);
	CHECK_EQ(co_read(p.b, buf, sizeof(buf)), CO_ETIMEDOUT);
	CHECK_EQ(co_set_deadline(p.b, 0), 0); /* cleared */
	CHECK_EQ(co_read(p.b, buf, sizeof(buf)), 1);
	pair_close(&p);
}

static void test_tcp_deadline_read(void **state)
{
	(void)state;
	nt_run(main_deadline_read, NULL);
}

static void main_deadline_write(void *arg)
{
	static char chunk[65536];
	struct pair p;
	ssize_t rc = 0;
	int64_t t0;

	(void)arg;
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	t0 = co_now();
	co_set_deadline(p.a, t0 + 150 * NT_MS);
	/* Nobody reads p.b: the buffers fill and the write parks. */
	for (int i = 0; i < 4096 && rc >= 0; i++)
		rc = co_write(p.a, chunk, sizeof(chunk));
	CHECK_EQ(rc, CO_ETIMEDOUT);
	int64_t took = (co_now() - t0) / NT_MS;
	CHECK(took >= 150 && took < 150 + LATE_MS);
	pair_close(&p);
}

static void test_tcp_deadline_write(void **state)
{
	(void)state;
	nt_run(main_deadline_write, NULL);
}

/* A reader with an idle timeout on p.b, and a writer on the same p.b
 * with none: the read deadline fails the reader only. */
static _Atomic int split_written;
#define SPLIT_CHUNKS 256 /* 16 MiB: more than loopback's buffers hold */

static void task_split_writer(void *arg)
{
	static char chunk[65536];
	co_conn *c = arg;

	for (int i = 0; i < SPLIT_CHUNKS; i++) {
		ssize_t rc = co_write(c, chunk, sizeof(chunk));
		if (rc != (ssize_t)sizeof(chunk)) {
			CHECK(!"the writer failed");
			return;
		}
	}
	atomic_store(&split_written, 1);
}

static void main_deadline_split(void *arg)
{
	static char sink[65536];
	struct pair p;
	char buf[16];
	int64_t t0;

	(void)arg;
	atomic_store(&split_written, 0);
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	t0 = co_now();
	CHECK_EQ(co_set_read_deadline(p.b, t0 + 100 * NT_MS), 0);
	/* 16 MiB to a peer that does not read yet: the writer parks. */
	CHECK(co_go(task_split_writer, p.b) != 0);
	CHECK_EQ(co_read(p.b, buf, sizeof(buf)), CO_ETIMEDOUT);
	int64_t took = (co_now() - t0) / NT_MS;
	CHECK(took >= 100 && took < 100 + LATE_MS);
	CHECK_EQ(atomic_load(&split_written), 0); /* still parked, not failed */
	/* Now drain p.a: the writer finishes, unharmed by the read deadline. */
	size_t got = 0;
	while (got < SPLIT_CHUNKS * sizeof(sink)) {
		ssize_t n = co_read(p.a, sink, sizeof(sink));
		if (n <= 0) {
			CHECK(!"draining failed");
			break;
		}
		got += (size_t)n;
	}
	for (int64_t end = co_now() + 5 * NT_SEC;
	     !atomic_load(&split_written) && co_now() < end;)
		co_sleep(NT_MS);
	CHECK_EQ(atomic_load(&split_written), 1);
	/* A write deadline in the past fails writes, and leaves reads alone. */
	CHECK_EQ(co_set_read_deadline(p.b, 0), 0);
	CHECK_EQ(co_set_write_deadline(p.b, 1), 0);
	CHECK_EQ(co_write(p.b, "x", 1), CO_ETIMEDOUT);
	CHECK_EQ(co_write(p.a, "y", 1), 1);
	CHECK_EQ(co_read(p.b, buf, sizeof(buf)), 1);
	CHECK_EQ(co_set_read_deadline(NULL, 0), CO_EINVAL);
	CHECK_EQ(co_set_write_deadline(NULL, 0), CO_EINVAL);
	CHECK_EQ(co_set_write_deadline(p.b, -1), CO_EINVAL);
	pair_close(&p);
}

static void test_tcp_deadline_read_write_separate(void **state)
{
	(void)state;
	nt_run(main_deadline_split, NULL);
}

struct blocked {
	co_conn *c;         /* the conn the task blocks on */
	bool write;         /* write (fill the buffers) instead of read */
	_Atomic int phase;  /* 1 blocked soon, 2 returned */
	ssize_t rc;         /* what the blocked call returned */
	int64_t at;         /* co_now() when it returned */
	co_wg *wg;          /* done */
};

static void task_blocked(void *arg)
{
	static char chunk[65536];
	struct blocked *b = arg;
	char buf[16];
	ssize_t rc = 0;

	atomic_store(&b->phase, 1);
	if (b->write) {
		for (int i = 0; i < 4096 && rc >= 0; i++)
			rc = co_write(b->c, chunk, sizeof(chunk));
	} else {
		rc = co_read(b->c, buf, sizeof(buf));
	}
	b->rc = rc;
	b->at = co_now();
	atomic_store(&b->phase, 2);
	co_wg_done(b->wg);
}

static void main_deadline_change(void *arg)
{
	struct pair p;
	co_wg wg;
	struct blocked b = {0};
	int64_t t0;

	(void)arg;
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	co_wg_init(&wg);
	co_wg_add(&wg, 1);
	b.c = p.b;
	b.wg = &wg;
	co_go(task_blocked, &b); /* blocks with no deadline */
	co_sleep(50 * NT_MS);
	t0 = co_now();
	CHECK_EQ(co_set_deadline(p.b, t0 + 50 * NT_MS), 0);
	/* Extend before it fires: the reader must wait for the new one. */
	CHECK_EQ(co_set_deadline(p.b, t0 + 150 * NT_MS), 0);
	co_wg_wait(&wg);
	CHECK_EQ(b.rc, CO_ETIMEDOUT);
	CHECK(b.at - t0 >= 150 * NT_MS && b.at - t0 < (150 + LATE_MS) * NT_MS);
	pair_close(&p);
}

static void test_tcp_deadline_change_wakes(void **state)
{
	(void)state;
	nt_run(main_deadline_change, NULL);
}

static void main_deadline_storm(void *arg)
{
	struct pair p;
	co_wg wg;
	struct blocked b = {0};

	(void)arg;
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	co_wg_init(&wg);
	co_wg_add(&wg, 1);
	b.c = p.b;
	b.wg = &wg;
	co_go(task_blocked, &b);
	/* Many changes while the reader parks and wakes; then data. */
	for (int i = 0; i < 2000; i++)
		co_set_deadline(p.b, i % 2 ? 0 : co_now() + NT_SEC);
	co_set_deadline(p.b, 0);
	CHECK_EQ(co_write(p.a, "z", 1), 1);
	co_wg_wait(&wg);
	CHECK_EQ(b.rc, 1);
	pair_close(&p);
}

static void test_tcp_deadline_storm(void **state)
{
	(void)state;
	nt_run(main_deadline_storm, NULL);
}

static void main_close_wakes(void *arg)
{
	struct pair p;
	co_wg wg;
	struct blocked b[3] = {{0}};

	(void)arg;
	CHECK(pair_open(&p, "tcp", "127.0.0.1:0"));
	co_wg_init(&wg);
	co_wg_add(&wg, 3);
	for (int i = 0; i < 3; i++) {
		b[i].c = p.b;
		b[i].write = i == 2;
		b[i].wg = &wg;
		co_go(task_blocked, &b[i]); /* two readers, one writer */
	}
	co_sleep(50 * NT_MS);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(atomic_load(&b[i].phase), 1);
	co_close(p.b); /* from this task, while they are parked */
	co_wg_wait(&wg);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(b[i].rc, CO_ECANCELED);
	co_close(p.a);
}

static void test_tcp_close_wakes_blocked(void **state)
{
	(void)state;
	nt_run(main_close_wakes, NULL);
}

static void task_racing_reader(void *arg)
{
	struct blocked *b = arg;
	char buf[16];

	atomic_store(&b->phase, 1);
	b->rc = co_read(b->c, buf, sizeof(buf));
	co_wg_done(b->wg);
}

/* Close races with a reader between entering co_read and parking: never
 * a hang, never a use-after-free (the ASan run checks the second).  The
 * reader announces itself just before co_read, and the closer waits a
 * few microseconds more (a call must begin before co_close, as with
 * free()), then closes at a point that varies from round to round. */
static void main_close_race(void *arg)
{
	(void)arg;
	for (int i = 0; i < nt_scale(200); i++) {
		struct pair p;
		struct blocked b = {0};
		co_wg wg;
		if (!pair_open(&p, "tcp", "127.0.0.1:0")) {
			CHECK(false);
			return;
		}
		co_wg_init(&wg);
		co_wg_add(&wg, 1);
		b.c = p.b;
		b.wg = &wg;
		co_go(task_racing_reader, &b);
		while (atomic_load(&b.phase) == 0)
			co_yield();
		for (int64_t t = co_now() + 2000 + (i % 7) * 1000; co_now() < t;)
			;
		co_close(p.b);
		co_wg_wait(&wg);
		CHECK(b.rc == CO_ECANCELED);
		co_close(p.a);
	}
}

static void test_tcp_close_race(void **state)
{
	(void)state;
	nt_run(main_close_race, NULL);
}

struct accept_ctx {
	co_listener *l;
	int err;
	co_wg wg;
};

static void task_accept_blocked(void *arg)
{
	struct accept_ctx *a = arg;

	CHECK(co_accept(a->l, &a->err) == NULL);
	co_wg_done(&a->wg);
}

static void main_listener_close(void *arg)
{
	struct accept_ctx *a = arg;
	int err;

	a->l = co_listen("tcp", "127.0.0.1:0", &err);
	CHECK(a->l != NULL);
	if (!a->l)
		return;
	co_wg_init(&a->wg);
	co_wg_add(&a->wg, 1);
	co_go(task_accept_blocked, a);
	co_sleep(30 * NT_MS);
	co_listener_close(a->l);
	co_wg_wait(&a->wg);
}

static void test_tcp_listener_close_wakes_accept(void **state)
{
	struct accept_ctx a = {0};

	(void)state;
	nt_run(main_listener_close, &a);
	assert_int_equal(a.err, CO_ECANCELED);
}

/* ------------------------------------------------------------------------
 * 6. Descriptor exhaustion
 * ---------------------------------------------------------------------- */

/* Lowers the soft descriptor limit to the lowest free descriptor: no new
 * descriptor can be made until it is raised again. */
static rlim_t exhaust_fds(struct rlimit *saved)
{
	struct rlimit rl;
	int lowest = dup(0);

	close(lowest);
	getrlimit(RLIMIT_NOFILE, saved);
	rl = *saved;
	rl.rlim_cur = (rlim_t)lowest;
	setrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

static void main_emfile(void *arg)
{
	struct rlimit saved;
	char laddr[128];
	int err, raw[4];
	co_conn *c;
	co_listener *l = co_listen("tcp", "127.0.0.1:0", &err);

	(void)arg;
	CHECK(l != NULL);
	if (!l)
		return;
	co_listener_addr(l, laddr, sizeof(laddr));
	for (int i = 0; i < 4; i++) /* queued in the backlog */
		raw[i] = nt_raw_dial(laddr, 2000);
	exhaust_fds(&saved);
	for (int i = 0; i < 3; i++) { /* repeatedly, and nothing breaks */
		CHECK(co_accept(l, &err) == NULL);
		CHECK_EQ(err, CO_EMFILE);
	}
	CHECK(co_dial("tcp", laddr, &err) == NULL);
	CHECK_EQ(err, CO_EMFILE);
	CHECK(co_listen("tcp", "127.0.0.1:0", &err) == NULL);
	CHECK_EQ(err, CO_EMFILE);
	setrlimit(RLIMIT_NOFILE, &saved);
	for (int i = 0; i < 4; i++) { /* the server goes on */
		c = co_accept(l, &err);
		CHECK(c != NULL);
		if (c) {
			CHECK_EQ(co_write(c, "ok", 2), 2);
			co_close(c);
		}
	}
	for (int i = 0; i < 4; i++) {
		char buf[8];
		CHECK(raw[i] >= 0 && nt_raw_read_all(raw[i], buf, sizeof(buf)) == 2);
		close(raw[i]);
	}
	co_listener_close(l);
}

static void test_tcp_emfile(void **state)
{
	(void)state;
	nt_run(main_emfile, NULL);
}

/* ------------------------------------------------------------------------
 * 7. Resolution, dialing errors, bad input
 * ---------------------------------------------------------------------- */

static void main_dial_localhost(void *arg)
{
	char laddr[128], name[128];
	int err;
	co_listener *l = co_listen("tcp4", "localhost:0", &err);

	(void)arg;
	CHECK(l != NULL);
	if (!l)
		return;
	co_listener_addr(l, laddr, sizeof(laddr));
	CHECK(strncmp(laddr, "127.", 4) == 0);
	snprintf(name, sizeof(name), "localhost:%s", strrchr(laddr, ':') + 1);
	/* "tcp" may try ::1 first (refused), then 127.0.0.1. */
	co_conn *c = co_dial("tcp", name, &err);
	CHECK(c != NULL);
	co_conn *s = co_accept(l, &err);
	CHECK(s != NULL);
	if (c && s) {
		char buf[4];
		CHECK_EQ(co_write(c, "dns", 3), 3);
		CHECK_EQ(co_read(s, buf, sizeof(buf)), 3);
	}
	if (c)
		co_close(c);
	if (s)
		co_close(s);
	co_listener_close(l);
}

static void test_tcp_dial_localhost(void **state)
{
	(void)state;
	nt_run(main_dial_localhost, NULL);
}

static void main_dial_refused(void *arg)
{
	char laddr[128];
	int err;
	co_listener *l = co_listen("tcp", "127.0.0.1:0", &err);

	(void)arg;
	CHECK(l != NULL);
	if (!l)
		return;
	co_listener_addr(l, laddr, sizeof(laddr));
	co_listener_close(l); /* nobody listens there now */
	CHECK(co_dial("tcp", laddr, &err) == NULL);
	CHECK_EQ(err, CO_ECONNREFUSED);
	CHECK(co_dial("unix", "/nonexistent/copper.sock", &err) == NULL);
	CHECK_EQ(err, CO_ENOENT);
}

static void test_tcp_dial_refused(void **state)
{
	(void)state;
	nt_run(main_dial_refused, NULL);
}

static void main_bad_input(void *arg)
{
	char small[4];
	int err;
	co_listener *l;

	(void)arg;
	static const char *bad[][2] = {
		{"udp", "127.0.0.1:0"}, {"tcp", "127.0.0.1"},
		{"tcp", "::1:80"},      {"tcp", "[::1]80"},
		{"tcp", "127.0.0.1:"},  {"unix", ""},
		{"tcp", "1.2.3.4.5:0"}, {NULL, ":0"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(co_listen(bad[i][0], bad[i][1], &err) == NULL);
		CHECK(err < 0);
	}
	CHECK(co_listen("tcp", "[::1]80", &err) == NULL);
	CHECK_EQ(err, CO_EINVAL);
	l = co_listen("tcp", "127.0.0.1:0", &err);
	CHECK(l != NULL);
	if (l) {
		char laddr[128];
		co_listener_addr(l, laddr, sizeof(laddr));
		CHECK_EQ(co_listener_addr(l, small, sizeof(small)), CO_ERANGE);
		CHECK(co_listen("tcp", laddr, &err) == NULL);
		CHECK_EQ(err, CO_EADDRINUSE);
		co_listener_close(l);
	}
	CHECK_EQ(co_read(NULL, small, 1), CO_EINVAL);
	CHECK_EQ(co_write(NULL, small, 1), CO_EINVAL);
	CHECK_EQ(co_set_deadline(NULL, 0), CO_EINVAL);
	CHECK(co_accept(NULL, &err) == NULL);
	CHECK_EQ(err, CO_EINVAL);
	co_close(NULL);
	co_listener_close(NULL);
}

static void test_net_bad_input(void **state)
{
	int err;

	(void)state;
	nt_run(main_bad_input, NULL);
	/* Outside a task: dialing needs one. */
	assert_null(co_dial("tcp", "127.0.0.1:1", &err));
	assert_int_equal(err, CO_EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_echo_ipv4),
		cmocka_unit_test(test_tcp_echo_ipv6),
		cmocka_unit_test(test_tcp_echo_unix),
		cmocka_unit_test(test_tcp_echo_unix_abstract),
		cmocka_unit_test(test_tcp_listen_dual_stack),
		cmocka_unit_test(test_tcp_many_conns),
		cmocka_unit_test(test_tcp_many_conns_unix),
		cmocka_unit_test(test_tcp_peer_reset),
		cmocka_unit_test(test_tcp_half_close),
		cmocka_unit_test(test_tcp_slow_client),
		cmocka_unit_test(test_tcp_deadline_read_write_separate),
		cmocka_unit_test(test_tcp_deadline_read),
		cmocka_unit_test(test_tcp_deadline_write),
		cmocka_unit_test(test_tcp_deadline_change_wakes),
		cmocka_unit_test(test_tcp_deadline_storm),
		cmocka_unit_test(test_tcp_close_wakes_blocked),
		cmocka_unit_test(test_tcp_close_race),
		cmocka_unit_test(test_tcp_listener_close_wakes_accept),
		cmocka_unit_test(test_tcp_emfile),
		cmocka_unit_test(test_tcp_dial_localhost),
		cmocka_unit_test(test_tcp_dial_refused),
		cmocka_unit_test(test_net_bad_input),
	};

	signal(SIGPIPE, SIG_DFL); /* a stray SIGPIPE must kill the test */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
