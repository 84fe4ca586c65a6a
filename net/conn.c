/* SPDX-License-Identifier: MIT */
/*
 * conn.c - connections: co_read, co_write, deadlines, half-close and
 * close over a struct net_fd (net.h).
 *
 * How it works.  Each call is the loop of net.h: check (closed,
 * deadline), the system call on the non-blocking socket, and on EAGAIN a
 * park in net_fd_wait; then around again.  Reads take what the kernel has
 * (a short count is normal).  co_write loops until every byte is sent;
 * writers are serialised by a co_mutex so that two tasks' messages never
 * interleave, which is what "writes all or fails" promises.  send() with
 * MSG_NOSIGNAL keeps a peer's reset from raising SIGPIPE: the call gets
 * -EPIPE instead and the process lives.
 *
 * Rejected alternatives:
 *   - libuv streams (uv_read_start/uv_write): completion-based, one
 *     allocation or copy per read, and every call would have to run on
 *     the handle's loop thread (netpoll.c's header has the long form).
 *   - Ignoring SIGPIPE process-wide: it changes the program's signal
 *     disposition behind its back; MSG_NOSIGNAL is per call.
 *
 * Invariants:
 *   - a conn's memory lives until co_close and every call in flight on it
 *     have finished (net_fd reference count);
 *   - wmu is held by at most one co_write, across its whole loop, and is
 *     destroyed only when the last reference goes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

struct co_conn {
	struct net_fd nf; /* the descriptor core; first, for conn_destroy */
	co_mutex wmu;     /* serialises co_write; init at creation */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void conn_destroy(struct net_fd *f);
static ssize_t conn_send_all(co_conn *c, const char *p, size_t len);
static int conn_addr(co_conn *c, bool peer, char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Internal API
 * ---------------------------------------------------------------------- */

co_conn *net_conn_new(int fd, int *err)
{
	co_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		close(fd);
		*err = CO_ENOMEM;
		return NULL;
	}
	co_mutex_init(&c->wmu);
	net_fd_init(&c->nf, fd, conn_destroy);
	/* Small writes go out at once, as Go does; unix sockets refuse. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*err = 0;
	return c;
}

struct net_fd *net_conn_fd(co_conn *c)
{
	return &c->nf;
}

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

CO_EXTERN ssize_t co_read(co_conn *c, void *buf, size_t len)
{
	ssize_t rc;

	if (!c || (!buf && len))
		return CO_EINVAL;
	if ((rc = net_fd_begin(&c->nf)) < 0)
		return rc;
	for (;;) {
		if ((rc = net_fd_check(&c->nf, NETPOLL_READ)) < 0)
			break;
		if (len == 0)
			break;
		rc = recv(c->nf.fd, buf, len, 0);
		if (rc >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			rc = -errno;
			break;
		}
		if ((rc = net_fd_wait(&c->nf, NETPOLL_READ)) < 0)
			break;
	}
	net_fd_end(&c->nf);
	return rc;
}

CO_EXTERN ssize_t co_write(co_conn *c, const void *buf, size_t len)
{
	ssize_t rc;

	if (!c || (!buf && len) || len > SSIZE_MAX)
		return CO_EINVAL;
	if ((rc = net_fd_begin(&c->nf)) < 0)
		return rc;
	if ((rc = co_mutex_lock(&c->wmu)) == 0) {
		rc = conn_send_all(c, buf, len);
		co_mutex_unlock(&c->wmu);
	}
	net_fd_end(&c->nf);
	return rc;
}

CO_EXTERN int co_set_deadline(co_conn *c, int64_t deadline_ns)
{
	if (!c)
		return CO_EINVAL;
	return net_fd_set_deadline(&c->nf, NETPOLL_READ | NETPOLL_WRITE,
				   deadline_ns);
}

CO_EXTERN int co_set_read_deadline(co_conn *c, int64_t deadline_ns)
{
	if (!c)
		return CO_EINVAL;
	return net_fd_set_deadline(&c->nf, NETPOLL_READ, deadline_ns);
}

CO_EXTERN int co_set_write_deadline(co_conn *c, int64_t deadline_ns)
{
	if (!c)
		return CO_EINVAL;
	return net_fd_set_deadline(&c->nf, NETPOLL_WRITE, deadline_ns);
}

CO_EXTERN int co_close_write(co_conn *c)
{
	int rc;

	if (!c)
		return CO_EINVAL;
	if ((rc = net_fd_begin(&c->nf)) < 0)
		return rc;
	/* Behind any write in progress, so its bytes precede the FIN. */
	if ((rc = co_mutex_lock(&c->wmu)) == 0) {
		rc = shutdown(c->nf.fd, SHUT_WR) == 0 ? 0 : -errno;
		co_mutex_unlock(&c->wmu);
	}
	net_fd_end(&c->nf);
	return rc;
}

CO_EXTERN int co_conn_local_addr(co_conn *c, char *buf, size_t len)
{
	return conn_addr(c, false, buf, len);
}

CO_EXTERN int co_conn_peer_addr(co_conn *c, char *buf, size_t len)
{
	return conn_addr(c, true, buf, len);
}

CO_EXTERN void co_close(co_conn *c)
{
	if (c)
		net_fd_close(&c->nf);
}

/* ------------------------------------------------------------------------
 * Statics
 * ---------------------------------------------------------------------- */

static void conn_destroy(struct net_fd *f)
{
	co_conn *c = (co_conn *)f;

	co_mutex_destroy(&c->wmu);
	free(c);
}

/* With wmu held: sends every byte or returns the first error. */
static ssize_t conn_send_all(co_conn *c, const char *p, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int rc;

	while (done < len) {
		if ((rc = net_fd_check(&c->nf, NETPOLL_WRITE)) < 0)
			return rc;
		n = send(c->nf.fd, p + done, len - done, MSG_NOSIGNAL);
		if (n >= 0) {
			done += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if ((rc = net_fd_wait(&c->nf, NETPOLL_WRITE)) < 0)
			return rc;
	}
	return (ssize_t)len;
}

static int conn_addr(co_conn *c, bool peer, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int rc;

	if (!c || !buf)
		return CO_EINVAL;
	rc = peer ? getpeername(c->nf.fd, (struct sockaddr *)&ss, &sl)
		  : getsockname(c->nf.fd, (struct sockaddr *)&ss, &sl);
	if (rc != 0)
		return -errno;
	return net_addr_format((struct sockaddr *)&ss, sl, buf, len);
}
