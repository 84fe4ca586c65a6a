/* SPDX-License-Identifier: MIT */
/*
 * hello_http.c - a hello-world HTTP/1.1 server on Copper's HTTP server
 * (co_http_*): keep-alive, pipelining, limits, one task per connection.
 *
 * Usage: hello_http [ADDRESS]   (default: $PORT as ":$PORT", else
 *                                127.0.0.1:8080)
 * Try:   hello_http & curl -s http://127.0.0.1:8080/hello?name=you
 */
#include <copper.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void hello(const co_http_request *r, co_http_response *w,
		  void *arg)
{
	const char *name = "world";
	char body[256];
	int n;

	(void)arg;
	if (strncmp(r->query, "name=", 5) == 0 && r->query[5])
		name = r->query + 5;
	if (strcmp(r->path, "/") != 0 && strcmp(r->path, "/hello") != 0) {
		co_http_response_status(w, 404);
		co_http_response_write(w, "not found\n", 10);
		return;
	}
	n = snprintf(body, sizeof(body), "hello, %.200s\n", name);
	co_http_response_header(w, "Content-Type", "text/plain; charset=utf-8");
	co_http_response_write(w, body, (size_t)n);
}

static void main_task(void *arg)
{
	const char *addr = arg;
	co_http_config cfg = {.handler = hello};
	char bound[256];
	int err;
	co_http_server *s = co_http_server_new(&cfg, &err);
	co_listener *l = s ? co_listen("tcp", addr, &err) : NULL;

	if (!l) {
		fprintf(stderr, "hello_http: %s: %s\n", addr, co_strerror(err));
		co_http_server_free(s);
		return;
	}
	co_listener_addr(l, bound, sizeof(bound));
	printf("hello_http: serving http://%s/\n", bound);
	fflush(stdout);
	co_http_serve(s, l);
	co_http_server_free(s);
}

int main(int argc, char **argv)
{
	static char addr[64];
	const char *port = getenv("PORT");
	int err;

	if (argc > 1)
		snprintf(addr, sizeof(addr), "%s", argv[1]);
	else if (port && *port)
		snprintf(addr, sizeof(addr), ":%s", port);
	else
		snprintf(addr, sizeof(addr), "127.0.0.1:8080");
	signal(SIGPIPE, SIG_IGN); /* belt and braces: net/ uses MSG_NOSIGNAL */
	err = co_run(main_task, addr);
	if (err)
		fprintf(stderr, "co_run: %s\n", co_strerror(err));
	return err ? 1 : 0;
}
