/* SPDX-License-Identifier: MIT */
/*
 * net_test.h - what the net suites share: checks that may run inside
 * tasks, running a test body under co_run, and plain blocking sockets for
 * peers that live outside the runtime (threads with their own sockets).
 *
 * Why CHECK and not assert_*: cmocka's assertions longjmp back to the test
 * function, which is only valid on its own thread and stack.  A task runs
 * on its own stack on some worker, so tasks record failures with CHECK
 * (the first message is kept) and the test asserts nt_run's result after
 * co_run has returned.  Raw peers run on plain threads (pthread) with
 * blocking sockets and SO_RCVTIMEO, so a broken server makes a check
 * fail instead of a test that hangs.
 *
 * Invariants: each test program includes this header once; nt_run resets
 * the failure record, so every case starts afresh.
 */
#ifndef COPPER_TEST_NET_TEST_H
#define COPPER_TEST_NET_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <copper.h>

#if defined(__SANITIZE_ADDRESS__)
#define NT_ASAN 1
#else
#define NT_ASAN 0
#endif

#define NT_MS ((int64_t)1000000)
#define NT_SEC ((int64_t)1000000000)

static _Atomic int nt_failures; /* CHECKs failed since nt_run began */
static atomic_flag nt_msg_taken; /* set by the first failure */
static char nt_msg[512];         /* its message */

static inline void nt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void nt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	atomic_fetch_add(&nt_failures, 1);
	if (atomic_flag_test_and_set(&nt_msg_taken))
		return;
	n = snprintf(nt_msg, sizeof(nt_msg), "%s:%d: ", file, line);
	va_start(ap, fmt);
	vsnprintf(nt_msg + n, sizeof(nt_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			nt_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);   \
	} while (0)

#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ != b_)                                              \
			nt_fail(__FILE__, __LINE__, "%s == %lld, want %s == %lld", \
				#a, a_, #b, b_);                           \
	} while (0)

/* Runs main_fn under co_run and fails the test on any CHECK failure. */
#define nt_run(main_fn, arg)                                               \
	do {                                                               \
		atomic_store(&nt_failures, 0);                             \
		atomic_flag_clear(&nt_msg_taken);                          \
		nt_msg[0] = '\0';                                          \
		assert_int_equal(co_run(main_fn, arg), 0);                 \
		if (atomic_load(&nt_failures) != 0)                        \
			fail_msg("%d failed checks; first: %s",            \
				 atomic_load(&nt_failures), nt_msg);       \
	} while (0)

/* Heavy counts, divided by 5 under AddressSanitizer. */
static inline int nt_scale(int n)
{
	return NT_ASAN ? (n / 5 > 0 ? n / 5 : 1) : n;
}

/* ------------------------------------------------------------------------
 * Raw blocking sockets for peers outside the runtime
 * ---------------------------------------------------------------------- */

/* Splits "host:port" / "[v6]:port" (from co_listener_addr) and connects a
 * blocking TCP socket with a receive timeout of timeout_ms; -1 on error. */
static inline int nt_raw_dial(const char *addr, int timeout_ms)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int fd;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	if (addr[0] == '[') {
		memcpy(host, addr + 1, (size_t)(colon - addr - 2));
		host[colon - addr - 2] = '\0';
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)atoi(colon + 1));
		inet_pton(AF_INET6, host, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)atoi(colon + 1));
		inet_pton(AF_INET, host, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes all of buf on a blocking socket; false on error. */
static inline bool nt_raw_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Reads until EOF, an error or a timeout, at most cap - 1 bytes; the
 * result is NUL-terminated.  Returns the byte count. */
static inline size_t nt_raw_read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

/* Starts fn(arg) on a plain thread. */
static inline pthread_t nt_thread(void *(*fn)(void *), void *arg)
{
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
	return th;
}

/* A unix socket path unique to this process and tag. */
static inline void nt_unix_path(char *buf, size_t len, const char *tag)
{
	const char *dir = getenv("TMPDIR");

	snprintf(buf, len, "%s/copper-net-%d-%s.sock", dir ? dir : "/tmp",
		 (int)getpid(), tag);
	unlink(buf);
}

#endif /* COPPER_TEST_NET_TEST_H */
