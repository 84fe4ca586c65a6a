/* SPDX-License-Identifier: MIT */
/*
 * service.c - the profiler's service thread: one thread with its own
 * libuv loop, where everything the profiler does for an outside asker
 * runs, so that nothing of it needs a worker.
 *
 * What runs here: signal dumps and the watchdog (dump.c), the admin
 * port's connections and handlers (net/admin.c), and whatever a part
 * posts with service_call.  A worker may be stuck in a task that never
 * yields, or every task deadlocked: that is when an engineer asks for a
 * profile, and the answer must not wait for a worker.
 *
 * How it works.  service_start (idempotent, from any thread) creates the
 * loop and the thread on first need.  service_call(fn, arg) queues a
 * call under a mutex and wakes the loop with uv_async_send; the loop
 * runs the queue in order.  service_call_sync waits for the call to
 * finish (or runs it inline on the service thread itself).  The thread
 * blocks every signal except those a part routes to it
 * (service_set_sigmask, run on the thread).  co_run's end stops it
 * (lifecycle, added first so that it stops last, after the parts that
 * own handles on the loop have closed them): the stop walks the loop,
 * closes what is left, runs it until empty and joins the thread.
 *
 * Rejected: a thread per part (the dump thread, the admin thread, the
 * CPU encoder: three threads to keep masked, started and joined, and
 * three places where a stuck-worker test must pass); running the admin
 * port on a worker (dead exactly when needed); libuv's default loop (the
 * runtime's workers own their loops, and a program may use the default
 * loop itself).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <uv.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

struct service_call {
	void (*fn)(void *arg);
	void *arg;
	struct service_call *next;
	bool sync;               /* a waiter frees it, after done */
	bool done;
};

static struct {
	pthread_mutex_t lock;        /* guards everything below */
	pthread_cond_t done_cond;    /* a sync call finished */
	bool running;                /* the thread exists */
	bool stopping;               /* service_stop began */
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t wake;             /* calls queued, or stop */
	struct service_call *head;   /* calls queued, oldest first */
	struct service_call *tail;
} V = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.done_cond = PTHREAD_COND_INITIALIZER,
};

static _Thread_local bool on_service_thread;


static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void service_wake(uv_async_t *a)
{
	struct service_call *c;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&V.lock);
		c = V.head;
		if (c && !(V.head = c->next))
			V.tail = NULL;
		stop = !c && V.stopping;
		pthread_mutex_unlock(&V.lock);
		if (!c)
			break;
		c->fn(c->arg);
		if (c->sync) {
			pthread_mutex_lock(&V.lock);
			c->done = true;
			pthread_cond_broadcast(&V.done_cond);
			pthread_mutex_unlock(&V.lock);
		} else {
			free(c);
		}
	}
	if (stop)
		uv_walk(a->loop, close_any, NULL);
}

static void *service_main(void *arg)
{
	sigset_t all;

	(void)arg;
	on_service_thread = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	introspect_thread_register();
	uv_run(&V.loop, UV_RUN_DEFAULT);
	return NULL;
}

int service_start(void)
{
	pthread_attr_t attr;
	int err = 0;

	pthread_mutex_lock(&V.lock);
	if (V.running)
		goto out;
	if ((err = uv_loop_init(&V.loop)) < 0)
		goto out;
	if ((err = uv_async_init(&V.loop, &V.wake, service_wake)) < 0) {
		uv_loop_close(&V.loop);
		goto out;
	}
	V.stopping = false;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	err = -pthread_create(&V.thread, &attr, service_main, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		uv_close((uv_handle_t *)&V.wake, NULL);
		uv_run(&V.loop, UV_RUN_NOWAIT);
		uv_loop_close(&V.loop);
		goto out;
	}
	threadcreate_note_self();
	V.running = true;
out:
	pthread_mutex_unlock(&V.lock);
	return err;
}

bool service_on_thread(void)
{
	return on_service_thread;
}

uv_loop_t *service_loop(void)
{
	return &V.loop;
}

/* Queues c; false if the service is not running. */
static bool service_post(struct service_call *c)
{
	pthread_mutex_lock(&V.lock);
	bool ok = V.running && !V.stopping;
	if (ok) {
		if (V.tail)
			V.tail->next = c;
		else
			V.head = c;
		V.tail = c;
		uv_async_send(&V.wake);
	}
	pthread_mutex_unlock(&V.lock);
	return ok;
}

int service_call(void (*fn)(void *arg), void *arg)
{
	struct service_call *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return CO_ENOMEM;
	if ((err = service_start()) < 0) {
		free(c);
		return err;
	}
	c->fn = fn;
	c->arg = arg;
	if (!service_post(c)) {
		free(c);
		return CO_ECANCELED;
	}
	return 0;
}

int service_call_sync(void (*fn)(void *arg), void *arg)
{
	struct service_call c = {.fn = fn, .arg = arg, .sync = true};

	if (on_service_thread) {
		fn(arg);
		return 0;
	}
	pthread_mutex_lock(&V.lock);
	bool running = V.running && !V.stopping;
	pthread_mutex_unlock(&V.lock);
	if (!running)
		return CO_ECANCELED;
	if (!service_post(&c))
		return CO_ECANCELED;
	pthread_mutex_lock(&V.lock);
	while (!c.done)
		pthread_cond_wait(&V.done_cond, &V.lock);
	pthread_mutex_unlock(&V.lock);
	return 0;
}

bool service_running(void)
{
	pthread_mutex_lock(&V.lock);
	bool running = V.running && !V.stopping;
	pthread_mutex_unlock(&V.lock);
	return running;
}

void service_set_sigmask(const sigset_t *unblocked)
{
	sigset_t set;

	sigfillset(&set);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(unblocked, s) == 1)
			sigdelset(&set, s);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

/* At co_run's end, after every other part stopped: the loop ends once
 * the queue ran and every handle closed. */
static void service_stop(void)
{
	pthread_mutex_lock(&V.lock);
	bool running = V.running;
	V.stopping = true;
	if (running)
		uv_async_send(&V.wake);
	pthread_mutex_unlock(&V.lock);
	if (!running)
		return;
	pthread_join(V.thread, NULL);
	uv_loop_close(&V.loop);
	pthread_mutex_lock(&V.lock);
	V.running = false;
	V.stopping = false;
	pthread_mutex_unlock(&V.lock);
}

/* Added before the other parts' constructors (priority 101): started
 * first and stopped last. */
__attribute__((constructor(101))) static void service_register(void)
{
	introspect_add_lifecycle(NULL, service_stop);
}
