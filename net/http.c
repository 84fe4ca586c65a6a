/* SPDX-License-Identifier: MIT */
/*
 * http.c - the HTTP/1.1 server core: accept loop, one task per
 * connection, keep-alive, pipelining, limits and timeouts (http.h has the
 * protocol; http_parse.c turns bytes into requests).
 *
 * How it works.  http_server_serve accepts and starts a task per
 * connection.  That task owns the connection outright: it reads into a
 * fixed input buffer, feeds the parser, and for each complete request
 * runs the handler and appends the serialised response to an output
 * buffer.  The output is written when the input holds no further complete
 * request (or grows past OUT_FLUSH), so a pipelined burst of requests
 * costs one write for all the answers, and answers leave in request
 * order because one task makes them one after the other: none can be
 * lost or doubled.
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
#define OUT_FLUSH 65536          /* write out once this much is queued */
#define LINGER_NS 500000000      /* lingering close: at most 0.5 s */
#define LINGER_BYTES (256 * 1024) /* ... and this much input dropped */

struct http_conn;

struct http_server {
	struct http_config cfg;      /* copy, defaults filled in */
	_Atomic(co_listener *) l;    /* set by serve, taken by shutdown */
	atomic_bool closing;         /* shutdown was called */
	co_mutex mu;                 /* guards conns */
	struct http_conn *conns;     /* live connections */
	co_wg wg;                    /* one per connection task */
};

/* The handler's writer; reused by a connection for every request. */
struct http_response {
	int status;              /* 200 unless set */
	bool close;              /* handler asked for Connection: close */
	struct http_buf headers; /* "Name: value\r\n" lines */
	struct http_buf body;    /* the body */
};

struct http_conn {
	struct http_server *srv;     /* owner */
	co_conn *c;                  /* the connection */
	struct http_conn *next;      /* srv->conns link, under srv->mu */
	struct http_conn *prev;      /* srv->conns link, under srv->mu */
	struct http_msg msg;         /* the request being parsed */
	struct http_response w;      /* the handler's writer */
	struct http_buf out;         /* responses not yet written */
	int64_t req_start;           /* when the current request began */
	time_t date_sec;             /* second of date[] */
	char date[40];               /* "Date: ...\r\n" */
	size_t in_off;               /* parsed up to here */
	size_t in_len;               /* read up to here */
	char in[IN_SIZE];            /* input buffer */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void task_http_conn(void *arg);
static bool conn_parse(struct http_conn *hc, bool *keep);
static void conn_respond(struct http_conn *hc, bool *keep);
static int conn_flush(struct http_conn *hc);
static int conn_fill(struct http_conn *hc);
static void conn_error(struct http_conn *hc, int status);
static void conn_linger(struct http_conn *hc);
static void conn_end(struct http_conn *hc);
static void server_kick(struct http_server *s);
static int put_head(struct http_conn *hc, int status, size_t body_len,
		    bool close, const struct http_buf *extra);

/* ------------------------------------------------------------------------
 * API: the server
 * ---------------------------------------------------------------------- */

struct http_server *http_server_new(const struct http_config *cfg, int *err)
{
	struct http_server *s;

	if (!cfg || !cfg->handler)
		return *err = CO_EINVAL, NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return *err = CO_ENOMEM, NULL;
	s->cfg = *cfg;
#define DEFAULT(field, value)                                              \
	if (s->cfg.field <= 0)                                             \
		s->cfg.field = value;
	DEFAULT(max_header_bytes, HTTP_DEFAULT_MAX_HEADER_BYTES)
	DEFAULT(max_body_bytes, HTTP_DEFAULT_MAX_BODY_BYTES)
	DEFAULT(request_timeout, HTTP_DEFAULT_REQUEST_TIMEOUT)
	DEFAULT(idle_timeout, HTTP_DEFAULT_IDLE_TIMEOUT)
	DEFAULT(write_timeout, HTTP_DEFAULT_WRITE_TIMEOUT)
#undef DEFAULT
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

static void server_start_conn(struct http_server *s, co_conn *c)
{
	struct http_conn *hc = malloc(sizeof(*hc));

	if (!hc) {
		co_close(c);
		return;
	}
	memset(hc, 0, offsetof(struct http_conn, in));
	hc->srv = s;
	hc->c = c;
	http_msg_init(&hc->msg, s->cfg.max_header_bytes, s->cfg.max_body_bytes);
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

int http_server_serve(struct http_server *s, co_listener *l)
{
	int64_t delay = 0;
	int err;

	if (!s || !l)
		return CO_EINVAL;
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

void http_server_shutdown(struct http_server *s)
{
	co_listener *l;

	if (!s)
		return;
	atomic_store(&s->closing, true);
	if ((l = atomic_exchange(&s->l, NULL)))
		co_listener_close(l);
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	co_mutex_destroy(&s->mu);
	free(s);
}

/* ------------------------------------------------------------------------
 * API: requests and responses
 * ---------------------------------------------------------------------- */

const char *http_request_header(const struct http_request *req,
				const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

void http_response_status(struct http_response *w, int status)
{
	if (status >= 100 && status <= 999)
		w->status = status;
}

int http_response_header(struct http_response *w, const char *name,
			 const char *value)
{
	if (!name || !value || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return CO_EINVAL;
	if (strcasecmp(name, "Content-Length") == 0)
		return 0; /* the server's */
	if (strcasecmp(name, "Connection") == 0) {
		w->close |= strcasecmp(value, "close") == 0;
		return 0;
	}
	if (http_buf_append(&w->headers, name, strlen(name)) < 0 ||
	    http_buf_append(&w->headers, ": ", 2) < 0 ||
	    http_buf_append(&w->headers, value, strlen(value)) < 0 ||
	    http_buf_append(&w->headers, "\r\n", 2) < 0)
		return CO_ENOMEM;
	return 0;
}

int http_response_write(struct http_response *w, const void *data, size_t len)
{
	return http_buf_append(&w->body, data, len);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Request Entity Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
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
			if (rc == CO_ETIMEDOUT && hc->msg.started)
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
	struct http_msg *m = &hc->msg;

	while (*keep && hc->in_off < hc->in_len) {
		bool was_started = m->started;
		hc->in_off += http_msg_feed(m, hc->in + hc->in_off,
					    hc->in_len - hc->in_off);
		if (m->started && !was_started)
			hc->req_start = co_now();
		if (m->error_status) {
			conn_error(hc, m->error_status);
			return false;
		}
		if (!m->complete)
			break; /* all used; need more */
		conn_respond(hc, keep);
		http_msg_next(m);
		if (hc->out.len >= OUT_FLUSH && conn_flush(hc) < 0)
			return false;
	}
	if (hc->in_off == hc->in_len)
		hc->in_off = hc->in_len = 0;
	return !atomic_load(&hc->srv->closing) || !*keep;
}

/* Runs the handler for the complete request and queues the answer. */
static void conn_respond(struct http_conn *hc, bool *keep)
{
	struct http_response *w = &hc->w;
	const struct http_request *r = &hc->msg.req;
	bool head = strcmp(r->method, "HEAD") == 0;
	bool close;

	w->status = 200;
	w->close = false;
	w->headers.len = 0;
	w->body.len = 0;
	hc->srv->cfg.handler(r, w, hc->srv->cfg.arg);
	close = w->close || !r->keep_alive || atomic_load(&hc->srv->closing);
	if (w->status < 200 || w->status == 204 || w->status == 304)
		w->body.len = 0;
	if (put_head(hc, w->status, w->body.len, close, &w->headers) < 0 ||
	    (!head && http_buf_append(&hc->out, w->body.p, w->body.len) < 0))
		close = true;
	if (close)
		*keep = false;
}

/* Writes out the queued responses, within write_timeout. */
static int conn_flush(struct http_conn *hc)
{
	ssize_t n;

	if (hc->out.len == 0)
		return 0;
	co_set_deadline(hc->c, co_now() + hc->srv->cfg.write_timeout);
	n = co_write(hc->c, hc->out.p, hc->out.len);
	hc->out.len = 0;
	return n < 0 ? (int)n : 0;
}

/* Reads more input under the idle or the request deadline: > 0 bytes,
 * 0 at end of stream, or a negative code. */
static int conn_fill(struct http_conn *hc)
{
	const struct http_config *cfg = &hc->srv->cfg;
	int64_t dl = hc->msg.started ? hc->req_start + cfg->request_timeout
				      : co_now() + cfg->idle_timeout;
	ssize_t n;

	co_set_deadline(hc->c, dl);
	if (atomic_load(&hc->srv->closing) && !hc->msg.started)
		return CO_ECANCELED; /* after the deadline: see server_kick */
	n = co_read(hc->c, hc->in + hc->in_len, sizeof(hc->in) - hc->in_len);
	if (n > 0)
		hc->in_len += (size_t)n;
	return (int)n;
}

/* Answers a bad request with status and closes gently. */
static void conn_error(struct http_conn *hc, int status)
{
	const char *text = http_status_text(status);
	struct http_buf extra = {0};

	http_buf_append(&extra, "Content-Type: text/plain; charset=utf-8\r\n", 41);
	if (put_head(hc, status, strlen(text) + 1, true, &extra) == 0 &&
	    http_buf_append(&hc->out, text, strlen(text)) == 0 &&
	    http_buf_append(&hc->out, "\n", 1) == 0 && conn_flush(hc) == 0)
		conn_linger(hc);
	http_buf_free(&extra);
}

/* Shuts the write side and drops input for a while: the client reads our
 * answer before our close can turn into a reset. */
static void conn_linger(struct http_conn *hc)
{
	int64_t until = co_now() + LINGER_NS;
	size_t dropped = 0;
	ssize_t n;

	if (co_close_write(hc->c) < 0)
		return;
	co_set_deadline(hc->c, until);
	while (dropped < LINGER_BYTES &&
	       (n = co_read(hc->c, hc->in, sizeof(hc->in))) > 0)
		dropped += (size_t)n;
}

static void conn_end(struct http_conn *hc)
{
	struct http_server *s = hc->srv;

	co_mutex_lock(&s->mu);
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		s->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	co_mutex_unlock(&s->mu);
	co_close(hc->c);
	http_msg_destroy(&hc->msg);
	http_buf_free(&hc->w.headers);
	http_buf_free(&hc->w.body);
	http_buf_free(&hc->out);
	free(hc);
	co_wg_done(&s->wg);
}

/* Wakes every connection task: a deadline in the past ends its wait, and
 * it sees `closing` (set before) when it looks again. */
static void server_kick(struct http_server *s)
{
	co_mutex_lock(&s->mu);
	for (struct http_conn *hc = s->conns; hc; hc = hc->next)
		co_set_deadline(hc->c, 1);
	co_mutex_unlock(&s->mu);
}

/* Appends the status line and headers of one response to out. */
static int put_head(struct http_conn *hc, int status, size_t body_len,
		    bool close, const struct http_buf *extra)
{
	char line[160];
	time_t now = time(NULL);
	int n;

	if (now != hc->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(hc->date, sizeof(hc->date),
			 "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		hc->date_sec = now;
	}
	n = snprintf(line, sizeof(line),
		     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s", status,
		     http_status_text(status), body_len, hc->date,
		     close ? "Connection: close\r\n" : "");
	if (http_buf_append(&hc->out, line, (size_t)n) < 0 ||
	    http_buf_append(&hc->out, extra->p, extra->len) < 0 ||
	    http_buf_append(&hc->out, "\r\n", 2) < 0)
		return CO_ENOMEM;
	return 0;
}
