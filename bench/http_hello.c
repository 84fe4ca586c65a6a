/* SPDX-License-Identifier: MIT */
/*
 * http_hello.c - the HTTP benchmark server: a keep-alive "Hello, World!"
 * server on Copper, loaded by bench/http_run with wrk.
 *
 * Usage: bench_http_hello [--core] [ADDRESS]   (default 127.0.0.1:8080)
 *
 * Default mode is the twin of bench/go/http_raw: one task per connection,
 * reading into a 4 KiB buffer, treating every "\r\n\r\n" as the end of a
 * request (no bodies, the same minimal parsing on both sides), queueing
 * one fixed response per request and writing the batch once the buffer
 * holds no further complete request (pipelining-safe).  --core serves
 * the same body through co_http_serve (http_parser, limits, Date header),
 * to compare with bench/go/http_nethttp.
 *
 * Prints "listening <address>" once ready; runs until killed.
 */
#include <copper.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define BUF 4096

static const char response[] = "HTTP/1.1 200 OK\r\n"
			       "Content-Type: text/plain\r\n"
			       "Content-Length: 13\r\n"
			       "\r\n"
			       "Hello, World!";

/* Answers every complete request in buf[0..len); returns the bytes used
 * and appends the answers to out. */
static size_t answer_all(const char *buf, size_t len, char *out,
			 size_t *out_len, size_t out_cap)
{
	size_t used = 0;
	const char *end;

	while ((end = memmem(buf + used, len - used, "\r\n\r\n", 4))) {
		used = (size_t)(end - buf) + 4;
		if (*out_len + sizeof(response) - 1 <= out_cap) {
			memcpy(out + *out_len, response, sizeof(response) - 1);
			*out_len += sizeof(response) - 1;
		}
	}
	return used;
}

static void task_raw_conn(void *arg)
{
	co_conn *c = arg;
	char in[BUF], out[BUF * 8];
	size_t len = 0;
	ssize_t n;

	while ((n = co_read(c, in + len, sizeof(in) - len)) > 0) {
		size_t out_len = 0, used;
		len += (size_t)n;
		used = answer_all(in, len, out, &out_len, sizeof(out));
		memmove(in, in + used, len - used);
		len -= used;
		if (len == sizeof(in)) /* a request over 4 KiB: drop it */
			break;
		if (out_len && co_write(c, out, out_len) < 0)
			break;
	}
	co_close(c);
}

static void hello(const co_http_request *r, co_http_response *w,
		  void *arg)
{
	(void)r;
	(void)arg;
	co_http_response_header(w, "Content-Type", "text/plain");
	co_http_response_write(w, "Hello, World!", 13);
}

static void serve_core(co_listener *l)
{
	co_http_config cfg = {.handler = hello};
	int err;
	co_http_server *s = co_http_server_new(&cfg, &err);

	if (s)
		co_http_serve(s, l);
	co_http_server_free(s);
}

static bool core_mode;

static void main_task(void *arg)
{
	char bound[128];
	int err;
	co_listener *l = co_listen("tcp", arg, &err);

	if (!l) {
		fprintf(stderr, "http_hello: listen: %s\n", co_strerror(err));
		exit(1);
	}
	co_listener_addr(l, bound, sizeof(bound));
	printf("listening %s\n", bound);
	fflush(stdout);
	if (core_mode) {
		serve_core(l);
		return;
	}
	for (;;) {
		co_conn *c = co_accept(l, &err);
		if (c)
			co_go(task_raw_conn, c);
		else
			co_sleep(1000000);
	}
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:8080";

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--core") == 0)
			core_mode = true;
		else
			addr = argv[i];
	}
	signal(SIGPIPE, SIG_IGN);
	return co_run(main_task, (void *)addr) == 0 ? 0 : 1;
}
