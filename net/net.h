/* SPDX-License-Identifier: MIT */
/*
 * net.h - the internal interface of net/: the pollable descriptor every
 * listener and connection is built on, and address parsing/resolution.
 *
 * How it works.  A struct net_fd owns one non-blocking socket.  Every
 * operation (read, write, accept, connect) is a loop of
 *     net_fd_check (closed? deadline passed?) -> the system call ->
 *     on EAGAIN, net_fd_wait (park until ready, a deadline, a close or a
 *     deadline change)
 * run between net_fd_begin and net_fd_end, which hold a reference so that
 * the memory outlives every operation in flight (co_close may run on
 * another task meanwhile).  The runtime's netpoll handle (netpoll.h) is
 * opened lazily, on the first EAGAIN: the common case — data already
 * there — never touches the poller, and the handle's home loop is the
 * worker of the task that first had to wait, which is usually the
 * connection's own task rather than the accepting one.
 *
 * Closing.  net_fd_close sets `closed`; if operations are in flight it
 * also shuts the socket down (the kernel then reports it readable and
 * writable for good, so a task that parks after the close still wakes at
 * once) and wakes every parked waiter.  The last reference closes the
 * descriptor through netpoll_close (or close(2) when no handle was
 * opened) and frees the object.
 *
 * Deadline changes.  netpoll_wait takes the deadline as an argument, so a
 * change must reach tasks already parked and tasks about to park with the
 * old value.  net_fd_set_deadline bumps `seq`, wakes the waiters with
 * NET_RETRY and then waits until no registered waiter still holds an
 * older seq (waiters register under `lk` while they read the deadline).
 *
 * Invariants:
 *   - refs counts the owner (1 until close) plus one per operation in
 *     flight; the object is freed exactly when it drops to 0;
 *   - np, once published (np_state NP_READY), never changes until free;
 *   - a waiter reads deadline and seq together under lk, and is on `ops`
 *     exactly while it may be parked in netpoll_wait.
 */
#ifndef COPPER_NET_NET_H
#define COPPER_NET_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <copper.h>

#include "runtime/netpoll.h"

#define NET_API __attribute__((visibility("hidden")))

/* netpoll_wake_all's result for "re-read the deadline and wait again". */
#define NET_RETRY 1

/* ------------------------------------------------------------------------
 * fd.c: the pollable descriptor
 * ---------------------------------------------------------------------- */

enum net_np_state { NP_NONE = 0, NP_OPENING = 1, NP_READY = 2 };

/* A waiter registered for deadline changes; lives on the task's stack. */
struct net_op {
	struct net_op *next; /* list link, under net_fd.lk */
	struct net_op *prev; /* list link, under net_fd.lk */
	uint64_t seq;        /* the deadline seq this waiter waits with */
};

struct net_fd {
	int fd;                        /* the socket; set once at creation */
	_Atomic int np_state;          /* enum net_np_state */
	struct netpoll *np;            /* valid once np_state is NP_READY */
	_Atomic int refs;              /* owner + operations in flight */
	atomic_bool closed;            /* net_fd_close was called */
	atomic_flag lk;                /* spin lock: guards writes of the
					  three below and reads of seq, ops */
	_Atomic int64_t deadline[2];   /* reads' and writes' (index mode -
					  1): absolute co_now() ns, 0 =
					  none; read without lk by
					  net_fd_check */
	uint64_t seq;                  /* bumped by each deadline change */
	struct net_op *ops;            /* registered waiters */
	void (*destroy)(struct net_fd *f); /* frees the containing object */
};

NET_API void net_fd_init(struct net_fd *f, int fd,
			 void (*destroy)(struct net_fd *f));
/* Takes a reference for one operation; -EPERM outside a task,
 * -ECANCELED once closed. */
NET_API int net_fd_begin(struct net_fd *f);
NET_API void net_fd_end(struct net_fd *f);
/* 0, -ECANCELED (closed) or -ETIMEDOUT (mode's deadline passed). */
NET_API int net_fd_check(struct net_fd *f, enum netpoll_mode mode);
/* After EAGAIN: parks until the descriptor may be ready for mode, or
 * something changed; returns 0 and the caller loops back to
 * net_fd_check, or a negative code when it could not wait at all
 * (-ENOMEM, a poller failure): then the operation fails with it. */
NET_API int net_fd_wait(struct net_fd *f, enum netpoll_mode mode);
/* Sets the deadline of each mode in modes (NETPOLL_READ | NETPOLL_WRITE:
 * Go's SetDeadline), waking the waiters so that they see it. */
NET_API int net_fd_set_deadline(struct net_fd *f, int modes,
				int64_t deadline);
/* Marks f closed, wakes its waiters, drops the owner's reference. */
NET_API void net_fd_close(struct net_fd *f);

/* ------------------------------------------------------------------------
 * addr.c: networks, address strings, resolution
 * ---------------------------------------------------------------------- */

enum net_kind { NET_TCP, NET_TCP4, NET_TCP6, NET_UNIX };

/* Room for every address a name may resolve to. */
#define NET_ADDR_MAX 8

struct net_addr {
	struct sockaddr_storage ss; /* the address */
	socklen_t len;              /* its length */
};

/* "tcp", "tcp4", "tcp6", "unix" -> *kind; -EINVAL otherwise. */
NET_API int net_kind_parse(const char *network, enum net_kind *kind);
/*
 * Resolves addr for network kind into up to NET_ADDR_MAX addresses, in
 * the order to try them.  passive: for listening (an empty host is every
 * interface, not the loopback).  Names go through uv_getaddrinfo with the
 * task parked.  Returns the count (> 0) or a negative code.
 */
NET_API int net_resolve(enum net_kind kind, const char *addr, bool passive,
			struct net_addr *out);
/* "1.2.3.4:80", "[::1]:80", a unix path, "@abstract"; -ERANGE if short. */
NET_API int net_addr_format(const struct sockaddr *sa, socklen_t len,
			    char *buf, size_t buflen);
/* A new non-blocking, close-on-exec stream socket, or -errno. */
NET_API int net_socket(int family);
/* errno of a failed socket call as a Copper code (EMFILE for ENFILE). */
NET_API int net_errno(int e);

/* ------------------------------------------------------------------------
 * conn.c: connections (dial.c and listen.c create them)
 * ---------------------------------------------------------------------- */

/* Wraps a connected non-blocking socket; NULL with *err (fd closed). */
NET_API co_conn *net_conn_new(int fd, int *err);
/* The descriptor core of c (dial.c connects through it). */
NET_API struct net_fd *net_conn_fd(co_conn *c);

#endif /* COPPER_NET_NET_H */
