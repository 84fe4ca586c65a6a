/* SPDX-License-Identifier: MIT */
/*
 * admin.c - the admin port: /debug/pprof/... with Go's net/http/pprof
 * behaviour (pprof-formats.md section 4: paths, parameters, statuses,
 * headers, bodies), plus Copper's own /debug/copper/..., served by the
 * loop driver of the HTTP server (http_uv.c) on the profiler's service
 * thread (profiler/service.c).
 *
 * Why its own thread: the engineer pulls a profile because the process is
 * stuck, and then every worker may be in a task that never yields, or
 * every task deadlocked.  Nothing here waits for a worker: a goroutine
 * profile is a snapshot taken by signals (snapshot.c), the other
 * profiles read tables the hooks filled, and what takes `seconds` (CPU
 * profile, delta profiles) waits on a loop timer with the answer
 * deferred, so the port keeps answering meanwhile.
 *
 * Safe by default: loopback (or a unix socket of mode 0600) unless the
 * options allow a remote address and set a token; the token is checked
 * in constant time on every request; cmdline (which may carry secrets)
 * is off on a remote address unless asked for; `seconds` is bounded;
 * connections, request size and time are bounded by the HTTP layer.
 *
 * A profile is rendered by the public co_profile_write into a memory
 * file (memfd) and read back: the admin port uses profiles exactly as a
 * program would, and no second path into the profiler exists.
 *
 * Rejected: serving from a task with the public server (dead when the
 * workers are); a thread per request (a port that sees a request every
 * few seconds needs no pool, and `seconds` waits need no thread at all);
 * rendering into a pipe (a profile larger than the pipe would block the
 * only thread that reads it).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uv.h>

#include "net/http.h"
#include "profiler/profiler.h"
#include "runtime/introspect.h"

#define ADMIN_MAX_SECONDS 300
#define ADMIN_MAX_CONNS 32
#define ADMIN_CPU_DEFAULT_SECONDS 30

struct admin_port {
	struct http_uv_server *srv;
	char *token;                 /* NULL: none */
	bool remote;                 /* not loopback */
	bool cmdline;                /* serve cmdline */
	int max_seconds;
	co_http_config cfg;
	struct admin_port *next;
};

/* A request waiting for `seconds` on a loop timer. */
struct admin_wait {
	uv_timer_t timer;
	co_http_response *w;
	struct admin_port *port;
	void (*finish)(struct admin_wait *aw, bool cancelled);
	char name[32];               /* the profile */
	struct http_buf before;      /* delta: the first collection */
	int fd;                      /* trace: its memory file, or -1 */
	int64_t start_ns;            /* co_now() at the start */
	struct admin_wait *next;
};

static struct {
	pthread_mutex_t lock;        /* guards last_addr */
	char last_addr[128];         /* the last port bound, "" if none */
	/* Service thread only: */
	struct admin_port *ports;
	struct admin_wait *waits;
	int memfd;                   /* render target, 0: not open */
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------
 * Answers
 * ---------------------------------------------------------------------- */

static void put_common(co_http_response *w)
{
	co_http_response_header(w, "X-Content-Type-Options", "nosniff");
}

/* Go's serveError: text, X-Go-Pprof (go tool pprof prints the body). */
static void put_error(co_http_response *w, int status, const char *text)
{
	w->headers.len = 0;
	w->body.len = 0;
	put_common(w);
	co_http_response_status(w, status);
	co_http_response_header(w, "Content-Type", "text/plain; charset=utf-8");
	co_http_response_header(w, "X-Go-Pprof", "1");
	co_http_response_write(w, text, strlen(text));
	co_http_response_write(w, "\n", 1);
}

static void put_text(co_http_response *w, const char *s, size_t len)
{
	put_common(w);
	co_http_response_header(w, "Content-Type", "text/plain; charset=utf-8");
	co_http_response_write(w, s, len);
}

static void put_binary(co_http_response *w, const char *filename)
{
	char disp[96];

	put_common(w);
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", filename);
	co_http_response_header(w, "Content-Type", "application/octet-stream");
	co_http_response_header(w, "Content-Disposition", disp);
}

/* ------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of key in a query string, percent-decoded, as Go's
 * FormValue (the first one); false if absent. */
static bool query_get(const char *q, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);

	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t n = end ? (size_t)(end - q) : strlen(q);
		if (n >= kl && strncmp(q, key, kl) == 0 &&
		    (n == kl || q[kl] == '=')) {
			size_t o = 0;
			for (size_t i = n == kl ? n : kl + 1; i < n && o + 1 < len;
			     i++) {
				int c = q[i], h, l;
				if (c == '+')
					c = ' ';
				else if (c == '%' && i + 2 < n &&
					 (h = hexval(q[i + 1])) >= 0 &&
					 (l = hexval(q[i + 2])) >= 0) {
					c = h << 4 | l;
					i += 2;
				}
				buf[o++] = (char)c;
			}
			buf[o] = 0;
			return true;
		}
		q = end ? end + 1 : NULL;
	}
	if (len)
		buf[0] = 0;
	return false;
}

/* Go's strconv.Atoi on a parameter; def if absent or unparsable. */
static long query_long(const char *q, const char *key, long def, bool *bad)
{
	char v[32], *end;
	long n;

	if (bad)
		*bad = false;
	if (!query_get(q, key, v, sizeof(v)) || !*v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (*end || errno) {
		if (bad)
			*bad = true;
		return def;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Rendering a profile into the answer
 * ---------------------------------------------------------------------- */

/* Writes profile p at debug into buf through a memory file. */
/* Runs write(fd, arg) on the memory file and appends what it wrote to
 * buf. */
static int collect(int (*write_fn)(int fd, void *arg), void *arg,
		   struct http_buf *buf)
{
	char chunk[65536];
	ssize_t n;
	int err;

	if (A.memfd <= 0 &&
	    (A.memfd = memfd_create("copper-admin", MFD_CLOEXEC)) < 0) {
		A.memfd = 0;
		return -errno;
	}
	if (ftruncate(A.memfd, 0) < 0 || lseek(A.memfd, 0, SEEK_SET) < 0)
		return -errno;
	if ((err = write_fn(A.memfd, arg)) < 0)
		return err;
	if (lseek(A.memfd, 0, SEEK_SET) < 0)
		return -errno;
	while ((n = read(A.memfd, chunk, sizeof(chunk))) > 0)
		if ((err = http_buf_append(buf, chunk, (size_t)n)) < 0)
			return err;
	return n < 0 ? -errno : 0;
}

struct render_args {
	co_profile *p;
	int debug;
};

static int render_fn(int fd, void *arg)
{
	struct render_args *ra = arg;
	return co_profile_write(ra->p, fd, ra->debug);
}

/* Writes profile p at debug into buf through a memory file. */
static int render(co_profile *p, int debug, struct http_buf *buf)
{
	struct render_args ra = {p, debug};
	return collect(render_fn, &ra, buf);
}

static int profile_max_debug(const char *name)
{
	return strcmp(name, "goroutine") == 0 ? 2 : 1;
}

/* ------------------------------------------------------------------------
 * Waits: `seconds` on a loop timer
 * ---------------------------------------------------------------------- */

static void wait_closed(uv_handle_t *h)
{
	struct admin_wait *aw = h->data;

	http_buf_free(&aw->before);
	if (aw->fd >= 0)
		close(aw->fd);
	free(aw);
}

static void wait_end(struct admin_wait *aw, bool cancelled)
{
	struct admin_wait **pp = &A.waits;

	while (*pp && *pp != aw)
		pp = &(*pp)->next;
	if (*pp)
		*pp = aw->next;
	aw->finish(aw, cancelled);
	http_uv_resume(aw->w);
	uv_close((uv_handle_t *)&aw->timer, wait_closed);
}

static void wait_fired(uv_timer_t *t)
{
	wait_end(t->data, false);
}

static struct admin_wait *wait_start(co_http_response *w,
				     struct admin_port *port, int64_t ms,
				     void (*finish)(struct admin_wait *, bool),
				     const char *name)
{
	struct admin_wait *aw = calloc(1, sizeof(*aw));

	if (!aw)
		return NULL;
	aw->fd = -1;
	aw->w = w;
	aw->port = port;
	aw->finish = finish;
	aw->start_ns = co_now();
	snprintf(aw->name, sizeof(aw->name), "%s", name);
	uv_timer_init(service_loop(), &aw->timer);
	aw->timer.data = aw;
	uv_timer_start(&aw->timer, wait_fired, (uint64_t)ms, 0);
	aw->next = A.waits;
	A.waits = aw;
	http_response_defer(w);
	return aw;
}

/* ------------------------------------------------------------------------
 * CPU profile and trace: answers deferred while their seconds run
 * ---------------------------------------------------------------------- */

/*
 * The CPU profile: one sampling session serves every request, each
 * getting the samples of its own window (Go answers a second one "cpu
 * profiling already in use"; a continuous profiler and an engineer then
 * cannot both look).  A request renders the session so far at its start
 * (cpuprof_write_now) and at its end, and answers the difference
 * (pprof_delta), which is its window exactly: the session's counts only
 * grow.  The first request starts the session (its output, written at
 * stop, goes to /dev/null); the last one to end stops it.  A profile the
 * program itself started is shared the same way, and left running.
 */
static struct {
	int users;                   /* requests in their window */
	bool owned;                  /* the admin port started the session */
	int devnull;
} C = {.devnull = -1};

static int cpu_now_fn(int fd, void *arg)
{
	(void)arg;
	return cpuprof_write_now(fd);
}

static void cpu_release(void)
{
	if (--C.users > 0 || !C.owned)
		return;
	co_cpu_profile_stop();
	close(C.devnull);
	C.devnull = -1;
	C.owned = false;
}

static void finish_cpu(struct admin_wait *aw, bool cancelled)
{
	struct http_buf after = {0};
	char *delta = NULL;
	size_t len = 0;

	if (cancelled) {
		put_error(aw->w, 503, "admin port shutting down");
	} else if (collect(cpu_now_fn, NULL, &after) < 0 ||
		   pprof_delta(aw->before.p, aw->before.len, after.p, after.len,
			       co_now() - aw->start_ns, false, &delta, &len) < 0) {
		put_error(aw->w, 500, "Could not write the CPU profile");
	} else {
		put_binary(aw->w, "profile");
		co_http_response_write(aw->w, delta, len);
	}
	free(delta);
	http_buf_free(&after);
	cpu_release();
}

static int admin_cpu_begin(co_http_response *w, long seconds)
{
	struct http_buf before = {0};
	int err;

	if (C.users == 0) {
		if ((C.devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
			return -errno;
		err = co_cpu_profile_start(C.devnull);
		if (err < 0 && err != CO_EBUSY) {
			close(C.devnull);
			C.devnull = -1;
			return err;
		}
		C.owned = err == 0;
		if (!C.owned) {
			close(C.devnull); /* the program's own: shared */
			C.devnull = -1;
		}
	}
	C.users++;
	if ((err = collect(cpu_now_fn, NULL, &before)) < 0) {
		http_buf_free(&before);
		cpu_release();
		return err == CO_EINVAL ? CO_EBUSY : err;
	}
	struct admin_wait *aw = wait_start(w, NULL, (int64_t)seconds * 1000,
					   finish_cpu, "profile");
	if (!aw) {
		http_buf_free(&before);
		cpu_release();
		return CO_ENOMEM;
	}
	aw->before = before;
	return 0;
}

/* Reads a whole memory file into the answer's body. */
static int body_from_fd(co_http_response *w, int fd)
{
	char chunk[65536];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (co_http_response_write(w, chunk, (size_t)n) < 0)
			return CO_ENOMEM;
	return n < 0 ? -errno : 0;
}

static void finish_trace(struct admin_wait *aw, bool cancelled)
{
	int err = co_trace_stop();

	if (cancelled) {
		put_error(aw->w, 503, "admin port shutting down");
		return;
	}
	if (err < 0 || body_from_fd(aw->w, aw->fd) < 0) {
		put_error(aw->w, 500, "Could not write the trace");
		return;
	}
	put_binary(aw->w, "trace");
}

/* Go's Trace handler: seconds as a float, invalid or <= 0 means 1; the
 * body is Chrome Trace Event JSON here (Go's is its own binary format). */
static void admin_trace_serve(const co_http_request *r, co_http_response *w,
			      int max_seconds)
{
	char v[32], msg[160];
	double s = 1;
	int fd, err;

	if (query_get(r->query, "seconds", v, sizeof(v)) && *v) {
		char *end;
		s = strtod(v, &end);
		if (*end || !(s > 0))
			s = 1;
	}
	if (s > max_seconds) {
		put_error(w, 400, "profile duration exceeds the admin port's "
				  "limit (max_seconds)");
		return;
	}
	if ((fd = memfd_create("copper-trace", MFD_CLOEXEC)) < 0) {
		put_error(w, 500, "Could not enable tracing: out of descriptors");
		return;
	}
	if ((err = co_trace_start(fd)) < 0) {
		close(fd);
		snprintf(msg, sizeof(msg), "Could not enable tracing: %s",
			 err == CO_EBUSY ? "tracing is already enabled"
					 : co_strerror(err));
		put_error(w, 500, msg);
		return;
	}
	struct admin_wait *aw = wait_start(w, NULL, (int64_t)(s * 1000),
					   finish_trace, "trace");
	if (!aw) {
		co_trace_stop();
		close(fd);
		put_error(w, 500, "Could not enable tracing: out of memory");
		return;
	}
	aw->fd = fd;
}

/* ------------------------------------------------------------------------
 * Endpoints
 * ---------------------------------------------------------------------- */

static const char *const descriptions[][2] = {
	{"allocs", "A sampling of all past memory allocations"},
	{"block", "Stack traces that led to blocking on synchronization "
		  "primitives"},
	{"cmdline", "The command line invocation of the current program"},
	{"goroutine", "Stack traces of all current goroutines"},
	{"heap", "A sampling of memory allocations of live objects. You can "
		 "specify the gc GET parameter to run GC before taking the heap "
		 "sample."},
	{"mutex", "Stack traces of holders of contended mutexes"},
	{"profile", "CPU profile. You can specify the duration in the seconds "
		    "GET parameter. After you get the profile file, use the go "
		    "tool pprof command to investigate the profile."},
	{"threadcreate", "Stack traces that led to the creation of new OS "
			 "threads"},
	{"trace", "A trace of execution of the current program. You can "
		  "specify the duration in the seconds GET parameter. After you "
		  "get the trace file, use the go tool trace command to "
		  "investigate the trace."},
};
#define NDESC (sizeof(descriptions) / sizeof(descriptions[0]))

static bool endpoint_exists(const char *name)
{
	if (strcmp(name, "cmdline") == 0 || strcmp(name, "profile") == 0 ||
	    strcmp(name, "trace") == 0)
		return true;
	return co_profile_lookup(name) != NULL;
}

/* Go's Index template, byte for byte; rows sorted by name. */
static void serve_index(co_http_response *w)
{
	static const char head[] =
		"<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
		".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
		"</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\n"
		"Types of profiles available:\n<table>\n"
		"<thead><td>Count</td><td>Profile</td></thead>\n";
	static const char mid[] =
		"</table>\n<a href=\"goroutine?debug=2\">full goroutine stack "
		"dump</a>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n";
	static const char tail[] = "</ul>\n</p>\n</body>\n</html>";
	char line[512];
	int n;

	put_common(w);
	co_http_response_header(w, "Content-Type", "text/html; charset=utf-8");
	co_http_response_write(w, head, sizeof(head) - 1);
	for (size_t i = 0; i < NDESC; i++) {
		const char *name = descriptions[i][0];
		co_profile *p = co_profile_lookup(name);
		if (!endpoint_exists(name))
			continue;
		n = snprintf(line, sizeof(line),
			     "<tr><td>%d</td><td><a href='%s?debug=1'>%s</a>"
			     "</td></tr>\n", p ? co_profile_count(p) : 0, name,
			     name);
		co_http_response_write(w, line, (size_t)n);
	}
	co_http_response_write(w, mid, sizeof(mid) - 1);
	for (size_t i = 0; i < NDESC; i++) {
		if (!endpoint_exists(descriptions[i][0]))
			continue;
		n = snprintf(line, sizeof(line),
			     "<li><div class=profile-name>%s: </div> %s</li>\n",
			     descriptions[i][0], descriptions[i][1]);
		co_http_response_write(w, line, (size_t)n);
	}
	co_http_response_write(w, tail, sizeof(tail) - 1);
}

static void serve_cmdline(co_http_response *w)
{
	char buf[65536];
	ssize_t n = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf));
		close(fd);
	}
	if (n < 0)
		n = 0;
	if (n > 0 && buf[n - 1] == 0)
		n--; /* NUL-separated, no trailing NUL */
	put_text(w, buf, (size_t)n);
}

/* Remote symbolization, the protocol pprof's symbolz client speaks. */
static void serve_symbol(const co_http_request *r, co_http_response *w)
{
	const char *in = strcmp(r->method, "POST") == 0 ? r->body : r->query;
	size_t len = strcmp(r->method, "POST") == 0 ? r->body_len
						      : strlen(r->query);
	struct http_buf out = {0};
	char word[40], line[1200];

	http_buf_append(&out, "num_symbols: 1\n", 15);
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && in[j] != '+')
			j++;
		if (j - i > 0 && j - i < sizeof(word)) {
			char *end;
			memcpy(word, in + i, j - i);
			word[j - i] = 0;
			errno = 0;
			unsigned long long pc = strtoull(word, &end, 0);
			struct prof_frame f[PROF_INLINE_MAX];
			if (!*end && !errno && pc && word[0] != '-' &&
			    prof_symbolize((uintptr_t)pc, true, f,
					   PROF_INLINE_MAX) > 0 &&
			    strcmp(f[0].function, "?") != 0) {
				/* The outermost function of the inline chain:
				 * the one that owns the address, as Go's
				 * FuncForPC names it. */
				int k = 0;
				while (k + 1 < PROF_INLINE_MAX && f[k].inlined)
					k++;
				int n = snprintf(line, sizeof(line), "%#llx %s\n",
						 pc, f[k].function);
				if (n > 0 && (size_t)n < sizeof(line))
					http_buf_append(&out, line, (size_t)n);
			}
		}
		i = j + 1;
	}
	put_text(w, out.p, out.len);
	http_buf_free(&out);
}

static void finish_delta(struct admin_wait *aw, bool cancelled)
{
	struct http_buf after = {0}, delta = {0};
	co_profile *p = co_profile_lookup(aw->name);
	char filename[48];
	int err;

	if (cancelled) {
		put_error(aw->w, 503, "admin port shutting down");
		return;
	}
	if (!p || render(p, 0, &after) < 0) {
		put_error(aw->w, 500, "failed to collect profile");
	} else if ((err = pprof_delta(aw->before.p, aw->before.len, after.p,
				      after.len, co_now() - aw->start_ns, false,
				      &delta.p, &delta.len)) < 0) {
		put_error(aw->w, 500, "failed to compute delta");
	} else {
		snprintf(filename, sizeof(filename), "%s-delta", aw->name);
		put_binary(aw->w, filename);
		co_http_response_write(aw->w, delta.p, delta.len);
	}
	free(delta.p);
	http_buf_free(&after);
}

static void serve_profile_named(const co_http_request *r, co_http_response *w,
				struct admin_port *port, const char *name)
{
	co_profile *p = co_profile_lookup(name);
	char sec[32];
	struct http_buf body = {0};
	int err;

	if (!p) {
		put_error(w, 404, "Unknown profile");
		return;
	}
	long debug = query_long(r->query, "debug", 0, NULL);
	if (query_get(r->query, "seconds", sec, sizeof(sec)) && *sec) {
		bool bad;
		long s = query_long(r->query, "seconds", 0, &bad);
		if (bad || s <= 0) {
			put_error(w, 400, "invalid value for \"seconds\" - must "
					  "be a positive integer");
		} else if (s > port->max_seconds) {
			put_error(w, 400, "profile duration exceeds the admin "
					  "port's limit (max_seconds)");
		} else if (debug != 0) {
			put_error(w, 400, "seconds and debug params are "
					  "incompatible");
		} else if (render(p, 0, &body) < 0) {
			put_error(w, 500, "failed to collect profile");
		} else {
			struct admin_wait *aw = wait_start(w, port, s * 1000,
							   finish_delta, name);
			if (!aw) {
				put_error(w, 500, "failed to collect profile");
			} else {
				aw->before = body;
				body = (struct http_buf){0};
			}
		}
		http_buf_free(&body);
		return;
	}
	/* ?gc=1: Copper has no collector to run; the heap profile is
	 * always as of now (docs/admin.md). */
	int lvl = debug > profile_max_debug(name) ? profile_max_debug(name)
		  : debug < 0 ? 0 : (int)debug;
	if ((err = render(p, lvl, &body)) < 0) {
		put_error(w, 500, co_strerror(err));
	} else {
		if (debug != 0) {
			put_common(w);
			co_http_response_header(w, "Content-Type",
						"text/plain; charset=utf-8");
		} else {
			put_binary(w, name);
		}
		co_http_response_write(w, body.p, body.len);
	}
	http_buf_free(&body);
}

/* godeltaprof's paths (Grafana Alloy scrapes them): the change since
 * the last scrape of the same path, computed here. */
static struct {
	const char *path;
	const char *profile;
	struct http_buf last;
	int64_t last_ns;
} deltas[] = {
	{"delta_heap", "heap", {0}, 0},
	{"delta_mutex", "mutex", {0}, 0},
	{"delta_block", "block", {0}, 0},
};
#define NDELTAS (sizeof(deltas) / sizeof(deltas[0]))

static bool serve_godelta(co_http_response *w, const char *name)
{
	for (size_t i = 0; i < NDELTAS; i++) {
		if (strcmp(deltas[i].path, name) != 0)
			continue;
		co_profile *p = co_profile_lookup(deltas[i].profile);
		struct http_buf now = {0};
		char *out = NULL;
		size_t out_len = 0;
		int64_t t = co_now();
		if (!p) {
			put_error(w, 404, "Unknown profile");
		} else if (render(p, 0, &now) < 0) {
			put_error(w, 500, "failed to collect profile");
		} else if (deltas[i].last.len &&
			   pprof_delta(deltas[i].last.p, deltas[i].last.len,
				       now.p, now.len, t - deltas[i].last_ns,
				       strcmp(deltas[i].profile, "heap") == 0,
				       &out, &out_len) < 0) {
			put_error(w, 500, "failed to compute delta");
		} else {
			put_binary(w, deltas[i].profile);
			if (out)
				co_http_response_write(w, out, out_len);
			else
				co_http_response_write(w, now.p, now.len);
			http_buf_free(&deltas[i].last);
			deltas[i].last = now;
			deltas[i].last_ns = t;
			now = (struct http_buf){0};
		}
		free(out);
		http_buf_free(&now);
		return true;
	}
	return false;
}

static void serve_cpu(const co_http_request *r, co_http_response *w,
		      struct admin_port *port)
{
	long s = query_long(r->query, "seconds", ADMIN_CPU_DEFAULT_SECONDS,
			    NULL);
	int err;

	if (s <= 0)
		s = ADMIN_CPU_DEFAULT_SECONDS; /* as Go: silently 30 */
	if (s > port->max_seconds) {
		put_error(w, 400, "profile duration exceeds the admin port's "
				  "limit (max_seconds)");
		return;
	}
	if ((err = admin_cpu_begin(w, s)) < 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Could not enable CPU profiling: %s",
			 err == CO_EBUSY ? "cpu profiling already in use"
					 : co_strerror(err));
		put_error(w, 500, msg);
	}
}

static int json_fn(int fd, void *arg)
{
	(void)arg;
	return co_dump_json(fd);
}

/* The admin port's own: the JSON task dump and the live task count. */
static bool serve_copper(co_http_response *w, const char *path)
{
	char buf[64];

	if (strcmp(path, "/debug/copper/tasks") == 0) {
		int n = snprintf(buf, sizeof(buf), "%zu\n", co_num_tasks());
		put_text(w, buf, (size_t)n);
		return true;
	}
	if (strcmp(path, "/debug/copper/tasks.json") == 0) {
		struct http_buf body = {0};
		if (collect(json_fn, NULL, &body) == 0) {
			put_common(w);
			co_http_response_header(w, "Content-Type",
						"application/json");
			co_http_response_write(w, body.p, body.len);
		} else {
			put_error(w, 500, "failed to collect tasks");
		}
		http_buf_free(&body);
		return true;
	}
	return false;
}

/* Constant time in the token's length: no early exit on a mismatch. */
static bool token_ok(const struct admin_port *port, const co_http_request *r)
{
	const char *h = co_http_request_header(r, "Authorization");
	const char *t = port->token;
	size_t tl, hl;
	unsigned diff;

	if (!t)
		return true;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	tl = strlen(t);
	hl = strlen(h);
	diff = (unsigned)(tl ^ hl);
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)t[i] ^ (unsigned char)(i < hl ? h[i] : 0);
	return diff == 0;
}

static void admin_handle(const co_http_request *r, co_http_response *w,
			 void *arg)
{
	struct admin_port *port = arg;
	const char *path = r->path;
	static const char prefix[] = "/debug/pprof/";

	if (!token_ok(port, r)) {
		put_error(w, 401, "Unauthorized");
		co_http_response_header(w, "WWW-Authenticate",
					"Bearer realm=\"copper\"");
		return;
	}
	if (strcmp(path, "/debug/pprof") == 0) {
		static const char body[] =
			"<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n";
		co_http_response_status(w, 301);
		co_http_response_header(w, "Location", "/debug/pprof/");
		co_http_response_header(w, "Content-Type",
					"text/html; charset=utf-8");
		co_http_response_write(w, body, sizeof(body) - 1);
		return;
	}
	if (serve_copper(w, path))
		return;
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
		co_http_response_status(w, 404);
		put_text(w, "404 page not found\n", 19);
		return;
	}
	const char *name = path + sizeof(prefix) - 1;
	if (!*name)
		serve_index(w);
	else if (strcmp(name, "cmdline") == 0 && (!port->remote || port->cmdline))
		serve_cmdline(w);
	else if (strcmp(name, "symbol") == 0)
		serve_symbol(r, w);
	else if (strcmp(name, "profile") == 0)
		serve_cpu(r, w, port);
	else if (strcmp(name, "trace") == 0)
		admin_trace_serve(r, w, port->max_seconds);
	else if (serve_godelta(w, name))
		return;
	else if (strcmp(name, "cmdline") == 0)
		put_error(w, 404, "Unknown profile");
	else
		serve_profile_named(r, w, port, name);
}

/* ------------------------------------------------------------------------
 * Listening, stopping
 * ---------------------------------------------------------------------- */

struct listen_call {
	const char *addr;
	const co_admin_options *opts;
	int err;
};

static void listen_on_loop(void *arg)
{
	struct listen_call *lc = arg;
	const co_admin_options *o = lc->opts;
	struct admin_port *port = calloc(1, sizeof(*port));
	struct http_uv_limits lim = {
		.max_conns = o && o->max_conns > 0 ? o->max_conns
						   : ADMIN_MAX_CONNS,
	};
	char bound[128];

	if (!port || (o && o->token && !(port->token = strdup(o->token)))) {
		free(port);
		lc->err = CO_ENOMEM;
		return;
	}
	port->remote = http_uv_addr_is_loopback(lc->addr) != 1;
	port->cmdline = o && o->cmdline;
	port->max_seconds = o && o->max_seconds > 0 ? o->max_seconds
						    : ADMIN_MAX_SECONDS;
	port->cfg.handler = admin_handle;
	port->cfg.arg = port;
	/* A CPU profile's answer is written once its seconds are over:
	 * the write timeout counts from then. */
	port->srv = http_uv_listen(service_loop(), lc->addr, &port->cfg, &lim,
				   &lc->err);
	if (!port->srv) {
		free(port->token);
		free(port);
		return;
	}
	port->next = A.ports;
	A.ports = port;
	http_uv_addr(port->srv, bound, sizeof(bound));
	pthread_mutex_lock(&A.lock);
	snprintf(A.last_addr, sizeof(A.last_addr), "%s", bound);
	pthread_mutex_unlock(&A.lock);
}

CO_EXTERN int co_admin_listen(const char *addr, const co_admin_options *opts)
{
	struct listen_call lc = {.addr = addr, .opts = opts};
	int err, loopback;

	if (!addr || !*addr || (opts && (opts->max_seconds < 0 ||
					 opts->max_conns < 0)))
		return CO_EINVAL;
	if (opts && opts->token && !*opts->token)
		return CO_EINVAL;
	if ((loopback = http_uv_addr_is_loopback(addr)) < 0)
		return loopback;
	if (!loopback && !(opts && opts->allow_remote && opts->token))
		return CO_EACCES;
	if ((err = service_start()) < 0)
		return err;
	if ((err = service_call_sync(listen_on_loop, &lc)) < 0)
		return err;
	return lc.err;
}

CO_EXTERN int co_admin_addr(char *buf, size_t len)
{
	int err = 0;

	if (!buf)
		return CO_EINVAL;
	pthread_mutex_lock(&A.lock);
	if (!A.last_addr[0])
		err = CO_ENOENT;
	else if ((size_t)snprintf(buf, len, "%s", A.last_addr) >= len)
		err = CO_ERANGE;
	pthread_mutex_unlock(&A.lock);
	return err;
}

/* On the service thread as co_run ends: waiting answers end with 503,
 * ports close. */
static void stop_on_loop(void *arg)
{
	(void)arg;
	while (A.waits)
		wait_end(A.waits, true);
	while (A.ports) {
		struct admin_port *p = A.ports;
		A.ports = p->next;
		http_uv_close(p->srv);
		free(p->token);
		free(p);
	}
	for (size_t i = 0; i < NDELTAS; i++)
		http_buf_free(&deltas[i].last);
	if (A.memfd > 0)
		close(A.memfd);
	A.memfd = 0;
	pthread_mutex_lock(&A.lock);
	A.last_addr[0] = 0;
	pthread_mutex_unlock(&A.lock);
}

static void admin_stop(void)
{
	if (service_running())
		service_call_sync(stop_on_loop, NULL);
}

/* COPPER_ADMIN=<addr> (COPPER_ADMIN_TOKEN=<token>): the port with no code
 * change.  A token allows a remote address: setting one is the opt-in. */
static int admin_start(void)
{
	const char *addr = getenv("COPPER_ADMIN");
	const char *token = getenv("COPPER_ADMIN_TOKEN");
	co_admin_options o = {.token = token && *token ? token : NULL};
	int err;

	if (!addr)
		return 0;
	if (token && !*token) {
		fprintf(stderr, "copper: invalid COPPER_ADMIN_TOKEN=\"\": want "
				"a token, or leave it unset\n");
		return CO_EINVAL;
	}
	o.allow_remote = o.token != NULL;
	if ((err = co_admin_listen(addr, &o)) < 0) {
		fprintf(stderr, "copper: invalid COPPER_ADMIN=\"%s\": %s%s\n",
			addr, co_strerror(err),
			err == CO_EACCES ? " (an address that is not loopback "
					   "needs COPPER_ADMIN_TOKEN)" : "");
		return err;
	}
	char bound[128];
	if (co_admin_addr(bound, sizeof(bound)) == 0)
		fprintf(stderr, "copper: admin port on %s%s/debug/pprof/\n",
			strncmp(bound, "unix:", 5) == 0 ? "" : "http://", bound);
	return 0;
}

__attribute__((constructor)) static void admin_register(void)
{
	introspect_add_lifecycle(admin_start, admin_stop);
}
