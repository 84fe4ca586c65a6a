/* SPDX-License-Identifier: MIT */
/*
 * tracebuf.c - the execution trace's recorder: while a trace runs, the
 * scheduler writes what tasks and workers do (spawn, run, park, unpark,
 * exit, idle, worker start and stop) into a ring per worker, and the
 * profiler's trace.c takes the rings at the end and writes the file.
 * The protocol is in introspect.h ("The execution trace's recorder").
 *
 * Why the runtime records, and not a hook.  The trace began as one more
 * subscriber of the runtime's events (hooks.c), and a ping-pong with it
 * on ran 2.3x slower than without: six events per round trip, each
 * filling an event record, marking the worker busy, walking the
 * subscriber slots, calling through a pointer, finding the worker again
 * from TLS and reading the clock.  Go's runtime keeps its trace buffers
 * in the runtime for the same reason.  Here an event is one direct call
 * from the scheduler's cold event path that writes 32 bytes into the
 * worker's own ring: no lock, no atomic read-modify-write, no cache
 * line another worker writes.
 *
 * The clock is the dearest part left (a counter read costs 9 ns on the
 * VMs here, rdtscp 17 ns, clock_gettime 20): a switch reads it once.  A
 * park or an exit and the run that follows it on the same worker, with
 * no visit to the scheduler loop between, are one record and one time
 * (tracebuf_put_switch; sched.c keeps the park pending until the run);
 * an unpark on a worker is written
 * unstamped and takes the time of the next event on that worker's ring
 * (the waker's next switch, or the end), filled in when the rings are
 * handed over.  So a wake-up is placed at the end of the waker's slice,
 * late by what the waker ran after it; the trace's writer moves it back
 * to the woken task's run where that came first, on another worker
 * (trace.c).  In a ping-pong that is a few ns; for a task that wakes
 * another and then computes for a millisecond, the wake-up shows at the
 * end of that millisecond.  Reading the clock there too cost a
 * ping-pong a third more with the trace on.
 *
 * Locks: B.lock, then hooks.c's (begin and end set the event mask under
 * B.lock, so that the mask and the rings agree).
 *
 * Lifetime.  A worker marks itself busy (mark[w], its own cache line)
 * before it looks for its ring and clears the mark after the write; the
 * end takes every ring away, then runs an expedited membarrier and waits
 * for each mark to drop (the asymmetric store-buffer pattern of hooks.c;
 * without membarrier the writer pays a full fence instead).  The begin
 * allocates a ring for each running worker; a worker without one (the
 * monitor added it, or the trace began before co_run) allocates its own
 * at its first event.  Threads that are not workers
 * (a task readied from a plain thread) share one ring under a mutex.
 *
 * Rejected: rings owned by struct worker (a trace may start before
 * co_run, when no worker exists, and end after it); one shared ring with
 * an atomic index (every worker writing one line per event); a clock
 * read per event (above).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "introspect.h"
#include "runtime.h"

#define TRACEBUF_WORKERS INTROSPECT_WORKERS_MAX /* indexes with a ring */
#define SWITCH_RUN 0x4000         /* type flag: a run of other follows */

struct tracebuf_ring {
	uint64_t n;                   /* records written; the last cap kept */
	uint64_t mask;                /* cap - 1 */
	struct introspect_trace_ev ev[];
};

_Atomic uint32_t tracebuf_gen;    /* traces begun (runtime.h) */

static struct {
	pthread_mutex_t lock;         /* begin/end, attach, the shared ring */
	bool on;
	uint64_t cap;                 /* records per ring, a power of two */
	struct tracebuf_ring *shared; /* threads that are not workers */
} B = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic(struct tracebuf_ring *) rings[TRACEBUF_WORKERS];
static bool clock_counter;        /* read the counter inline (set at begin) */

/* A put running on worker i (written by worker i only). */
static struct {
	_Atomic unsigned busy;
	char pad[60];
} mark[TRACEBUF_WORKERS] __attribute__((aligned(64)));

/* A ring with its pages touched: a fresh mapping faults a page in per
 * 128 events on first use, which cost a short trace more than the
 * recording did. */
static struct tracebuf_ring *ring_new(uint64_t cap)
{
	size_t size = sizeof(struct tracebuf_ring) +
		      cap * sizeof(struct introspect_trace_ev);
	struct tracebuf_ring *r = malloc(size);

	if (r) {
		memset(r, 0, size);
		r->mask = cap - 1;
	}
	return r;
}

/* The worker's first event of this trace: its ring, or NULL when no
 * trace runs (or memory ran out: its events are lost, not the run). */
static __attribute__((cold, noinline)) struct tracebuf_ring *ring_attach(int w)
{
	struct tracebuf_ring *r = NULL;

	pthread_mutex_lock(&B.lock);
	if (B.on && !(r = atomic_load(&rings[w])) && (r = ring_new(B.cap)))
		atomic_store_explicit(&rings[w], r, memory_order_release);
	pthread_mutex_unlock(&B.lock);
	return r;
}

/* An unpark's time until the ring is handed over (ring_copy). */
#define TS_NEXT 0

/* type may carry SWITCH_RUN (a park or exit, and the run of other);
 * an unpark on a worker takes the time of the ring's next event. */
static inline void ring_put(struct tracebuf_ring *r, int type, uint64_t id,
			    uint64_t other, int reason, int worker)
{
	struct introspect_trace_ev *e = &r->ev[r->n & r->mask];

	if (type == INTROSPECT_EV_UNPARK && worker >= 0)
		e->ts = TS_NEXT;
	else
		e->ts = likely(clock_counter) ? (int64_t)clock_counter_read()
					      : (int64_t)introspect_clock_now();
	e->id = id;
	e->other = other;
	e->type = (int16_t)type;
	e->reason = (int16_t)reason;
	e->worker = worker;
	r->n++;
}

/* Worker w's ring, with w marked busy (mark_end clears it), or NULL. */
static inline struct tracebuf_ring *mark_begin(int w)
{
	atomic_store_explicit(&mark[w].busy, 1, memory_order_relaxed);
	if (snapshot_gate.membarrier)
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	struct tracebuf_ring *r =
		atomic_load_explicit(&rings[w], memory_order_acquire);
	return likely(r) ? r : ring_attach(w);
}

static inline void mark_end(int w)
{
	atomic_store_explicit(&mark[w].busy, 0, memory_order_release);
}

void tracebuf_put(int w, enum introspect_event type, uint64_t id,
		  uint64_t other, int reason)
{
	if (w < 0 || w >= TRACEBUF_WORKERS) {
		pthread_mutex_lock(&B.lock);
		if (B.on && B.shared)
			ring_put(B.shared, type, id, other, reason, -1);
		pthread_mutex_unlock(&B.lock);
		return;
	}
	struct tracebuf_ring *r = mark_begin(w);
	if (r)
		ring_put(r, type, id, other, reason, w);
	mark_end(w);
}

void tracebuf_put_switch(int w, enum introspect_event type, uint64_t id,
			 int reason, uint64_t next)
{
	if (w < 0 || w >= TRACEBUF_WORKERS)
		return; /* runs happen on workers */
	struct tracebuf_ring *r = mark_begin(w);
	if (r)
		ring_put(r, (int)type | SWITCH_RUN, id, next, reason, w);
	mark_end(w);
}

int introspect_trace_begin(size_t ring_events)
{
	int err = 0;

	if (ring_events < 2 || (ring_events & (ring_events - 1)))
		return -EINVAL;
	pthread_mutex_lock(&B.lock);
	if (B.on) {
		err = -EBUSY;
	} else if (!(B.shared = ring_new(ring_events))) {
		err = -ENOMEM;
	} else {
		B.cap = ring_events;
		clock_counter = sched_clock_counter();
		atomic_fetch_add(&tracebuf_gen, 1);
		B.on = true;
		/* Under the lock, so that an end cannot come between. */
		hooks_set_trace(INTROSPECT_EV(INTROSPECT_EV_SPAWN) |
				INTROSPECT_EV(INTROSPECT_EV_EXIT) |
				INTROSPECT_EV(INTROSPECT_EV_PARK) |
				INTROSPECT_EV(INTROSPECT_EV_UNPARK) |
				INTROSPECT_EV(INTROSPECT_EV_RUN) |
				INTROSPECT_EV(INTROSPECT_EV_IDLE) |
				INTROSPECT_EV(INTROSPECT_EV_WORKER_START) |
				INTROSPECT_EV(INTROSPECT_EV_WORKER_STOP));
		/* The running workers' rings now, off their paths; workers
		 * added later make theirs at their first event. */
		int nw = sched_nworkers();
		for (int w = 0; w < nw && w < TRACEBUF_WORKERS; w++) {
			struct tracebuf_ring *r = ring_new(ring_events);
			if (!r)
				break;
			atomic_store_explicit(&rings[w], r,
					      memory_order_release);
		}
	}
	pthread_mutex_unlock(&B.lock);
	return err;
}

/* The index of a ring's oldest kept record. */
static uint64_t ring_first(const struct tracebuf_ring *r)
{
	return r->n > r->mask + 1 ? r->n - (r->mask + 1) : 0;
}

/* The events a ring's kept records hold (a switch record is two). */
static size_t ring_count(const struct tracebuf_ring *r)
{
	size_t n = 0;

	for (uint64_t i = ring_first(r); i < r->n; i++)
		n += r->ev[i & r->mask].type & SWITCH_RUN ? 2 : 1;
	return n;
}

/* A ring's kept events, oldest first, appended to out: a switch record
 * becomes its park or exit and the run, at one time; an unpark takes the
 * time of the next stamped event, or now at the end. */
static size_t ring_copy(const struct tracebuf_ring *r,
			struct introspect_trace_ev *out, uint64_t *dropped,
			int64_t now)
{
	uint64_t first = ring_first(r);
	size_t n = 0;

	*dropped += first;
	for (uint64_t i = first; i < r->n; i++) {
		struct introspect_trace_ev e = r->ev[i & r->mask];
		if (e.type & SWITCH_RUN) {
			uint64_t next = e.other;
			e.type &= ~SWITCH_RUN;
			e.other = 0;
			out[n++] = e;
			e.type = INTROSPECT_EV_RUN;
			e.id = next;
			e.reason = 0;
		}
		out[n++] = e;
	}
	for (size_t i = n; i-- > 0;) {
		if (out[i].ts == TS_NEXT)
			out[i].ts = now;
		else
			now = out[i].ts;
	}
	return n;
}

int introspect_trace_end(struct introspect_trace_ev **out, size_t *n,
			 uint64_t *dropped)
{
	struct tracebuf_ring *taken[TRACEBUF_WORKERS + 1];
	size_t ntaken = 0, total = 0;

	pthread_mutex_lock(&B.lock);
	if (!B.on) {
		pthread_mutex_unlock(&B.lock);
		return -EINVAL;
	}
	B.on = false;
	hooks_set_trace(0);
	for (int w = 0; w < TRACEBUF_WORKERS; w++) {
		struct tracebuf_ring *r = atomic_exchange(&rings[w], NULL);
		if (r)
			taken[ntaken++] = r;
	}
	taken[ntaken++] = B.shared;
	B.shared = NULL;
	pthread_mutex_unlock(&B.lock);

	/* A worker that found its ring before the exchange is seen busy
	 * below; one that looks after it finds none (see the top). */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0u, 0) != 0)
		atomic_thread_fence(memory_order_seq_cst);
	for (int w = 0; w < TRACEBUF_WORKERS; w++)
		while (atomic_load(&mark[w].busy))
			sched_yield();

	int64_t now = (int64_t)introspect_clock_now();
	for (size_t i = 0; i < ntaken; i++)
		total += ring_count(taken[i]);
	*out = malloc((total + 1) * sizeof(**out));
	*n = 0;
	*dropped = 0;
	for (size_t i = 0; i < ntaken; i++) {
		if (*out)
			*n += ring_copy(taken[i], *out + *n, dropped, now);
		free(taken[i]);
	}
	return *out ? 0 : -ENOMEM;
}
