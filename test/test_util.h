/* SPDX-License-Identifier: MIT */
/*
 * test_util.h - what the runtime test suites share: checks that may run
 * inside tasks, waiting without channels, heavy-count scaling, capturing
 * stderr, and running a helper program as a subprocess.
 *
 * Why CHECK and not assert_*: cmocka's assertions longjmp back to the test
 * function, which is only valid on the thread and the stack that called it.
 * A task runs on its own stack, often on another worker thread, so a task
 * never calls assert_*.  It records a failure with CHECK() (the first
 * message is kept), and the test asserts tu_assert_no_failures() once
 * co_run has returned: counts first, then cleanliness (STYLE.md rule 20).
 *
 * Waiting: channels, mutexes and wait groups are not used by the runtime
 * suites, so tasks synchronise on C11 atomics, polled with co_yield (and a
 * short co_sleep now and then so that a poller does not starve the others
 * when COPPER_PROCS exceeds the cores).  Every wait has a deadline: a hang
 * becomes a failed CHECK, never a test that only meson's timeout ends.
 *
 * Invariants:
 *   - CHECK is safe from any task on any worker, and from plain threads;
 *   - each test file includes this header once, so the failure record is
 *     per test program (static), and tu_reset() starts every case afresh;
 *   - tu_scale() is the only place heavy counts are scaled (COPPER_TEST_SCALE
 *     multiplies them; an AddressSanitizer build divides them by 10).
 */
#ifndef COPPER_TEST_UTIL_H
#define COPPER_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <copper.h>

#include "runtime/testing.h"

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

#define TU_MS ((int64_t)1000000)
#define TU_SEC ((int64_t)1000000000)

/* ------------------------------------------------------------------------
 * Checks that may run inside tasks
 * ---------------------------------------------------------------------- */

static _Atomic int tu_failures;   /* CHECKs that failed since tu_reset */
static atomic_flag tu_msg_taken;  /* set by the first failure */
static char tu_msg[512];          /* its message; written once */

static inline void tu_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void tu_fail(const char *file, int line, const char *fmt, ...)
{
	if (atomic_fetch_add(&tu_failures, 1) == 0 &&
	    !atomic_flag_test_and_set(&tu_msg_taken)) {
		va_list ap;
		int n = snprintf(tu_msg, sizeof(tu_msg), "%s:%d: ", file, line);
		va_start(ap, fmt);
		vsnprintf(tu_msg + n, sizeof(tu_msg) - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			tu_fail(__FILE__, __LINE__, "CHECK(%s) failed",    \
				#cond);                                    \
	} while (0)

/* Integer equality with both values in the message. */
#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ != b_)                                              \
			tu_fail(__FILE__, __LINE__,                        \
				"CHECK_EQ(%s, %s) failed: %lld != %lld", #a, \
				#b, a_, b_);                               \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *a_ = (a), *b_ = (b);                           \
		if (strcmp(a_, b_) != 0)                                   \
			tu_fail(__FILE__, __LINE__,                        \
				"CHECK_STR(%s, %s) failed: \"%s\" != \"%s\"", \
				#a, #b, a_, b_);                           \
	} while (0)

static inline void tu_reset(void)
{
	atomic_store(&tu_failures, 0);
	atomic_flag_clear(&tu_msg_taken);
	tu_msg[0] = '\0';
}

/* After co_run: fails the cmocka case with the first CHECK message. */
#define tu_assert_no_failures()                                            \
	do {                                                               \
		int n_ = atomic_load(&tu_failures);                        \
		if (n_ != 0)                                               \
			fail_msg("%d check(s) failed in tasks; first: %s", \
				 n_, tu_msg);                              \
	} while (0)

/* ------------------------------------------------------------------------
 * Waiting on atomics from a task
 * ---------------------------------------------------------------------- */

/* One round of a poll loop: mostly co_yield, every 64th round a 20 us
 * sleep, so that pollers leave the CPU to the tasks they wait for. */
static inline void tu_poll_pause(unsigned long round)
{
	if ((round & 63) == 63)
		co_sleep(20000);
	else
		co_yield();
}

/*
 * Polls until cond holds or timeout_ns passes; evaluates to cond's final
 * truth.  Only from inside a task.
 */
#define TU_WAIT_UNTIL(cond, timeout_ns)                                    \
	__extension__({                                                    \
		int64_t end_ = co_now() + (timeout_ns);                    \
		unsigned long round_ = 0;                                  \
		bool ok_;                                                  \
		while (!(ok_ = (cond)) && co_now() < end_)                 \
			tu_poll_pause(round_++);                           \
		ok_;                                                       \
	})

/* Waits for co_num_tasks() to drop to want (tasks finish their exit after
 * the last line of their body runs). */
static inline bool tu_wait_num_tasks(size_t want, int64_t timeout_ns)
{
	return TU_WAIT_UNTIL(co_num_tasks() == want, timeout_ns);
}

/* ------------------------------------------------------------------------
 * Scaling heavy counts
 * ---------------------------------------------------------------------- */

/* n times COPPER_TEST_SCALE (a positive number, default 1), divided by 10
 * under AddressSanitizer; never below 1. */
static inline long tu_scale(long n)
{
	const char *s = getenv("COPPER_TEST_SCALE");
	double f = 1.0;

	if (s && *s) {
		char *end;
		double v = strtod(s, &end);
		if (*end == '\0' && v > 0)
			f = v;
	}
#ifdef TU_ASAN
	f /= 10;
#endif
	long r = (long)((double)n * f);
	return r > 0 ? r : 1;
}

/* ------------------------------------------------------------------------
 * Running the runtime from a test case
 * ---------------------------------------------------------------------- */

/* co_run(main_fn, arg) with a fresh failure record; then asserts it
 * returned 0, that no CHECK failed, and that nothing is left: no task is
 * counted and the caller is not a task. */
#define tu_run(main_fn, arg)                                               \
	do {                                                               \
		tu_reset();                                                \
		assert_int_equal(co_run((main_fn), (arg)), 0);             \
		tu_assert_no_failures();                                   \
		assert_int_equal(co_num_tasks(), 0);                       \
		assert_int_equal(co_self(), 0);                            \
	} while (0)

/* ------------------------------------------------------------------------
 * Environment
 * ---------------------------------------------------------------------- */

/* Sets (value non-NULL) or unsets name; asserts it worked. */
static inline void tu_setenv(const char *name, const char *value)
{
	if (value)
		assert_int_equal(setenv(name, value, 1), 0);
	else
		assert_int_equal(unsetenv(name), 0);
}

/* ------------------------------------------------------------------------
 * Capturing this process's stderr (fd 2) around a call
 * ---------------------------------------------------------------------- */

struct tu_capture {
	int saved_fd;   /* the original fd 2 */
	FILE *file;     /* the temporary file fd 2 points at meanwhile */
};

static inline void tu_capture_begin(struct tu_capture *c)
{
	fflush(stderr);
	c->file = tmpfile();
	assert_non_null(c->file);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Restores fd 2 and copies what was written meanwhile into buf. */
static inline void tu_capture_end(struct tu_capture *c, char *buf, size_t len)
{
	fflush(stderr);
	assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
	close(c->saved_fd);
	rewind(c->file);
	size_t n = fread(buf, 1, len - 1, c->file);
	buf[n] = '\0';
	fclose(c->file);
}

/* ------------------------------------------------------------------------
 * Running a helper program
 * ---------------------------------------------------------------------- */

struct tu_proc {
	int status;        /* waitpid status */
	char out[16384];   /* its stdout, NUL-terminated, truncated */
	char err[16384];   /* its stderr, likewise */
};

static inline void tu_drain(int fd, char *buf, size_t *len, size_t cap,
			    bool *open)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		*open = false;
		return;
	}
	size_t room = cap - 1 - *len;
	size_t take = (size_t)n < room ? (size_t)n : room;
	memcpy(buf + *len, tmp, take);
	*len += take;
	buf[*len] = '\0';
}

/*
 * Runs argv[0] with argv, this process's environment changed by env
 * ("NAME=value" sets, "NAME" alone unsets; NULL-terminated, may be NULL),
 * and fills p.  Asserts that the program could be started.  A program
 * still running after timeout_ms (< 0: no limit) is killed with SIGKILL;
 * returns true if it had to be.  With ready non-NULL, sends the program
 * sig once its stdout contains ready (*sent says whether it did): the
 * real signal, the way a user sends it.  Children dump no core.
 */
static inline bool tu_proc_run_signal(char *const argv[],
				      const char *const env[],
				      struct tu_proc *p, int timeout_ms,
				      const char *ready, int sig, bool *sent)
{
	int out[2], err[2];
	bool killed = false;

	if (sent)
		*sent = false;
	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		struct rlimit nocore = {0, 0};
		setrlimit(RLIMIT_CORE, &nocore);
		for (size_t i = 0; env && env[i]; i++) {
			const char *eq = strchr(env[i], '=');
			if (eq) {
				char name[128];
				size_t n = (size_t)(eq - env[i]);
				if (n >= sizeof(name))
					_exit(126);
				memcpy(name, env[i], n);
				name[n] = '\0';
				setenv(name, eq + 1, 1);
			} else {
				unsetenv(env[i]);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	size_t nout = 0, nerr = 0;
	bool out_open = true, err_open = true;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t end = ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	while (out_open || err_open) {
		struct pollfd fds[2] = {
			{.fd = out_open ? out[0] : -1, .events = POLLIN},
			{.fd = err_open ? err[0] : -1, .events = POLLIN},
		};
		int wait_ms = -1;
		if (timeout_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t left = end - (ts.tv_sec * 1000 +
					      ts.tv_nsec / 1000000);
			if (left <= 0 && !killed) {
				kill(pid, SIGKILL);
				killed = true;
			}
			/* Once killed, the pipes close at once. */
			wait_ms = killed ? 1000 : (int)left;
		}
		int n = poll(fds, 2, wait_ms);
		if (n < 0) {
			assert_int_equal(errno, EINTR);
			continue;
		}
		if (n == 0 && killed)
			break; /* something else holds the pipes open */
		if (fds[0].revents)
			tu_drain(out[0], p->out, &nout, sizeof(p->out),
				 &out_open);
		if (fds[1].revents)
			tu_drain(err[0], p->err, &nerr, sizeof(p->err),
				 &err_open);
		if (ready && sent && !*sent && strstr(p->out, ready)) {
			kill(pid, sig);
			*sent = true;
		}
	}
	close(out[0]);
	close(err[0]);
	while (waitpid(pid, &p->status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return killed;
}

static inline bool tu_proc_run_timeout(char *const argv[],
				       const char *const env[],
				       struct tu_proc *p, int timeout_ms)
{
	return tu_proc_run_signal(argv, env, p, timeout_ms, NULL, 0, NULL);
}

static inline void tu_proc_run(char *const argv[], const char *const env[],
			       struct tu_proc *p)
{
	(void)tu_proc_run_timeout(argv, env, p, -1);
}

/* Whether text has prefix, then "task " or Go's "goroutine ", then the
 * number id as a whole number. */
static inline bool tu_names_task(const char *text, const char *prefix,
				 unsigned long long id)
{
	static const char *const words[] = {"task ", "goroutine "};
	char want[64];

	for (size_t w = 0; w < 2; w++) {
		snprintf(want, sizeof(want), "%s%s%llu", prefix, words[w], id);
		for (const char *p = strstr(text, want); p;
		     p = strstr(p + 1, want))
			if (p[strlen(want)] < '0' || p[strlen(want)] > '9')
				return true;
	}
	return false;
}

/* The path of a helper program that test/meson.build passes in the
 * environment variable var. */
static inline const char *tu_helper(const char *var)
{
	const char *path = getenv(var);
	if (!path || !*path)
		fail_msg("%s is not set: run the tests with meson test", var);
	return path;
}

/* ------------------------------------------------------------------------
 * Task status through runtime/testing.h (the wait reason of a parked task)
 * ---------------------------------------------------------------------- */

/* True when task id is live and its status text is want. */
static inline bool status_is(uint64_t id, const char *want)
{
	char s[64];

	if (testing_task_status(id, s, sizeof(s), NULL, NULL, 0) != 0)
		return false;
	return strcmp(s, want) == 0;
}

/* From a task: waits (5 s at most) until task id shows status want. */
static inline void wait_status_at(const char *file, int line, uint64_t id,
			   const char *want)
{
	char s[64] = "";
	int64_t end = co_now() + 5 * TU_SEC;
	unsigned long round = 0;

	for (;;) {
		if (testing_task_status(id, s, sizeof(s), NULL, NULL, 0) != 0)
			snprintf(s, sizeof(s), "(not live)");
		else if (strcmp(s, want) == 0)
			return;
		if (co_now() >= end)
			break;
		tu_poll_pause(round++);
	}
	tu_fail(file, line, "task %llu shows \"%s\", want \"%s\"",
		(unsigned long long)id, s, want);
}
#define WAIT_STATUS(id, want) wait_status_at(__FILE__, __LINE__, (id), (want))

/* ------------------------------------------------------------------------
 * Signal masks from /proc
 * ---------------------------------------------------------------------- */

/* Reads the mask line `field` ("SigBlk", "SigCgt", ...) of a /proc status
 * file into *mask; false if the file or the line is missing. */
static inline bool tu_status_sigmask(const char *path, const char *field,
				     unsigned long long *mask)
{
	char line[256], fmt[32];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	snprintf(fmt, sizeof(fmt), "%s: %%llx", field);
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, fmt, mask) == 1;
	fclose(f);
	return found;
}

/* Whether mask, as read by tu_status_sigmask, holds sig. */
static inline bool tu_sigmask_has(unsigned long long mask, int sig)
{
	return mask >> (sig - 1) & 1;
}

#endif /* COPPER_TEST_UTIL_H */
