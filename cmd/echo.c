/* SPDX-License-Identifier: MIT */
/*
 * echo.c - a TCP echo server: one task per connection, each echoing what
 * it reads until the client hangs up.
 *
 * Usage: echo [ADDRESS]      (default 127.0.0.1:7007; "unix" paths work
 *                             with COPPER_ECHO_NET=unix)
 * Try:   echo & printf 'hi\n' | nc -q1 127.0.0.1 7007
 *
 * Every read and write parks only its own task; idle clients cost a
 * parked task each (4 KiB), not a thread.  A client silent for a minute
 * is dropped by its read deadline.
 */
#include <copper.h>
#include <stdio.h>
#include <stdlib.h>

#define IDLE_NS (60 * CO_SECOND)

static void task_echo(void *arg)
{
	co_conn *c = arg;
	char buf[16384];
	ssize_t n;

	for (;;) {
		co_set_deadline(c, co_now() + IDLE_NS);
		if ((n = co_read(c, buf, sizeof(buf))) <= 0)
			break;
		if (co_write(c, buf, (size_t)n) < 0)
			break;
	}
	co_close(c);
}

static void main_task(void *arg)
{
	const char *addr = arg;
	const char *net = getenv("COPPER_ECHO_NET");
	char bound[256];
	int err;
	co_listener *l = co_listen(net ? net : "tcp", addr, &err);

	if (!l) {
		fprintf(stderr, "echo: listen %s: %s\n", addr, co_strerror(err));
		return;
	}
	co_listener_addr(l, bound, sizeof(bound));
	printf("echo: listening on %s\n", bound);
	fflush(stdout);
	for (;;) {
		co_conn *c = co_accept(l, &err);
		if (c) {
			co_go_named("echo conn", task_echo, c);
		} else if (err == CO_EMFILE) {
			co_sleep(10 * CO_MILLISECOND); /* wait for descriptors */
		} else {
			fprintf(stderr, "echo: accept: %s\n", co_strerror(err));
			break;
		}
	}
	co_listener_close(l);
}

int main(int argc, char **argv)
{
	int err = co_run(main_task, argc > 1 ? argv[1] : "127.0.0.1:7007");

	if (err)
		fprintf(stderr, "co_run: %s\n", co_strerror(err));
	return err ? 1 : 0;
}
