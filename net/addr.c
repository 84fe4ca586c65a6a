/* SPDX-License-Identifier: MIT */
/*
 * addr.c - network names ("tcp", "tcp4", "tcp6", "unix"), address strings
 * ("host:port", "[v6]:port", ":port", unix paths) and name resolution.
 *
 * How it works.  An address string is split into host and port the way
 * Go's net.SplitHostPort does.  A numeric host (and port) is converted by
 * getaddrinfo with AI_NUMERICHOST | AI_NUMERICSERV, which never touches
 * the network or a file and so may run on the worker.  Anything else — a
 * name like "localhost", a service name like "http" — goes to libuv's
 * resolver (uv_getaddrinfo on the thread pool) through sched_uv_call, with
 * the task parked in "IO wait" and its worker free.
 *
 * An empty host means every interface for a listener (the dual-stack
 * wildcard [::] for "tcp", falling back to 0.0.0.0 where IPv6 is missing)
 * and the loopback for a dialer, as in Go.  For a listener given a name,
 * IPv4 results come first (Go's listen picks an IPv4 address first too).
 *
 * Rejected alternative: calling getaddrinfo for names on the worker — it
 * may block for seconds on DNS and would stall every task of the worker.
 *
 * Invariants: every function here is reentrant; net_resolve returns at
 * least one address or a negative code, never 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net/net.h"

/* Longest host and port we accept ("[" and "]" stripped). */
#define HOST_MAX 256
#define PORT_MAX 32

/* One uv_getaddrinfo request run through sched_uv_call. */
struct gai_call {
	uv_getaddrinfo_t req;   /* the libuv request */
	struct task *task;      /* parked caller, for sched_uv_done */
	const char *host;       /* node to resolve */
	const char *port;       /* service */
	struct addrinfo hints;  /* family and socket type */
	int status;             /* out: libuv status */
	struct addrinfo *res;   /* out: the list; uv_freeaddrinfo */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static int split_host_port(const char *addr, char *host, char *port);
static int resolve_unix(const char *path, struct net_addr *out);
static int resolve_wildcard(enum net_kind kind, bool passive,
			    const char *port, struct net_addr *out);
static int resolve_name(const char *host, const char *port, int family,
			bool passive, struct net_addr *out);
static int gai_code(int eai);
static int uv_gai_code(int status);
static int copy_list(const struct addrinfo *res, bool v4_first,
		     struct net_addr *out);

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

int net_kind_parse(const char *network, enum net_kind *kind)
{
	static const struct {
		const char *name;
		enum net_kind kind;
	} names[] = {{"tcp", NET_TCP}, {"tcp4", NET_TCP4},
		     {"tcp6", NET_TCP6}, {"unix", NET_UNIX}};

	if (!network)
		return CO_EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(network, names[i].name) == 0) {
			*kind = names[i].kind;
			return 0;
		}
	}
	return CO_EINVAL;
}

int net_resolve(enum net_kind kind, const char *addr, bool passive,
		struct net_addr *out)
{
	static const int family[] = {
		[NET_TCP] = AF_UNSPEC, [NET_TCP4] = AF_INET, [NET_TCP6] = AF_INET6};
	char host[HOST_MAX], port[PORT_MAX];
	struct addrinfo hints = {0}, *res = NULL;
	int rc;

	if (!addr)
		return CO_EINVAL;
	if (kind == NET_UNIX)
		return resolve_unix(addr, out);
	if ((rc = split_host_port(addr, host, port)) < 0)
		return rc;
	if (host[0] == '\0')
		return resolve_wildcard(kind, passive, port, out);
	hints.ai_family = family[kind];
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_NONAME)
		return resolve_name(host, port, family[kind], passive, out);
	if (rc != 0)
		return gai_code(rc);
	rc = copy_list(res, passive, out);
	freeaddrinfo(res);
	return rc;
}

int net_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		    size_t buflen)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		n = snprintf(buf, buflen, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		n = snprintf(buf, buflen, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)sa;
		size_t plen = len > offsetof(struct sockaddr_un, sun_path)
				      ? len - offsetof(struct sockaddr_un, sun_path)
				      : 0;
		if (plen > 0 && un->sun_path[0] == '\0') /* abstract */
			n = snprintf(buf, buflen, "@%.*s", (int)(plen - 1),
				     un->sun_path + 1);
		else
			n = snprintf(buf, buflen, "%.*s", (int)strnlen(un->sun_path, plen),
				     un->sun_path);
	} else {
		return CO_EINVAL;
	}
	return n >= 0 && (size_t)n < buflen ? 0 : CO_ERANGE;
}

int net_socket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd >= 0 ? fd : net_errno(errno);
}

int net_errno(int e)
{
	switch (e) {
	case ENFILE:
		return CO_EMFILE; /* the system's table: same remedy */
	case ENOBUFS:
		return CO_ENOMEM;
	default:
		return -e;
	}
}

/* ------------------------------------------------------------------------
 * Statics
 * ---------------------------------------------------------------------- */

/* Go's SplitHostPort: "h:p", "[v6]:p", ":p"; the port must be there. */
static int split_host_port(const char *addr, char *host, char *port)
{
	const char *colon, *h = addr;
	size_t hlen;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':')
			return CO_EINVAL;
		h = addr + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		if (!(colon = strrchr(addr, ':')))
			return CO_EINVAL;
		hlen = (size_t)(colon - addr);
		if (memchr(addr, ':', hlen)) /* a bare IPv6 address */
			return CO_EINVAL;
	}
	if (hlen >= HOST_MAX || strlen(colon + 1) >= PORT_MAX ||
	    colon[1] == '\0')
		return CO_EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

static int resolve_unix(const char *path, struct net_addr *out)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
	size_t plen = strlen(path);

	if (plen == 0 || plen >= sizeof(un->sun_path))
		return CO_EINVAL;
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, plen);
	if (path[0] == '@') { /* Linux's abstract namespace */
		un->sun_path[0] = '\0';
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	} else {
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	}
	return 1;
}

/* ":port": every interface to listen on, the loopback to dial. */
static int resolve_wildcard(enum net_kind kind, bool passive,
			    const char *port, struct net_addr *out)
{
	const char *hosts[2];
	int n = 0, rc, got = 0;

	if (kind != NET_TCP4)
		hosts[n++] = passive ? "::" : "::1";
	if (kind != NET_TCP6)
		hosts[n++] = passive ? "0.0.0.0" : "127.0.0.1";
	if (kind == NET_TCP && !passive) { /* Go dials IPv4 loopback first */
		hosts[0] = "127.0.0.1";
		hosts[1] = "::1";
	}
	for (int i = 0; i < n; i++) {
		struct addrinfo hints = {0}, *res = NULL;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		rc = getaddrinfo(hosts[i], port, &hints, &res);
		if (rc == EAI_NONAME) /* a service name: resolve it */
			return resolve_name(hosts[i], port, AF_UNSPEC, passive, out);
		if (rc != 0)
			return gai_code(rc);
		memcpy(&out[got].ss, res->ai_addr, res->ai_addrlen);
		out[got++].len = res->ai_addrlen;
		freeaddrinfo(res);
	}
	return got;
}

static void gai_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gai_call *c = req->data;

	c->status = status;
	c->res = res;
	sched_uv_done(c->task);
}

/* On the task's worker, with the task parked. */
static int gai_submit(uv_loop_t *loop, void *arg)
{
	struct gai_call *c = arg;

	c->req.data = c;
	return uv_getaddrinfo(loop, &c->req, gai_done, c->host, c->port,
			      &c->hints);
}

static int resolve_name(const char *host, const char *port, int family,
			bool passive, struct net_addr *out)
{
	struct gai_call c = {0};
	int rc;

	if (co_self() == 0)
		return CO_EPERM;
	c.task = sched_uv_task();
	c.host = host;
	c.port = port;
	c.hints.ai_family = family;
	c.hints.ai_socktype = SOCK_STREAM;
	if ((rc = sched_uv_call(gai_submit, &c)) < 0)
		return uv_gai_code(rc);
	if (c.status < 0) {
		uv_freeaddrinfo(c.res);
		return uv_gai_code(c.status);
	}
	rc = copy_list(c.res, passive, out);
	uv_freeaddrinfo(c.res);
	return rc;
}

/* getaddrinfo's EAI_* as a Copper code. */
static int gai_code(int eai)
{
	switch (eai) {
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_ADDRFAMILY:
		return CO_ENOENT;
	case EAI_SERVICE:
	case EAI_FAMILY:
	case EAI_BADFLAGS:
		return CO_EINVAL;
	case EAI_AGAIN:
		return CO_EAGAIN;
	case EAI_MEMORY:
		return CO_ENOMEM;
	case EAI_SYSTEM:
		return net_errno(errno);
	default:
		return CO_EIO;
	}
}

/* libuv's UV_EAI_* (or a plain -errno) as a Copper code. */
static int uv_gai_code(int status)
{
	switch (status) {
	case UV_EAI_NONAME:
	case UV_EAI_NODATA:
	case UV_EAI_ADDRFAMILY:
		return CO_ENOENT;
	case UV_EAI_SERVICE:
	case UV_EAI_FAMILY:
	case UV_EAI_BADFLAGS:
		return CO_EINVAL;
	case UV_EAI_AGAIN:
		return CO_EAGAIN;
	case UV_EAI_MEMORY:
		return CO_ENOMEM;
	case UV_ECANCELED:
		return CO_ECANCELED;
	default:
		return status > -4000 ? status : CO_EIO; /* UV_E* = -errno */
	}
}

/* Copies up to NET_ADDR_MAX stream addresses, IPv4 first if asked. */
static int copy_list(const struct addrinfo *res, bool v4_first,
		     struct net_addr *out)
{
	int n = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (const struct addrinfo *ai = res; ai && n < NET_ADDR_MAX;
		     ai = ai->ai_next) {
			bool v4 = ai->ai_family == AF_INET;
			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			if (v4_first ? (pass == 0) != v4 : pass == 1)
				continue;
			memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
			out[n++].len = ai->ai_addrlen;
		}
	}
	return n > 0 ? n : CO_ENOENT;
}
