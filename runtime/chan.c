/* SPDX-License-Identifier: MIT */
/*
 * chan.c - channels with Go's semantics: unbuffered and buffered, any
 * element size, close, nil channels.
 *
 * A channel is a lock, a ring buffer of `cap` elements, and two wait
 * queues of parked tasks (Go's hchan).  An operation that can complete at
 * once does so under the lock; one that cannot puts a waiter (on the
 * caller's stack) on the channel's queue and parks, and the task that
 * completes the exchange later copies the element directly between the
 * two stacks — stacks stay put, so a pointer to a parked task's local is
 * valid.  The copy happens under the channel lock, the wake-up after it.
 *
 * Close wakes every waiter: receivers get a zeroed element and -EPIPE,
 * senders -EPIPE (Go panics there; a C library returns an error).
 * Receivers drain a closed buffered channel before they see -EPIPE.
 * Operations on a NULL channel park forever, as in Go, under their own
 * wait reasons so that a dump says what happened.
 *
 * Invariants (under lock): len <= cap; if len > 0 then recvq is empty
 * (a receiver would have taken an element); if len < cap then sendq is
 * empty; when closed, both queues are empty.
 *
 * Lock order: co_select locks channels by address; no other code holds two
 * channel locks.  A channel lock may be held while readying a task (which
 * takes no lock but the global run queue's).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "copper.h"
#include "runtime.h"

CO_EXTERN co_chan *co_chan_new(size_t elem_size, size_t capacity)
{
	co_chan *c;

	if (elem_size == 0 || elem_size > CHAN_ELEM_MAX ||
	    capacity > CHAN_CAP_MAX)
		return NULL;
	c = calloc(1, sizeof(*c) + elem_size * capacity);
	if (!c)
		return NULL;
	c->elem_size = elem_size;
	c->cap = capacity;
	return c;
}

/* Parks the caller forever: an operation on a NULL channel. */
static _Noreturn void park_forever(enum wait_reason why)
{
	for (;;)
		sched_park_on(why, NULL, NULL, NULL);
}

void chan_copy_from_sender_locked(co_chan *c, struct waiter *sender,
				  void *elem)
{
	if (c->cap == 0) {
		if (elem)
			memcpy(elem, sender->elem, c->elem_size);
		return;
	}
	/* The buffer is full (a sender waits): take its head, and put the
	 * sender's element in the slot that frees. */
	void *slot = chan_slot(c, c->recvx);
	if (elem)
		memcpy(elem, slot, c->elem_size);
	memcpy(slot, sender->elem, c->elem_size);
	c->recvx = (c->recvx + 1) % c->cap;
	c->sendx = c->recvx;
}

void chan_buffer_take_locked(co_chan *c, void *elem)
{
	if (elem)
		memcpy(elem, chan_slot(c, c->recvx), c->elem_size);
	c->recvx = (c->recvx + 1) % c->cap;
	c->len--;
}

void chan_buffer_put_locked(co_chan *c, const void *elem)
{
	memcpy(chan_slot(c, c->sendx), elem, c->elem_size);
	c->sendx = (c->sendx + 1) % c->cap;
	c->len++;
}

CO_EXTERN int co_chan_send(co_chan *c, const void *elem)
{
	struct waiter *r, me;

	if (!c) {
		if (!sched_current())
			return CO_EPERM;
		park_forever(WAIT_CHAN_SEND_NIL);
	}
	if (!elem)
		return CO_EINVAL;
	chan_lock(c);
	if (c->closed) {
		spin_unlock(&c->lock);
		MISUSE(MISUSE_SEND_CLOSED);
		return CO_EPIPE;
	}
	if ((r = waitq_pop_ready(&c->recvq)) != NULL) {
		if (r->elem)
			memcpy(r->elem, elem, c->elem_size);
		r->result = 0;
		spin_unlock(&c->lock);
		sched_ready(r->task);
		return 0;
	}
	if (c->len < c->cap) {
		chan_buffer_put_locked(c, elem);
		spin_unlock(&c->lock);
		return 0;
	}
	memset(&me, 0, sizeof(me));
	me.task = sched_current();
	if (!me.task) {
		spin_unlock(&c->lock);
		return CO_EPERM; /* would block outside a task */
	}
	me.elem = (void *)elem;
	waitq_push(&c->sendq, &me);
	sched_park_on(WAIT_CHAN_SEND, c, spin_unlock_cb, &c->lock);
	if (me.result == CO_EPIPE)
		MISUSE(MISUSE_SEND_CLOSED); /* closed while it waited */
	return me.result;
}

CO_EXTERN int co_chan_recv(co_chan *c, void *elem)
{
	struct waiter *s, me;

	if (!c) {
		if (!sched_current())
			return CO_EPERM;
		park_forever(WAIT_CHAN_RECV_NIL);
	}
	chan_lock(c);
	if ((s = waitq_pop_ready(&c->sendq)) != NULL) {
		chan_copy_from_sender_locked(c, s, elem);
		s->result = 0;
		spin_unlock(&c->lock);
		sched_ready(s->task);
		return 0;
	}
	if (c->len > 0) {
		chan_buffer_take_locked(c, elem);
		spin_unlock(&c->lock);
		return 0;
	}
	if (c->closed) {
		spin_unlock(&c->lock);
		if (elem)
			memset(elem, 0, c->elem_size);
		return CO_EPIPE;
	}
	memset(&me, 0, sizeof(me));
	me.task = sched_current();
	if (!me.task) {
		spin_unlock(&c->lock);
		return CO_EPERM;
	}
	me.elem = elem;
	waitq_push(&c->recvq, &me);
	sched_park_on(WAIT_CHAN_RECV, c, spin_unlock_cb, &c->lock);
	return me.result;
}

/* Moves every wakeable waiter of q onto the list at *list, failing it. */
static void fail_all_locked(co_chan *c, struct waitq *q, bool zero,
			    struct waiter **list)
{
	struct waiter *w;

	while ((w = waitq_pop_ready(q)) != NULL) {
		if (zero && w->elem)
			memset(w->elem, 0, c->elem_size);
		w->result = CO_EPIPE;
		w->next = *list;
		*list = w;
	}
}

CO_EXTERN int co_chan_close(co_chan *c)
{
	struct waiter *list = NULL;

	if (!c)
		return CO_EINVAL;
	chan_lock(c);
	if (c->closed) {
		spin_unlock(&c->lock);
		MISUSE(MISUSE_CLOSE_CLOSED);
		return CO_EPIPE;
	}
	c->closed = true;
	fail_all_locked(c, &c->recvq, true, &list);
	fail_all_locked(c, &c->sendq, false, &list);
	spin_unlock(&c->lock);
	while (list) {
		/* Read the link first: once readied, the waiter's frame may
		 * be gone. */
		struct waiter *next = list->next;
		sched_ready(list->task);
		list = next;
	}
	return 0;
}

CO_EXTERN void co_chan_free(co_chan *c)
{
	if (!c)
		return;
	chan_lock(c);
	bool busy = c->recvq.head || c->sendq.head;
	spin_unlock(&c->lock);
	if (busy) {
		/* Freeing it would corrupt the waiters' queues: keep it. */
		fprintf(stderr, "copper: co_chan_free(%p): tasks still wait on "
				"this channel; not freed\n", (void *)c);
		return;
	}
	free(c);
}

CO_EXTERN size_t co_chan_len(co_chan *c)
{
	return c ? __atomic_load_n(&c->len, __ATOMIC_RELAXED) : 0;
}

CO_EXTERN size_t co_chan_cap(co_chan *c)
{
	return c ? c->cap : 0;
}
