/* SPDX-License-Identifier: MIT */
/*
 * admin_helper.c - a program test_admin.c runs as a subprocess and talks
 * to over the admin port with real clients (curl, go tool pprof).
 *
 * Usage: admin_helper [spin] [ADDR]
 *
 * Task 1 starts ADMIN_LEAKS tasks parked for good in admin_leak_recv
 * (three of them labelled {"role":"leak"}) and one in admin_leak_sleep,
 * then, unless COPPER_ADMIN started the port already, calls
 * co_admin_listen(ADDR or "127.0.0.1:0", NULL).  It prints "listening
 * <addr>" (co_admin_addr) and then:
 *   - default: waits until stdin ends (a plain thread reads it), then
 *     returns;
 *   - spin: starts one task per worker that spins without ever yielding
 *     (admin_spin) until stdin ends, so that every worker is busy while
 *     the test pulls profiles.
 * Exit status: 0, or 1 after printing "co_run=<code>" or
 * "listen=<code>".
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <copper.h>

#define ADMIN_LEAKS 20

static co_chan *never;             /* nobody sends here */
static _Atomic bool stdin_done;    /* stdin ended */
static bool spin;
static const char *addr = "127.0.0.1:0";
static co_wg spinners;

__attribute__((noinline)) static void admin_leak_recv(void *arg)
{
	int v;
	(void)arg;
	co_chan_recv(never, &v);
}

__attribute__((noinline)) static void admin_leak_labelled(void *arg)
{
	co_labels_set("role", "leak", NULL);
	admin_leak_recv(arg);
}

__attribute__((noinline)) static void admin_leak_sleep(void *arg)
{
	(void)arg;
	co_sleep(3600 * CO_SECOND);
}

__attribute__((noinline)) static void admin_spin(void *arg)
{
	volatile unsigned long n = 0;
	(void)arg;
	while (!atomic_load_explicit(&stdin_done, memory_order_relaxed))
		n++;
	co_wg_done(&spinners);
}

static void *stdin_reader(void *arg)
{
	char buf[256];
	(void)arg;
	while (read(0, buf, sizeof(buf)) > 0)
		;
	atomic_store(&stdin_done, true);
	return NULL;
}

static void main_task(void *arg)
{
	char bound[256];
	int err;
	(void)arg;

	never = co_chan_new(sizeof(int), 0);
	co_wg_init(&spinners);
	for (int i = 0; i < ADMIN_LEAKS; i++)
		co_go(i < 3 ? admin_leak_labelled : admin_leak_recv, NULL);
	co_go(admin_leak_sleep, NULL);
	if (co_admin_addr(bound, sizeof(bound)) != 0) {
		if ((err = co_admin_listen(addr, NULL)) != 0) {
			printf("listen=%d\n", err);
			fflush(stdout);
			exit(1);
		}
		co_admin_addr(bound, sizeof(bound));
	}
	while (co_num_tasks() < ADMIN_LEAKS + 2)
		co_yield();
	co_sleep(20 * CO_MILLISECOND); /* every leak parked */
	if (spin) {
		const char *procs = getenv("COPPER_PROCS");
		int n = procs ? atoi(procs) : 2;
		co_wg_add(&spinners, n);
		for (int i = 0; i < n; i++)
			co_go(admin_spin, NULL);
	}
	printf("listening %s\n", bound);
	fflush(stdout);
	while (!atomic_load(&stdin_done))
		co_sleep(10 * CO_MILLISECOND);
	if (spin)
		co_wg_wait(&spinners);
}

int main(int argc, char **argv)
{
	pthread_t t;
	int err;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "spin") == 0)
			spin = true;
		else
			addr = argv[i];
	}
	pthread_create(&t, NULL, stdin_reader, NULL);
	pthread_detach(t);
	if ((err = co_run(main_task, NULL)) != 0) {
		printf("co_run=%d\n", err);
		return 1;
	}
	return 0;
}
