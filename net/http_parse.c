/* SPDX-License-Identifier: MIT */
/*
 * http_parse.c - HTTP/1.1 request parsing for the server core: the glue
 * between http_parser (Debian's libhttp-parser) and co_http_request.
 *
 * How it works.  http_parser is a push parser: it is fed whatever bytes
 * arrived and calls back with pieces (URL, header names and values, body
 * chunks), which may be split anywhere across reads.  The callbacks copy
 * the pieces into one arena (URL, then name\0value\0 pairs) and the body
 * into its own buffer, so the connection's input buffer can be reused at
 * once.  At the end of a request on_message_complete pauses the parser:
 * http_msg_feed returns with m->complete and the bytes it used, the
 * server runs the handler, and http_msg_next resumes the parser on the
 * rest of the buffer — which is how pipelined requests are taken one at a
 * time, in order.
 *
 * Limits are enforced here, while parsing, so that a hostile client never
 * makes us buffer more than the limits: the arena may not grow beyond
 * max_header (-> 431; http_parser's own HPE_HEADER_OVERFLOW at 80 KiB
 * maps there too), a declared Content-Length or a de-chunked body beyond
 * max_body gives 413, any other parse error 400.
 *
 * Rejected alternatives: pointing into the input buffer instead of
 * copying (a header split across two reads would need the buffer to
 * grow and keep old bytes; headers are small, the copy is cheap);
 * writing our own parser (http_parser is maintained, fuzzed and in
 * Debian).
 *
 * Invariants: the arena and the body only grow between on_message_begin
 * and on_message_complete; pointers into them (m->req) are built at
 * completion and stay valid until http_msg_next.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http.h"

enum { LAST_URL = 0, LAST_FIELD = 1, LAST_VALUE = 2 };

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

int http_buf_append(struct http_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->len + len)
			cap *= 2;
		if (!(p = realloc(b->p, cap)))
			return CO_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

void http_buf_free(struct http_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void http_msg_init(struct http_msg *m, size_t max_header, size_t max_body)
{
	memset(m, 0, sizeof(*m));
	http_parser_init(&m->parser, HTTP_REQUEST);
	m->parser.data = m;
	m->max_header = max_header;
	m->max_body = max_body;
}

void http_msg_destroy(struct http_msg *m)
{
	http_buf_free(&m->arena);
	http_buf_free(&m->body);
	free(m->hdrs);
	free(m->req_hdrs);
}

size_t http_msg_feed(struct http_msg *m, const char *data, size_t len)
{
	size_t n;
	enum http_errno e;

	if (m->complete || m->error_status || len == 0)
		return 0; /* len 0 would tell http_parser "end of stream" */
	n = http_parser_execute(&m->parser, &settings, data, len);
	e = HTTP_PARSER_ERRNO(&m->parser);
	if (e == HPE_OK || e == HPE_PAUSED)
		return n;
	if (!m->error_status) /* set by a callback for 413/431 */
		m->error_status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
	return n;
}

void http_msg_next(struct http_msg *m)
{
	m->complete = false;
	m->started = false;
	http_parser_pause(&m->parser, 0);
}

/* ------------------------------------------------------------------------
 * Statics: the arena
 * ---------------------------------------------------------------------- */

/* Appends to the arena within max_header; sets 431 (or 400) if not. */
static int arena_put(struct http_msg *m, const void *data, size_t len)
{
	if (m->arena.len + len > m->max_header) {
		m->error_status = 431;
		return -1;
	}
	if (http_buf_append(&m->arena, data, len) < 0) {
		m->error_status = 400;
		return -1;
	}
	return 0;
}

static int arena_end_piece(struct http_msg *m)
{
	return arena_put(m, "", 1);
}

static int hdr_push(struct http_msg *m)
{
	if (m->nhdrs == m->hdr_cap) {
		size_t cap = m->hdr_cap ? m->hdr_cap * 2 : 16;
		struct http_hdr_off *h = realloc(m->hdrs, cap * sizeof(*h));
		if (!h)
			return m->error_status = 400, -1;
		m->hdrs = h;
		m->hdr_cap = cap;
	}
	m->hdrs[m->nhdrs].name = m->arena.len;
	m->hdrs[m->nhdrs].value = m->arena.len;
	m->nhdrs++;
	return 0;
}

/* Splits the URL (arena offset 0) into path and query, NUL-terminated. */
static int split_url(struct http_msg *m)
{
	char *url = m->arena.p;
	struct http_parser_url u;
	size_t ulen = strlen(url), path_off, query_off;

	if (url[0] == '/' || (url[0] == '*' && url[1] == '\0')) {
		char *q = strchr(url, '?');
		if (q)
			*q = '\0';
		path_off = 0;
		query_off = q ? (size_t)(q + 1 - url) : ulen;
	} else { /* absolute-form: http://host/path?query */
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, ulen, 0, &u) != 0)
			return -1;
		path_off = m->arena.len;
		if (arena_put(m, u.field_set & (1 << UF_PATH)
					 ? url + u.field_data[UF_PATH].off : "/",
			      u.field_set & (1 << UF_PATH)
				      ? u.field_data[UF_PATH].len : 1) < 0 ||
		    arena_end_piece(m) < 0)
			return -1;
		query_off = m->arena.len;
		url = m->arena.p; /* may have moved */
		if ((u.field_set & (1 << UF_QUERY) &&
		     arena_put(m, url + u.field_data[UF_QUERY].off,
			       u.field_data[UF_QUERY].len) < 0) ||
		    arena_end_piece(m) < 0)
			return -1;
	}
	/* Offsets until completion, when the arena stops moving. */
	m->req.path = (const char *)(uintptr_t)path_off;
	m->req.query = (const char *)(uintptr_t)query_off;
	return 0;
}

/* ------------------------------------------------------------------------
 * Statics: http_parser callbacks
 * ---------------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
	struct http_msg *m = p->data;

	m->arena.len = 0;
	m->body.len = 0;
	m->nhdrs = 0;
	m->last = LAST_URL;
	m->started = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	return arena_put(p->data, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_msg *m = p->data;

	if (m->last != LAST_FIELD) { /* a new header: end the URL/value */
		if (arena_end_piece(m) < 0 || hdr_push(m) < 0)
			return -1;
		m->last = LAST_FIELD;
	}
	return arena_put(m, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_msg *m = p->data;

	if (m->last != LAST_VALUE) { /* end the name */
		if (arena_end_piece(m) < 0)
			return -1;
		m->hdrs[m->nhdrs - 1].value = m->arena.len;
		m->last = LAST_VALUE;
	}
	return arena_put(m, at, len);
}

static int on_headers_complete(http_parser *p)
{
	struct http_msg *m = p->data;

	if (m->last == LAST_FIELD) { /* a name without a value */
		if (arena_end_piece(m) < 0)
			return -1;
		m->hdrs[m->nhdrs - 1].value = m->arena.len;
	}
	if (arena_end_piece(m) < 0)
		return -1;
	if (p->method == HTTP_CONNECT || split_url(m) < 0) {
		m->error_status = m->error_status ? m->error_status : 400;
		return -1;
	}
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > m->max_body) {
		m->error_status = 413;
		return -1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_msg *m = p->data;

	if (m->body.len + len > m->max_body) {
		m->error_status = 413;
		return -1;
	}
	if (http_buf_append(&m->body, at, len) < 0) {
		m->error_status = 413;
		return -1;
	}
	return 0;
}

/* Builds m->req from the arena offsets and pauses the parser. */
static int on_message_complete(http_parser *p)
{
	struct http_msg *m = p->data;
	co_http_request *r = &m->req;

	if (m->nhdrs > m->req_hdr_cap) {
		co_http_header *h = realloc(m->req_hdrs, m->nhdrs * sizeof(*h));
		if (!h)
			return m->error_status = 400, -1;
		m->req_hdrs = h;
		m->req_hdr_cap = m->nhdrs;
	}
	for (size_t i = 0; i < m->nhdrs; i++) {
		m->req_hdrs[i].name = m->arena.p + m->hdrs[i].name;
		m->req_hdrs[i].value = m->arena.p + m->hdrs[i].value;
	}
	r->method = http_method_str((enum http_method)p->method);
	r->path = m->arena.p + (uintptr_t)r->path;
	r->query = m->arena.p + (uintptr_t)r->query;
	r->headers = m->req_hdrs;
	r->nheaders = m->nhdrs;
	r->body = m->body.len ? m->body.p : "";
	r->body_len = m->body.len;
	r->version_minor = p->http_minor;
	r->keep_alive = http_should_keep_alive(p) != 0;
	m->complete = true;
	http_parser_pause(p, 1);
	return 0;
}
