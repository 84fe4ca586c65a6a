/* SPDX-License-Identifier: MIT */
/*
 * timer.c - the per-worker min-heap of sleeping tasks, ordered by
 * task->deadline.
 *
 * Each worker owns one heap and only its thread touches it (a sleeping task
 * parks on the heap of the worker it ran on; that worker readies it), so
 * there is no lock.  A binary heap of task pointers: O(log n) push and pop,
 * 8 bytes per sleeping task, and each task remembers its index so that a
 * wait with a timeout can leave the heap early in O(log n).
 *
 * Invariant: items[i]->deadline >= items[(i-1)/2]->deadline, and
 * items[i]->timer_index == i for every i < len.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"

static inline void place(struct timer_heap *h, uint32_t i, struct task *t)
{
	h->items[i] = t;
	t->timer_index = i;
}

static void sift_up(struct timer_heap *h, uint32_t i)
{
	struct task *t = h->items[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (h->items[parent]->deadline <= t->deadline)
			break;
		place(h, i, h->items[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(struct timer_heap *h, uint32_t i)
{
	struct task *t = h->items[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->len)
			break;
		if (c + 1 < h->len &&
		    h->items[c + 1]->deadline < h->items[c]->deadline)
			c++;
		if (t->deadline <= h->items[c]->deadline)
			break;
		place(h, i, h->items[c]);
		i = c;
	}
	place(h, i, t);
}

int timer_heap_push(struct timer_heap *h, struct task *t)
{
	if (h->len == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct task **items = realloc(h->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		h->items = items;
		h->cap = cap;
	}
	h->items[h->len] = t;
	sift_up(h, h->len++);
	return 0;
}

struct task *timer_heap_pop(struct timer_heap *h)
{
	struct task *top = h->items[0];

	if (--h->len > 0) {
		h->items[0] = h->items[h->len];
		sift_down(h, 0);
	}
	return top;
}

void timer_heap_remove(struct timer_heap *h, struct task *t)
{
	uint32_t i = t->timer_index;

	if (i >= h->len || h->items[i] != t)
		return;
	if (--h->len == i)
		return;
	place(h, i, h->items[h->len]);
	sift_down(h, i);
	sift_up(h, h->items[i]->timer_index);
}

void timer_heap_free(struct timer_heap *h)
{
	free(h->items);
	h->items = NULL;
	h->len = h->cap = 0;
}
