/* SPDX-License-Identifier: MIT */
/*
 * http.h - the internal HTTP/1.1 server core: the admin port and the
 * examples serve through it.  Not part of the public API (docs/http.md
 * describes it for Copper's own programs).
 *
 * Protocol:
 *   1. s = http_server_new(&cfg, &err) with a handler and, optionally,
 *      limits (zero fields take the defaults below).
 *   2. http_server_serve(s, l) in a task: accepts on l and runs each
 *      connection in its own task ("http conn"), where the handler runs,
 *      one request at a time, responses in request order (keep-alive and
 *      pipelining).  It returns once http_server_shutdown has been called
 *      and every connection task has finished.
 *   3. http_server_shutdown(s) from any task: closes l, wakes every
 *      connection (an idle one closes at once, a busy one after its
 *      current response).  Then http_server_free(s) after serve returned.
 *
 * Bad input gets a response and a closed connection, never a crash:
 * malformed -> 400, headers over max_header_bytes -> 431, a body over
 * max_body_bytes -> 413, a request not complete within request_timeout
 * of its first byte -> 408.  An idle keep-alive connection closes
 * silently after idle_timeout.
 */
#ifndef COPPER_NET_HTTP_H
#define COPPER_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <copper.h>

#define HTTP_API __attribute__((visibility("hidden")))

/* Defaults for the zero fields of struct http_config. */
#define HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define HTTP_DEFAULT_REQUEST_TIMEOUT ((int64_t)10 * 1000000000)
#define HTTP_DEFAULT_IDLE_TIMEOUT ((int64_t)60 * 1000000000)
#define HTTP_DEFAULT_WRITE_TIMEOUT ((int64_t)10 * 1000000000)

/* One request header; both strings NUL-terminated, valid in the handler. */
struct http_header {
	const char *name;  /* as sent ("Content-Type") */
	const char *value; /* leading/trailing blanks removed by the parser */
};

/* What the handler reads.  Everything is valid until it returns. */
struct http_request {
	const char *method;                /* "GET", "POST", ... */
	const char *path;                  /* "/a/b", not percent-decoded */
	const char *query;                 /* after '?', "" if none */
	const struct http_header *headers; /* in arrival order */
	size_t nheaders;
	const char *body;                  /* de-chunked; "" if none */
	size_t body_len;
	int version_minor;                 /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive;                   /* the client allows another request */
};

/* The handler's response writer (opaque): status 200 unless set. */
struct http_response;

typedef void (*http_handler)(const struct http_request *req,
			     struct http_response *w, void *arg);

struct http_config {
	http_handler handler;     /* required */
	void *arg;                /* passed to handler */
	size_t max_header_bytes;  /* request line + headers; 431 beyond */
	size_t max_body_bytes;    /* 413 beyond */
	int64_t request_timeout;  /* ns from a request's first byte to its
				     last; 408 beyond */
	int64_t idle_timeout;     /* ns a kept-alive connection may idle */
	int64_t write_timeout;    /* ns to write a batch of responses */
};

struct http_server;

/* http.c: the server */
HTTP_API struct http_server *http_server_new(const struct http_config *cfg,
					     int *err);
HTTP_API int http_server_serve(struct http_server *s, co_listener *l);
HTTP_API void http_server_shutdown(struct http_server *s);
HTTP_API void http_server_free(struct http_server *s);

/* http.c: requests and responses, from inside the handler */
/* A request header's value by name (case-insensitive), or NULL. */
HTTP_API const char *http_request_header(const struct http_request *req,
					 const char *name);
HTTP_API void http_response_status(struct http_response *w, int status);
/* Adds a response header; Content-Length and Connection are the
 * server's (a "Connection: close" here closes after the response). */
HTTP_API int http_response_header(struct http_response *w, const char *name,
				  const char *value);
/* Appends to the body (sent with a Content-Length after the handler). */
HTTP_API int http_response_write(struct http_response *w, const void *data,
				 size_t len);
/* The reason phrase of a status ("Not Found"); "Unknown" otherwise. */
HTTP_API const char *http_status_text(int status);

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
	struct http_header *req_hdrs; /* pointers, built at completion */
	size_t req_hdr_cap;           /* allocated */
	struct http_buf body;         /* de-chunked body */
	int last;                     /* last callback: 0 none/url, 1 field, 2 value */
	bool started;                 /* a request's first byte was parsed */
	bool complete;                /* req is ready; parser paused */
	int error_status;             /* 400, 413 or 431: answer and close */
	struct http_request req;      /* valid while complete */
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

#endif /* COPPER_NET_HTTP_H */
