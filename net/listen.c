/* SPDX-License-Identifier: MIT */
/*
 * listen.c - listeners: co_listen, co_accept, co_listener_addr,
 * co_listener_close, for TCP (IPv4, IPv6, dual-stack) and unix sockets.
 *
 * How it works.  co_listen resolves the address (addr.c), then binds and
 * listens on the first address that works: for "tcp" with no host that is
 * the dual-stack wildcard [::] with IPV6_V6ONLY off, then 0.0.0.0 where
 * the host has no IPv6.  co_accept is the loop of net.h around accept4(2)
 * (non-blocking, close-on-exec in one call), parking on EAGAIN.  No
 * poller handle exists until the first co_accept has to wait, so a
 * listener may be created outside a task (before the first accept).
 *
 * Descriptor exhaustion.  accept4 failing with EMFILE/ENFILE returns
 * -EMFILE to the caller at once and leaves the listener usable: the
 * pending connection stays in the backlog until a descriptor is free.
 * Backing off is the caller's policy (http.c sleeps and retries, as Go's
 * net/http does).  ECONNABORTED (the peer gave up in the backlog) is
 * retried silently, also as Go does.
 *
 * Closing.  co_listener_close marks the listener closed, shuts the socket
 * down when an accept is in flight (Linux then fails accept with EINVAL
 * and reports readiness, so a task about to park wakes too), wakes the
 * waiter with -ECANCELED, and removes the unix socket file it created.
 *
 * Invariants: a listener's memory lives until co_listener_close and every
 * co_accept in flight have returned (net_fd reference count); path is
 * set only for a filesystem unix socket this listener created.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

/* Backlog asked of listen(2); the kernel caps it at somaxconn. */
#define LISTEN_BACKLOG 4096

struct co_listener {
	struct net_fd nf; /* the descriptor core; first, for listener_destroy */
	char *path;       /* unix socket file to remove on close, or NULL */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void listener_destroy(struct net_fd *f);
static int listen_on(enum net_kind kind, const struct net_addr *a);
static int set_options(int fd, enum net_kind kind, int family);
static co_listener *listener_new(int fd, enum net_kind kind,
				 const char *addr, int *err);

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

CO_EXTERN co_listener *co_listen(const char *network, const char *addr,
				 int *err)
{
	struct net_addr addrs[NET_ADDR_MAX];
	enum net_kind kind;
	int dummy, n, fd = CO_EINVAL;

	if (!err)
		err = &dummy;
	if ((*err = net_kind_parse(network, &kind)) < 0)
		return NULL;
	if ((n = net_resolve(kind, addr, true, addrs)) < 0) {
		*err = n;
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		fd = listen_on(kind, &addrs[i]);
		if (fd >= 0 || (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL))
			break; /* done, or a real error (EADDRINUSE, ...) */
	}
	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	return listener_new(fd, kind, addr, err);
}

CO_EXTERN int co_listener_addr(co_listener *l, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (!l || !buf)
		return CO_EINVAL;
	if (getsockname(l->nf.fd, (struct sockaddr *)&ss, &sl) != 0)
		return -errno;
	return net_addr_format((struct sockaddr *)&ss, sl, buf, len);
}

CO_EXTERN co_conn *co_accept(co_listener *l, int *err)
{
	co_conn *c = NULL;
	int dummy, rc, fd;

	if (!err)
		err = &dummy;
	if (!l)
		return *err = CO_EINVAL, NULL;
	if ((rc = net_fd_begin(&l->nf)) < 0)
		return *err = rc, NULL;
	for (;;) {
		if ((rc = net_fd_check(&l->nf, NETPOLL_READ)) < 0)
			break;
		fd = accept4(l->nf.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			c = net_conn_new(fd, &rc);
			break;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN) {
			rc = atomic_load(&l->nf.closed) ? CO_ECANCELED
							 : net_errno(errno);
			break;
		}
		if ((rc = net_fd_wait(&l->nf, NETPOLL_READ)) < 0)
			break;
	}
	net_fd_end(&l->nf);
	*err = c ? 0 : rc;
	return c;
}

CO_EXTERN void co_listener_close(co_listener *l)
{
	if (!l)
		return;
	if (l->path) /* before the close: a new listener may take the name */
		unlink(l->path);
	net_fd_close(&l->nf);
}

/* ------------------------------------------------------------------------
 * Statics
 * ---------------------------------------------------------------------- */

static void listener_destroy(struct net_fd *f)
{
	co_listener *l = (co_listener *)f;

	free(l->path);
	free(l);
}

/* A bound, listening socket for a, or a negative code. */
static int listen_on(enum net_kind kind, const struct net_addr *a)
{
	int family = a->ss.ss_family;
	int fd, rc;

	if ((fd = net_socket(family)) < 0)
		return fd;
	if ((rc = set_options(fd, kind, family)) < 0)
		goto out_close;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		rc = net_errno(errno);
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return rc;
}

static int set_options(int fd, enum net_kind kind, int family)
{
	int one = 1, v6only = kind == NET_TCP6;

	if (family == AF_UNIX)
		return 0;
	/* Restart on a port in TIME_WAIT, as every server does. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		return -errno;
	if (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		       sizeof(v6only)) != 0)
		return -errno;
	return 0;
}

static co_listener *listener_new(int fd, enum net_kind kind,
				 const char *addr, int *err)
{
	co_listener *l = calloc(1, sizeof(*l));

	if (!l)
		goto out_close;
	if (kind == NET_UNIX && addr[0] != '@' && !(l->path = strdup(addr)))
		goto out_free;
	net_fd_init(&l->nf, fd, listener_destroy);
	*err = 0;
	return l;
out_free:
	free(l);
out_close:
	if (kind == NET_UNIX && addr[0] != '@')
		unlink(addr);
	close(fd);
	*err = CO_ENOMEM;
	return NULL;
}
