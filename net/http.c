/* SPDX-License-Identifier: MIT */
/*
 * http.c - the task driver of the HTTP/1.1 server (co_http_*, public):
 * accept loop, one task per connection, deadlines, shutdown.  The
 * requests and answers themselves are http_core.c's (http.h has the
 * protocol a driver follows).
 *
 * How it works.  co_http_serve accepts and starts a task per connection.
 * That task owns the connection outright: it reads into a fixed input
 * buffer and steps the session over it, which runs the handler for each
 * complete request and queues the answers.  The output is written when
 * the input holds no further complete request (or grows past
 * HTTP_OUT_FLUSH), so a pipelined burst of requests costs one write for
 * all the answers, and answers leave in request order because one task
 * makes them one after the other: none can be lost or doubled.
 *
 * Time limits are connection deadlines (co_set_deadline): while waiting
 * for the first byte of a request, now + idle_timeout (expiry closes the
 * connection silently); once a request has begun, its first byte's time
 * + request_timeout (expiry answers 408); before writing, now +
 * write_timeout.  An error answer (400, 408, 413, 431) is followed by a
 * "lingering close", as Go's net/http and nginx do: shut the write side,
 * then read and drop what the client still sends for a short while, so
 * that the client reads the answer instead of a reset.
 *
 * Shutdown.  http_server_shutdown closes the listener; the accept loop
 * then sets every connection's deadline to the past, which wakes a task
 * parked in a read or a write; each task sees `closing` and ends, and
 * serve returns when the wait group of connection tasks is done.
 *
 * Rejected alternatives: a goroutine-style reader task plus writer task
 * per connection (two tasks and a channel per request for no gain when
 * the handler runs inline); writing each response at once (one system
 * call per pipelined request).
 *
 * Invariants:
 *   - a connection belongs to exactly one task; only deadlines are set
 *     on it from elsewhere (the shutdown kick);
 *   - conns lists the live connections, under mu; a task unlinks its
 *     connection before closing it;
 *   - responses are appended to out strictly in request order.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/http.h"

#define IN_SIZE 16384            /* bytes read per co_read */

struct http_conn;

struct co_http_server {
	co_http_config cfg;          /* copy, defaults filled in */
	_Atomic(co_listener *) l;    /* set by serve, taken by shutdown */
	atomic_bool closing;         /* shutdown was called */
	co_mutex mu;                 /* guards conns */
	struct http_conn *conns;     /* live connections */
	co_wg wg;                    /* one per connection task */
};

struct http_conn {
	co_http_server *srv;         /* owner */
	co_conn *c;                  /* the connection */
	struct http_conn *next;      /* srv->conns link, under srv->mu */
	struct http_conn *prev;      /* srv->conns link, under srv->mu */
	struct http_session sess;    /* requests in, answers out */
	int64_t req_start;           /* when the current request began */
	size_t in_off;               /* parsed up to here */
	size_t in_len;               /* read up to here */
	char in[IN_SIZE];            /* input buffer */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void task_http_conn(void *arg);
static bool conn_parse(struct http_conn *hc, bool *keep);
static int conn_flush(struct http_conn *hc);
static int conn_fill(struct http_conn *hc);
static void conn_error(struct http_conn *hc, int status);
static void conn_linger(struct http_conn *hc);
static void conn_end(struct http_conn *hc);
static void server_kick(co_http_server *s);

/* ------------------------------------------------------------------------
 * API: the server
 * ---------------------------------------------------------------------- */

void http_config_defaults(co_http_config *cfg)
{
#define DEFAULT(field, value)                                              \
	if (cfg->field <= 0)                                               \
		cfg->field = value;
	DEFAULT(max_header_bytes, HTTP_DEFAULT_MAX_HEADER_BYTES)
	DEFAULT(max_body_bytes, HTTP_DEFAULT_MAX_BODY_BYTES)
	DEFAULT(request_timeout, HTTP_DEFAULT_REQUEST_TIMEOUT)
	DEFAULT(idle_timeout, HTTP_DEFAULT_IDLE_TIMEOUT)
	DEFAULT(write_timeout, HTTP_DEFAULT_WRITE_TIMEOUT)
#undef DEFAULT
}

CO_EXTERN co_http_server *co_http_server_new(const co_http_config *cfg,
					     int *err)
{
	co_http_server *s;
	int dummy;

	if (!err)
		err = &dummy;
	if (!cfg || !cfg->handler)
		return *err = CO_EINVAL, NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return *err = CO_ENOMEM, NULL;
	s->cfg = *cfg;
	http_config_defaults(&s->cfg);
	co_mutex_init(&s->mu);
	co_wg_init(&s->wg);
	*err = 0;
	return s;
}

/* Accept errors that pass (descriptors, memory): back off like Go. */
static void accept_backoff(int64_t *delay)
{
	*delay = *delay ? *delay * 2 : 5000000;
	if (*delay > 1000000000)
		*delay = 1000000000;
	co_sleep(*delay);
}

static void server_start_conn(co_http_server *s, co_conn *c)
{
	struct http_conn *hc = malloc(sizeof(*hc));

	if (!hc) {
		co_close(c);
		return;
	}
	memset(hc, 0, offsetof(struct http_conn, in));
	hc->srv = s;
	hc->c = c;
	http_session_init(&hc->sess, &s->cfg);
	co_mutex_lock(&s->mu);
	hc->next = s->conns;
	if (s->conns)
		s->conns->prev = hc;
	s->conns = hc;
	co_mutex_unlock(&s->mu);
	co_wg_add(&s->wg, 1);
	if (co_go_named("http conn", task_http_conn, hc) == 0)
		conn_end(hc);
}

CO_EXTERN int co_http_serve(co_http_server *s, co_listener *l)
{
	int64_t delay = 0;
	int err;

	if (!s || !l)
		return CO_EINVAL;
	if (co_self() == 0)
		return CO_EPERM;
	atomic_store(&s->l, l);
	if (atomic_load(&s->closing) && (l = atomic_exchange(&s->l, NULL)))
		co_listener_close(l); /* shutdown came first */
	while (!atomic_load(&s->closing)) {
		co_conn *c = co_accept(l, &err);
		if (c) {
			delay = 0;
			server_start_conn(s, c);
		} else if (err != CO_ECANCELED && !atomic_load(&s->closing)) {
			accept_backoff(&delay); /* -EMFILE, -ENOMEM, ... */
		}
	}
	server_kick(s);
	co_wg_wait(&s->wg);
	return 0;
}

CO_EXTERN void co_http_shutdown(co_http_server *s)
{
	co_listener *l;

	if (!s)
		return;
	atomic_store(&s->closing, true);
	if ((l = atomic_exchange(&s->l, NULL)))
		co_listener_close(l);
}

CO_EXTERN void co_http_server_free(co_http_server *s)
{
	if (!s)
		return;
	co_mutex_destroy(&s->mu);
	free(s);
}

/* ------------------------------------------------------------------------
 * Statics: one connection
 * ---------------------------------------------------------------------- */

static void task_http_conn(void *arg)
{
	struct http_conn *hc = arg;
	bool keep = true;
	int rc;

	while (keep) {
		if (!conn_parse(hc, &keep))
			break; /* error answered, or closing */
		if (!keep || conn_flush(hc) < 0)
			break;
		if ((rc = conn_fill(hc)) <= 0) {
			if (rc == CO_ETIMEDOUT && hc->sess.msg.started)
				conn_error(hc, 408);
			break;
		}
	}
	/* What is left, e.g. the answer to a "Connection: close" request,
	 * then a lingering close in case the client sent more after it. */
	if (conn_flush(hc) == 0 && !keep)
		conn_linger(hc);
	conn_end(hc);
}

/* Answers every complete request in the input; false to stop. */
static bool conn_parse(struct http_conn *hc, bool *keep)
{
	struct http_session *ss = &hc->sess;

	while (*keep) {
		bool was_started = ss->msg.started;
		size_t used;
		ss->closing = atomic_load(&hc->srv->closing);
		enum http_step st = http_session_step(ss, hc->in + hc->in_off,
						      hc->in_len - hc->in_off,
						      &used);
		hc->in_off += used;
		if (ss->msg.started && !was_started)
			hc->req_start = co_now();
		if (st == HTTP_STEP_MORE)
			break;
		if (st == HTTP_STEP_BAD) {
			if (conn_flush(hc) == 0)
				conn_linger(hc);
			return false;
		}
		if (st != HTTP_STEP_ANSWERED) /* CLOSE (never DEFERRED here) */
			*keep = false;
		if (ss->out.len >= HTTP_OUT_FLUSH && conn_flush(hc) < 0)
			return false;
	}
	if (hc->in_off == hc->in_len)
		hc->in_off = hc->in_len = 0;
	return !atomic_load(&hc->srv->closing) || !*keep;
}

/* Writes out the queued responses, within write_timeout. */
static int conn_flush(struct http_conn *hc)
{
	struct http_buf *out = &hc->sess.out;
	ssize_t n;

	if (out->len == 0)
		return 0;
	co_set_deadline(hc->c, co_now() + hc->srv->cfg.write_timeout);
	n = co_write(hc->c, out->p, out->len);
	out->len = 0;
	return n < 0 ? (int)n : 0;
}

/* Reads more input under the idle or the request deadline: > 0 bytes,
 * 0 at end of stream, or a negative code. */
static int conn_fill(struct http_conn *hc)
{
	const co_http_config *cfg = &hc->srv->cfg;
	int64_t dl = hc->sess.msg.started ? hc->req_start + cfg->request_timeout
					   : co_now() + cfg->idle_timeout;
	ssize_t n;

	co_set_deadline(hc->c, dl);
	if (atomic_load(&hc->srv->closing) && !hc->sess.msg.started)
		return CO_ECANCELED; /* after the deadline: see server_kick */
	if (hc->in_len == sizeof(hc->in)) {
		/* A partial request fills the buffer: the parser copied
		 * what it used, so the rest moves to the front. */
		memmove(hc->in, hc->in + hc->in_off, hc->in_len - hc->in_off);
		hc->in_len -= hc->in_off;
		hc->in_off = 0;
	}
	n = co_read(hc->c, hc->in + hc->in_len, sizeof(hc->in) - hc->in_len);
	if (n > 0)
		hc->in_len += (size_t)n;
	return (int)n;
}

/* Answers a slow request with status and closes gently. */
static void conn_error(struct http_conn *hc, int status)
{
	http_session_error(&hc->sess, status);
	if (conn_flush(hc) == 0)
		conn_linger(hc);
}

/* Shuts the write side and drops input for a while: the client reads our
 * answer before our close can turn into a reset. */
static void conn_linger(struct http_conn *hc)
{
	int64_t until = co_now() + HTTP_LINGER_NS;
	size_t dropped = 0;
	ssize_t n;

	if (co_close_write(hc->c) < 0)
		return;
	co_set_deadline(hc->c, until);
	while (dropped < HTTP_LINGER_BYTES &&
	       (n = co_read(hc->c, hc->in, sizeof(hc->in))) > 0)
		dropped += (size_t)n;
}

static void conn_end(struct http_conn *hc)
{
	co_http_server *s = hc->srv;

	co_mutex_lock(&s->mu);
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		s->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	co_mutex_unlock(&s->mu);
	co_close(hc->c);
	http_session_destroy(&hc->sess);
	free(hc);
	co_wg_done(&s->wg);
}

/* Wakes every connection task: a deadline in the past ends its wait, and
 * it sees `closing` (set before) when it looks again. */
static void server_kick(co_http_server *s)
{
	co_mutex_lock(&s->mu);
	for (struct http_conn *hc = s->conns; hc; hc = hc->next)
		co_set_deadline(hc->c, 1);
	co_mutex_unlock(&s->mu);
}
