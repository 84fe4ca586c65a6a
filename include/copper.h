/* SPDX-License-Identifier: MIT */
/*
 * copper.h - the public API of Copper, a coroutine runtime for C with a
 * built-in profiler.
 *
 * A program calls co_run(main_fn, arg); main_fn runs as task 1 on an M:N
 * scheduler (COPPER_PROCS worker threads, many tasks).  Tasks block on
 * channels, locks, sleeps and sockets by parking: the worker thread runs other
 * tasks meanwhile.  Every task is known to the runtime (state, wait reason,
 * creator), which is what the profiler reports.
 *
 * Conventions (docs/api.md has the long form):
 *   - actions return 0 or a negative errno-style code (-EINVAL, ...);
 *     co_strerror() and co_errname() name every code;
 *   - constructors return NULL and store the code in *err;
 *   - nothing aborts on a caller's bad argument.
 *
 * Keep in sync with ../shared/API.md (the contract) and docs/api.md.
 */
#ifndef COPPER_H
#define COPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CO_EXTERN __attribute__((visibility("default")))
#else
#define CO_EXTERN
#endif

/* ------------------------------------------------------------------------
 * Time: int64_t nanoseconds, as Go's time.Duration (co_sleep(2 * CO_SECOND))
 * ---------------------------------------------------------------------- */
#define CO_NANOSECOND ((int64_t)1)
#define CO_MICROSECOND ((int64_t)1000)
#define CO_MILLISECOND ((int64_t)1000000)
#define CO_SECOND ((int64_t)1000000000)
#define CO_MINUTE ((int64_t)60 * CO_SECOND)
#define CO_HOUR ((int64_t)60 * CO_MINUTE)

/* The sync types' alignment, in C11 and in C++11 alike. */
#ifdef __cplusplus
#define CO_ALIGNAS(n) alignas(n)
#else
#define CO_ALIGNAS(n) _Alignas(n)
#endif

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

/*
 * Every code a Copper call can return, as XX(name, errno value, message).
 * CO_E<name> is the negative value a call returns.  The list is the single
 * source for co_strerror() and co_errname().
 */
#define CO_ERRNO_MAP(XX)                                                     \
	XX(EPERM, 1, "operation not permitted")                              \
	XX(ENOENT, 2, "no such entry")                                       \
	XX(EINTR, 4, "interrupted")                                          \
	XX(EIO, 5, "input/output error")                                     \
	XX(EBADF, 9, "bad descriptor")                                       \
	XX(EAGAIN, 11, "resource temporarily unavailable")                   \
	XX(ENOMEM, 12, "out of memory")                                      \
	XX(EACCES, 13, "permission denied")                                  \
	XX(EFAULT, 14, "bad address")                                        \
	XX(EBUSY, 16, "busy")                                                \
	XX(EEXIST, 17, "already exists")                                     \
	XX(EINVAL, 22, "invalid argument")                                   \
	XX(EMFILE, 24, "too many open files")                                \
	XX(ENOSPC, 28, "no space left on device")                            \
	XX(EPIPE, 32, "channel or connection closed")                        \
	XX(ERANGE, 34, "value out of range")                                 \
	XX(EDEADLK, 35, "deadlock")                                          \
	XX(ENOSYS, 38, "not implemented")                                    \
	XX(ENOTSUP, 95, "not supported")                                     \
	XX(EADDRINUSE, 98, "address already in use")                         \
	XX(ECONNRESET, 104, "connection reset by peer")                      \
	XX(ETIMEDOUT, 110, "timed out")                                      \
	XX(ECONNREFUSED, 111, "connection refused")                          \
	XX(EALREADY, 114, "already in progress")                             \
	XX(ECANCELED, 125, "canceled")

enum {
#define CO_ERRNO_ENUM(name, value, msg) CO_##name = -(value),
	CO_ERRNO_MAP(CO_ERRNO_ENUM)
#undef CO_ERRNO_ENUM
};

/* A message for any negative code (Copper's or a plain -errno); never NULL. */
CO_EXTERN const char *co_strerror(int code);
/* The symbolic name ("EINVAL") of a code; "UNKNOWN" for others. */
CO_EXTERN const char *co_errname(int code);

/* ------------------------------------------------------------------------
 * Runtime
 * ---------------------------------------------------------------------- */

/*
 * Starts the runtime, runs main_fn(arg) as task 1 and returns when it
 * returns.  Other tasks still alive then are abandoned, as in Go.  Reads the
 * COPPER_* environment variables (docs/environment.md); a bad value makes it
 * print a message naming the variable and return -EINVAL.  Returns -EBUSY if
 * a runtime is already running in this process.
 */
CO_EXTERN int co_run(void (*main_fn)(void *arg), void *arg);

/*
 * Starts fn(arg) as a new task and returns its id (never reused; 0 on
 * error: fn NULL, no runtime running, out of memory).  As in Go, the caller
 * keeps running; the new task is queued.
 */
CO_EXTERN uint64_t co_go(void (*fn)(void *arg), void *arg);
/* co_go with a name that appears in dumps and profiles (copied). */
CO_EXTERN uint64_t co_go_named(const char *name, void (*fn)(void *arg),
			       void *arg);

/* Lets other runnable tasks run; the caller stays runnable.  co_yield is
 * a keyword in C++20: there the same function is named co_yield_now. */
#if defined(__cplusplus) && __cplusplus >= 202002L
CO_EXTERN void co_yield_now(void) __asm__("co_yield");
#else
CO_EXTERN void co_yield(void);
#endif
/* The current task's id; 0 when not called from a task. */
CO_EXTERN uint64_t co_self(void);
/* Live tasks (runnable, running, parked), like runtime.NumGoroutine. */
CO_EXTERN size_t co_num_tasks(void);
/* Parks the task for at least ns nanoseconds (ns <= 0 yields). */
CO_EXTERN void co_sleep(int64_t ns);
/* Monotonic clock in nanoseconds. */
CO_EXTERN int64_t co_now(void);
/*
 * Runs fn(arg) on the blocking thread pool; the task is parked in state
 * "syscall" meanwhile, and its worker runs other tasks.  Returns 0 once fn
 * has returned, -EINVAL for a NULL fn, -EPERM outside a task.
 */
CO_EXTERN int co_blocking(void (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------------------
 * Channels and select
 * ---------------------------------------------------------------------- */

typedef struct co_chan co_chan;

/* elem_size > 0; capacity 0 makes an unbuffered channel.  NULL on error. */
CO_EXTERN co_chan *co_chan_new(size_t elem_size, size_t capacity);
/*
 * Copies elem_size bytes from elem into the channel, parking until a
 * receiver or a buffer slot takes them.  -EPIPE if the channel is (or
 * becomes) closed.  A NULL channel parks forever ("chan send (nil chan)").
 */
CO_EXTERN int co_chan_send(co_chan *c, const void *elem);
/*
 * Receives one element into elem (which may be NULL to drop it).  Returns 0,
 * or -EPIPE once the channel is closed and drained.  A NULL channel parks
 * forever ("chan receive (nil chan)").
 */
CO_EXTERN int co_chan_recv(co_chan *c, void *elem);
/* Closes the channel: receivers drain it, then get -EPIPE.  Returns
 * -EPIPE if it was already closed, -EINVAL for NULL. */
CO_EXTERN int co_chan_close(co_chan *c);
/* Frees a channel no task uses any more. */
CO_EXTERN void co_chan_free(co_chan *c);
/* Elements buffered now, and the capacity. */
CO_EXTERN size_t co_chan_len(co_chan *c);
CO_EXTERN size_t co_chan_cap(co_chan *c);

enum co_case_op { CO_SEND = 1, CO_RECV = 2 };

/* One case of a select.  All fields are public, set by the caller. */
typedef struct co_case {
	enum co_case_op op; /* CO_SEND or CO_RECV */
	co_chan *chan;      /* NULL: the case never fires, as in Go */
	void *elem;         /* what to send, or where to receive (may be NULL) */
	int result;         /* out: 0, or -EPIPE for a closed channel */
} co_case;

/*
 * Waits until one case can proceed and performs it; returns its index.
 * When several are ready one is chosen uniformly at random.  timeout_ns 0
 * returns -ETIMEDOUT at once if none is ready (Go's default case); -1 waits
 * forever; co_select(NULL, 0, -1) parks forever as "select (no cases)".
 */
CO_EXTERN int co_select(co_case *cases, size_t n, int64_t timeout_ns);

/* ------------------------------------------------------------------------
 * Synchronisation: value types the caller allocates, like pthread_mutex_t.
 * Their size is part of the ABI; their fields are private.
 * ---------------------------------------------------------------------- */

typedef struct co_mutex {
	CO_ALIGNAS(8) unsigned char private_[32];
} co_mutex;
typedef struct co_rwmutex {
	CO_ALIGNAS(8) unsigned char private_[64];
} co_rwmutex;
typedef struct co_cond {
	CO_ALIGNAS(8) unsigned char private_[32];
} co_cond;
typedef struct co_wg {
	CO_ALIGNAS(8) unsigned char private_[32];
} co_wg;
typedef struct co_once {
	CO_ALIGNAS(8) unsigned char private_[40]; /* zero-filled: ready */
} co_once;

CO_EXTERN int co_mutex_init(co_mutex *m);
CO_EXTERN int co_mutex_lock(co_mutex *m);
CO_EXTERN int co_mutex_trylock(co_mutex *m); /* 0, or -EBUSY */
CO_EXTERN int co_mutex_unlock(co_mutex *m);  /* -EPERM if not locked */
CO_EXTERN int co_mutex_destroy(co_mutex *m); /* -EBUSY if locked */

CO_EXTERN int co_rwmutex_init(co_rwmutex *rw);
CO_EXTERN int co_rwmutex_rlock(co_rwmutex *rw);
CO_EXTERN int co_rwmutex_runlock(co_rwmutex *rw);
CO_EXTERN int co_rwmutex_lock(co_rwmutex *rw);
CO_EXTERN int co_rwmutex_unlock(co_rwmutex *rw);

CO_EXTERN int co_cond_init(co_cond *c);
CO_EXTERN int co_cond_wait(co_cond *c, co_mutex *m);
CO_EXTERN int co_cond_signal(co_cond *c);
CO_EXTERN int co_cond_broadcast(co_cond *c);

CO_EXTERN int co_wg_init(co_wg *wg);
CO_EXTERN int co_wg_add(co_wg *wg, int64_t delta); /* -ERANGE below zero */
CO_EXTERN int co_wg_done(co_wg *wg);
CO_EXTERN int co_wg_wait(co_wg *wg);

CO_EXTERN int co_once_do(co_once *once, void (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------------------
 * Networking: task-aware stream sockets (TCP over IPv4 and IPv6, unix).
 * A call that would block parks the task in "IO wait"; its worker runs
 * other tasks meanwhile.  docs/net.md has the long form.
 * ---------------------------------------------------------------------- */

typedef struct co_listener co_listener;
typedef struct co_conn co_conn;

/*
 * Listens on network "tcp" (IPv4 and IPv6), "tcp4", "tcp6" or "unix".  A
 * TCP addr is "host:port", "[v6addr]:port" or ":port" (every interface);
 * port 0 picks a free port (see co_listener_addr).  A unix addr is a path
 * ("@name" for Linux's abstract namespace); the socket file is removed by
 * co_listener_close.  NULL on error with *err set: -EINVAL (bad network
 * or address), -EADDRINUSE, -EACCES, -EMFILE, -ENOENT (unknown host), ...
 */
CO_EXTERN co_listener *co_listen(const char *network, const char *addr,
				 int *err);
/* The bound address as "127.0.0.1:8080", "[::1]:8080" or the unix path.
 * -ERANGE if buf is too small, -EINVAL for NULL arguments. */
CO_EXTERN int co_listener_addr(co_listener *l, char *buf, size_t len);
/*
 * Waits for the next connection.  NULL with *err: -EMFILE (descriptor
 * limit; the listener stays usable), -ECANCELED once co_listener_close
 * runs, -EPERM outside a task.
 */
CO_EXTERN co_conn *co_accept(co_listener *l, int *err);
/* Stops listening, wakes a blocked co_accept (-ECANCELED), frees l. */
CO_EXTERN void co_listener_close(co_listener *l);

/*
 * Connects to addr on network "tcp", "tcp4", "tcp6" or "unix".  Host
 * names resolve through libuv's resolver with the task parked; each
 * address is tried in order.  NULL with *err: -ECONNREFUSED, -ETIMEDOUT,
 * -ENOENT (unknown host), -EINVAL, -EMFILE, -EPERM outside a task, ...
 */
CO_EXTERN co_conn *co_dial(const char *network, const char *addr, int *err);

/*
 * Reads up to len bytes; returns how many (> 0), 0 at end of stream, or a
 * negative code: -ETIMEDOUT (deadline), -ECONNRESET, -ECANCELED (co_close
 * ran meanwhile), -EPERM outside a task.
 */
CO_EXTERN ssize_t co_read(co_conn *c, void *buf, size_t len);
/*
 * Writes all len bytes and returns len, or fails with a negative code
 * (-EPIPE, -ECONNRESET, -ETIMEDOUT, -ECANCELED, ...); after a failure an
 * unknown prefix may have been sent.  Concurrent writers are serialised.
 * A peer's reset never raises SIGPIPE.
 */
CO_EXTERN ssize_t co_write(co_conn *c, const void *buf, size_t len);
/*
 * Sets the deadline (absolute co_now() nanoseconds; 0 clears it) for reads
 * and writes in progress and later ones; past it they return -ETIMEDOUT.
 */
CO_EXTERN int co_set_deadline(co_conn *c, int64_t deadline_ns);
/* The same for reads only, or for writes only (Go's SetReadDeadline and
 * SetWriteDeadline): a reader's idle timeout leaves a writer alone. */
CO_EXTERN int co_set_read_deadline(co_conn *c, int64_t deadline_ns);
CO_EXTERN int co_set_write_deadline(co_conn *c, int64_t deadline_ns);
/* Shuts down the writing half: the peer reads end of stream. */
CO_EXTERN int co_close_write(co_conn *c);
/* The local and the peer address, formatted like co_listener_addr. */
CO_EXTERN int co_conn_local_addr(co_conn *c, char *buf, size_t len);
CO_EXTERN int co_conn_peer_addr(co_conn *c, char *buf, size_t len);
/*
 * Closes the connection: every task blocked on it returns -ECANCELED, and
 * the memory is freed once the last of them has left.  A call that starts
 * after co_close returned uses freed memory, as with free().
 */
CO_EXTERN void co_close(co_conn *c);

/* ------------------------------------------------------------------------
 * HTTP/1.1 server on tasks (docs/http.md): one task per connection,
 * keep-alive, pipelining, limits and timeouts; the admin port serves
 * through the same core.
 * ---------------------------------------------------------------------- */

typedef struct co_http_server co_http_server;
typedef struct co_http_response co_http_response;  /* the handler's writer */

typedef struct co_http_header {
	const char *name;  /* as sent ("Content-Type") */
	const char *value; /* surrounding blanks removed */
} co_http_header;

/* What a handler reads; valid until it returns. */
typedef struct co_http_request {
	const char *method;                /* "GET", "POST", ... */
	const char *path;                  /* "/a/b", not percent-decoded */
	const char *query;                 /* after '?', "" if none */
	const co_http_header *headers;     /* in arrival order */
	size_t nheaders;
	const char *body;                  /* de-chunked; "" if none */
	size_t body_len;
	int version_minor;                 /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive;                   /* the client allows another */
} co_http_request;

/* Runs in the connection's task, once per request, in request order. */
typedef void (*co_http_handler)(const co_http_request *req,
				co_http_response *w, void *arg);

/* Zero fields take the defaults (docs/http.md): 16 KiB of headers (431
 * beyond), 1 MiB of body (413), 10 s per request from its first byte
 * (408), 60 s idle between requests, 10 s to write an answer. */
typedef struct co_http_config {
	co_http_handler handler;  /* required */
	void *arg;                /* passed to the handler */
	size_t max_header_bytes;
	size_t max_body_bytes;
	int64_t request_timeout;  /* ns */
	int64_t idle_timeout;     /* ns */
	int64_t write_timeout;    /* ns */
} co_http_config;

/* A server for cfg (copied); NULL with *err -EINVAL (no handler) or
 * -ENOMEM. */
CO_EXTERN co_http_server *co_http_server_new(const co_http_config *cfg,
					     int *err);
/* In a task: accepts on l until co_http_shutdown, then waits for every
 * connection task to end, and returns 0.  Accept errors such as -EMFILE
 * back off (5 ms doubling to 1 s) and go on. */
CO_EXTERN int co_http_serve(co_http_server *s, co_listener *l);
/* From any task: closes the listener; idle connections close at once,
 * busy ones after their current answer. */
CO_EXTERN void co_http_shutdown(co_http_server *s);
/* After co_http_serve returned (or was never called). */
CO_EXTERN void co_http_server_free(co_http_server *s);

/* A request header's value by name (case-insensitive), or NULL. */
CO_EXTERN const char *co_http_request_header(const co_http_request *req,
					     const char *name);
/* The answer's status (200 unless set); -EINVAL outside 100..999. */
CO_EXTERN int co_http_response_status(co_http_response *w, int status);
/* Adds a header; Content-Length is the server's, "Connection: close"
 * closes after the answer; -EINVAL for a bad name or a CR/LF. */
CO_EXTERN int co_http_response_header(co_http_response *w, const char *name,
				      const char *value);
/* Appends to the body (sent with a Content-Length once the handler
 * returns). */
CO_EXTERN int co_http_response_write(co_http_response *w, const void *data,
				     size_t len);
/* The reason phrase of a status ("Not Found"), "Unknown" otherwise. */
CO_EXTERN const char *co_http_status_text(int status);

/* ------------------------------------------------------------------------
 * Profiles (docs/profiles.md).  Text and protobuf formats are Go's, so that
 * `go tool pprof` and Go users' habits work unchanged.
 * ---------------------------------------------------------------------- */

typedef struct co_profile co_profile;

/*
 * The profile called name, or NULL for a name Copper does not (yet) know.
 * "goroutine" keeps Go's name: it lists tasks.
 */
CO_EXTERN co_profile *co_profile_lookup(const char *name);
/*
 * Writes the profile to fd.  debug 0: gzipped pprof protobuf; 1: Go's
 * grouped text; 2 (goroutine): one block per task in Go's traceback
 * layout.  Returns 0, -EINVAL for a NULL profile or a debug level it does
 * not have, or the write error (-EBADF, -ENOSPC, ...).
 */
CO_EXTERN int co_profile_write(co_profile *p, int fd, int debug);
/* The number of entries the profile would hold now (tasks, for
 * goroutine); -EINVAL for NULL. */
CO_EXTERN int co_profile_count(co_profile *p);
/* The profile's name. */
CO_EXTERN const char *co_profile_name(co_profile *p);

/*
 * The execution trace (docs/profiles.md, "Execution trace"): from
 * co_trace_start until co_trace_stop, every task's creation, runs, parks
 * (with the reason), wake-ups (with the waker) and exit, and every
 * worker's runs and idle spans, kept in bounded per-worker rings (the
 * oldest events go first, and the file says how many); co_trace_stop
 * writes them to fd as Chrome Trace Event JSON, which Perfetto and
 * chrome://tracing open.  start: -EBADF for a descriptor that is not
 * open for writing, -EBUSY while a trace runs.  stop: -EINVAL if none
 * runs, or the write error.
 */
CO_EXTERN int co_trace_start(int fd);
CO_EXTERN int co_trace_stop(void);

/*
 * The block profile ("block"): where tasks waited on channels, select and
 * the sync primitives (not sleeps, not I/O), as Go's
 * runtime.SetBlockProfileRate.  A wait of d ns is recorded if d >= ns,
 * else with probability d/ns; 1 records every wait; 0 (the default) or a
 * negative value turns it off.  $COPPER_BLOCKPROFILERATE sets it at
 * co_run.
 */
CO_EXTERN void co_set_block_profile_rate(int64_t ns);
/*
 * The mutex profile ("mutex"): contended co_mutex and co_rwmutex unlocks,
 * charged to the unlocking stack, one in rate on average (1: all; 0, the
 * default: off).  Returns the previous rate, or -EINVAL for a negative
 * rate (Go reads the rate with -1; Copper rejects it).
 * $COPPER_MUTEXPROFILEFRACTION sets it at co_run.
 */
CO_EXTERN int co_set_mutex_profile_fraction(int rate);

/*
 * Heap profiling (the "heap" and "allocs" profiles): one allocation is
 * sampled per `bytes` allocated on average (Go's MemProfileRate; default
 * 512 KiB, COPPER_MEMPROFILERATE at start-up); 1 samples every
 * allocation, 0 disables.  A negative value is ignored and the rate
 * stays.  The new rate applies to the calling thread at once and to
 * other threads from their next sample on, so set it early.
 */
CO_EXTERN void co_set_mem_profile_rate(long bytes);

/*
 * The CPU profile (Go's pprof.StartCPUProfile / StopCPUProfile): from
 * start, every thread running the program's code is sampled hz times per
 * second of its CPU time (100 by default; COPPER_CPUPROFILE_HZ or
 * co_set_cpu_profile_rate); stop writes the gzipped pprof profile to fd.
 * Samples carry the running task's labels and its name (label
 * "copper.name").  Start returns 0, -EBUSY while a profile runs or is
 * being written, -EBADF for a descriptor not open for writing, -EINVAL
 * for a bad COPPER_CPUPROFILE_HZ.  Stop returns 0, -EINVAL when no
 * profile runs, or the write's error (-EPIPE, -ENOSPC, ...).  Either may
 * be called inside or outside co_run.
 */
CO_EXTERN int co_cpu_profile_start(int fd);
CO_EXTERN int co_cpu_profile_stop(void);
/* Samples per second of CPU time for the next profile (Go's
 * runtime.SetCPUProfileRate); 0 goes back to the environment's or the
 * default.  -EINVAL out of 0..10000, -EBUSY while a profile runs. */
CO_EXTERN int co_set_cpu_profile_rate(int hz);

/*
 * Sets labels on the calling task: key, value pairs ended by a NULL key
 * (co_labels_set("worker", "ingest", NULL)).  They replace earlier values
 * of the same keys, and tasks the caller creates from now on inherit
 * them.  An empty value "" removes the key.  Returns 0, -EINVAL for an
 * odd list (a NULL value), an empty key or more than 64 pairs, -ERANGE if
 * the task would hold more than 64 labels, -EPERM outside a task,
 * -ENOMEM.
 */
CO_EXTERN int co_labels_set(const char *key, const char *value, ...);
/* Copies the value of the calling task's label key into buf; -ENOENT if
 * unset. */
CO_EXTERN int co_labels_get(const char *key, char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Operating a live process (docs/operating.md)
 * ---------------------------------------------------------------------- */

/*
 * On signal signo, write a task snapshot into dir (NULL: $COPPER_DUMP_DIR,
 * else $TMPDIR, else /tmp): copper-<pid>-<time>.goroutine.pb.gz and
 * ...goroutine.txt (debug=2), each written to a temporary name and
 * renamed, never over an existing file (names taken, by another dump in
 * the same millisecond say: <time>-2, -3, ...), announced on stderr.
 * No thread of the runtime takes signo from then on (workers block it,
 * and so does co_run's caller while co_run runs), so that Copper's
 * service thread, not a task, takes it.  co_run sets this up for SIGUSR1
 * unless COPPER_SIGDUMP=0.  Returns 0, -EINVAL for a signal Copper cannot
 * use (SIGQUIT, SIGURG, the synchronous and uncatchable ones).
 */
CO_EXTERN int co_dump_on_signal(int signo, const char *dir);
/* The same snapshot, now; the .txt path is copied to path_out (unless
 * NULL).  -ERANGE if path_len is too small for it, -EINVAL for a path of
 * 4096 bytes or more, or an error creating the files; nothing is written
 * when it fails. */
CO_EXTERN int co_dump_tasks(const char *dir, char *path_out, size_t path_len);
/* Dump a snapshot into dir each time the live task count rises above
 * max_tasks (once per crossing).  max_tasks 0 turns it off. */
CO_EXTERN int co_watchdog(size_t max_tasks, const char *dir);
/* The snapshot as JSON, one object per task (docs/operating.md). */
CO_EXTERN int co_dump_json(int fd);

/*
 * The admin port (docs/admin.md): /debug/pprof/... as Go's net/http/pprof
 * serves it, plus /debug/copper/..., on Copper's own service thread (it
 * answers while every worker is stuck).  addr: "host:port" or
 * "unix:/path" (a socket file of mode 0600).  Safe by default: an address
 * that is not loopback is refused (-EACCES) unless allow_remote is set
 * and a token given; a token, when set, must come with every request as
 * "Authorization: Bearer <token>".  COPPER_ADMIN=<addr> (and
 * COPPER_ADMIN_TOKEN) start it from co_run with no code change.
 */
typedef struct co_admin_options {
	const char *token;     /* required from clients; NULL: none */
	bool allow_remote;     /* serve on a non-loopback address */
	bool cmdline;          /* serve cmdline on a non-loopback address */
	int max_seconds;       /* longest ?seconds= (0: 300) */
	int max_conns;         /* open connections (0: 32) */
} co_admin_options;

/* Starts serving (opts NULL: loopback, no token); 0, -EINVAL for a bad
 * address or option, -EACCES (see above), -EADDRINUSE, ...  The port
 * stays up until co_run returns; several may be open at once. */
CO_EXTERN int co_admin_listen(const char *addr, const co_admin_options *opts);
/* The address the last co_admin_listen bound ("127.0.0.1:41234" after
 * port 0, "unix:/path"); -ENOENT if none is open. */
CO_EXTERN int co_admin_addr(char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Leak checks in tests (docs/testing.md)
 * ---------------------------------------------------------------------- */

typedef struct co_leakcheck co_leakcheck;

/* Remembers which tasks exist now.  NULL outside a task or on ENOMEM. */
CO_EXTERN co_leakcheck *co_leakcheck_begin(void);
/*
 * Waits up to grace_ns for every task started since begin to exit.
 * Returns 0 if they all did; otherwise -EBUSY, and writes each leaked
 * task to report (if not NULL) with its state and stack, like debug=2.
 * Frees lc either way.
 */
CO_EXTERN int co_leakcheck_end(co_leakcheck *lc, int64_t grace_ns,
			       FILE *report);

#ifdef __cplusplus
}
#endif
#endif /* COPPER_H */
