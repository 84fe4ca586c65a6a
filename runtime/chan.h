/* SPDX-License-Identifier: MIT */
/*
 * chan.h - the channel structure, shared by chan.c and select.c only.
 */
#ifndef COPPER_RUNTIME_CHAN_H
#define COPPER_RUNTIME_CHAN_H

#include "copper.h"
#include "runtime.h"

#define CHAN_ELEM_MAX (1u << 16)   /* Go's limit on element size */
#define CHAN_CAP_MAX (1u << 28)

struct co_chan {
	spinlock lock;        /* guards everything below but the constants */
	bool closed;          /* set once by co_chan_close */
	uint32_t run;         /* run generation of the queues (runtime.h) */
	size_t elem_size;     /* constant */
	size_t cap;           /* constant: buffer slots, 0 = unbuffered */
	size_t len;           /* elements buffered */
	size_t sendx, recvx;  /* ring indexes of the next send and receive */
	struct waitq recvq;   /* parked receivers */
	struct waitq sendq;   /* parked senders */
	_Alignas(16) unsigned char buf[]; /* cap * elem_size bytes */
};

/* Takes the channel's lock; waiters of an earlier run are forgotten. */
static inline void chan_lock(co_chan *c)
{
	spin_lock(&c->lock);
	if (unlikely(run_changed(&c->run)))
		c->recvq = c->sendq = (struct waitq){0};
}

static inline void *chan_slot(co_chan *c, size_t i)
{
	return c->buf + i * c->elem_size;
}

/* Receive from a parked sender (handles the full-buffer rotation). */
CO_INTERNAL void chan_copy_from_sender_locked(co_chan *c, struct waiter *s,
					      void *elem);
CO_INTERNAL void chan_buffer_take_locked(co_chan *c, void *elem);
CO_INTERNAL void chan_buffer_put_locked(co_chan *c, const void *elem);

#endif /* COPPER_RUNTIME_CHAN_H */
