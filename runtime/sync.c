/* SPDX-License-Identifier: MIT */
/*
 * sync.c - co_mutex, co_rwmutex, co_cond, co_wg and co_once: Go's sync
 * package for tasks.  Each parks the task, never the thread, under its
 * own wait reason.
 *
 * co_mutex follows Go's sync.Mutex.  The word `state` holds LOCKED,
 * WAITERS, STARVING and WOKEN.  Lock is one CAS when free; under
 * contention a task spins briefly (only while other workers exist to
 * release the lock), then queues and parks.  Unlock is one CAS when nobody
 * waits; otherwise it releases the lock first and then wakes the first
 * waiter, unless another locker is already awake to take it: the lock was
 * taken again meanwhile, or a spinning locker (or the last one woken) owns
 * WOKEN.  Without WOKEN, two tasks trading the lock on two workers would
 * wake a parked task at every unlock, only for it to lose the race and
 * park again: that cost 45-90 ns a lock here, against Go's 15.  In normal
 * mode the woken waiter competes with newcomers (barging keeps throughput
 * high: a running task that re-locks does not wait for a parked one to be
 * scheduled); a waiter that has waited over 1 ms switches the mutex to
 * starvation mode, where unlock hands ownership straight to the head of
 * the queue, so no task starves.  The mode ends when the queue empties
 * or when a waiter is handed the lock after waiting under 1 ms.
 * Because unlock releases without the spinlock, a waiter registers (and
 * asks for starvation mode) with one CAS that also checks the lock is
 * still held: either the unlock sees the waiter, or the CAS fails.
 *
 * co_rwmutex prefers writers, as Go does: once a writer waits, new readers
 * queue behind it, so a stream of readers cannot starve writers; an
 * unlocking writer admits every waiting reader before the next writer.
 *
 * co_wg keeps its counter in one atomic word, so co_wg_done costs one
 * atomic add unless it brings the counter to zero (then it takes the lock
 * and wakes the waiters).
 *
 * The public types (copper.h) are opaque byte arrays of a fixed size (the
 * ABI); the structures here must fit, which the static asserts check.
 * A zero-filled value of each type is an unlocked, empty one, so *_init
 * only zeroes.
 *
 * Lock order: cond's lock, then the mutex's lock (co_cond_wait unlocks the
 * mutex while holding the cond's).  Nothing takes them the other way.
 */
#include <errno.h>
#include <string.h>

#include "copper.h"
#include "runtime.h"

#define MUTEX_LOCKED 1u
#define MUTEX_WAITERS 2u
#define MUTEX_STARVING 4u
#define MUTEX_WOKEN 8u                /* a locker is awake: wake nobody */
#define MUTEX_SPINS 4                 /* Go's active_spin */
#define MUTEX_SPIN_PAUSES 30          /* Go's active_spin_cnt */
#define MUTEX_STARVE_NS 1000000       /* Go's starvationThresholdNs */

struct mutex {
	_Atomic uint32_t state; /* MUTEX_* bits; CAS by anyone */
	spinlock lk;            /* guards q and the WAITERS/STARVING bits */
	struct waitq q;         /* parked lockers, FIFO (re-waiters first) */
	uint32_t run;           /* run generation of q (runtime.h) */
};

struct rwmutex {
	spinlock lk;               /* guards everything below */
	int32_t readers;           /* readers holding it */
	bool writer;               /* a writer holds it */
	uint32_t writers_waiting;  /* length of wq */
	uint32_t run;              /* run generation of the queues */
	struct waitq rq;           /* parked readers */
	struct waitq wq;           /* parked writers */
};

struct cond {
	spinlock lk;    /* guards q */
	uint32_t run;   /* run generation of q */
	struct waitq q; /* parked waiters, FIFO */
};

struct wg {
	_Atomic int64_t counter; /* outstanding work */
	spinlock lk;             /* guards q and the zero transition */
	uint32_t run;            /* run generation of q */
	struct waitq q;          /* parked co_wg_wait callers */
};

enum { ONCE_NEW = 0, ONCE_RUNNING, ONCE_DONE };

struct once {
	_Atomic uint32_t state; /* ONCE_* */
	spinlock lk;            /* guards q and RUNNING -> DONE */
	uint32_t run;           /* run generation of q */
	struct waitq q;         /* tasks waiting for the first call */
};

_Static_assert(sizeof(struct mutex) <= sizeof(co_mutex), "co_mutex ABI");
_Static_assert(sizeof(struct rwmutex) <= sizeof(co_rwmutex), "co_rwmutex ABI");
_Static_assert(sizeof(struct cond) <= sizeof(co_cond), "co_cond ABI");
_Static_assert(sizeof(struct wg) <= sizeof(co_wg), "co_wg ABI");
_Static_assert(sizeof(struct once) <= sizeof(co_once), "co_once ABI");

/*
 * Each object's lock, taken with the run-generation check (runtime.h):
 * waiters of an earlier run are forgotten, with what only they kept up
 * (the mutex's WAITERS, STARVING and WOKEN bits, the count of waiting
 * writers).  What the object holds stays: a mutex locked by a task of an
 * earlier run is still locked, a wait group keeps its count.  A co_once
 * whose function was running when its run ended is not done: the next
 * call runs the function.
 */
static inline void mutex_lk(struct mutex *m)
{
	spin_lock(&m->lk);
	if (unlikely(run_changed(&m->run))) {
		m->q = (struct waitq){0};
		atomic_fetch_and(&m->state, ~(MUTEX_WAITERS | MUTEX_STARVING |
					      MUTEX_WOKEN));
	}
}

static inline void rwmutex_lk(struct rwmutex *rw)
{
	spin_lock(&rw->lk);
	if (unlikely(run_changed(&rw->run))) {
		rw->rq = rw->wq = (struct waitq){0};
		rw->writers_waiting = 0;
	}
}

static inline void cond_lk(struct cond *c)
{
	spin_lock(&c->lk);
	if (unlikely(run_changed(&c->run)))
		c->q = (struct waitq){0};
}

static inline void wg_lk(struct wg *wg)
{
	spin_lock(&wg->lk);
	if (unlikely(run_changed(&wg->run)))
		wg->q = (struct waitq){0};
}

static inline void once_lk(struct once *o)
{
	spin_lock(&o->lk);
	if (unlikely(run_changed(&o->run))) {
		o->q = (struct waitq){0};
		uint32_t running = ONCE_RUNNING;
		atomic_compare_exchange_strong(&o->state, &running, ONCE_NEW);
	}
}

/* The mutex profile's event: lock handed on by the calling task to n
 * waiters, queued at co_now() = base + their share of rel (outside the
 * lock).  The delay is their waits summed: an unlock that held up many
 * tasks (a writer admitting N readers) costs N waits, as Go 1.22 charges
 * it.  Times are taken relative to base so that the sum cannot overflow. */
static void contended_emit(void *lock, int64_t base, int64_t rel, int64_t n)
{
	struct task *t = sched_current();
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_CONTENDED, .task = t,
		.id = t ? t->id : 0, .object = lock,
		.ns = n * (co_now() - base) - rel,
	};
	hooks_emit(&ev);
}

/* Parks the caller on q under lk; returns once woken. */
static void park_locked(struct waitq *q, struct waiter *me, spinlock *lk,
			enum wait_reason why, void *obj, bool front)
{
	if (front && q->head) {
		me->prev = NULL;
		me->next = q->head;
		q->head->prev = me;
		q->head = me;
		me->queued = true;
	} else {
		waitq_push(q, me);
	}
	sched_park_on(why, obj, spin_unlock_cb, lk);
}

/* Wakes every waiter of q; call with the lock that guards q held, and
 * pass the list on to wake_list after unlocking. */
static struct waiter *take_all_locked(struct waitq *q)
{
	struct waiter *list = NULL, *w;

	while ((w = waitq_pop(q)) != NULL) {
		w->next = list;
		list = w;
	}
	return list;
}

static void wake_list(struct waiter *list)
{
	while (list) {
		struct waiter *next = list->next; /* before the frame goes */
		sched_ready(list->task);
		list = next;
	}
}

/* ------------------------------------------------------------------------
 * co_mutex
 * ---------------------------------------------------------------------- */

CO_EXTERN int co_mutex_init(co_mutex *m)
{
	if (!m)
		return CO_EINVAL;
	memset(m, 0, sizeof(*m));
	return 0;
}

/* Takes the lock if it is free; a caller that owns WOKEN (awoke) gives
 * it up in the same step. */
static inline bool mutex_try_acquire(struct mutex *m, bool awoke)
{
	uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);

	while (!(s & (MUTEX_LOCKED | MUTEX_STARVING))) {
		uint32_t n = s | MUTEX_LOCKED;
		if (awoke)
			n &= ~MUTEX_WOKEN;
		if (atomic_compare_exchange_weak_explicit(
			    &m->state, &s, n, memory_order_acquire,
			    memory_order_relaxed))
			return true;
	}
	return false;
}

static int mutex_lock_slow(struct mutex *m)
{
	struct waiter me;
	int64_t first_wait = 0;
	bool rewait = false; /* woken before and lost: queue at the front */
	bool awoke = false;  /* this task owns MUTEX_WOKEN */
	int spins = 0;
	struct task *t = sched_current();

	if (!t)
		return CO_EPERM; /* would block outside a task */
	for (;;) {
		if (mutex_try_acquire(m, awoke))
			return 0;
		uint32_t s = atomic_load(&m->state);
		if (spins < MUTEX_SPINS && sched_nprocs() > 1 &&
		    (s & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED) {
			/* Spinning: tell the unlocker that a locker is awake,
			 * so it wakes no parked one to lose the race. */
			if (!awoke && (s & MUTEX_WAITERS) && !(s & MUTEX_WOKEN) &&
			    atomic_compare_exchange_strong(&m->state, &s,
							   s | MUTEX_WOKEN))
				awoke = true;
			spins++;
			for (int i = 0; i < MUTEX_SPIN_PAUSES; i++)
				sched_cpu_relax();
			continue;
		}
		mutex_lk(m);
		s = atomic_load(&m->state);
		if (!(s & (MUTEX_LOCKED | MUTEX_STARVING))) {
			spin_unlock(&m->lk);
			continue;
		}
		/*
		 * Register as a waiter (and give up WOKEN, and ask for
		 * starvation mode) in one CAS that also checks the lock is
		 * still held: the unlock releases without the spinlock, so
		 * either it sees these bits or this CAS fails and we look
		 * again.
		 */
		uint32_t n = s | MUTEX_WAITERS;
		if (awoke)
			n &= ~MUTEX_WOKEN;
		if (first_wait && co_now() - first_wait > MUTEX_STARVE_NS &&
		    (s & MUTEX_LOCKED))
			n |= MUTEX_STARVING;
		if (n != s && !atomic_compare_exchange_strong(&m->state, &s, n)) {
			spin_unlock(&m->lk);
			continue; /* it changed: look again */
		}
		awoke = false;
		memset(&me, 0, sizeof(me));
		me.task = t;
		me.since = first_wait ? first_wait : co_now();
		first_wait = me.since;
		park_locked(&m->q, &me, &m->lk, WAIT_MUTEX_LOCK, m, rewait);
		if (me.handoff) {
			/* Starvation mode gave it to us.  As in Go, the mode
			 * ends with the last waiter, or with a waiter that
			 * did not starve: re-queued waiters would otherwise
			 * keep it going, and every lock would be a park and a
			 * wake-up. */
			if (co_now() - first_wait <= MUTEX_STARVE_NS) {
				mutex_lk(m);
				atomic_fetch_and(&m->state, ~MUTEX_STARVING);
				spin_unlock(&m->lk);
			}
			return 0;
		}
		rewait = true;
		awoke = true; /* the unlocker set WOKEN for us */
		spins = 0;
	}
}

CO_EXTERN int co_mutex_lock(co_mutex *mu)
{
	struct mutex *m = (struct mutex *)mu;
	uint32_t free_state = 0;

	if (!m)
		return CO_EINVAL;
	if (likely(atomic_compare_exchange_weak_explicit(
		    &m->state, &free_state, MUTEX_LOCKED, memory_order_acquire,
		    memory_order_relaxed)))
		return 0;
	return mutex_lock_slow(m);
}

CO_EXTERN int co_mutex_trylock(co_mutex *mu)
{
	struct mutex *m = (struct mutex *)mu;

	if (!m)
		return CO_EINVAL;
	return mutex_try_acquire(m, false) ? 0 : CO_EBUSY;
}

/*
 * The lock is released already; s is the state just after.  Normal mode
 * wakes one waiter, unless nobody waits or another locker is awake to
 * take it (it holds the lock again, or owns WOKEN).  Starvation mode
 * hands the lock to the first waiter: newcomers see STARVING and queue,
 * so nobody can take it meanwhile, and LOCKED is set again for the
 * waiter.
 */
static void mutex_unlock_slow(struct mutex *m, uint32_t s)
{
	struct waiter *w;
	bool starving = s & MUTEX_STARVING;

	if (!starving) {
		for (;;) {
			if (!(s & MUTEX_WAITERS) ||
			    (s & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
				return;
			if (atomic_compare_exchange_weak(&m->state, &s,
							 s | MUTEX_WOKEN))
				break;
		}
	}
	mutex_lk(m);
	w = waitq_pop(&m->q);
	/* LOCKED before STARVING goes: the moment the state reads free,
	 * a newcomer's fast path may take it. */
	if (w && starving)
		atomic_fetch_or_explicit(&m->state, MUTEX_LOCKED,
					 memory_order_acquire);
	if (!m->q.head)
		atomic_fetch_and(&m->state, ~(MUTEX_WAITERS | MUTEX_STARVING));
	int64_t since = 0;
	if (w) {
		w->handoff = starving;
		since = w->since;
	} else if (!starving) {
		atomic_fetch_and(&m->state, ~MUTEX_WOKEN); /* nobody to wake */
	}
	spin_unlock(&m->lk);
	if (w && hook_on(INTROSPECT_EV_CONTENDED) && since)
		contended_emit(m, since, 0, 1);
	if (w)
		sched_ready(w->task);
}

CO_EXTERN int co_mutex_unlock(co_mutex *mu)
{
	struct mutex *m = (struct mutex *)mu;
	uint32_t locked = MUTEX_LOCKED;

	if (!m)
		return CO_EINVAL;
	if (!(atomic_load_explicit(&m->state, memory_order_relaxed) &
	      MUTEX_LOCKED)) {
		MISUSE(MISUSE_UNLOCK); /* Go: "sync: unlock of unlocked mutex" */
		return CO_EPERM;
	}
	if (likely(atomic_compare_exchange_strong_explicit(
		    &m->state, &locked, 0, memory_order_release,
		    memory_order_relaxed)))
		return 0;
	mutex_unlock_slow(m, atomic_fetch_and_explicit(&m->state,
						       ~MUTEX_LOCKED,
						       memory_order_release) &
				     ~MUTEX_LOCKED);
	return 0;
}

CO_EXTERN int co_mutex_destroy(co_mutex *mu)
{
	struct mutex *m = (struct mutex *)mu;

	if (!m)
		return CO_EINVAL;
	if (atomic_load(&m->state) != 0 || m->q.head)
		return CO_EBUSY;
	return 0;
}

/* ------------------------------------------------------------------------
 * co_rwmutex
 * ---------------------------------------------------------------------- */

CO_EXTERN int co_rwmutex_init(co_rwmutex *rw)
{
	if (!rw)
		return CO_EINVAL;
	memset(rw, 0, sizeof(*rw));
	return 0;
}

CO_EXTERN int co_rwmutex_rlock(co_rwmutex *rwm)
{
	struct rwmutex *rw = (struct rwmutex *)rwm;
	struct waiter me;

	if (!rw)
		return CO_EINVAL;
	rwmutex_lk(rw);
	if (!rw->writer && rw->writers_waiting == 0) {
		rw->readers++;
		spin_unlock(&rw->lk);
		return 0;
	}
	memset(&me, 0, sizeof(me));
	if (!(me.task = sched_current())) {
		spin_unlock(&rw->lk);
		return CO_EPERM;
	}
	if (hook_on(INTROSPECT_EV_CONTENDED))
		me.since = co_now();
	/* The writer that admits us counts us in readers. */
	park_locked(&rw->rq, &me, &rw->lk, WAIT_RWMUTEX_RLOCK, rw, false);
	return 0;
}

/* Hands the lock to the next writer if the readers are gone. */
static struct waiter *rw_next_writer_locked(struct rwmutex *rw)
{
	struct waiter *w;

	if (rw->readers > 0 || rw->writer || !(w = waitq_pop(&rw->wq)))
		return NULL;
	rw->writers_waiting--;
	rw->writer = true;
	return w;
}

CO_EXTERN int co_rwmutex_runlock(co_rwmutex *rwm)
{
	struct rwmutex *rw = (struct rwmutex *)rwm;
	struct waiter *w;

	if (!rw)
		return CO_EINVAL;
	rwmutex_lk(rw);
	if (rw->readers <= 0) {
		spin_unlock(&rw->lk);
		MISUSE(MISUSE_RUNLOCK);
		return CO_EPERM;
	}
	rw->readers--;
	w = rw_next_writer_locked(rw);
	int64_t since = w ? w->since : 0;
	spin_unlock(&rw->lk);
	if (since && hook_on(INTROSPECT_EV_CONTENDED))
		contended_emit(rw, since, 0, 1);
	if (w)
		sched_ready(w->task);
	return 0;
}

CO_EXTERN int co_rwmutex_lock(co_rwmutex *rwm)
{
	struct rwmutex *rw = (struct rwmutex *)rwm;
	struct waiter me;

	if (!rw)
		return CO_EINVAL;
	rwmutex_lk(rw);
	if (!rw->writer && rw->readers == 0) {
		rw->writer = true;
		spin_unlock(&rw->lk);
		return 0;
	}
	memset(&me, 0, sizeof(me));
	if (!(me.task = sched_current())) {
		spin_unlock(&rw->lk);
		return CO_EPERM;
	}
	rw->writers_waiting++;
	if (hook_on(INTROSPECT_EV_CONTENDED))
		me.since = co_now();
	park_locked(&rw->wq, &me, &rw->lk, WAIT_RWMUTEX_LOCK, rw, false);
	return 0; /* rw_next_writer_locked or unlock made us the writer */
}

CO_EXTERN int co_rwmutex_unlock(co_rwmutex *rwm)
{
	struct rwmutex *rw = (struct rwmutex *)rwm;
	struct waiter *list = NULL, *w;

	if (!rw)
		return CO_EINVAL;
	rwmutex_lk(rw);
	if (!rw->writer) {
		spin_unlock(&rw->lk);
		MISUSE(MISUSE_RWUNLOCK);
		return CO_EPERM;
	}
	rw->writer = false;
	if (rw->rq.head) {
		/* Admit every waiting reader before the next writer. */
		list = take_all_locked(&rw->rq);
		for (w = list; w; w = w->next)
			rw->readers++;
	} else if ((w = rw_next_writer_locked(rw)) != NULL) {
		w->next = NULL;
		list = w;
	}
	/* The waits of those it admits (profiled ones: since set), read
	 * before they run. */
	int64_t base = 0, rel = 0, nwaited = 0;
	for (w = list; w; w = w->next)
		if (w->since) {
			if (!nwaited)
				base = w->since;
			rel += w->since - base;
			nwaited++;
		}
	spin_unlock(&rw->lk);
	if (nwaited && hook_on(INTROSPECT_EV_CONTENDED))
		contended_emit(rw, base, rel, nwaited);
	wake_list(list);
	return 0;
}

/* ------------------------------------------------------------------------
 * co_cond
 * ---------------------------------------------------------------------- */

CO_EXTERN int co_cond_init(co_cond *c)
{
	if (!c)
		return CO_EINVAL;
	memset(c, 0, sizeof(*c));
	return 0;
}

CO_EXTERN int co_cond_wait(co_cond *cv, co_mutex *m)
{
	struct cond *c = (struct cond *)cv;
	struct waiter me;
	int err;

	if (!c || !m)
		return CO_EINVAL;
	memset(&me, 0, sizeof(me));
	if (!(me.task = sched_current()))
		return CO_EPERM;
	cond_lk(c);
	/* Queue first, then release the mutex: a signal sent after the
	 * unlock finds us. */
	waitq_push(&c->q, &me);
	if ((err = co_mutex_unlock(m)) != 0) {
		waitq_remove(&c->q, &me);
		spin_unlock(&c->lk);
		return err;
	}
	sched_park_on(WAIT_COND_WAIT, c, spin_unlock_cb, &c->lk);
	return co_mutex_lock(m);
}

CO_EXTERN int co_cond_signal(co_cond *cv)
{
	struct cond *c = (struct cond *)cv;
	struct waiter *w;

	if (!c)
		return CO_EINVAL;
	cond_lk(c);
	w = waitq_pop(&c->q);
	spin_unlock(&c->lk);
	if (w)
		sched_ready(w->task);
	return 0;
}

CO_EXTERN int co_cond_broadcast(co_cond *cv)
{
	struct cond *c = (struct cond *)cv;
	struct waiter *list;

	if (!c)
		return CO_EINVAL;
	cond_lk(c);
	list = take_all_locked(&c->q);
	spin_unlock(&c->lk);
	wake_list(list);
	return 0;
}

/* ------------------------------------------------------------------------
 * co_wg
 * ---------------------------------------------------------------------- */

CO_EXTERN int co_wg_init(co_wg *wgp)
{
	if (!wgp)
		return CO_EINVAL;
	memset(wgp, 0, sizeof(*wgp));
	return 0;
}

static int wg_add(co_wg *wgp, int64_t delta, uintptr_t site);

CO_EXTERN int co_wg_add(co_wg *wg, int64_t delta)
{
	return wg_add(wg, delta, (uintptr_t)__builtin_return_address(0));
}

/* co_wg_add and co_wg_done; site is the public call's return address,
 * so that a misuse is reported where the program made it. */
static int wg_add(co_wg *wgp, int64_t delta, uintptr_t site)
{
	struct wg *wg = (struct wg *)wgp;
	struct waiter *list;

	if (!wg)
		return CO_EINVAL;
	int64_t v = atomic_fetch_add(&wg->counter, delta) + delta;
	if (v < 0) {
		/* Go panics "sync: negative WaitGroup counter"; undo, refuse,
		 * report. */
		atomic_fetch_sub(&wg->counter, delta);
		misuse_report(MISUSE_WG_NEGATIVE, site);
		return CO_ERANGE;
	}
	if (v > 0 || delta == 0)
		return 0;
	wg_lk(wg);
	list = atomic_load(&wg->counter) == 0 ? take_all_locked(&wg->q) : NULL;
	spin_unlock(&wg->lk);
	wake_list(list);
	return 0;
}

CO_EXTERN int co_wg_done(co_wg *wg)
{
	return wg_add(wg, -1, (uintptr_t)__builtin_return_address(0));
}

CO_EXTERN int co_wg_wait(co_wg *wgp)
{
	struct wg *wg = (struct wg *)wgp;
	struct waiter me;

	if (!wg)
		return CO_EINVAL;
	if (atomic_load(&wg->counter) == 0)
		return 0;
	memset(&me, 0, sizeof(me));
	if (!(me.task = sched_current()))
		return CO_EPERM;
	wg_lk(wg);
	if (atomic_load(&wg->counter) == 0) {
		spin_unlock(&wg->lk);
		return 0;
	}
	park_locked(&wg->q, &me, &wg->lk, WAIT_WG_WAIT, wg, false);
	return 0;
}

/* ------------------------------------------------------------------------
 * co_once
 * ---------------------------------------------------------------------- */

CO_EXTERN int co_once_do(co_once *op, void (*fn)(void *), void *arg)
{
	struct once *o = (struct once *)op;
	struct waiter me, *list;

	if (!o || !fn)
		return CO_EINVAL;
	if (atomic_load_explicit(&o->state, memory_order_acquire) == ONCE_DONE)
		return 0;
	once_lk(o);
	switch (atomic_load(&o->state)) {
	case ONCE_DONE:
		spin_unlock(&o->lk);
		return 0;
	case ONCE_RUNNING:
		memset(&me, 0, sizeof(me));
		if (!(me.task = sched_current())) {
			spin_unlock(&o->lk);
			return CO_EPERM;
		}
		park_locked(&o->q, &me, &o->lk, WAIT_ONCE, o, false);
		return 0;
	default:
		break;
	}
	atomic_store(&o->state, ONCE_RUNNING);
	spin_unlock(&o->lk);
	fn(arg);
	once_lk(o);
	atomic_store_explicit(&o->state, ONCE_DONE, memory_order_release);
	list = take_all_locked(&o->q);
	spin_unlock(&o->lk);
	wake_list(list);
	return 0;
}
