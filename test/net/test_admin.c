/* SPDX-License-Identifier: MIT */
/*
 * test_admin.c - the admin port (net/admin.c over net/http_uv.c), tested
 * the way an on-call engineer uses it: a real process (admin_helper)
 * serving on a real socket, asked by curl and by go tool pprof, with the
 * answers read as they read them.
 *
 *   1. Endpoints   index, goroutine at debug 0/1/2, cmdline, symbol (GET
 *                  and POST, the protocol pprof's symbolz speaks), the
 *                  JSON task dump and the task count.
 *   2. Go's errors 404 "Unknown profile" with X-Go-Pprof, 301 for
 *                  /debug/pprof, 400 for a bad seconds, 404 elsewhere.
 *   3. Deltas      goroutine?seconds=1 and delta_* (godeltaprof's paths):
 *                  octet-stream gzip that go tool pprof opens.
 *   4. go tool pprof fetching from the URL (when go is installed).
 *   5. Bad clients garbage (400), a huge header (431), a slow client
 *                  that gets 408, while the port keeps answering.
 *   6. Stuck workers every worker in a task that never yields: the
 *                  goroutine profile still answers, in well under a
 *                  second.
 *   7. Safety      a remote address without a token stops co_run with
 *                  a message naming COPPER_ADMIN; with a token, 401
 *                  without it and 200 with it, no cmdline; a unix socket
 *                  of mode 0600; co_admin_listen's error codes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include <copper.h>

#include "test_util.h"

/* A running admin_helper. */
struct server {
	pid_t pid;
	int in;             /* its stdin: closing it ends it */
	char addr[256];     /* "127.0.0.1:port" or "unix:/path" */
	char out[4096];     /* what it printed before "listening" */
};

static bool server_start(struct server *s, const char *const env[],
			 const char *arg1, const char *arg2)
{
	int in[2], out[2];
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	fflush(NULL);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		const char *helper = getenv("COPPER_TEST_ADMIN_HELPER");
		execl(helper, helper, arg1, arg2, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->in = in[1];
	for (;;) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		ssize_t r = read(out[0], s->out + n, sizeof(s->out) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		s->out[n] = 0;
		char *l = strstr(s->out, "listening ");
		if (l && strchr(l, '\n')) {
			sscanf(l, "listening %255s", s->addr);
			break;
		}
	}
	close(out[0]);
	return s->addr[0] != 0;
}

/* Ends the helper; its exit status. */
static int server_stop(struct server *s)
{
	int status = 0;

	close(s->in);
	for (int i = 0; i < 500; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid)
			return status;
		usleep(10000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	return -1;
}

/* Runs a shell command; its stdout in out (NUL-terminated). */
static void sh(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	size_t n = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	while (n + 1 < cap) {
		size_t r = fread(out + n, 1, cap - 1 - n, f);
		if (r == 0)
			break;
		n += r;
	}
	out[n] = 0;
	pclose(f);
}

static char big[1 << 20];

static bool have_go(void)
{
	return system("go version >/dev/null 2>&1") == 0;
}

/* ------------------------------------------------------------------------
 * 1-3. Endpoints, Go's errors, deltas
 * ---------------------------------------------------------------------- */

static void test_endpoints(void **state)
{
	struct server s;
	(void)state;

	char want[256];

	assert_true(server_start(&s, NULL, "127.0.0.1:0", NULL));

	/* The index: Go's page, the profiles there are. */
	sh(big, sizeof(big), "curl -s -i http://%s/debug/pprof/", s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(big, "Content-Type: text/html; charset=utf-8"));
	assert_non_null(strstr(big, "X-Content-Type-Options: nosniff"));
	assert_non_null(strstr(big, "<a href='goroutine?debug=1'>goroutine</a>"));
	assert_non_null(strstr(big, "full goroutine stack dump"));
	assert_true(strlen(big) > 7 &&
		    strcmp(big + strlen(big) - 7, "</html>") == 0);

	/* goroutine at debug=1: the leak, grouped, at its line. */
	sh(big, sizeof(big), "curl -s -i 'http://%s/debug/pprof/goroutine?debug=1'",
	   s.addr);
	assert_non_null(strstr(big, "Content-Type: text/plain; charset=utf-8"));
	assert_non_null(strstr(big, "goroutine profile: total 22"));
	assert_non_null(strstr(big, "17 @ "));
	assert_non_null(strstr(big, "admin_leak_recv+"));
	assert_non_null(strstr(big, "# labels: {\"role\":\"leak\"}"));
	assert_non_null(strstr(big, "admin_helper.c:"));

	/* debug=2: Go's traceback per task; debug=5 is served as 2. */
	sh(big, sizeof(big), "curl -s 'http://%s/debug/pprof/goroutine?debug=2'",
	   s.addr);
	assert_non_null(strstr(big, "[chan receive"));
	assert_non_null(strstr(big, "main.admin_leak_recv") ?
			strstr(big, "main.admin_leak_recv") :
			strstr(big, "admin_leak_recv("));
	sh(big, sizeof(big), "curl -s 'http://%s/debug/pprof/goroutine?debug=5'",
	   s.addr);
	assert_non_null(strstr(big, "[chan receive"));
	/* An unparsable debug means 0, as Go's. */
	sh(big, sizeof(big), "curl -s -D - -o /dev/null "
	   "'http://%s/debug/pprof/goroutine?debug=x'", s.addr);
	assert_non_null(strstr(big, "Content-Disposition: attachment; "
				    "filename=\"goroutine\""));

	/* debug=0: gzip, octet-stream, an attachment. */
	sh(big, sizeof(big), "curl -s -D /dev/stderr "
	   "http://%s/debug/pprof/goroutine 2>/dev/null | head -c 2 | od -An -tx1",
	   s.addr);
	assert_non_null(strstr(big, "1f 8b"));
	sh(big, sizeof(big), "curl -s -D - -o /dev/null "
	   "http://%s/debug/pprof/goroutine", s.addr);
	assert_non_null(strstr(big, "Content-Type: application/octet-stream"));

	/* cmdline: NUL-separated, no trailing NUL. */
	sh(big, sizeof(big), "curl -s http://%s/debug/pprof/cmdline | tr '\\0' '|'",
	   s.addr);
	snprintf(want, sizeof(want), "%s|127.0.0.1:0",
		 getenv("COPPER_TEST_ADMIN_HELPER"));
	assert_string_equal(big, want);

	/* symbol: the address of a frame resolves to its function, GET
	 * and POST; a junk address gives no line. */
	sh(big, sizeof(big), "curl -s 'http://%s/debug/pprof/goroutine?debug=1' "
	   "| awk '/admin_leak_recv\\+/{print $2; exit}'", s.addr);
	char pc[64];
	assert_int_equal(sscanf(big, "%63s", pc), 1);
	sh(big, sizeof(big), "curl -s -d '%s+0x1+zz' http://%s/debug/pprof/symbol",
	   pc, s.addr);
	snprintf(want, sizeof(want), "num_symbols: 1\n%s admin_leak_recv\n", pc);
	assert_string_equal(big, want);
	sh(big, sizeof(big), "curl -s 'http://%s/debug/pprof/symbol?%s'", s.addr,
	   pc);
	assert_string_equal(big, want);
	sh(big, sizeof(big), "curl -s http://%s/debug/pprof/symbol", s.addr);
	assert_string_equal(big, "num_symbols: 1\n");

	/* Copper's own: the task count and the JSON dump. */
	sh(big, sizeof(big), "curl -s http://%s/debug/copper/tasks", s.addr);
	assert_string_equal(big, "22\n");
	sh(big, sizeof(big), "curl -s http://%s/debug/copper/tasks.json", s.addr);
	assert_non_null(strstr(big, "admin_leak_recv"));
	if (system("python3 -c 1 2>/dev/null") == 0) {
		sh(big, sizeof(big), "curl -s http://%s/debug/copper/tasks.json | "
		   "python3 -c 'import json,sys; json.load(sys.stdin); print(\"ok\")'",
		   s.addr);
		assert_string_equal(big, "ok\n");
	}

	/* Go's errors. */
	sh(big, sizeof(big), "curl -s -i http://%s/debug/pprof/nope", s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 404 Not Found"));
	assert_non_null(strstr(big, "X-Go-Pprof: 1"));
	assert_non_null(strstr(big, "\r\n\r\nUnknown profile\n"));
	sh(big, sizeof(big), "curl -s -i http://%s/debug/pprof/goroutine/", s.addr);
	assert_non_null(strstr(big, "Unknown profile"));
	sh(big, sizeof(big), "curl -s -i http://%s/debug/pprof", s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 301 Moved Permanently"));
	assert_non_null(strstr(big, "Location: /debug/pprof/"));
	sh(big, sizeof(big), "curl -s -i http://%s/elsewhere", s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 404"));
	const char *bad[] = {"abc", "0", "-1", "1.5"};
	for (size_t i = 0; i < 4; i++) {
		sh(big, sizeof(big), "curl -s -i "
		   "'http://%s/debug/pprof/goroutine?seconds=%s'", s.addr, bad[i]);
		assert_non_null(strstr(big, "HTTP/1.1 400"));
		assert_non_null(strstr(big, "invalid value for \"seconds\" - must "
					    "be a positive integer\n"));
	}
	sh(big, sizeof(big), "curl -s -i "
	   "'http://%s/debug/pprof/goroutine?seconds=1&debug=1'", s.addr);
	assert_non_null(strstr(big, "seconds and debug params are incompatible"));
	sh(big, sizeof(big), "curl -s -i "
	   "'http://%s/debug/pprof/goroutine?seconds=100000'", s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 400"));

	/* A delta: the change over one second, an attachment
	 * "goroutine-delta" that pprof opens (nothing changed: no sample). */
	sh(big, sizeof(big), "curl -s -D - -o /tmp/copper-admin-delta.$$ "
	   "'http://%s/debug/pprof/goroutine?seconds=1' && "
	   "head -c 2 /tmp/copper-admin-delta.$$ | od -An -tx1; "
	   "rm -f /tmp/copper-admin-delta.$$", s.addr);
	assert_non_null(strstr(big, "filename=\"goroutine-delta\""));
	assert_non_null(strstr(big, "1f 8b"));
	/* The execution trace: Chrome JSON that a JSON parser reads, with
	 * a track per worker; a second trace at once is Go's 500. */
	sh(big, sizeof(big), "curl -s -D /tmp/copper-admin-trace-h.$$ "
	   "-o /tmp/copper-admin-trace.$$ 'http://%s/debug/pprof/trace?seconds=0.5' & "
	   "sleep 0.1; curl -s -i 'http://%s/debug/pprof/trace?seconds=1'; wait; "
	   "cat /tmp/copper-admin-trace-h.$$; python3 -c 'import json,sys; "
	   "d=json.load(open(sys.argv[1])); print(\"events\", "
	   "len(d[\"traceEvents\"]))' /tmp/copper-admin-trace.$$; "
	   "rm -f /tmp/copper-admin-trace.$$ /tmp/copper-admin-trace-h.$$",
	   s.addr, s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 500"));
	assert_non_null(strstr(big, "Could not enable tracing: tracing is "
				    "already enabled"));
	assert_non_null(strstr(big, "filename=\"trace\""));
	assert_non_null(strstr(big, "\nevents "));

	/* godeltaprof's paths exist only for the profiles there are. */
	sh(big, sizeof(big), "curl -s -o /dev/null -w '%%{http_code}' "
	   "http://%s/debug/pprof/delta_nothing", s.addr);
	assert_string_equal(big, "404");

	assert_int_equal(server_stop(&s), 0);
}

/* ------------------------------------------------------------------------
 * 4. go tool pprof from the URL
 * ---------------------------------------------------------------------- */

static void test_go_tool_pprof(void **state)
{
	struct server s;
	(void)state;

	if (!have_go())
		skip();
	assert_true(server_start(&s, NULL, NULL, NULL));
	/* -symbolize=remote: pprof asks our symbol endpoint. */
	sh(big, sizeof(big), "HOME=/tmp PPROF_TMPDIR=/tmp go tool pprof "
	   "-symbolize=remote -traces http://%s/debug/pprof/goroutine 2>&1",
	   s.addr);
	assert_non_null(strstr(big, "admin_leak_recv"));
	assert_non_null(strstr(big, "co_chan_recv"));
	sh(big, sizeof(big), "HOME=/tmp PPROF_TMPDIR=/tmp go tool pprof -raw "
	   "'http://%s/debug/pprof/goroutine?seconds=1' 2>&1", s.addr);
	assert_non_null(strstr(big, "PeriodType: goroutine count"));
	assert_non_null(strstr(big, "Duration: 1"));
	/* Go's error body reaches the user through X-Go-Pprof. */
	sh(big, sizeof(big), "HOME=/tmp PPROF_TMPDIR=/tmp go tool pprof -raw "
	   "http://%s/debug/pprof/nope 2>&1", s.addr);
	assert_non_null(strstr(big, "Unknown profile"));
	assert_int_equal(server_stop(&s), 0);
}

/* ------------------------------------------------------------------------
 * 5. Bad clients
 * ---------------------------------------------------------------------- */

static int dial(const char *addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64];
	int port, fd;

	assert_int_equal(sscanf(addr, "%63[^:]:%d", host, &port), 2);
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Sends data, reads until the server closes or timeout_ms. */
static void exchange(const char *addr, const char *data, size_t len,
		     char *out, size_t cap, int timeout_ms)
{
	int fd = dial(addr);
	size_t n = 0;

	if (len && write(fd, data, len) < 0) {}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		ssize_t r = read(fd, out + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = 0;
	close(fd);
}

static void test_bad_clients(void **state)
{
	struct server s;
	char out[4096];
	(void)state;

	assert_true(server_start(&s, NULL, NULL, NULL));
	exchange(s.addr, "GARBAGE\r\n\r\n", 11, out, sizeof(out), 5000);
	assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));

	/* A header past 16 KiB. */
	static char huge[40000];
	int n = snprintf(huge, sizeof(huge), "GET /debug/pprof/ HTTP/1.1\r\nX: ");
	memset(huge + n, 'a', 30000);
	memcpy(huge + n + 30000, "\r\n\r\n", 4);
	exchange(s.addr, huge, (size_t)n + 30004, out, sizeof(out), 5000);
	assert_non_null(strstr(out, "HTTP/1.1 431"));

	/* A slow client holds its connection; others are served meanwhile,
	 * and it gets 408 when its request time is up. */
	int slow = dial(s.addr);
	assert_int_equal(write(slow, "GET /debug/pprof/ HTTP/1.1\r\n", 28), 28);
	sh(big, sizeof(big), "curl -s -o /dev/null -w '%%{http_code}' "
	   "http://%s/debug/copper/tasks", s.addr);
	assert_string_equal(big, "200");
	struct pollfd pfd = {.fd = slow, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 15000), 1);
	ssize_t r = read(slow, out, sizeof(out) - 1);
	assert_true(r > 0);
	out[r] = 0;
	assert_non_null(strstr(out, "HTTP/1.1 408"));
	close(slow);

	/* Many connections at once, past the limit: the port survives. */
	int fds[64];
	for (int i = 0; i < 64; i++)
		fds[i] = dial(s.addr);
	for (int i = 0; i < 64; i++)
		close(fds[i]);
	sh(big, sizeof(big), "curl -s http://%s/debug/copper/tasks", s.addr);
	assert_string_equal(big, "22\n");
	assert_int_equal(server_stop(&s), 0);
}

/* ------------------------------------------------------------------------
 * 6. Every worker stuck
 * ---------------------------------------------------------------------- */

static void test_stuck_workers(void **state)
{
	const char *env[] = {"COPPER_PROCS=2", NULL};
	struct server s;
	double secs;
	(void)state;

	assert_true(server_start(&s, env, "spin", NULL));
	sh(big, sizeof(big), "curl -s -o /tmp/copper-admin-spin.$$ -w '%%{time_total}' "
	   "'http://%s/debug/pprof/goroutine?debug=1' && "
	   "grep -q 'admin_spin+' /tmp/copper-admin-spin.$$ && printf '\\nspin\\n'; "
	   "rm -f /tmp/copper-admin-spin.$$", s.addr);
	assert_int_equal(sscanf(big, "%lf", &secs), 1);
	print_message("# goroutine?debug=1 with every worker spinning: %.1f ms\n",
		      secs * 1000);
	assert_true(secs < 2.0); /* the target, 100 ms, is bench's to show */
	assert_non_null(strstr(big, "\nspin\n")); /* the spinners, running */
	assert_int_equal(server_stop(&s), 0);
}

/* Two overlapping CPU profiles (a continuous profiler and an engineer):
 * each gets a valid profile of its own window, from one session; the
 * spinners are in both. */
static void test_cpu_profiles_overlap(void **state)
{
	const char *env[] = {"COPPER_PROCS=2", NULL};
	struct server s;
	(void)state;

	if (!have_go())
		skip();
	assert_true(server_start(&s, env, "spin", NULL));
	sh(big, sizeof(big),
	   "cd /tmp && curl -s -D /tmp/copper-cpu-h1.$$ -o /tmp/copper-cpu-1.$$ "
	   "'http://%s/debug/pprof/profile?seconds=2' & sleep 0.5; "
	   "curl -s -o /tmp/copper-cpu-2.$$ 'http://%s/debug/pprof/profile?seconds=1'; "
	   "wait; cat /tmp/copper-cpu-h1.$$; for f in 1 2; do "
	   "HOME=/tmp go tool pprof -raw /tmp/copper-cpu-$f.$$ > /tmp/copper-cpu-r.$$ 2>&1; "
	   "grep -E '^(PeriodType|Duration)' /tmp/copper-cpu-r.$$; "
	   "grep -q admin_spin /tmp/copper-cpu-r.$$ && echo spinners; done; "
	   "rm -f /tmp/copper-cpu-*.$$", s.addr, s.addr);
	assert_non_null(strstr(big, "HTTP/1.1 200"));
	assert_non_null(strstr(big, "filename=\"profile\""));
	assert_non_null(strstr(big, "PeriodType: cpu nanoseconds"));
	/* Each its own window: about 2 s, then about 1 s. */
	const char *d1 = strstr(big, "Duration: ");
	assert_non_null(d1);
	const char *d2 = strstr(d1 + 1, "Duration: ");
	assert_non_null(d2);
	char *u1, *u2;
	double s1 = strtod(d1 + 10, &u1), s2 = strtod(d2 + 10, &u2);
	/* pprof prints the duration with %.4v: below a second "999ms" is
	 * cut to "999." (no unit left); no window here lasts 100 s. */
	if (strncmp(u1, "ms", 2) == 0 || s1 > 100)
		s1 /= 1000;
	if (strncmp(u2, "ms", 2) == 0 || s2 > 100)
		s2 /= 1000;
	print_message("# windows: %.2f s and %.2f s\n", s1, s2);
	assert_true(s1 > 1.5 && s1 < 3.0);
	assert_true(s2 > 0.5 && s2 < 1.5);
	/* The spinners burn CPU in both windows. */
	char *first = strstr(big, "spinners");
	assert_non_null(first);
	assert_non_null(strstr(first + 1, "spinners"));
	assert_int_equal(server_stop(&s), 0);
}

/* ------------------------------------------------------------------------
 * 7. Safety
 * ---------------------------------------------------------------------- */

static void test_remote_needs_token(void **state)
{
	const char *helper = tu_helper("COPPER_TEST_ADMIN_HELPER");
	char *argv[] = {(char *)helper, NULL};
	const char *env[] = {"COPPER_ADMIN=0.0.0.0:0", "COPPER_ADMIN_TOKEN",
			     NULL};
	struct tu_proc p;
	(void)state;

	assert_false(tu_proc_run_timeout(argv, env, &p, 10000));
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 1);
	assert_non_null(strstr(p.err, "COPPER_ADMIN=\"0.0.0.0:0\""));
	assert_non_null(strstr(p.err, "COPPER_ADMIN_TOKEN"));

	const char *env2[] = {"COPPER_ADMIN=127.0.0.1:notaport", NULL};
	assert_false(tu_proc_run_timeout(argv, env2, &p, 10000));
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 1);
	assert_non_null(strstr(p.err, "COPPER_ADMIN=\"127.0.0.1:notaport\""));
}

static void test_token(void **state)
{
	const char *env[] = {"COPPER_ADMIN=0.0.0.0:0",
			     "COPPER_ADMIN_TOKEN=s3cret", NULL};
	struct server s;
	(void)state;

	assert_true(server_start(&s, env, NULL, NULL));
	/* Bound on every interface; reach it through loopback. */
	char *colon = strrchr(s.addr, ':');
	char local[64];
	snprintf(local, sizeof(local), "127.0.0.1%s", colon);
	sh(big, sizeof(big), "curl -s -i http://%s/debug/pprof/", local);
	assert_non_null(strstr(big, "HTTP/1.1 401"));
	assert_non_null(strstr(big, "WWW-Authenticate: Bearer"));
	sh(big, sizeof(big), "curl -s -i -H 'Authorization: Bearer wrong' "
	   "http://%s/debug/pprof/", local);
	assert_non_null(strstr(big, "HTTP/1.1 401"));
	sh(big, sizeof(big), "curl -s -i -H 'Authorization: Bearer s3cret' "
	   "'http://%s/debug/pprof/goroutine?debug=1'", local);
	assert_non_null(strstr(big, "HTTP/1.1 200"));
	assert_non_null(strstr(big, "goroutine profile: total"));
	/* No cmdline on a remote address unless asked for. */
	sh(big, sizeof(big), "curl -s -i -H 'Authorization: Bearer s3cret' "
	   "http://%s/debug/pprof/cmdline", local);
	assert_non_null(strstr(big, "HTTP/1.1 404"));
	assert_int_equal(server_stop(&s), 0);
}

static void test_unix_socket(void **state)
{
	char path[96], env_addr[160];
	struct server s;
	struct stat st;
	(void)state;

	snprintf(path, sizeof(path), "/tmp/copper-admin-test-%d.sock", getpid());
	snprintf(env_addr, sizeof(env_addr), "COPPER_ADMIN=unix:%s", path);
	const char *env[] = {env_addr, NULL};
	/* A stale socket file from a process that is gone is replaced. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);

	assert_true(server_start(&s, env, NULL, NULL));
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	sh(big, sizeof(big), "curl -s --unix-socket %s "
	   "'http://x/debug/pprof/goroutine?debug=1'", path);
	assert_non_null(strstr(big, "goroutine profile: total 22"));
	assert_int_equal(server_stop(&s), 0);
	/* Gone with the port. */
	assert_int_not_equal(stat(path, &st), 0);
}

struct listen_errs {
	int null_addr, remote, remote_token_only, bad_addr, bad_opts,
	    empty_token, ok, addr_ok, addr_small;
	char addr[128];
};

static void listen_errs_main(void *arg)
{
	struct listen_errs *e = arg;
	co_admin_options remote = {.token = "t", .allow_remote = false};
	co_admin_options bad = {.max_seconds = -1};
	co_admin_options empty = {.token = ""};
	char small[4];

	e->null_addr = co_admin_listen(NULL, NULL);
	e->remote = co_admin_listen("0.0.0.0:0", NULL);
	e->remote_token_only = co_admin_listen("0.0.0.0:0", &remote);
	e->bad_addr = co_admin_listen("no-port-here", NULL);
	e->bad_opts = co_admin_listen("127.0.0.1:0", &bad);
	e->empty_token = co_admin_listen("127.0.0.1:0", &empty);
	e->ok = co_admin_listen("127.0.0.1:0", NULL);
	e->addr_ok = co_admin_addr(e->addr, sizeof(e->addr));
	e->addr_small = co_admin_addr(small, sizeof(small));
}

static void test_listen_errors(void **state)
{
	struct listen_errs e;
	char buf[8];
	(void)state;

	assert_int_equal(co_admin_addr(buf, sizeof(buf)), CO_ENOENT);
	assert_int_equal(co_run(listen_errs_main, &e), 0);
	assert_int_equal(e.null_addr, CO_EINVAL);
	assert_int_equal(e.remote, CO_EACCES);
	assert_int_equal(e.remote_token_only, CO_EACCES);
	assert_int_equal(e.bad_addr, CO_EINVAL);
	assert_int_equal(e.bad_opts, CO_EINVAL);
	assert_int_equal(e.empty_token, CO_EINVAL);
	assert_int_equal(e.ok, 0);
	assert_int_equal(e.addr_ok, 0);
	assert_non_null(strstr(e.addr, "127.0.0.1:"));
	assert_int_equal(e.addr_small, CO_ERANGE);
	/* Closed with co_run. */
	assert_int_equal(co_admin_addr(buf, sizeof(buf)), CO_ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_go_tool_pprof),
		cmocka_unit_test(test_bad_clients),
		cmocka_unit_test(test_stuck_workers),
		cmocka_unit_test(test_cpu_profiles_overlap),
		cmocka_unit_test(test_remote_needs_token),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_unix_socket),
		cmocka_unit_test(test_listen_errors),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
