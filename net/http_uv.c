/* SPDX-License-Identifier: MIT */
/*
 * http_uv.c - the loop driver of the HTTP/1.1 server: the same requests
 * and answers as the task server (http_core.c), moved by libuv callbacks
 * on one loop, so that a server runs on a thread with no task at all.
 * The admin port (admin.c) serves /debug/pprof this way on the
 * profiler's service thread, which answers while every worker is stuck.
 *
 * How it works.  Each connection has a stream, one timer and a session.
 * A read appends to the connection's input buffer and steps the session
 * over it (http.h, "Protocol of a driver"); answers collect in the
 * session's out buffer, which is written once the input holds no further
 * complete request.  While a write is in flight, or a handler deferred
 * its answer (a CPU profile takes `seconds`), the connection stops
 * reading: the input cannot grow without bound, and answers stay in
 * request order.  The one timer is, in turn, the idle timeout, the
 * request timeout (408), the write timeout and the lingering close.
 *
 * Lifetime.  A connection is freed when its stream and timer have closed
 * and no deferred answer is outstanding (a closed connection with one
 * waits for http_uv_resume, which then frees it).  The server is freed
 * when http_uv_close was called, its listener closed and its last
 * connection freed.
 *
 * Limits: max_conns open connections (more are accepted and closed at
 * once: a flood cannot take the process's descriptors), the session's
 * header and body limits, its timeouts.
 *
 * Rejected: a thread per connection (threads for a port that sees a
 * request every few seconds, and a limit still needed); running the
 * task server on a worker (the admin port must answer when every worker
 * is stuck).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "net/http.h"

#define UV_IN_SIZE 16384

union uv_any_stream {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct uv_conn {
	union uv_any_stream h;
	uv_timer_t timer;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	struct http_uv_server *srv;
	struct uv_conn *next, *prev;  /* srv->conns */
	struct http_session sess;
	struct http_buf writing;      /* bytes in flight */
	int open_handles;             /* stream and timer not yet closed */
	bool writing_busy;
	bool reading;
	bool deferred;                /* a handler answers later */
	bool after_write_close;       /* close once out is written */
	bool after_write_linger;      /* ... gently (an error answer) */
	bool lingering;
	bool closing;                 /* conn_close was called */
	uint64_t req_start;           /* uv_now at a request's first byte */
	size_t in_off, in_len;
	char in[UV_IN_SIZE];
};

struct http_uv_server {
	uv_loop_t *loop;
	union uv_any_stream l;
	co_http_config cfg;
	struct http_uv_limits lim;
	struct uv_conn *conns;
	int nconns;
	bool is_unix;
	bool closing;
	bool listener_open;
	char addr[128];               /* as bound */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void conn_process(struct uv_conn *c);
static void conn_close(struct uv_conn *c);
static void conn_flush(struct uv_conn *c);

/* ------------------------------------------------------------------------
 * Teardown
 * ---------------------------------------------------------------------- */

static void server_maybe_free(struct http_uv_server *s)
{
	if (s->closing && !s->listener_open && s->nconns == 0)
		free(s);
}

static void conn_maybe_free(struct uv_conn *c)
{
	struct http_uv_server *s = c->srv;

	if (c->open_handles > 0 || c->deferred)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	http_session_destroy(&c->sess);
	http_buf_free(&c->writing);
	free(c);
	server_maybe_free(s);
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct uv_conn *c = h->data;

	c->open_handles--;
	conn_maybe_free(c);
}

static void conn_close(struct uv_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close(&c->h.handle, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* ------------------------------------------------------------------------
 * Reading, timers
 * ---------------------------------------------------------------------- */

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct uv_conn *c = h->data;
	(void)hint;

	if (c->lingering) {
		buf->base = c->in; /* dropped */
		buf->len = sizeof(c->in);
		return;
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->in_len == sizeof(c->in) && c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	buf->base = c->in + c->in_len;
	buf->len = sizeof(c->in) - c->in_len;
}

static void conn_on_timer(uv_timer_t *t)
{
	struct uv_conn *c = t->data;

	if (c->closing)
		return;
	if (c->lingering || c->writing_busy || !c->sess.msg.started) {
		conn_close(c); /* linger over, write too slow, or idle */
		return;
	}
	/* A request too slow to arrive: 408, then close gently. */
	http_session_error(&c->sess, 408);
	c->after_write_close = c->after_write_linger = true;
	conn_flush(c);
}

static void conn_read_stop(struct uv_conn *c)
{
	if (c->reading) {
		uv_read_stop(&c->h.stream);
		c->reading = false;
	}
}

static void conn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void conn_read_start(struct uv_conn *c)
{
	const co_http_config *cfg = &c->srv->cfg;
	uint64_t now = uv_now(c->srv->loop), due;

	if (c->closing)
		return;
	if (!c->reading && uv_read_start(&c->h.stream, conn_alloc,
					 conn_on_read) == 0)
		c->reading = true;
	if (c->sess.msg.started) {
		due = c->req_start + (uint64_t)(cfg->request_timeout / 1000000);
		due = due > now ? due - now : 0;
	} else {
		due = (uint64_t)(cfg->idle_timeout / 1000000);
	}
	uv_timer_start(&c->timer, conn_on_timer, due, 0);
}

static void conn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct uv_conn *c = st->data;
	(void)buf;

	if (n < 0) {
		conn_close(c); /* end of stream, reset, or the linger's end */
		return;
	}
	if (n == 0 || c->lingering)
		return;
	c->in_len += (size_t)n;
	conn_process(c);
}

/* ------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

static void conn_linger_start(struct uv_conn *c);

static void conn_on_write(uv_write_t *req, int status)
{
	struct uv_conn *c = req->data;

	c->writing_busy = false;
	c->writing.len = 0;
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->sess.out.len) {
		conn_flush(c); /* answers queued while this one was out */
		return;
	}
	if (c->after_write_linger) {
		conn_linger_start(c);
		return;
	}
	if (c->after_write_close) {
		conn_close(c);
		return;
	}
	conn_process(c); /* the rest of the input, then reading again */
}

static void conn_flush(struct uv_conn *c)
{
	struct http_buf tmp;
	uv_buf_t b;

	if (c->writing_busy || c->closing || c->sess.out.len == 0)
		return;
	conn_read_stop(c);
	tmp = c->writing; /* swap: out keeps its memory for the next */
	c->writing = c->sess.out;
	c->sess.out = tmp;
	c->sess.out.len = 0;
	b = uv_buf_init(c->writing.p, (unsigned)c->writing.len);
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->h.stream, &b, 1, conn_on_write) < 0) {
		conn_close(c);
		return;
	}
	c->writing_busy = true;
	uv_timer_start(&c->timer, conn_on_timer,
		       (uint64_t)(c->srv->cfg.write_timeout / 1000000), 0);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct uv_conn *c = req->data;
	(void)status;

	if (!c->closing && status < 0)
		conn_close(c);
}

/* Shuts the write side and drops input for a while, so that the client
 * reads the error answer rather than a reset. */
static void conn_linger_start(struct uv_conn *c)
{
	c->lingering = true;
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, &c->h.stream, conn_on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	if (!c->reading && uv_read_start(&c->h.stream, conn_alloc,
					 conn_on_read) == 0)
		c->reading = true;
	uv_timer_start(&c->timer, conn_on_timer, HTTP_LINGER_NS / 1000000, 0);
}

/* ------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

/* Steps the session over the input until it needs more, a write is due,
 * or a handler deferred; then reads again or writes. */
static void conn_process(struct uv_conn *c)
{
	struct http_session *ss = &c->sess;

	ss->closing = c->srv->closing;
	while (!c->closing && !c->writing_busy && !c->deferred &&
	       !c->after_write_close) {
		bool was_started = ss->msg.started;
		size_t used;
		enum http_step st = http_session_step(ss, c->in + c->in_off,
						      c->in_len - c->in_off,
						      &used);
		c->in_off += used;
		if (ss->msg.started && !was_started)
			c->req_start = uv_now(c->srv->loop);
		if (st == HTTP_STEP_MORE)
			break;
		if (st == HTTP_STEP_DEFERRED) {
			c->deferred = true;
			conn_read_stop(c);
			uv_timer_stop(&c->timer);
			break;
		}
		if (st == HTTP_STEP_BAD)
			c->after_write_close = c->after_write_linger = true;
		else if (st == HTTP_STEP_CLOSE)
			c->after_write_close = true;
		else if (ss->out.len >= HTTP_OUT_FLUSH)
			conn_flush(c);
	}
	if (c->closing || c->deferred)
		return;
	if (ss->out.len)
		conn_flush(c);
	else if (!c->writing_busy && !c->after_write_close)
		conn_read_start(c);
}

void http_uv_resume(co_http_response *w)
{
	struct uv_conn *c = (struct uv_conn *)((char *)http_response_session(w) -
					       offsetof(struct uv_conn, sess));
	enum http_step st;

	c->deferred = false;
	if (c->closing) {
		w->deferred = false;
		conn_maybe_free(c); /* the client left meanwhile */
		return;
	}
	st = http_session_resume(&c->sess);
	if (st == HTTP_STEP_CLOSE)
		c->after_write_close = true;
	conn_process(c);
}

/* ------------------------------------------------------------------------
 * Listening
 * ---------------------------------------------------------------------- */

static int stream_init(struct http_uv_server *s, union uv_any_stream *h)
{
	return s->is_unix ? uv_pipe_init(s->loop, &h->pipe, 0)
			  : uv_tcp_init(s->loop, &h->tcp);
}

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

static void server_on_connection(uv_stream_t *l, int status)
{
	struct http_uv_server *s = l->data;
	struct uv_conn *c;

	if (status < 0 || s->closing)
		return;
	if (s->nconns >= s->lim.max_conns || !(c = calloc(1, sizeof(*c)))) {
		/* Over the limit: take it off the backlog and close it. */
		union uv_any_stream *h = malloc(sizeof(*h));
		if (h && stream_init(s, h) == 0) {
			if (uv_accept(l, &h->stream) < 0) {}
			uv_close(&h->handle, on_refused_closed);
		} else {
			free(h);
		}
		return;
	}
	c->srv = s;
	if (stream_init(s, &c->h) < 0) {
		free(c);
		return;
	}
	c->h.handle.data = c;
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	http_session_init(&c->sess, &s->cfg);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (uv_accept(l, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	if (!s->is_unix)
		uv_tcp_nodelay(&c->h.tcp, 1);
	conn_read_start(c);
}

/* "host:port", "[v6]:port" -> a socket address (names through the
 * resolver: this runs once, at listen time). */
static int parse_tcp(const char *addr, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t hl;
	char *end;
	long port;

	if (!colon)
		return CO_EINVAL;
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && colon[-1] == ']') {
		h = addr + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return CO_EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 0 || port > 65535)
		return CO_EINVAL;
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (hl == 0) {
		v4->sin_family = AF_INET; /* ":6060": every interface */
		v4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return CO_EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		v4->sin_port = htons((uint16_t)port);
	else
		v6->sin6_port = htons((uint16_t)port);
	return 0;
}

int http_uv_addr_is_loopback(const char *addr)
{
	struct sockaddr_storage ss;
	int err;

	if (strncmp(addr, "unix:", 5) == 0)
		return addr[5] ? 1 : CO_EINVAL;
	if ((err = parse_tcp(addr, &ss)) < 0)
		return err;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
			24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

/* A unix socket file left by a process that is gone: nobody accepts on
 * it, so it may be replaced (Kubernetes restarts a container with the
 * same volume). */
static bool unix_stale(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return false;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return r < 0 && errno == ECONNREFUSED;
}

static int listen_unix(struct http_uv_server *s, const char *path)
{
	int err;

	if (!*path || strlen(path) >= sizeof(s->path))
		return CO_EINVAL;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if ((err = uv_pipe_init(s->loop, &s->l.pipe, 0)) < 0)
		return err;
	s->listener_open = true;
	err = uv_pipe_bind(&s->l.pipe, path);
	if (err == UV_EADDRINUSE && unix_stale(path) && unlink(path) == 0)
		err = uv_pipe_bind(&s->l.pipe, path);
	/* Owner only, before anyone can connect (that needs the listen). */
	if (err == 0 && chmod(path, 0600) < 0)
		err = -errno;
	if (err == 0)
		snprintf(s->addr, sizeof(s->addr), "unix:%s", path);
	else
		s->path[0] = 0; /* not ours to unlink */
	return err;
}

static int listen_tcp(struct http_uv_server *s, const char *addr)
{
	struct sockaddr_storage ss;
	int err;

	if ((err = parse_tcp(addr, &ss)) < 0)
		return err;
	if ((err = uv_tcp_init(s->loop, &s->l.tcp)) < 0)
		return err;
	s->listener_open = true;
	if ((err = uv_tcp_bind(&s->l.tcp, (struct sockaddr *)&ss, 0)) < 0)
		return err;
	struct sockaddr_storage got;
	int len = sizeof(got);
	char ip[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;
	if (uv_tcp_getsockname(&s->l.tcp, (struct sockaddr *)&got, &len) == 0) {
		if (got.ss_family == AF_INET) {
			struct sockaddr_in *v4 = (struct sockaddr_in *)&got;
			inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
			port = ntohs(v4->sin_port);
		} else {
			struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&got;
			inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
			port = ntohs(v6->sin6_port);
		}
	}
	snprintf(s->addr, sizeof(s->addr),
		 got.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
	return 0;
}

static void server_listener_closed(uv_handle_t *h)
{
	struct http_uv_server *s = h->data;

	s->listener_open = false;
	server_maybe_free(s);
}

struct http_uv_server *http_uv_listen(uv_loop_t *loop, const char *addr,
				      const co_http_config *cfg,
				      const struct http_uv_limits *lim,
				      int *err)
{
	struct http_uv_server *s;

	if (!addr || !cfg || !cfg->handler)
		return *err = CO_EINVAL, NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return *err = CO_ENOMEM, NULL;
	s->loop = loop;
	s->cfg = *cfg;
	http_config_defaults(&s->cfg);
	s->lim.max_conns = lim && lim->max_conns > 0 ? lim->max_conns : 64;
	s->is_unix = strncmp(addr, "unix:", 5) == 0;
	*err = s->is_unix ? listen_unix(s, addr + 5) : listen_tcp(s, addr);
	if (*err == 0) {
		s->l.handle.data = s;
		*err = uv_listen(&s->l.stream, 128, server_on_connection);
	}
	if (*err < 0) {
		s->closing = true;
		if (s->listener_open) {
			s->l.handle.data = s;
			uv_close(&s->l.handle, server_listener_closed);
		} else {
			free(s);
		}
		return NULL;
	}
	return s;
}

int http_uv_addr(struct http_uv_server *s, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s", s->addr) >= len)
		return CO_ERANGE;
	return 0;
}

void http_uv_close(struct http_uv_server *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	if (s->is_unix && s->path[0])
		unlink(s->path);
	for (struct uv_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	uv_close(&s->l.handle, server_listener_closed);
}
