/* SPDX-License-Identifier: MIT */
/*
 * netpoll.c - parks tasks on descriptor readiness, over the workers' libuv
 * loops (the contract is in netpoll.h).
 *
 * How it works.  A descriptor belongs to the loop of the worker that
 * opened it (its home): libuv handles are not thread-safe, so only the
 * home thread ever touches the uv_poll_t.  The I/O itself is not done by
 * libuv at all: a task calls read/write/accept directly on whatever worker
 * it runs, and only when the kernel says EAGAIN does it queue a waiter on
 * the descriptor and park.  After the switch, its worker asks the home
 * loop to poll for the events the waiters want: directly when it is the
 * home, otherwise through the home's inbox and its async handle.  When
 * the home loop reports readiness it readies every waiter for that
 * direction, and they retry their system calls.  This is Go's netpoller
 * (direct system calls, readiness from the poller), with libuv as the
 * poller, and it keeps the common case — data already there — free of any
 * cross-thread hand-off.
 *
 * Rejected designs:
 *   - libuv streams (uv_tcp_t, uv_read_start): completion-based, so every
 *     read allocates or copies through libuv's buffers, and every call
 *     must run on the handle's loop: a task on another worker would pay a
 *     cross-thread hand-off per read and per write.
 *   - One I/O thread owning one loop for every descriptor: every wait and
 *     every wake-up would cross threads.
 *   - Moving the handle to the loop of whichever worker waits: libuv
 *     cannot move a handle between loops.
 *
 * Deadlines are timers on the waiting task's worker; the timer, a
 * readiness event and a close race for the waiter under np->lk, and
 * whoever removes it from its queue wakes it (and drops the home's
 * pending count, which tells the deadlock check that I/O can still wake
 * someone).
 *
 * Lock order: a timer heap's lock, then np->lk (a deadline firing); never
 * the other way (netpoll_wait adds its timer before taking np->lk).
 * inbox_lk is taken inside np->lk.
 *
 * Lifetime: netpoll_close marks the descriptor closing and posts it to the
 * home inbox; the home loop starts uv_close there, and the close callback
 * closes the fd and frees np.  After closing is set nothing posts np again,
 * so the inbox never holds a freed np.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "netpoll.h"
#include "runtime.h"

struct netpoll {
	int fd;                     /* the descriptor; closed with np */
	struct worker *home;        /* whose loop polls it */
	uv_poll_t poll;             /* home thread only */
	int armed;                  /* UV_* events started; changed by the
				       home thread under lk */
	bool close_started;         /* uv_close called; home thread only */
	spinlock lk;                /* guards everything below */
	struct waitq rq;            /* tasks waiting to read */
	struct waitq wq;            /* tasks waiting to write */
	bool closing;               /* netpoll_close was called */
	int ready;                  /* UV_* readiness seen with no waiter */
	int keep;                   /* UV_* to keep polling (had waiters) */
	bool posted;                /* on home's inbox */
	struct netpoll *inbox_next; /* inbox link, under home's inbox_lk */
};

/* A waiter with what its deadline timer needs. */
struct io_wait {
	struct waiter w;
	struct netpoll *np;
	struct waitq *q;
};

static inline void pending_add(struct worker *home, int n)
{
	atomic_fetch_add(&home->uv_pending, (uint32_t)n);
}

static inline void pending_sub(struct worker *home, int n)
{
	atomic_fetch_sub(&home->uv_pending, (uint32_t)n);
}

/*
 * What the home loop should poll for.  A direction stays armed after its
 * waiters were woken (keep): the next wait on it, usually a moment later,
 * then needs no epoll_ctl.  It is disarmed only when readiness arrives
 * with nobody waiting; that readiness is remembered in `ready`, so the
 * next wait returns at once instead of parking (Go's pollDesc keeps the
 * same per-direction bit).
 */
static int wanted_locked(struct netpoll *np)
{
	if (np->closing)
		return 0;
	return np->keep | (np->rq.head ? UV_READABLE : 0) |
	       (np->wq.head ? UV_WRITABLE : 0);
}

/* Moves every waiter of q onto *list with the result. */
static int take_all_locked(struct waitq *q, int result, struct waiter **list)
{
	struct waiter *w;
	int n = 0;

	while ((w = waitq_pop(q)) != NULL) {
		w->result = result;
		w->next = *list;
		*list = w;
		n++;
	}
	return n;
}

static void wake_list(struct netpoll *np, struct waiter *list, int n)
{
	/* Ready first, then drop the count (the deadlock check reads the
	 * count, then the queues). */
	while (list) {
		struct waiter *next = list->next;
		sched_ready(list->task);
		list = next;
	}
	if (n)
		pending_sub(np->home, n);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Home thread: make the uv poll match what the waiters want.  Under
 * np->lk, so that `armed` is exact for after_wait, which skips posting
 * when the poll already covers its direction. */
static void rearm(struct netpoll *np)
{
	spin_lock(&np->lk);
	int want = wanted_locked(np);
	if (want != np->armed && !np->close_started) {
		if (want == 0 || uv_poll_start(&np->poll, want, on_poll) != 0) {
			uv_poll_stop(&np->poll);
			want = 0;
		}
		np->armed = want;
	}
	spin_unlock(&np->lk);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct netpoll *np = h->data;
	struct waiter *list = NULL;
	int n = 0;

	if (status < 0)
		events = UV_READABLE | UV_WRITABLE; /* they retry, see the error */
	if (events & UV_DISCONNECT)
		events |= UV_READABLE | UV_WRITABLE;
	spin_lock(&np->lk);
	for (int dir = UV_READABLE; dir <= UV_WRITABLE; dir <<= 1) {
		struct waitq *q = dir == UV_READABLE ? &np->rq : &np->wq;
		if (!(events & dir))
			continue;
		if (q->head) {
			n += take_all_locked(q, 0, &list);
		} else {
			/* Nobody waits: remember it, stop polling for it. */
			np->ready |= dir;
			np->keep &= ~dir;
		}
	}
	spin_unlock(&np->lk);
	wake_list(np, list, n);
	rearm(np);
}

static void on_closed(uv_handle_t *h)
{
	struct netpoll *np = h->data;

	close(np->fd);
	pending_sub(np->home, 1); /* the close request */
	free(np);
}

/* Puts np on its home's inbox; call with np->lk held, then wake home. */
static bool post_locked(struct netpoll *np)
{
	struct worker *home = np->home;

	if (np->posted)
		return false;
	np->posted = true;
	spin_lock(&home->inbox_lk);
	np->inbox_next = home->inbox;
	home->inbox = np;
	spin_unlock(&home->inbox_lk);
	return true;
}

void netpoll_inbox_run(struct worker *w)
{
	struct netpoll *np, *next;

	spin_lock(&w->inbox_lk);
	np = w->inbox;
	w->inbox = NULL;
	spin_unlock(&w->inbox_lk);
	for (; np; np = next) {
		bool closing;
		next = np->inbox_next;
		spin_lock(&np->lk);
		np->posted = false;
		closing = np->closing;
		spin_unlock(&np->lk);
		if (closing && !np->close_started) {
			np->close_started = true;
			uv_close((uv_handle_t *)&np->poll, on_closed);
		} else if (!closing) {
			rearm(np);
		}
	}
}

/* After the waiting task switched out: np->lk is still held. */
static void after_wait(void *arg)
{
	struct netpoll *np = arg;
	struct worker *home = np->home;

	if (sched_worker() == home) {
		spin_unlock(&np->lk);
		rearm(np);
		return;
	}
	/* Already polled for (kept armed since the last wake-up): no need
	 * to bother the home thread.  rearm changes `armed` under np->lk,
	 * which we hold. */
	if ((np->armed & wanted_locked(np)) == wanted_locked(np)) {
		spin_unlock(&np->lk);
		return;
	}
	bool posted = post_locked(np);
	spin_unlock(&np->lk);
	if (posted)
		uv_async_send(&home->wake);
}

static void io_timeout_fire(struct timer *tm)
{
	struct io_wait *iw = tm->arg;
	struct netpoll *np = iw->np;
	bool won;

	spin_lock(&np->lk);
	won = iw->w.queued;
	if (won) {
		waitq_remove(iw->q, &iw->w);
		iw->w.result = CO_ETIMEDOUT;
	}
	spin_unlock(&np->lk);
	if (won) {
		sched_ready(iw->w.task);
		pending_sub(np->home, 1);
	}
}

struct netpoll *netpoll_open(int fd, int *err)
{
	struct worker *w = sched_worker();
	struct netpoll *np;
	int rc;

	if (!w || !w->current) {
		*err = CO_EPERM;
		return NULL;
	}
	if (!(np = calloc(1, sizeof(*np)))) {
		*err = CO_ENOMEM;
		return NULL;
	}
	np->fd = fd;
	np->home = w;
	if ((rc = uv_poll_init_socket(&w->loop, &np->poll, fd)) != 0) {
		free(np);
		*err = rc;
		return NULL;
	}
	np->poll.data = np;
	*err = 0;
	return np;
}

int netpoll_wait(struct netpoll *np, enum netpoll_mode mode, int64_t deadline)
{
	struct io_wait iw;
	struct timer tm;
	bool timed = deadline > 0;

	memset(&iw, 0, sizeof(iw));
	if (!(iw.w.task = sched_current()))
		return CO_EPERM;
	if (timed && deadline <= co_now())
		return CO_ETIMEDOUT;
	iw.np = np;
	iw.q = mode == NETPOLL_READ ? &np->rq : &np->wq;
	if (timed) {
		tm.when = deadline < INT64_MAX ? deadline : INT64_MAX - 1;
		tm.fire = io_timeout_fire;
		tm.arg = &iw;
		if (timer_add(sched_worker(), &tm) < 0)
			return CO_ENOMEM;
	}
	spin_lock(&np->lk);
	if (np->closing) {
		spin_unlock(&np->lk);
		if (timed)
			timer_del(&tm);
		return CO_ECANCELED;
	}
	int dir = mode == NETPOLL_READ ? UV_READABLE : UV_WRITABLE;
	if (np->ready & dir) {
		/* Readiness came while nobody waited: retry the call now. */
		np->ready &= ~dir;
		spin_unlock(&np->lk);
		if (timed)
			timer_del(&tm);
		return 0;
	}
	np->keep |= dir;
	waitq_push(iw.q, &iw.w);
	pending_add(np->home, 1);
	sched_park_on(WAIT_IO, np, after_wait, np);
	if (timed)
		timer_del(&tm);
	return iw.w.result;
}

void netpoll_wake_all(struct netpoll *np, int result)
{
	struct waiter *list = NULL;
	int n;

	spin_lock(&np->lk);
	n = take_all_locked(&np->rq, result, &list);
	n += take_all_locked(&np->wq, result, &list);
	spin_unlock(&np->lk);
	wake_list(np, list, n);
}

void netpoll_close(struct netpoll *np)
{
	struct waiter *list = NULL;
	int n;
	bool posted;

	spin_lock(&np->lk);
	if (np->closing) {
		spin_unlock(&np->lk);
		return;
	}
	np->closing = true;
	n = take_all_locked(&np->rq, CO_ECANCELED, &list);
	n += take_all_locked(&np->wq, CO_ECANCELED, &list);
	pending_add(np->home, 1); /* the close request, until on_closed */
	posted = post_locked(np);
	spin_unlock(&np->lk);
	wake_list(np, list, n);
	if (posted)
		uv_async_send(&np->home->wake);
}

/* Shutdown: a descriptor abandoned with its tasks. */
void netpoll_abandon(uv_handle_t *h)
{
	struct netpoll *np = h->data;

	close(np->fd);
	free(np);
}

/* ------------------------------------------------------------------------
 * libuv requests on the task's worker
 * ---------------------------------------------------------------------- */

struct uv_call {
	int (*submit)(uv_loop_t *, void *);
	void *arg;
	struct task *task;
	int err;
};

static void uv_call_submit(void *arg)
{
	struct uv_call *c = arg;
	struct worker *w = sched_worker();
	int err = c->submit(&w->loop, c->arg); /* may start libuv's pool,
						  with this worker's mask */

	if (err < 0) {
		c->err = err;
		sched_ready(c->task);
		return;
	}
	pending_add(w, 1);
}

int sched_uv_call(int (*submit)(uv_loop_t *, void *), void *arg)
{
	struct uv_call c = {submit, arg, sched_current(), 0};

	if (!c.task || !submit)
		return c.task ? CO_EINVAL : CO_EPERM;
	sched_park(TASK_WAITING, WAIT_IO, uv_call_submit, &c);
	return c.err;
}

struct task *sched_uv_task(void)
{
	return sched_current();
}

void sched_uv_done(struct task *t)
{
	sched_ready(t);
	pending_sub(sched_worker(), 1);
}
