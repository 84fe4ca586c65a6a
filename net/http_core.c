/* SPDX-License-Identifier: MIT */
/*
 * http_core.c - the transport-free HTTP/1.1 server layer: request bytes
 * in, response bytes out.  Two drivers move the bytes: http.c on tasks
 * (co_http_serve, the public server) and http_uv.c on a libuv loop (the
 * admin port, on the profiler's service thread).
 *
 * How it works.  A driver owns one struct http_session per connection
 * and calls http_session_step with the bytes it has read.  The step
 * feeds the parser (http_parse.c) until a request is complete, runs the
 * handler, and appends the serialised answer (status line, Date,
 * Content-Length, the handler's headers, the body) to the session's out
 * buffer; it returns what the driver must do next: read more, go on,
 * write out and close, answer an error and close gently, or wait for a
 * deferred answer.  The driver decides when to write out (a pipelined
 * burst costs one write) and how to keep time: the core never blocks,
 * reads a clock or touches a descriptor.
 *
 * A handler on the loop driver must not block the loop, so it may defer
 * its answer (co_http_response_defer is not public: only the admin port
 * needs it): the step returns HTTP_STEP_DEFERRED with the request still
 * current, the handler's continuation fills the response later on the
 * same thread, and http_session_resume serialises it and lets the
 * driver go on with the next request.
 *
 * Rejected: one server loop written twice, once per transport (the bugs
 * of one would not be fixed in the other: limits, pipelining order, HEAD
 * and 204 bodies, error answers); a callback-driven core that calls the
 * transport (the task driver wants to block in co_read, the loop driver
 * must not: a core that returns a step fits both).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/http.h"

void http_session_init(struct http_session *s, const co_http_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->w.session = s;
	http_msg_init(&s->msg, cfg->max_header_bytes, cfg->max_body_bytes);
}

void http_session_destroy(struct http_session *s)
{
	http_msg_destroy(&s->msg);
	http_buf_free(&s->w.headers);
	http_buf_free(&s->w.body);
	http_buf_free(&s->out);
}

/* Appends the status line and headers of one response to out. */
static int put_head(struct http_session *s, int status, size_t body_len,
		    bool close, const struct http_buf *extra)
{
	char line[160];
	time_t now = time(NULL);
	int n;

	if (now != s->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(s->date, sizeof(s->date),
			 "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		s->date_sec = now;
	}
	n = snprintf(line, sizeof(line),
		     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s", status,
		     co_http_status_text(status), body_len, s->date,
		     close ? "Connection: close\r\n" : "");
	if (http_buf_append(&s->out, line, (size_t)n) < 0 ||
	    http_buf_append(&s->out, extra->p, extra->len) < 0 ||
	    http_buf_append(&s->out, "\r\n", 2) < 0)
		return CO_ENOMEM;
	return 0;
}

/* Serialises the handler's answer to the current request; the step. */
static enum http_step session_answer(struct http_session *s)
{
	co_http_response *w = &s->w;
	const co_http_request *r = &s->msg.req;
	bool head = strcmp(r->method, "HEAD") == 0;
	bool close = w->close || !r->keep_alive || s->closing;

	if (w->status < 200 || w->status == 204 || w->status == 304)
		w->body.len = 0;
	if (put_head(s, w->status, w->body.len, close, &w->headers) < 0 ||
	    (!head && http_buf_append(&s->out, w->body.p, w->body.len) < 0))
		close = true;
	http_msg_next(&s->msg);
	return close ? HTTP_STEP_CLOSE : HTTP_STEP_ANSWERED;
}

enum http_step http_session_step(struct http_session *s, const char *data,
				 size_t len, size_t *used)
{
	struct http_msg *m = &s->msg;
	co_http_response *w = &s->w;

	*used = 0;
	if (w->deferred)
		return HTTP_STEP_DEFERRED;
	if (!m->complete)
		*used = http_msg_feed(m, data, len);
	if (m->error_status) {
		http_session_error(s, m->error_status);
		return HTTP_STEP_BAD;
	}
	if (!m->complete)
		return HTTP_STEP_MORE;
	w->status = 200;
	w->close = false;
	w->headers.len = 0;
	w->body.len = 0;
	s->cfg->handler(&m->req, w, s->cfg->arg);
	if (w->deferred)
		return HTTP_STEP_DEFERRED;
	return session_answer(s);
}

enum http_step http_session_resume(struct http_session *s)
{
	s->w.deferred = false;
	return session_answer(s);
}

void http_session_error(struct http_session *s, int status)
{
	const char *text = co_http_status_text(status);
	struct http_buf extra = {0};

	http_buf_append(&extra, "Content-Type: text/plain; charset=utf-8\r\n", 41);
	if (put_head(s, status, strlen(text) + 1, true, &extra) == 0 &&
	    http_buf_append(&s->out, text, strlen(text)) == 0)
		http_buf_append(&s->out, "\n", 1);
	http_buf_free(&extra);
}

/* ------------------------------------------------------------------------
 * API: requests and responses, from inside the handler
 * ---------------------------------------------------------------------- */

CO_EXTERN const char *co_http_request_header(const co_http_request *req,
					     const char *name)
{
	if (!req || !name)
		return NULL;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

CO_EXTERN int co_http_response_status(co_http_response *w, int status)
{
	if (!w || status < 100 || status > 999)
		return CO_EINVAL;
	w->status = status;
	return 0;
}

CO_EXTERN int co_http_response_header(co_http_response *w, const char *name,
				      const char *value)
{
	if (!w || !name || !value || !*name || strpbrk(name, "\r\n: \t") ||
	    strpbrk(value, "\r\n"))
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

CO_EXTERN int co_http_response_write(co_http_response *w, const void *data,
				     size_t len)
{
	if (!w || (!data && len))
		return CO_EINVAL;
	return http_buf_append(&w->body, data, len);
}

void http_response_defer(co_http_response *w)
{
	w->deferred = true;
}

struct http_session *http_response_session(co_http_response *w)
{
	return w->session;
}

CO_EXTERN const char *co_http_status_text(int status)
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
