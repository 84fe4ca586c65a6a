/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP/1.1 server's insides: the transport-free session
 * layer (http_core.c) with its two drivers, tasks (http.c, the public
 * co_http_* server) and a libuv loop (http_uv.c, the admin port), and
 * the request parser glue (http_parse.c).
 *
 * Protocol of a driver, per connection:
 *   1. http_session_init(&s, cfg) with the server's config (defaults
 *      filled in by http_config_defaults).
 *   2. For the bytes read: http_session_step(&s, data, len, &used) until
 *      it returns HTTP_STEP_MORE (read more: every byte was used).  After
 *      ANSWERED, go on with data + used; after CLOSE, write s.out and
 *      close; after BAD, write s.out (an error answer) and close gently
 *      (lingering: shut the write side, drop input for a while); after
 *      DEFERRED (the loop driver only), stop reading until the handler's
 *      continuation calls http_session_resume, which returns ANSWERED or
 *      CLOSE.
 *   3. Write s.out when no further complete request is in the input, or
 *      when it passes HTTP_OUT_FLUSH; empty it once written.
 *   4. Time: a request not complete within request_timeout of its first
 *      byte (s.msg.started) gets http_session_error(&s, 408) and a close;
 *      an idle connection closes silently after idle_timeout.
 *   5. http_session_destroy(&s).
 *
 * Bad input gets a response and a closed connection, never a crash:
 * malformed -> 400, headers over max_header_bytes -> 431, a body over
 * max_body_bytes -> 413, a request too slow -> 408.
 */
#ifndef COPPER_NET_HTTP_H
#define COPPER_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <copper.h>

#define HTTP_API __attribute__((visibility("hidden")))

/* Defaults for the zero fields of co_http_config. */
#define HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define HTTP_DEFAULT_REQUEST_TIMEOUT ((int64_t)10 * 1000000000)
#define HTTP_DEFAULT_IDLE_TIMEOUT ((int64_t)60 * 1000000000)
#define HTTP_DEFAULT_WRITE_TIMEOUT ((int64_t)10 * 1000000000)

#define HTTP_OUT_FLUSH 65536           /* write out once this much is queued */
#define HTTP_LINGER_NS 500000000       /* lingering close: at most 0.5 s */
#define HTTP_LINGER_BYTES (256 * 1024) /* ... and this much input dropped */

/* Fills the zero fields of cfg with the defaults. */
HTTP_API void http_config_defaults(co_http_config *cfg);

/* ------------------------------------------------------------------------
 * Inside the server core only: http_parse.c, the request parser glue
 * (http.c feeds it bytes and runs the handler on each complete request)
 * ---------------------------------------------------------------------- */

#include <http_parser.h>

/* A growable byte buffer. */
struct http_buf {
	char *p;    /* the bytes (malloc), or NULL */
	size_t len; /* used */
	size_t cap; /* allocated */
};

HTTP_API int http_buf_append(struct http_buf *b, const void *data, size_t len);
HTTP_API void http_buf_free(struct http_buf *b);

/* Offsets of one header in the arena. */
struct http_hdr_off {
	size_t name;  /* offset of the NUL-terminated name */
	size_t value; /* offset of the NUL-terminated value */
};

/* One request being parsed, and the finished request. */
struct http_msg {
	http_parser parser;           /* paused at each complete request */
	size_t max_header;            /* from the config */
	size_t max_body;              /* from the config */
	struct http_buf arena;        /* URL, names, values, NUL-separated */
	struct http_hdr_off *hdrs;    /* header offsets into arena */
	size_t nhdrs;                 /* used */
	size_t hdr_cap;               /* allocated */
	co_http_header *req_hdrs; /* pointers, built at completion */
	size_t req_hdr_cap;           /* allocated */
	struct http_buf body;         /* de-chunked body */
	int last;                     /* last callback: 0 none/url, 1 field, 2 value */
	bool started;                 /* a request's first byte was parsed */
	bool complete;                /* req is ready; parser paused */
	int error_status;             /* 400, 413 or 431: answer and close */
	co_http_request req;      /* valid while complete */
};

HTTP_API void http_msg_init(struct http_msg *m, size_t max_header,
			    size_t max_body);
HTTP_API void http_msg_destroy(struct http_msg *m);
/* Parses up to len bytes; returns how many it used.  Afterwards either
 * m->complete (handle m->req, then http_msg_next), m->error_status, or
 * all bytes were used and more are needed. */
HTTP_API size_t http_msg_feed(struct http_msg *m, const char *data,
			      size_t len);
/* After the handler: forget the request, resume parsing. */
HTTP_API void http_msg_next(struct http_msg *m);

/* ------------------------------------------------------------------------
 * The session layer (http_core.c)
 * ---------------------------------------------------------------------- */

/* The handler's writer; one per session, reused for every request. */
struct co_http_response {
	int status;                  /* 200 unless set */
	bool close;                  /* Connection: close asked for */
	bool deferred;               /* the answer comes later */
	struct http_buf headers;     /* "Name: value\r\n" lines */
	struct http_buf body;
	struct http_session *session;
};

struct http_session {
	const co_http_config *cfg;   /* the server's */
	struct http_msg msg;         /* the request being parsed */
	co_http_response w;          /* the handler's writer */
	struct http_buf out;         /* answers not yet written */
	bool closing;                /* the server shuts down: answers
					say Connection: close */
	time_t date_sec;             /* second of date[] */
	char date[40];               /* "Date: ...\r\n" */
};

enum http_step {
	HTTP_STEP_MORE,      /* every byte used: read more */
	HTTP_STEP_ANSWERED,  /* one request answered into out: go on */
	HTTP_STEP_CLOSE,     /* answered; write out, then close */
	HTTP_STEP_BAD,       /* error answer in out; write, close gently */
	HTTP_STEP_DEFERRED,  /* the handler answers later (loop driver) */
};

HTTP_API void http_session_init(struct http_session *s,
				const co_http_config *cfg);
HTTP_API void http_session_destroy(struct http_session *s);
/* Parses from data (*used: bytes taken) and answers at most one
 * request; see the protocol above. */
HTTP_API enum http_step http_session_step(struct http_session *s,
					  const char *data, size_t len,
					  size_t *used);
/* After a deferred handler filled s->w: serialises it. */
HTTP_API enum http_step http_session_resume(struct http_session *s);
/* Queues an error answer (400, 408, ...) that closes the connection. */
HTTP_API void http_session_error(struct http_session *s, int status);
/* In a handler on the loop driver: the answer comes later, from the
 * loop's thread, followed by the driver's resume. */
HTTP_API void http_response_defer(co_http_response *w);
HTTP_API struct http_session *http_response_session(co_http_response *w);

/* ------------------------------------------------------------------------
 * The loop driver (http_uv.c): the same server on a libuv loop, for the
 * admin port.  Every call on the loop's thread.
 * ---------------------------------------------------------------------- */
struct uv_loop_s;
struct http_uv_server;

struct http_uv_limits {
	int max_conns;        /* beyond: accepted and closed at once */
};

/* Listens on addr: "host:port" (TCP) or "unix:/path" (mode 0600), and
 * serves cfg's handler on loop.  *err: 0, -EINVAL, -EADDRINUSE, ... */
HTTP_API struct http_uv_server *
http_uv_listen(struct uv_loop_s *loop, const char *addr,
	       const co_http_config *cfg, const struct http_uv_limits *lim,
	       int *err);
/* 1 for "unix:..." and an address on the loopback interface, 0 for
 * another address, -EINVAL for one that does not parse. */
HTTP_API int http_uv_addr_is_loopback(const char *addr);
/* The address bound ("127.0.0.1:6060", "unix:/path"). */
HTTP_API int http_uv_addr(struct http_uv_server *s, char *buf, size_t len);
/* Closes the listener and every connection; frees s once all closed. */
HTTP_API void http_uv_close(struct http_uv_server *s);
/* The deferred answer of w is ready: send it, go on with the next. */
HTTP_API void http_uv_resume(co_http_response *w);

#endif /* COPPER_NET_HTTP_H */
