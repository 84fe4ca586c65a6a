/* SPDX-License-Identifier: MIT */
/*
 * hooks.c - the runtime's events and their subscribers: where the
 * profilers (block, mutex, threadcreate, CPU, ...) attach (the protocol
 * is in introspect.h, "Events").
 *
 * The cost when nobody listens is one relaxed load of hooks_events, a
 * word every core keeps in its cache, and one predictable branch at each
 * event site (hook_on in runtime.h).  With listeners, an event walks the
 * few subscriber slots and calls each whose mask has the event.  The
 * execution trace's recorder (tracebuf.c) is not a subscriber: its events
 * join hooks_events so that the same branch is taken, and the event site
 * writes them to the recorder directly (hook_traced) and to subscribers
 * only if one wants them (hook_subscribed).
 *
 * Lifetime.  A slot is published with a release store of its function
 * and found with an acquire load.  Unsubscribing clears the slot and the
 * mask bits, then waits until no emission that may have read the old
 * slot is still running.  So once introspect_unsubscribe returns, the
 * function is never called again and its argument may go.  (Not from a
 * hook: it would wait for itself.)
 *
 * How emitters say they are running: a worker marks its own cache line
 * (busy[worker], a plain store, only that worker writes it) and reads the
 * slots after a compiler barrier only; the unsubscriber clears the slot,
 * then runs an expedited membarrier, which puts a full barrier on every
 * running thread, then waits for every busy mark to drop.  That is the
 * asymmetric form of the store-buffer pattern: the cost moves to the
 * rare unsubscribe.  Threads that are not workers (or when membarrier
 * is not available) count themselves in one shared atomic counter.  The
 * first version used that counter for everyone: two locked updates of
 * one shared line per event, 15% of a ping-pong with the block profile
 * on.
 *
 * Locks.  Events are emitted where no runtime lock is held: park after
 * the wait queue's lock was released (after the switch, on the next
 * context), contention after the mutex's lock, unpark after a timer
 * heap's lock (timers_run defers those it fires: sched_timers_begin and
 * sched_timers_end in sched.c).
 *
 * Rejected: a table of single function pointers (the review's finding: a
 * second profiler part overwrote the first); a lock around emission (every
 * event of every worker would serialise on it); per-event reference
 * counts (more shared writes per event than one in-flight counter).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "introspect.h"
#include "runtime.h"

#define HOOKS_MAX 8
#define HOOKS_BUSY_WORKERS 256   /* workers with a busy mark of their own */

struct hook_slot {
	_Atomic(introspect_hook) fn;
	void *arg;
	unsigned mask;
};

_Atomic unsigned hooks_events;          /* subscribers' and the trace's */
_Atomic unsigned hooks_sub_events;      /* subscribers' only */
_Atomic unsigned hooks_trace_events;    /* the trace's only */

static struct {
	pthread_mutex_t lock;                /* guards subscribing */
	struct hook_slot slots[HOOKS_MAX];
	unsigned trace;                      /* the trace recorder's events */
	_Atomic int inflight;                /* emissions running elsewhere */
} H = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Emissions running on worker i (written by worker i only). */
static struct {
	_Atomic unsigned n;
	char pad[60];
} busy[HOOKS_BUSY_WORKERS] __attribute__((aligned(64)));

static void events_recompute_locked(void)
{
	unsigned all = 0;

	for (int i = 0; i < HOOKS_MAX; i++)
		if (atomic_load_explicit(&H.slots[i].fn, memory_order_relaxed))
			all |= H.slots[i].mask;
	atomic_store(&hooks_sub_events, all);
	atomic_store(&hooks_trace_events, H.trace);
	atomic_store(&hooks_events, all | H.trace);
}

void hooks_set_trace(unsigned events)
{
	pthread_mutex_lock(&H.lock);
	H.trace = events;
	events_recompute_locked();
	pthread_mutex_unlock(&H.lock);
}

int introspect_subscribe(unsigned events, introspect_hook fn, void *arg)
{
	int id = -ENOSPC;

	if (!fn || !events || events >= (1u << INTROSPECT_NEVENTS))
		return -EINVAL;
	pthread_mutex_lock(&H.lock);
	for (int i = 0; i < HOOKS_MAX; i++) {
		if (atomic_load_explicit(&H.slots[i].fn, memory_order_relaxed))
			continue;
		H.slots[i].arg = arg;
		H.slots[i].mask = events;
		atomic_store_explicit(&H.slots[i].fn, fn, memory_order_release);
		id = i;
		break;
	}
	if (id >= 0)
		events_recompute_locked();
	pthread_mutex_unlock(&H.lock);
	return id;
}

void introspect_unsubscribe(int id)
{
	if (id < 0 || id >= HOOKS_MAX)
		return;
	pthread_mutex_lock(&H.lock);
	atomic_store(&H.slots[id].fn, NULL);
	events_recompute_locked();
	/* A worker that marked itself busy before this point is seen
	 * busy below; one that marks itself after it sees the slot clear.
	 * It fails only where no membarrier was ever registered, and then
	 * no worker marked itself (hooks_emit). */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0u, 0) != 0)
		atomic_thread_fence(memory_order_seq_cst);
	/* An emission that read the slot before it was cleared may still
	 * be calling it: wait until none runs, keeping the slot from a new
	 * subscriber meanwhile. */
	for (int i = 0; i < HOOKS_BUSY_WORKERS; i++)
		while (atomic_load(&busy[i].n) > 0)
			sched_yield();
	while (atomic_load(&H.inflight) > 0)
		sched_yield();
	pthread_mutex_unlock(&H.lock);
}

void hooks_emit(const struct introspect_event_info *ev)
{
	unsigned bit = 1u << ev->event;
	int w = introspect_worker_self();

	if (w >= 0 && w < HOOKS_BUSY_WORKERS && snapshot_gate.membarrier) {
		/* Only this worker writes its mark (nested emissions count
		 * up); unsubscribe's membarrier orders it (see the top). */
		unsigned n = atomic_load_explicit(&busy[w].n,
						  memory_order_relaxed);
		atomic_store_explicit(&busy[w].n, n + 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
		for (int i = 0; i < HOOKS_MAX; i++) {
			introspect_hook fn = atomic_load_explicit(
				&H.slots[i].fn, memory_order_acquire);
			if (fn && (H.slots[i].mask & bit))
				fn(ev, H.slots[i].arg);
		}
		atomic_store_explicit(&busy[w].n, n, memory_order_release);
		return;
	}
	atomic_fetch_add(&H.inflight, 1);
	for (int i = 0; i < HOOKS_MAX; i++) {
		/* seq_cst, against unsubscribe's store then load of
		 * inflight (the store-buffer pattern). */
		introspect_hook fn = atomic_load(&H.slots[i].fn);
		if (fn && (H.slots[i].mask & bit))
			fn(ev, H.slots[i].arg);
	}
	atomic_fetch_sub(&H.inflight, 1);
}

/* ------------------------------------------------------------------------
 * Life cycle: the profiler's parts around co_run
 *
 * Added from constructors before any co_run, read by co_run only: the
 * list needs no lock beyond the one that adds.
 * ---------------------------------------------------------------------- */
#define LIFECYCLE_MAX 16

static struct {
	int (*start)(void);
	void (*stop)(void);
} lifecycle[LIFECYCLE_MAX];
static int nlifecycle;
static int nstarted;    /* parts started by the running co_run */

int introspect_add_lifecycle(int (*start)(void), void (*stop)(void))
{
	int err = 0;

	pthread_mutex_lock(&H.lock);
	if (nlifecycle == LIFECYCLE_MAX) {
		err = -ENOSPC;
	} else {
		lifecycle[nlifecycle].start = start;
		lifecycle[nlifecycle].stop = stop;
		nlifecycle++;
	}
	pthread_mutex_unlock(&H.lock);
	return err;
}

int hooks_lifecycle_start(void)
{
	for (nstarted = 0; nstarted < nlifecycle; nstarted++) {
		int err = lifecycle[nstarted].start ? lifecycle[nstarted].start() : 0;
		if (err < 0) {
			hooks_lifecycle_stop();
			return err;
		}
	}
	return 0;
}

void hooks_lifecycle_stop(void)
{
	while (nstarted > 0) {
		nstarted--;
		if (lifecycle[nstarted].stop)
			lifecycle[nstarted].stop();
	}
}
