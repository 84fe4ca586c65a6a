/* SPDX-License-Identifier: MIT */
/*
 * timer.c - per-worker timer heaps: co_sleep and select timeouts.
 *
 * A timer is a small node that lives in its waiter's stack frame.  It is
 * added to the heap of the worker the caller runs on.  Any worker may fire
 * it (its own, or one that finds it due while looking for work, because a
 * worker busy with a task that never parks cannot), and deleting may happen
 * from any thread: a select whose channel case won can resume on another
 * worker and must take its timer out before its frame dies.  So each heap
 * has a spinlock, fire() runs with it held, and timer_del takes it too:
 * when timer_del returns, the timer is neither queued nor firing.
 *
 * The heap is binary, of timer pointers: 8 bytes per timer, O(log n) add,
 * pop and delete (each timer knows its index).  `next` mirrors the top's
 * deadline so the scheduler can test "is a timer due?" on every switch
 * without the lock.
 *
 * Rejected: one global heap (a shared lock on every sleep, and timers
 * firing on a thread other than the sleeper's); a timer wheel (constant
 * time, but nanosecond deadlines would need fine buckets or a second pass,
 * and typical programs have few timers per worker).
 *
 * Invariants (under the lock): items[i]->when >= items[(i-1)/2]->when;
 * items[i]->index == i and items[i]->queued for i < len; next ==
 * items[0]->when or INT64_MAX when empty.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"

static inline void heap_lock(struct timer_heap *h)
{
	spin_lock((spinlock *)&h->lock);
}

static inline void heap_unlock(struct timer_heap *h)
{
	spin_unlock((spinlock *)&h->lock);
}

static inline void place(struct timer_heap *h, uint32_t i, struct timer *t)
{
	h->items[i] = t;
	t->index = i;
}

static void sift_up(struct timer_heap *h, uint32_t i)
{
	struct timer *t = h->items[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (h->items[parent]->when <= t->when)
			break;
		place(h, i, h->items[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(struct timer_heap *h, uint32_t i)
{
	struct timer *t = h->items[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->len)
			break;
		if (c + 1 < h->len && h->items[c + 1]->when < h->items[c]->when)
			c++;
		if (t->when <= h->items[c]->when)
			break;
		place(h, i, h->items[c]);
		i = c;
	}
	place(h, i, t);
}

static void update_next_locked(struct timer_heap *h)
{
	atomic_store_explicit(&h->next, h->len ? h->items[0]->when : INT64_MAX,
			      memory_order_relaxed);
}

static void remove_locked(struct timer_heap *h, struct timer *t)
{
	uint32_t i = t->index;

	t->queued = false;
	if (--h->len != i) {
		place(h, i, h->items[h->len]);
		sift_down(h, i);
		sift_up(h, h->items[i]->index);
	}
	update_next_locked(h);
}

int timer_add(struct worker *w, struct timer *t)
{
	struct timer_heap *h = &w->timers;

	heap_lock(h);
	if (h->len == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct timer **items = realloc(h->items, cap * sizeof(*items));
		if (!items) {
			heap_unlock(h);
			return -ENOMEM;
		}
		h->items = items;
		h->cap = cap;
	}
	t->home = w;
	t->queued = true;
	h->items[h->len] = t;
	sift_up(h, h->len++);
	update_next_locked(h);
	bool top = h->items[0] == t;
	heap_unlock(h);
	if (top)
		sched_timer_added(t->when);
	return 0;
}

bool timer_del(struct timer *t)
{
	struct timer_heap *h = &t->home->timers;
	bool removed = false;

	heap_lock(h);
	if (t->queued) {
		remove_locked(h, t);
		removed = true;
	}
	heap_unlock(h);
	return removed;
}

int timers_run(struct worker *w, int64_t now)
{
	struct timer_heap *h = &w->timers;
	int fired = 0;

	if (timer_next(w) > now)
		return 0;
	struct worker *self = sched_worker();
	if (self)
		sched_timers_begin(self);
	heap_lock(h);
	while (h->len && h->items[0]->when <= now) {
		struct timer *t = h->items[0];
		if (self && sched_timers_defer_full(self)) {
			/* Between two fires the lock may go: the deferred
			 * unpark events go out with no lock held. */
			heap_unlock(h);
			sched_timers_flush(self);
			heap_lock(h);
			continue;
		}
		remove_locked(h, t);
		t->fire(t);
		fired++;
	}
	heap_unlock(h);
	if (self)
		sched_timers_end(self);
	return fired;
}

void timer_heap_free(struct timer_heap *h)
{
	free(h->items);
	h->items = NULL;
	h->len = h->cap = 0;
	atomic_store(&h->next, INT64_MAX);
}
