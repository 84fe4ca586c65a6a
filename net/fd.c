/* SPDX-License-Identifier: MIT */
/*
 * fd.c - the pollable descriptor under every listener and connection:
 * reference counting, lazy poller registration, parking with deadlines,
 * deadline changes and closing (the protocol is in net.h).
 *
 * How it works.  An operation holds a reference from net_fd_begin to
 * net_fd_end and tries its system call directly; only EAGAIN brings in
 * the runtime's netpoller (runtime/netpoll.h), whose handle is opened
 * here on first need.  A close that finds operations in flight shuts the
 * socket down before waking them: whichever side of the close a task
 * parks on, it wakes (a parked waiter by netpoll_wake_all, a late one by
 * the readiness a shut-down socket reports) and sees `closed`.
 *
 * Rejected alternatives:
 *   - Opening the netpoll handle at accept or dial time: it costs a
 *     uv_poll_init per connection even when the task never waits, and it
 *     homes the handle on the accepting task's worker, so that every
 *     wait of a handler stolen by another worker crosses threads.
 *   - A lock held across the system call (Go's fdMutex for reads): reads
 *     return what is there, so concurrent readers need no order; writers
 *     are serialised in conn.c where co_write's all-or-nothing needs it.
 *   - Waking a parked task on a deadline change without the seq/ack
 *     handshake: a task that read the old deadline but had not parked yet
 *     would sleep with it, possibly forever (deadline 0).
 *
 * Invariants: see net.h.  lk is a spin lock held for a few loads and
 * stores only, never across a park or a system call; no other lock is
 * taken inside it.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void fd_lock(struct net_fd *f);
static void fd_unlock(struct net_fd *f);
static void fd_unref(struct net_fd *f);
static int fd_poller(struct net_fd *f, struct netpoll **out);
static void fd_pause(int round);

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

void net_fd_init(struct net_fd *f, int fd, void (*destroy)(struct net_fd *f))
{
	f->fd = fd;
	atomic_init(&f->np_state, NP_NONE);
	f->np = NULL;
	atomic_init(&f->refs, 1);
	atomic_init(&f->closed, false);
	atomic_flag_clear(&f->lk);
	atomic_init(&f->deadline[0], 0);
	atomic_init(&f->deadline[1], 0);
	f->seq = 0;
	f->ops = NULL;
	f->destroy = destroy;
}

int net_fd_begin(struct net_fd *f)
{
	if (co_self() == 0)
		return CO_EPERM;
	/* The increment comes before the closed check; net_fd_close sets
	 * closed before it reads refs (both seq_cst): one of them sees the
	 * other. */
	atomic_fetch_add(&f->refs, 1);
	if (atomic_load(&f->closed)) {
		fd_unref(f);
		return CO_ECANCELED;
	}
	return 0;
}

void net_fd_end(struct net_fd *f)
{
	fd_unref(f);
}

int net_fd_check(struct net_fd *f, enum netpoll_mode mode)
{
	int64_t dl;

	if (atomic_load_explicit(&f->closed, memory_order_relaxed))
		return CO_ECANCELED;
	dl = atomic_load_explicit(&f->deadline[mode - 1],
				  memory_order_relaxed);
	if (dl > 0 && co_now() >= dl)
		return CO_ETIMEDOUT;
	return 0;
}

int net_fd_wait(struct net_fd *f, enum netpoll_mode mode)
{
	struct netpoll *np;
	struct net_op op = {0};
	int64_t dl;
	int rc;

	if ((rc = fd_poller(f, &np)) < 0)
		return rc;
	fd_lock(f);
	dl = atomic_load_explicit(&f->deadline[mode - 1],
				  memory_order_relaxed);
	op.seq = f->seq;
	op.next = f->ops;
	if (f->ops)
		f->ops->prev = &op;
	f->ops = &op;
	fd_unlock(f);
	rc = netpoll_wait(np, mode, dl);
	fd_lock(f);
	if (op.prev)
		op.prev->next = op.next;
	else
		f->ops = op.next;
	if (op.next)
		op.next->prev = op.prev;
	fd_unlock(f);
	/* Readiness, a deadline, a change or a close: the caller's
	 * net_fd_check sorts them out.  Only a failure to wait is final. */
	if (rc == NET_RETRY || rc == CO_ETIMEDOUT || rc == CO_ECANCELED)
		return 0;
	return rc;
}

int net_fd_set_deadline(struct net_fd *f, int modes, int64_t deadline)
{
	uint64_t seq;
	bool stale = true;

	if (deadline < 0)
		return CO_EINVAL;
	fd_lock(f);
	if (modes & NETPOLL_READ)
		atomic_store_explicit(&f->deadline[0], deadline,
				      memory_order_relaxed);
	if (modes & NETPOLL_WRITE)
		atomic_store_explicit(&f->deadline[1], deadline,
				      memory_order_relaxed);
	seq = ++f->seq;
	fd_unlock(f);
	if (atomic_load(&f->refs) <= 1)
		return 0; /* no operation in flight: the next one reads it */
	for (int round = 0; stale; round++) {
		if (atomic_load(&f->np_state) == NP_READY)
			netpoll_wake_all(f->np, NET_RETRY);
		stale = false;
		fd_lock(f);
		for (struct net_op *op = f->ops; op; op = op->next)
			stale |= op->seq < seq;
		fd_unlock(f);
		if (stale)
			fd_pause(round);
	}
	return 0;
}

void net_fd_close(struct net_fd *f)
{
	if (atomic_exchange(&f->closed, true))
		return;
	if (atomic_load(&f->refs) > 1) {
		shutdown(f->fd, SHUT_RDWR);
		if (atomic_load(&f->np_state) == NP_READY)
			netpoll_wake_all(f->np, CO_ECANCELED);
	}
	fd_unref(f);
}

/* ------------------------------------------------------------------------
 * Statics
 * ---------------------------------------------------------------------- */

static void fd_lock(struct net_fd *f)
{
	while (atomic_flag_test_and_set_explicit(&f->lk, memory_order_acquire)) {
#if defined(__x86_64__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ volatile("yield");
#endif
	}
}

static void fd_unlock(struct net_fd *f)
{
	atomic_flag_clear_explicit(&f->lk, memory_order_release);
}

static void fd_unref(struct net_fd *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	if (atomic_load(&f->np_state) == NP_READY)
		netpoll_close(f->np); /* closes the descriptor */
	else
		close(f->fd);
	f->destroy(f);
}

/* The netpoll handle, opened on first need by exactly one task. */
static int fd_poller(struct net_fd *f, struct netpoll **out)
{
	int expect = NP_NONE;
	int err = 0;

	for (int round = 0;; round++) {
		int st = atomic_load(&f->np_state);
		if (st == NP_READY) {
			*out = f->np;
			return 0;
		}
		expect = NP_NONE;
		if (st == NP_NONE &&
		    atomic_compare_exchange_strong(&f->np_state, &expect,
						   NP_OPENING))
			break;
		fd_pause(round); /* another task is opening it */
	}
	f->np = netpoll_open(f->fd, &err);
	atomic_store(&f->np_state, f->np ? NP_READY : NP_NONE);
	*out = f->np;
	return f->np ? 0 : err;
}

/* Lets the task we wait for run: yield first, then sleep a little. */
static void fd_pause(int round)
{
	if (co_self() == 0)
		sched_yield();
	else if (round < 64)
		co_yield();
	else
		co_sleep(10000);
}
