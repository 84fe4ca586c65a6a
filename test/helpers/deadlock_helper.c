/* SPDX-License-Identifier: MIT */
/*
 * deadlock_helper.c - a program that test_deadlock.c runs as a subprocess,
 * because what it tests ends the process: the runtime's deadlock check
 * ("fatal error: all goroutines are asleep - deadlock!", exit status 2).
 *
 * Usage: deadlock_helper <scenario>
 *
 * Every scenario first prints, on stdout, one line per task it is about
 * to block, then blocks them:
 *
 *     task <id> <wait reason>
 *
 * and the test checks that the deadlock report names each of them with
 * that reason.  Scenarios that must deadlock:
 *
 *   chan        task 1 receives from a channel nobody sends on; others
 *               send on an unbuffered channel, receive from and send to a
 *               NULL channel, and select with no cases.
 *   wg          task 1 and two others wait on a wait group whose counter
 *               never drops.
 *   mutex       task 1 holds a mutex and locks it again; two others lock
 *               it too.
 *   sync        rwmutex readers and a writer, a cond waiter, and task 1 in
 *               a select over channels nobody uses.
 *   after-sleep a task sleeps 50 ms, then blocks; task 1 already blocks:
 *               the deadlock is found once the timer has fired.
 *
 * Scenarios that are not deadlocks (exit 0 after printing "ok"):
 *
 *   sleeping    others block forever while one task sleeps 200 ms and
 *               then sends task 1 the value it waits for.
 *   blocking    the same, with a task inside co_blocking (a 200 ms
 *               nanosleep on the thread pool) instead of the sleep.
 *   select-timeout  task 1 selects with a 200 ms timeout while every other
 *               task blocks forever.
 *
 * An alarm ends the program after 20 s, so that a missed deadlock shows as
 * a signal in the test, never as a hang.  Exit status: 2 from the
 * runtime's deadlock report, 0 for the scenarios that finish, 1 for a
 * usage or co_run error.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <copper.h>

/* Kept in globals so that a leak checker sees them reachable. */
static co_chan *never;       /* nobody ever sends or receives here */
static co_chan *unbuf;       /* unbuffered, a sender parks on it */
static co_chan *result;      /* what task 1 waits for, when it comes */
static co_mutex mu;
static co_rwmutex rw;
static co_cond cv;
static co_mutex cmu;
static co_wg wg;
static _Atomic int parked;   /* tasks about to block */

static void announce(uint64_t id, const char *why)
{
	printf("task %llu %s\n", (unsigned long long)id, why);
	fflush(stdout);
}

/* Starts fn as a task and announces it; returns once it has started. */
static void spawn(void (*fn)(void *), void *arg, const char *why)
{
	int before = atomic_load(&parked);
	uint64_t id = co_go(fn, arg);

	if (id == 0) {
		fprintf(stderr, "deadlock_helper: co_go failed\n");
		exit(1);
	}
	announce(id, why);
	while (atomic_load(&parked) == before)
		co_yield();
	/* Let it reach its blocking call. */
	for (int i = 0; i < 10; i++)
		co_yield();
}

static void task_chan_send(void *arg)
{
	int v = 1;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_send(unbuf, &v);
}

static void task_nil_recv(void *arg)
{
	int v;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_recv(NULL, &v);
}

static void task_nil_send(void *arg)
{
	int v = 1;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_chan_send(NULL, &v);
}

static void task_select_none(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_select(NULL, 0, -1);
}

static void task_wg_wait(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_wg_wait(&wg);
}

static void task_mutex_lock(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_mutex_lock(&mu);
}

static void task_rlock(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_rwmutex_rlock(&rw);
}

static void task_wlock(void *arg)
{
	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_rwmutex_lock(&rw);
}

static void task_cond_wait(void *arg)
{
	(void)arg;
	co_mutex_lock(&cmu);
	atomic_fetch_add(&parked, 1);
	co_cond_wait(&cv, &cmu);
}

static void task_sleep_then_block(void *arg)
{
	int v;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_sleep(50 * 1000000LL);
	co_chan_recv(never, &v);
}

static void task_sleep_then_send(void *arg)
{
	int v = 7;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_sleep(200 * 1000000LL);
	co_chan_send(result, &v);
}

static void nap(void *arg)
{
	struct timespec ts = {0, 200 * 1000000L};

	(void)arg;
	nanosleep(&ts, NULL);
}

static void task_blocking_then_send(void *arg)
{
	int v = 7;

	(void)arg;
	atomic_fetch_add(&parked, 1);
	co_blocking(nap, NULL);
	co_chan_send(result, &v);
}

/* Blocks every kind of task that never wakes, for the "not a deadlock"
 * scenarios: the runtime must not report while something can still
 * wake task 1. */
static void block_others(void)
{
	spawn(task_chan_send, NULL, "chan send");
	spawn(task_nil_recv, NULL, "chan receive (nil chan)");
	spawn(task_mutex_lock, NULL, "co_mutex_lock");
	spawn(task_wg_wait, NULL, "co_wg_wait");
}

static void main_task(void *arg)
{
	const char *scenario = arg;
	int v;

	never = co_chan_new(sizeof(int), 0);
	unbuf = co_chan_new(sizeof(int), 0);
	result = co_chan_new(sizeof(int), 0);
	co_mutex_init(&mu);
	co_rwmutex_init(&rw);
	co_cond_init(&cv);
	co_mutex_init(&cmu);
	co_wg_init(&wg);
	co_wg_add(&wg, 1);
	co_mutex_lock(&mu); /* held by task 1 in every scenario */

	if (strcmp(scenario, "chan") == 0) {
		spawn(task_chan_send, NULL, "chan send");
		spawn(task_nil_recv, NULL, "chan receive (nil chan)");
		spawn(task_nil_send, NULL, "chan send (nil chan)");
		spawn(task_select_none, NULL, "select (no cases)");
		announce(co_self(), "chan receive");
		co_chan_recv(never, &v);
	} else if (strcmp(scenario, "wg") == 0) {
		spawn(task_wg_wait, NULL, "co_wg_wait");
		spawn(task_wg_wait, NULL, "co_wg_wait");
		announce(co_self(), "co_wg_wait");
		co_wg_wait(&wg);
	} else if (strcmp(scenario, "mutex") == 0) {
		spawn(task_mutex_lock, NULL, "co_mutex_lock");
		spawn(task_mutex_lock, NULL, "co_mutex_lock");
		announce(co_self(), "co_mutex_lock");
		co_mutex_lock(&mu); /* task 1 holds it already */
	} else if (strcmp(scenario, "sync") == 0) {
		co_rwmutex_lock(&rw); /* held by task 1 */
		spawn(task_rlock, NULL, "co_rwmutex_rlock");
		spawn(task_wlock, NULL, "co_rwmutex_lock");
		spawn(task_cond_wait, NULL, "co_cond_wait");
		co_case cs[2] = {
			{.op = CO_RECV, .chan = never, .elem = &v},
			{.op = CO_SEND, .chan = unbuf, .elem = &v},
		};
		announce(co_self(), "select");
		co_select(cs, 2, -1);
	} else if (strcmp(scenario, "after-sleep") == 0) {
		spawn(task_sleep_then_block, NULL, "chan receive");
		announce(co_self(), "chan receive");
		co_chan_recv(never, &v);
	} else if (strcmp(scenario, "sleeping") == 0) {
		block_others();
		spawn(task_sleep_then_send, NULL, "sleep");
		if (co_chan_recv(result, &v) != 0 || v != 7)
			exit(1);
		printf("ok\n");
		return;
	} else if (strcmp(scenario, "blocking") == 0) {
		block_others();
		spawn(task_blocking_then_send, NULL, "syscall");
		if (co_chan_recv(result, &v) != 0 || v != 7)
			exit(1);
		printf("ok\n");
		return;
	} else if (strcmp(scenario, "select-timeout") == 0) {
		block_others();
		co_case cs[1] = {{.op = CO_RECV, .chan = never, .elem = &v}};
		if (co_select(cs, 1, 200 * 1000000LL) != CO_ETIMEDOUT)
			exit(1);
		printf("ok\n");
		return;
	} else {
		fprintf(stderr, "deadlock_helper: unknown scenario %s\n",
			scenario);
		exit(1);
	}
	/* Reached only if the blocking call above returned. */
	printf("returned\n");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: deadlock_helper <scenario>\n");
		return 1;
	}
	alarm(20);
	int err = co_run(main_task, argv[1]);
	if (err != 0) {
		fprintf(stderr, "deadlock_helper: co_run: %s\n",
			co_strerror(err));
		return 1;
	}
	return 0;
}
