/* SPDX-License-Identifier: MIT */
/*
 * dial.c - co_dial: connect to a TCP or unix address, names resolved
 * through libuv's resolver.
 *
 * How it works.  The address resolves to a list (addr.c); each entry is
 * tried in order until one connects, and the last error is returned when
 * none does.  A connect is a non-blocking connect(2) inside the net.h loop
 * of a fresh connection object: EINPROGRESS parks the task until the
 * socket is writable, then SO_ERROR tells the outcome (Go's connect does
 * the same, including the getpeername check that tells a finished connect
 * from a spurious wake-up).  A unix socket whose backlog is full answers
 * EAGAIN rather than EINPROGRESS and cannot be polled for room, so that
 * case sleeps briefly and retries, for at most DIAL_UNIX_RETRIES times.
 *
 * Rejected alternative: uv_tcp_connect — the connection would then live
 * on a libuv stream, which net/ does not use for I/O (netpoll.c explains
 * why), and it resolves nothing by itself either.
 *
 * Invariants: a failed attempt closes its descriptor before the next one
 * starts, so a long list of refused addresses holds one descriptor at a
 * time; co_dial returns a conn or sets *err, never both.
 */
#include <errno.h>
#include <sys/socket.h>

#include "net/net.h"

/* A full unix backlog: this many retries, DIAL_UNIX_SLEEP ns apart. */
#define DIAL_UNIX_RETRIES 1000
#define DIAL_UNIX_SLEEP 1000000

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static co_conn *dial_one(const struct net_addr *a, int *err);
static int dial_connect(struct net_fd *nf, const struct net_addr *a);
static int dial_finished(int fd);

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

CO_EXTERN co_conn *co_dial(const char *network, const char *addr, int *err)
{
	struct net_addr addrs[NET_ADDR_MAX];
	enum net_kind kind;
	co_conn *c = NULL;
	int dummy, n;

	if (!err)
		err = &dummy;
	if (co_self() == 0)
		return *err = CO_EPERM, NULL;
	if ((*err = net_kind_parse(network, &kind)) < 0)
		return NULL;
	if ((n = net_resolve(kind, addr, false, addrs)) < 0)
		return *err = n, NULL;
	for (int i = 0; i < n && !c; i++)
		c = dial_one(&addrs[i], err);
	return c;
}

/* ------------------------------------------------------------------------
 * Statics
 * ---------------------------------------------------------------------- */

static co_conn *dial_one(const struct net_addr *a, int *err)
{
	co_conn *c;
	int fd, rc;

	if ((fd = net_socket(a->ss.ss_family)) < 0)
		return *err = fd, NULL;
	if (!(c = net_conn_new(fd, err)))
		return NULL;
	if ((rc = net_fd_begin(net_conn_fd(c))) == 0) {
		rc = dial_connect(net_conn_fd(c), a);
		net_fd_end(net_conn_fd(c));
	}
	if (rc < 0) {
		co_close(c);
		return *err = rc, NULL;
	}
	*err = 0;
	return c;
}

/* Inside net_fd_begin/end: 0 once connected, or a negative code. */
static int dial_connect(struct net_fd *nf, const struct net_addr *a)
{
	int rc, tries = 0;

	if (connect(nf->fd, (const struct sockaddr *)&a->ss, a->len) == 0)
		return 0;
	while (errno == EAGAIN && a->ss.ss_family == AF_UNIX &&
	       ++tries < DIAL_UNIX_RETRIES) {
		co_sleep(DIAL_UNIX_SLEEP);
		if (connect(nf->fd, (const struct sockaddr *)&a->ss, a->len) == 0)
			return 0;
	}
	if (errno != EINPROGRESS && errno != EINTR)
		return net_errno(errno);
	for (;;) {
		if ((rc = net_fd_wait(nf, NETPOLL_WRITE)) < 0)
			return rc;
		if ((rc = net_fd_check(nf, NETPOLL_WRITE)) < 0)
			return rc;
		if ((rc = dial_finished(nf->fd)) <= 0)
			return rc;
	}
}

/* 0 connected, 1 still in progress, or the connect's error. */
static int dial_finished(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(int);
	int soerr = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		return -errno;
	if (soerr != 0)
		return -soerr;
	sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		return 0;
	return errno == ENOTCONN ? 1 : -errno;
}
