/* SPDX-License-Identifier: MIT */
/*
 * select.c - co_select: wait on several channel operations, perform
 * exactly one.
 *
 * Design notes (Go's selectgo, in three passes):
 *
 *   pass 1  Lock every channel (by address, each once), then look at the
 *           cases in a random order and perform the first that can go
 *           now.  A random poll order makes the choice among ready cases
 *           uniform, so no case starves.
 *   pass 2  None is ready: put one waiter per case on its channel's queue,
 *           all pointing at one select_state, add a timer for a finite
 *           timeout, and park; the locks are released after the switch.
 *   pass 3  Woken: whoever woke us won select_state.done (a CAS from 0 to
 *           1) and recorded the winning case (or the timeout).  Lock all
 *           channels again and take the other waiters off their queues;
 *           delete the timer.
 *
 * Any number of wakers may find our waiters at once (a sender on one
 * channel, a close on another, the timer); only the CAS winner touches the
 * waiter's element and readies the task.  Losers drop the waiter from
 * their queue and move on (waitq_pop_ready).
 *
 * Rejected: polling with a retry loop instead of enqueuing on every
 * channel (lost wake-ups or busy waiting); locking channels in case order
 * (two selects over the same channels in different orders deadlock).
 *
 * Memory: cases and waiters of a select with up to SELECT_STACK_CASES
 * cases live on the stack; larger selects allocate, and report -ENOMEM
 * rather than fail silently.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "copper.h"
#include "runtime.h"

#define SELECT_STACK_CASES 8
#define SELECT_TIMED_OUT (-2)

struct select_state {
	_Atomic int done;     /* 0 until a waker (or the timer) wins */
	int winner;           /* case index, or SELECT_TIMED_OUT */
	struct task *task;    /* the selecting task */
};

/* The channels to lock, sorted by address, each once. */
struct lockset {
	co_chan **chans;
	size_t n;
};

struct waiter *waitq_pop_ready(struct waitq *q)
{
	struct waiter *w;

	while ((w = waitq_pop(q)) != NULL) {
		int expected = 0;
		if (!w->sel)
			return w;
		if (atomic_compare_exchange_strong(&w->sel->done, &expected, 1)) {
			w->sel->winner = w->index;
			return w;
		}
		/* That select was already won elsewhere: skip its waiter. */
	}
	return NULL;
}

static void lockset_lock(const struct lockset *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		chan_lock(ls->chans[i]);
}

static void lockset_unlock(const struct lockset *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		spin_unlock(&ls->chans[i]->lock);
}

/* After-switch unlock.  Once the last lock is released the selecting task
 * may resume (pass 3 needs every lock) and its frame, which holds the
 * lockset, may vanish: so read nothing from it after that. */
static void lockset_unlock_cb(void *arg)
{
	struct lockset *ls = arg;
	co_chan **chans = ls->chans;
	size_t n = ls->n;

	for (size_t i = 0; i < n; i++)
		spin_unlock(&chans[i]->lock);
}

static int cmp_chan(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (co_chan *const *)a;
	uintptr_t y = (uintptr_t) * (co_chan *const *)b;
	return x < y ? -1 : x > y;
}

static void lockset_build(struct lockset *ls, const co_case *cases, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (cases[i].chan)
			ls->chans[k++] = cases[i].chan;
	qsort(ls->chans, k, sizeof(*ls->chans), cmp_chan);
	ls->n = 0;
	for (size_t i = 0; i < k; i++)
		if (ls->n == 0 || ls->chans[ls->n - 1] != ls->chans[i])
			ls->chans[ls->n++] = ls->chans[i];
}

static void shuffle(size_t *order, size_t n)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		/* Lemire's multiply-shift, as Go's fastrandn: it uses the
		 * generator's high bits; xorshift's low bits, which % took,
		 * are its weakest (a 5-sigma bias in the fairness test). */
		size_t j = (size_t)(((uint64_t)sched_rand() * i) >> 32);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

/* Pass 1 for one case: performs it if it can go now.  Returns true then,
 * with *wake set to a task to ready after the unlock. */
static bool try_case_locked(co_case *cs, struct task **wake)
{
	co_chan *c = cs->chan;
	struct waiter *w;

	if (cs->op == CO_RECV) {
		if ((w = waitq_pop_ready(&c->sendq)) != NULL) {
			chan_copy_from_sender_locked(c, w, cs->elem);
			w->result = 0;
			*wake = w->task;
			cs->result = 0;
			return true;
		}
		if (c->len > 0) {
			chan_buffer_take_locked(c, cs->elem);
			cs->result = 0;
			return true;
		}
		if (c->closed) {
			if (cs->elem)
				memset(cs->elem, 0, c->elem_size);
			cs->result = CO_EPIPE;
			return true;
		}
		return false;
	}
	if (c->closed) {
		cs->result = CO_EPIPE;
		return true;
	}
	if ((w = waitq_pop_ready(&c->recvq)) != NULL) {
		if (w->elem)
			memcpy(w->elem, cs->elem, c->elem_size);
		w->result = 0;
		*wake = w->task;
		cs->result = 0;
		return true;
	}
	if (c->len < c->cap) {
		chan_buffer_put_locked(c, cs->elem);
		cs->result = 0;
		return true;
	}
	return false;
}

static void select_timeout_fire(struct timer *tm)
{
	struct select_state *sel = tm->arg;
	int expected = 0;

	if (atomic_compare_exchange_strong(&sel->done, &expected, 1)) {
		sel->winner = SELECT_TIMED_OUT;
		sched_ready(sel->task);
	}
}

/* A select that can never fire a case: no cases, or only NULL channels. */
static int select_without_channels(size_t n, int64_t timeout_ns)
{
	if (timeout_ns == 0)
		return CO_ETIMEDOUT;
	if (timeout_ns < 0)
		for (;;)
			sched_park_on(n == 0 ? WAIT_SELECT_NO_CASES : WAIT_SELECT,
				      NULL, NULL, NULL);
	co_sleep(timeout_ns);
	return CO_ETIMEDOUT;
}

static int validate(const co_case *cases, size_t n, size_t *nchans)
{
	if (n > 0 && !cases)
		return CO_EINVAL;
	if (n > (1u << 16))
		return CO_EINVAL; /* Go's limit */
	*nchans = 0;
	for (size_t i = 0; i < n; i++) {
		if (cases[i].op != CO_SEND && cases[i].op != CO_RECV)
			return CO_EINVAL;
		if (cases[i].op == CO_SEND && cases[i].chan && !cases[i].elem)
			return CO_EINVAL;
		if (cases[i].chan)
			(*nchans)++;
	}
	return 0;
}

/* Passes 2 and 3: enqueue, park, clean up.  Called with every lock held;
 * returns with none held. */
static int select_park(co_case *cases, size_t n, int64_t timeout_ns,
		       struct lockset *ls, struct waiter *waiters)
{
	struct select_state sel = {.winner = -1, .task = sched_current()};
	struct timer tm;
	bool timed = timeout_ns > 0;

	for (size_t i = 0; i < n; i++) {
		co_chan *c = cases[i].chan;
		if (!c)
			continue;
		memset(&waiters[i], 0, sizeof(waiters[i]));
		waiters[i].task = sel.task;
		waiters[i].elem = cases[i].elem;
		waiters[i].sel = &sel;
		waiters[i].index = (int)i;
		waitq_push(cases[i].op == CO_RECV ? &c->recvq : &c->sendq,
			   &waiters[i]);
	}
	if (timed) {
		tm.when = sched_deadline_after(timeout_ns);
		tm.fire = select_timeout_fire;
		tm.arg = &sel;
		timed = timer_add(sched_worker(), &tm) == 0;
	}
	sched_park_on(WAIT_SELECT, NULL, lockset_unlock_cb, ls);

	if (timed)
		timer_del(&tm);
	lockset_lock(ls);
	for (size_t i = 0; i < n; i++) {
		co_chan *c = cases[i].chan;
		if (c)
			waitq_remove(cases[i].op == CO_RECV ? &c->recvq
							    : &c->sendq,
				     &waiters[i]);
	}
	lockset_unlock(ls);
	if (sel.winner == SELECT_TIMED_OUT)
		return CO_ETIMEDOUT;
	cases[sel.winner].result = waiters[sel.winner].result;
	return sel.winner;
}

CO_EXTERN int co_select(co_case *cases, size_t n, int64_t timeout_ns)
{
	size_t order_buf[SELECT_STACK_CASES];
	co_chan *chans_buf[SELECT_STACK_CASES];
	struct waiter waiters_buf[SELECT_STACK_CASES];
	size_t *order = order_buf;
	struct waiter *waiters = waiters_buf;
	struct lockset ls = {chans_buf, 0};
	struct task *wake = NULL;
	size_t nchans;
	int ret;

	if ((ret = validate(cases, n, &nchans)) != 0)
		return ret;
	if (!sched_current() && timeout_ns != 0)
		return CO_EPERM;
	if (nchans == 0)
		return select_without_channels(n, timeout_ns);
	if (n > SELECT_STACK_CASES) {
		order = malloc(n * sizeof(*order));
		ls.chans = malloc(n * sizeof(*ls.chans));
		waiters = malloc(n * sizeof(*waiters));
		if (!order || !ls.chans || !waiters) {
			ret = CO_ENOMEM;
			goto out_free;
		}
	}
	shuffle(order, n);
	lockset_build(&ls, cases, n);

	lockset_lock(&ls);
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		if (cases[i].chan && try_case_locked(&cases[i], &wake)) {
			lockset_unlock(&ls);
			if (wake)
				sched_ready(wake);
			ret = (int)i;
			goto out_free;
		}
	}
	if (timeout_ns == 0) {
		lockset_unlock(&ls);
		ret = CO_ETIMEDOUT;
		goto out_free;
	}
	ret = select_park(cases, n, timeout_ns, &ls, waiters);
out_free:
	if (order != order_buf) {
		free(order);
		free(ls.chans);
		free(waiters);
	}
	if (ret >= 0 && cases[ret].op == CO_SEND &&
	    cases[ret].result == CO_EPIPE)
		MISUSE(MISUSE_SEND_CLOSED);
	return ret;
}
