/* SPDX-License-Identifier: MIT */
/*
 * dump_helper.c - a program that test_dump.c runs as a subprocess, so that
 * task snapshots are asked for the way an operator asks: kill -USR1 <pid>
 * on a real process, which must answer and keep running; and so that the
 * runtime's deadlock exit, which ends the process, can be watched.
 *
 * Usage: dump_helper park
 *        dump_helper early
 *        dump_helper deadlock
 *
 * park      Task 1 starts three tasks parked in task_helper_recv on one
 *           channel, one sleeping in task_helper_sleep and one named
 *           "helper-named" parked in task_helper_named, waits until all
 *           are parked, then reads commands from stdin with co_blocking
 *           (so it shows as "syscall"), printing "ready" on stdout from
 *           the blocking pool before the first read: "ping" prints
 *           "pong"; end of input closes the channel, waits for the
 *           receivers, prints "bye" and returns.  The helper itself
 *           installs no signal handler: whatever happens on SIGUSR1 is
 *           co_run's doing (COPPER_SIGDUMP, COPPER_DUMP_DIR).
 * early     Task 1 prints "sigusr1=handled" or "sigusr1=default": what
 *           SIGUSR1's action is at the first line of main_fn.
 * deadlock  Task 1 starts two tasks parked in task_helper_deadlocked and
 *           then waits on a channel nobody sends on: every task is
 *           blocked, and the runtime ends the process with Go's message
 *           and a dump of every task.
 *
 * Exit status: 0 when co_run returned 0; otherwise 1, after printing
 * "co_run=<code>" on stdout; 2 from the runtime's fatal error; 64 for a
 * usage error.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <copper.h>

#include "runtime/testing.h"

#define NRECV 3

static co_chan *chan_park;      /* the parked tasks wait here */
static co_chan *chan_never;     /* nobody ever sends here */
static _Atomic int returned;    /* receivers whose wait ended */
static uint64_t ids[NRECV + 2]; /* the tasks started by task 1 */

static void task_helper_recv(void *arg)
{
	(void)arg;
	co_chan_recv(chan_park, NULL);
	atomic_fetch_add(&returned, 1);
}

static void task_helper_named(void *arg)
{
	(void)arg;
	co_chan_recv(chan_park, NULL);
	atomic_fetch_add(&returned, 1);
}

static void task_helper_sleep(void *arg)
{
	(void)arg;
	co_sleep(3600 * (int64_t)1000000000);
	atomic_fetch_add(&returned, 1); /* never: abandoned at exit */
}

static void task_helper_deadlocked(void *arg)
{
	(void)arg;
	co_chan_recv(chan_never, NULL);
	atomic_fetch_add(&returned, 1);
}

static bool parked(uint64_t id, const char *want)
{
	char status[64];
	return testing_task_status(id, status, sizeof(status), NULL, NULL, 0) == 0 &&
	       strcmp(status, want) == 0;
}

static bool all_parked(void)
{
	for (int i = 0; i < NRECV; i++)
		if (!parked(ids[i], "chan receive"))
			return false;
	return parked(ids[NRECV], "chan receive") &&
	       parked(ids[NRECV + 1], "sleep");
}

struct line {
	char buf[256];
	bool eof;
};

/* On the blocking pool.  The first call says "ready": task 1 is then
 * parked in co_blocking, so every task is where a dump should find it. */
static void read_line(void *arg)
{
	static bool ready;
	struct line *l = arg;

	if (!ready) {
		ready = true;
		printf("ready\n");
		fflush(stdout);
	}
	l->eof = fgets(l->buf, sizeof(l->buf), stdin) == NULL;
}

static void task_main_park(void *arg)
{
	struct line l;
	(void)arg;

	chan_park = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < NRECV; i++)
		ids[i] = co_go(task_helper_recv, NULL);
	ids[NRECV] = co_go_named("helper-named", task_helper_named, NULL);
	ids[NRECV + 1] = co_go(task_helper_sleep, NULL);
	while (!all_parked())
		co_sleep(1000000);
	for (;;) {
		co_blocking(read_line, &l);
		if (l.eof)
			break;
		if (strcmp(l.buf, "ping\n") == 0)
			printf("pong\n");
		else
			printf("unknown command: %s", l.buf);
		fflush(stdout);
	}
	co_chan_close(chan_park);
	while (atomic_load(&returned) != NRECV + 1)
		co_sleep(1000000);
	co_chan_free(chan_park);
	printf("bye\n");
	fflush(stdout);
}

static void task_main_early(void *arg)
{
	struct sigaction sa;
	(void)arg;

	sigaction(SIGUSR1, NULL, &sa);
	printf("sigusr1=%s\n", sa.sa_handler == SIG_DFL ? "default" : "handled");
	fflush(stdout);
}

static void task_main_deadlock(void *arg)
{
	(void)arg;
	chan_never = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < 2; i++)
		ids[i] = co_go(task_helper_deadlocked, NULL);
	co_chan_recv(chan_never, NULL);
	printf("deadlock not detected\n");
}

int main(int argc, char **argv)
{
	void (*main_fn)(void *);
	int err;

	if (argc != 2)
		goto usage;
	if (strcmp(argv[1], "park") == 0)
		main_fn = task_main_park;
	else if (strcmp(argv[1], "early") == 0)
		main_fn = task_main_early;
	else if (strcmp(argv[1], "deadlock") == 0)
		main_fn = task_main_deadlock;
	else
		goto usage;
	err = co_run(main_fn, NULL);
	if (err != 0) {
		printf("co_run=%d\n", err);
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: dump_helper park|early|deadlock\n");
	return 64;
}
