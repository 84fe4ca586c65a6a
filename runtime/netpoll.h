/* SPDX-License-Identifier: MIT */
/*
 * netpoll.h - the runtime's I/O readiness interface for net/ (Go's
 * netpoll): park a task until a non-blocking descriptor is ready, and run
 * a libuv request on the task's worker with the task parked.
 *
 * Protocol for a socket:
 *   1. Make the descriptor non-blocking, then np = netpoll_open(fd, &err)
 *      from a task.  The descriptor is polled by the libuv loop of the
 *      worker that opened it (its home).
 *   2. Do the system call (read, write, accept4, connect) directly from
 *      whatever worker the task runs on.  On EAGAIN, call
 *      netpoll_wait(np, NETPOLL_READ or NETPOLL_WRITE, deadline) and retry
 *      the call when it returns 0.  It returns -ETIMEDOUT at the deadline
 *      (absolute co_now() nanoseconds; 0 = none) and -ECANCELED once the
 *      descriptor is being closed.
 *   3. netpoll_close(np) wakes every waiter with -ECANCELED, stops the
 *      poll on the home loop and then closes fd and frees np.  The caller
 *      must not use np afterwards, and must make sure no task enters
 *      netpoll_wait on it later (net/ keeps a reference count for that).
 *
 * Blocking the worker on a system call is never right; a libuv request
 * (getaddrinfo, fs) goes through sched_uv_call instead.
 */
#ifndef COPPER_RUNTIME_NETPOLL_H
#define COPPER_RUNTIME_NETPOLL_H

#include <stdint.h>
#include <uv.h>

#define NETPOLL_API __attribute__((visibility("hidden")))

enum netpoll_mode { NETPOLL_READ = 1, NETPOLL_WRITE = 2 };

struct netpoll;

NETPOLL_API struct netpoll *netpoll_open(int fd, int *err);
NETPOLL_API int netpoll_wait(struct netpoll *np, enum netpoll_mode mode,
			     int64_t deadline);
/* Wakes every waiter with -ECANCELED (a deadline change, a close). */
NETPOLL_API void netpoll_wake_all(struct netpoll *np, int result);
NETPOLL_API void netpoll_close(struct netpoll *np);

/*
 * Parks the calling task in "IO wait" and, once it is switched out, calls
 * submit(loop, arg) on its worker's thread with that worker's loop.
 * submit starts a libuv request whose callback must end with
 * sched_uv_done(task) (the task is sched_uv_task(arg's owner) — keep it
 * in arg).  If submit returns a negative code, the task resumes at once
 * and sched_uv_call returns it; otherwise sched_uv_call returns 0 after
 * the callback.
 */
struct task;
NETPOLL_API int sched_uv_call(int (*submit)(uv_loop_t *loop, void *arg),
			      void *arg);
/* The calling task, to keep in arg for sched_uv_done. */
NETPOLL_API struct task *sched_uv_task(void);
/* From the request's callback: the parked task may run again. */
NETPOLL_API void sched_uv_done(struct task *t);

#endif /* COPPER_RUNTIME_NETPOLL_H */
