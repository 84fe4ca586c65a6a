/* SPDX-License-Identifier: MIT */
/*
 * test_http.c - tests for the HTTP/1.1 server core (net/http.c and
 * net/http_parse.c), driven by raw blocking clients on plain threads.
 *
 * Contents:
 *   1. Requests that work: keep-alive, HEAD, POST bodies (length and
 *      chunked), query strings and headers, HTTP/1.0, Connection: close.
 *   2. Pipelining: 100 requests in one write, 100 answers in order, each
 *      handled exactly once.
 *   3. Bad input: malformed -> 400, oversized headers -> 431, oversized
 *      body -> 413, a byte a second -> 408; each closes the connection and
 *      the server still answers the next client.
 *   4. Timeouts and shutdown: an idle connection closes silently; shutdown
 *      ends idle connections and serve returns.
 *   5. Many concurrent keep-alive clients (tasks dialing with co_dial).
 */
#include "net_test.h"

#include <poll.h>
#include <signal.h>

#include "net/http.h"

struct hctx {
	co_http_config cfg;      /* in: limits; handler set by run_http */
	void *(*client)(void *);     /* in: the raw client, on a thread */
	void (*task_client)(void *); /* in: or a client task */
	char addr[128];              /* the server's address */
	_Atomic int handled;         /* handler calls */
	_Atomic bool done;           /* the client finished */
	_Atomic bool served;         /* co_http_serve returned */
	co_http_server *s;
	int64_t shutdown_ms;         /* how long shutdown took */
};

/* ------------------------------------------------------------------------
 * Server side
 * ---------------------------------------------------------------------- */

static void handler(const co_http_request *r, co_http_response *w,
		    void *arg)
{
	struct hctx *h = arg;
	char buf[256];

	atomic_fetch_add(&h->handled, 1);
	if (strcmp(r->path, "/hello") == 0) {
		co_http_response_header(w, "Content-Type", "text/plain");
		co_http_response_write(w, "hello\n", 6);
	} else if (strcmp(r->path, "/echo") == 0) {
		co_http_response_write(w, r->body, r->body_len);
	} else if (strncmp(r->path, "/p/", 3) == 0) {
		co_http_response_write(w, r->path + 3, strlen(r->path + 3));
	} else if (strcmp(r->path, "/info") == 0) {
		const char *x = co_http_request_header(r, "x-test");
		int n = snprintf(buf, sizeof(buf), "%s %s q=%s x=%s h=%zu 1.%d",
				 r->method, r->path, r->query, x ? x : "-",
				 r->nheaders, r->version_minor);
		co_http_response_write(w, buf, (size_t)n);
	} else if (strcmp(r->path, "/errors") == 0) {
		/* Every bad argument of the writer: an error, no change. */
		int n = snprintf(buf, sizeof(buf), "%d %d %d %d %d %d %d %d %d %d",
			co_http_response_status(w, 99),
			co_http_response_status(w, 1000),
			co_http_response_status(NULL, 200),
			co_http_response_header(w, "Bad:Name", "v"),
			co_http_response_header(w, "", "v"),
			co_http_response_header(w, "X-Ok", "line\r\nbreak"),
			co_http_response_header(w, NULL, "v"),
			co_http_response_write(w, NULL, 1),
			co_http_response_write(NULL, "x", 1),
			co_http_response_header(w, "Content-Length", "99"));
		CHECK(co_http_request_header(NULL, "x") == NULL);
		CHECK(co_http_request_header(r, NULL) == NULL);
		co_http_response_status(w, 202);
		co_http_response_write(w, buf, (size_t)n);
	} else if (strcmp(r->path, "/close") == 0) {
		co_http_response_header(w, "Connection", "close");
		co_http_response_write(w, "bye", 3);
	} else {
		co_http_response_status(w, 404);
	}
}

static void task_serve(void *arg)
{
	struct hctx *h = arg;
	int err;
	co_listener *l = co_listen("tcp", "127.0.0.1:0", &err);

	CHECK(l != NULL);
	if (!l) {
		atomic_store(&h->done, true);
		atomic_store(&h->served, true);
		return;
	}
	co_listener_addr(l, h->addr, sizeof(h->addr));
	CHECK_EQ(co_http_serve(h->s, l), 0);
	atomic_store(&h->served, true);
}

static void task_client_done(void *arg)
{
	struct hctx *h = arg;

	h->task_client(h);
	atomic_store(&h->done, true);
}

static void main_http(void *arg)
{
	struct hctx *h = arg;
	pthread_t th;
	int err;
	int64_t t0;

	h->cfg.handler = handler;
	h->cfg.arg = h;
	h->s = co_http_server_new(&h->cfg, &err);
	CHECK(h->s != NULL);
	co_go(task_serve, h);
	while (h->addr[0] == '\0' && !atomic_load(&h->done))
		co_sleep(NT_MS);
	if (h->client)
		pthread_create(&th, NULL, h->client, h);
	else
		co_go(task_client_done, h);
	while (!atomic_load(&h->done))
		co_sleep(2 * NT_MS);
	if (h->client)
		pthread_join(th, NULL); /* it has finished: no wait */
	t0 = co_now();
	co_http_shutdown(h->s);
	while (!atomic_load(&h->served) && co_now() - t0 < 5 * NT_SEC)
		co_sleep(NT_MS);
	CHECK(atomic_load(&h->served));
	h->shutdown_ms = (co_now() - t0) / NT_MS;
	co_http_server_free(h->s);
}

static void run_http(struct hctx *h)
{
	nt_run(main_http, h);
	assert_true(h->shutdown_ms < 1000);
}

/* ------------------------------------------------------------------------
 * Raw client side
 * ---------------------------------------------------------------------- */

struct rconn {
	int fd;
	bool head;         /* the next answer is to HEAD: no body */
	size_t len;        /* bytes in buf */
	char buf[1 << 17]; /* read-ahead */
};

struct resp {
	int status;
	bool close;       /* Connection: close */
	bool date;        /* has a Date header */
	size_t body_len;
	char body[4096];
};

static struct rconn *rc_dial(struct hctx *h)
{
	struct rconn *rc = calloc(1, sizeof(*rc));

	rc->fd = nt_raw_dial(h->addr, 5000);
	if (rc->fd < 0)
		nt_fail(__FILE__, __LINE__, "dial %s", h->addr);
	return rc;
}

static void rc_close(struct rconn *rc)
{
	close(rc->fd);
	free(rc);
}

static bool rc_more(struct rconn *rc)
{
	ssize_t n = recv(rc->fd, rc->buf + rc->len, sizeof(rc->buf) - rc->len, 0);

	if (n <= 0)
		return false;
	rc->len += (size_t)n;
	return true;
}

/* Reads one response; false on EOF, error or timeout. */
static bool rc_response(struct rconn *rc, struct resp *out)
{
	char *end;
	size_t head, total;
	const char *cl;

	memset(out, 0, sizeof(*out));
	while (!(end = memmem(rc->buf, rc->len, "\r\n\r\n", 4)))
		if (!rc_more(rc))
			return false;
	head = (size_t)(end - rc->buf) + 4;
	end[2] = '\0';
	out->status = atoi(rc->buf + 9);
	cl = strstr(rc->buf, "Content-Length: ");
	out->body_len = cl ? strtoul(cl + 16, NULL, 10) : 0;
	if (rc->head) { /* Content-Length describes the GET answer */
		rc->head = false;
		out->body_len = 0;
	}
	out->close = strstr(rc->buf, "Connection: close") != NULL;
	out->date = strstr(rc->buf, "\r\nDate: ") != NULL;
	total = head + out->body_len;
	while (rc->len < total)
		if (!rc_more(rc))
			return false;
	memcpy(out->body, rc->buf + head,
	       out->body_len < sizeof(out->body) - 1 ? out->body_len
						     : sizeof(out->body) - 1);
	memmove(rc->buf, rc->buf + total, rc->len - total);
	rc->len -= total;
	return true;
}

/* True if the server closed: EOF with nothing more to read. */
static bool rc_eof(struct rconn *rc)
{
	return rc->len == 0 && !rc_more(rc) && errno != EAGAIN;
}

static bool send_str(struct rconn *rc, const char *s)
{
	return nt_raw_write(rc->fd, s, strlen(s));
}

/* One GET /hello on a fresh connection: the server is still fine. */
static void check_alive(struct hctx *h)
{
	struct rconn *rc = rc_dial(h);
	struct resp r;

	CHECK(send_str(rc, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK_EQ(r.status, 200);
	CHECK(strcmp(r.body, "hello\n") == 0);
	rc_close(rc);
}

/* Sends req, expects status and a closed connection afterwards. */
static void expect_error(struct hctx *h, const char *req, size_t len,
			 int status)
{
	struct rconn *rc = rc_dial(h);
	struct resp r;

	CHECK(nt_raw_write(rc->fd, req, len));
	CHECK(rc_response(rc, &r));
	CHECK_EQ(r.status, status);
	CHECK(r.close);
	CHECK(rc_eof(rc));
	rc_close(rc);
	check_alive(h);
}

#define CLIENT(name)                                                       \
	static void name##_body(struct hctx *h);                           \
	static void *name(void *arg)                                       \
	{                                                                  \
		name##_body(arg);                                          \
		atomic_store(&((struct hctx *)arg)->done, true);           \
		return NULL;                                               \
	}                                                                  \
	static void name##_body(struct hctx *h)

/* ------------------------------------------------------------------------
 * 1. Requests that work
 * ---------------------------------------------------------------------- */

static struct rconn *kept_open; /* client_keep_alive's last connection */

CLIENT(client_keep_alive)
{
	struct rconn *rc = rc_dial(h);
	struct resp r;

	for (int i = 0; i < 3; i++) {
		CHECK(send_str(rc, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
		CHECK(rc_response(rc, &r));
		CHECK_EQ(r.status, 200);
		CHECK(!r.close && r.date);
		CHECK(strcmp(r.body, "hello\n") == 0);
	}
	CHECK(send_str(rc, "GET /nope HTTP/1.1\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK_EQ(r.status, 404);
	/* Left open on purpose: shutdown must end the idle connection. */
	kept_open = rc;
}

static void test_http_keep_alive(void **state)
{
	struct hctx h = {.client = client_keep_alive};

	(void)state;
	run_http(&h);
	assert_int_equal(atomic_load(&h.handled), 4);
	assert_non_null(kept_open);
	assert_true(rc_eof(kept_open)); /* closed by the shutdown */
	rc_close(kept_open);
}

CLIENT(client_methods)
{
	struct rconn *rc = rc_dial(h);
	struct resp r;

	CHECK(send_str(rc, "HEAD /hello HTTP/1.1\r\n\r\n"));
	rc->head = true;
	CHECK(rc_response(rc, &r));
	CHECK(r.status == 200 && strstr(rc->buf, "Content-Length: 6"));
	CHECK(send_str(rc, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"));
	/* The HEAD answer had no body: the POST answer comes next. */
	CHECK(rc_response(rc, &r));
	CHECK(r.status == 200 && strcmp(r.body, "abcde") == 0);
	CHECK(send_str(rc, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(r.status == 200 && strcmp(r.body, "abcdefg") == 0);
	CHECK(send_str(rc, "GET /info?a=1&b=2 HTTP/1.1\r\nX-Test: yes\r\nHost: h\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(strcmp(r.body, "GET /info q=a=1&b=2 x=yes h=2 1.1") == 0);
	CHECK(send_str(rc, "GET http://h/info?z HTTP/1.1\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(strcmp(r.body, "GET /info q=z x=- h=0 1.1") == 0);
	CHECK(send_str(rc, "GET /close HTTP/1.1\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(r.close && strcmp(r.body, "bye") == 0);
	CHECK(rc_eof(rc));
	rc_close(rc);
	rc = rc_dial(h); /* HTTP/1.0 without keep-alive: one answer */
	CHECK(send_str(rc, "GET /hello HTTP/1.0\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(r.status == 200 && r.close);
	CHECK(rc_eof(rc));
	rc_close(rc);
}

CLIENT(client_errors)
{
	struct rconn *rc = rc_dial(h);
	struct resp r;

	CHECK(send_str(rc, "GET /errors HTTP/1.1\r\n\r\n"));
	CHECK(rc_response(rc, &r));
	CHECK(r.status == 202);
	CHECK(strcmp(r.body, "-22 -22 -22 -22 -22 -22 -22 -22 -22 0") == 0);
	CHECK(strstr(rc->buf, "Content-Length: 37") != NULL); /* not 99 */
	rc_close(rc);
}

/* Bad arguments: error codes, never a crash, and the server serves. */
static void test_http_api_errors(void **state)
{
	struct hctx h = {.client = client_errors};
	co_http_config no_handler = {0};
	int err = 0;

	(void)state;
	assert_null(co_http_server_new(NULL, &err));
	assert_int_equal(err, CO_EINVAL);
	assert_null(co_http_server_new(&no_handler, &err));
	assert_int_equal(err, CO_EINVAL);
	assert_null(co_http_server_new(NULL, NULL)); /* err may be NULL */
	assert_int_equal(co_http_serve(NULL, NULL), CO_EINVAL);
	co_http_config cfg = {.handler = handler};
	co_http_server *s = co_http_server_new(&cfg, NULL);
	assert_non_null(s);
	/* Outside a task: co_http_serve cannot wait. */
	assert_int_equal(co_http_serve(s, (co_listener *)&cfg), CO_EPERM);
	co_http_shutdown(NULL);
	co_http_server_free(NULL);
	co_http_server_free(s);
	assert_string_equal(co_http_status_text(404), "Not Found");
	assert_string_equal(co_http_status_text(999), "Unknown");
	run_http(&h);
	assert_int_equal(atomic_load(&h.handled), 1);
}

static void test_http_methods_and_bodies(void **state)
{
	struct hctx h = {.client = client_methods};

	(void)state;
	run_http(&h);
	assert_int_equal(atomic_load(&h.handled), 7);
}

/* ------------------------------------------------------------------------
 * 2. Pipelining
 * ---------------------------------------------------------------------- */

#define PIPELINED 100

CLIENT(client_pipelining)
{
	static char reqs[PIPELINED * 64];
	struct rconn *rc = rc_dial(h);
	struct resp r;
	size_t len = 0;

	for (int i = 0; i < PIPELINED; i++)
		len += (size_t)snprintf(reqs + len, sizeof(reqs) - len,
					"GET /p/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
	CHECK(nt_raw_write(rc->fd, reqs, len)); /* one write */
	for (int i = 0; i < PIPELINED; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		CHECK(rc_response(rc, &r));
		CHECK_EQ(r.status, 200);
		if (strcmp(r.body, want) != 0)
			nt_fail(__FILE__, __LINE__, "answer %d: %s", i, r.body);
	}
	shutdown(rc->fd, SHUT_WR);
	CHECK(rc_eof(rc)); /* nothing doubled */
	rc_close(rc);
}

static void test_http_pipelining_100(void **state)
{
	struct hctx h = {.client = client_pipelining};

	(void)state;
	run_http(&h);
	assert_int_equal(atomic_load(&h.handled), PIPELINED);
}

/* ------------------------------------------------------------------------
 * 3. Bad input
 * ---------------------------------------------------------------------- */

CLIENT(client_malformed)
{
	static const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /a\x01b HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
		"CONNECT h:1 HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(h, bad[i], strlen(bad[i]), 400);
}

static void test_http_malformed_400(void **state)
{
	struct hctx h = {.client = client_malformed};

	(void)state;
	run_http(&h);
}

CLIENT(client_big_headers)
{
	static char req[16384];
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: ");

	memset(req + n, 'a', 8000);
	memcpy(req + n + 8000, "\r\n\r\n", 4);
	expect_error(h, req, (size_t)n + 8004, 431);
	/* A URL alone over the limit. */
	n = snprintf(req, sizeof(req), "GET /");
	memset(req + n, 'u', 6000);
	n += 6000;
	n += snprintf(req + n, sizeof(req) - (size_t)n, " HTTP/1.1\r\n\r\n");
	expect_error(h, req, (size_t)n, 431);
}

static void test_http_headers_too_large_431(void **state)
{
	struct hctx h = {.client = client_big_headers,
			 .cfg = {.max_header_bytes = 4096}};

	(void)state;
	run_http(&h);
}

CLIENT(client_big_body)
{
	static char req[4096];
	const char *cl = "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
	size_t n = (size_t)snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n800\r\n");

	expect_error(h, cl, strlen(cl), 413); /* declared */
	memset(req + n, 'b', 0x800);          /* chunked: 2 KiB > 1 KiB */
	expect_error(h, req, n + 0x800, 413);
}

static void test_http_body_too_large_413(void **state)
{
	struct hctx h = {.client = client_big_body,
			 .cfg = {.max_body_bytes = 1024}};

	(void)state;
	run_http(&h);
}

CLIENT(client_one_byte_a_second)
{
	const char *req = "GET /hello HTTP/1.1\r\nHost: slowloris\r\n\r\n";
	struct rconn *rc = rc_dial(h);
	struct pollfd pfd = {rc->fd, POLLIN, 0};
	struct resp r;
	int64_t t0 = co_now();

	for (size_t i = 0; i < strlen(req); i++) {
		if (!nt_raw_write(rc->fd, req + i, 1) || poll(&pfd, 1, 1000) > 0)
			break; /* the server answered (or hung up) */
	}
	CHECK(rc_response(rc, &r));
	CHECK_EQ(r.status, 408);
	CHECK(rc_eof(rc));
	int64_t took = (co_now() - t0) / NT_MS;
	CHECK(took >= 1500 && took < 1500 + 1000);
	rc_close(rc);
	check_alive(h);
}

static void test_http_slow_client_408(void **state)
{
	struct hctx h = {.client = client_one_byte_a_second,
			 .cfg = {.request_timeout = 1500 * NT_MS}};

	(void)state;
	run_http(&h);
}

/* ------------------------------------------------------------------------
 * 4. Timeouts and shutdown
 * ---------------------------------------------------------------------- */

CLIENT(client_idle)
{
	struct rconn *rc = rc_dial(h);
	int64_t t0 = co_now();

	CHECK(rc_eof(rc)); /* nothing sent: closed, no answer */
	int64_t took = (co_now() - t0) / NT_MS;
	CHECK(took >= 300 && took < 300 + 500);
	rc_close(rc);
	check_alive(h);
}

static void test_http_idle_timeout(void **state)
{
	struct hctx h = {.client = client_idle,
			 .cfg = {.idle_timeout = 300 * NT_MS}};

	(void)state;
	run_http(&h);
}

/* ------------------------------------------------------------------------
 * 5. Many concurrent keep-alive clients, as tasks
 * ---------------------------------------------------------------------- */

struct many {
	struct hctx *h;
	co_wg wg;
	_Atomic int ok;
};

/* Reads one "hello\n" answer from a conn: head, then 6 body bytes. */
static bool conn_read_hello(co_conn *c)
{
	char buf[512];
	size_t len = 0;
	char *end;

	for (;;) {
		ssize_t n = co_read(c, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end && len >= (size_t)(end - buf) + 4 + 6)
			return strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
			       strcmp(end + 4, "hello\n") == 0;
	}
}

static void task_many_client(void *arg)
{
	struct many *m = arg;
	const char *req = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	int err, good = 0;
	co_conn *c = co_dial("tcp", m->h->addr, &err);

	CHECK(c != NULL);
	for (int i = 0; c && i < 20; i++) {
		CHECK_EQ(co_write(c, req, strlen(req)), (ssize_t)strlen(req));
		good += conn_read_hello(c);
	}
	CHECK_EQ(good, 20);
	if (c)
		co_close(c);
	atomic_fetch_add(&m->ok, good == 20);
	co_wg_done(&m->wg);
}

static void client_many(void *arg)
{
	struct hctx *h = arg;
	struct many m = {.h = h};
	int n = nt_scale(200);

	co_wg_init(&m.wg);
	co_wg_add(&m.wg, n);
	for (int i = 0; i < n; i++)
		co_go(task_many_client, &m);
	co_wg_wait(&m.wg);
	CHECK_EQ(atomic_load(&m.ok), n);
}

static void test_http_many_clients(void **state)
{
	struct hctx h = {.task_client = client_many};

	(void)state;
	run_http(&h);
	assert_int_equal(atomic_load(&h.handled), nt_scale(200) * 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_keep_alive),
		cmocka_unit_test(test_http_api_errors),
		cmocka_unit_test(test_http_methods_and_bodies),
		cmocka_unit_test(test_http_pipelining_100),
		cmocka_unit_test(test_http_malformed_400),
		cmocka_unit_test(test_http_headers_too_large_431),
		cmocka_unit_test(test_http_body_too_large_413),
		cmocka_unit_test(test_http_slow_client_408),
		cmocka_unit_test(test_http_idle_timeout),
		cmocka_unit_test(test_http_many_clients),
	};

	signal(SIGPIPE, SIG_DFL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
