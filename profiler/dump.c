/* SPDX-License-Identifier: MIT */
/*
 * dump.c - task snapshots on a signal, on demand and from a watchdog;
 * the JSON dump; the fatal-error dump.
 *
 * `kill -USR1 <pid>` must work on a process whose every worker is busy or
 * stuck, so nothing happens on a worker: the signal handler only writes a
 * byte to a pipe, and a dump thread (started by co_run, one per process)
 * wakes, takes a consistent snapshot (snapshot.c never stops a worker) and
 * writes two files into the dump directory:
 *
 *     copper-<pid>-<UTC time>.goroutine.pb.gz   debug=0, for go tool pprof
 *     copper-<pid>-<UTC time>.goroutine.txt     debug=2, for people
 *
 * each to a temporary name in the same directory, renamed into place once
 * complete (no reader ever sees half a file, and a full disk leaves
 * nothing behind), then announced on stderr.  The same thread polls the
 * watchdog every 10 ms while one is armed.
 *
 * Environment: COPPER_SIGDUMP=0 disables the SIGUSR1 set-up (1, the
 * default, enables it); COPPER_DUMP_DIR names the directory (default
 * $TMPDIR, else /tmp).  A bad value stops co_run with a message.
 *
 * Rejected: dumping inside the signal handler (nothing in a snapshot or
 * DWARF lookup is async-signal-safe); dumping from a task (all workers may
 * be stuck, which is exactly when a dump is wanted).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define WATCHDOG_POLL_MS 10

static struct {
	pthread_mutex_t lock;       /* guards everything but the pipe */
	bool running;               /* the dump thread exists */
	pthread_t thread;
	int pipe[2];                /* signal handler -> dump thread */
	int signo;                  /* the dump signal, 0 if none */
	struct sigaction old_sa;    /* restored when the runtime stops */
	char *sig_dir;              /* where signal dumps go (NULL: default) */
	size_t watch_max;           /* watchdog threshold, 0: off */
	char *watch_dir;
	bool watch_above;           /* count was above the threshold */
	sigset_t worker0_mask;      /* worker 0's mask before co_run's */
	bool worker0_masked;        /* ... and whether we changed it */
} D = {.lock = PTHREAD_MUTEX_INITIALIZER, .pipe = {-1, -1}};

/* ------------------------------------------------------------------------
 * Writing files
 * ---------------------------------------------------------------------- */

static const char *dump_dir(const char *dir)
{
	const char *d = dir;

	if (!d || !*d)
		d = getenv("COPPER_DUMP_DIR");
	if (!d || !*d)
		d = getenv("TMPDIR");
	if (!d || !*d)
		d = "/tmp";
	return d;
}

int prof_write_atomic(const char *dir, const char *name,
		      int (*fn)(int fd, void *arg), void *arg)
{
	char path[4096], tmp[4096];
	int fd, err;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
		    sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", dir, name,
			     (int)getpid()) >= sizeof(tmp))
		return CO_EINVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	err = fn(fd, arg);
	if (err == 0 && fsync(fd) != 0)
		err = -errno;
	if (close(fd) != 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, path) != 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

struct dump_job {
	const struct snapshot *s;
	int debug;
};

static int write_goroutine(int fd, void *arg)
{
	struct dump_job *j = arg;
	return goroutine_write(j->s, fd, j->debug);
}

/* Writes both files of a snapshot; copies the .txt path to out. */
static int dump_snapshot(const char *dir, char *out, size_t out_len)
{
	struct snapshot s;
	char stamp[64], name[128];
	struct timespec ts;
	struct tm tm;
	int err;

	dir = dump_dir(dir);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	if ((err = snapshot_take(&s)) < 0)
		return err;
	/* The .txt first: the .pb.gz groups the snapshot, which reorders it
	 * (group_tasks), and debug=2 prints in id order. */
	struct dump_job pb = {&s, 0}, txt = {&s, 2};
	char txt_name[128];
	snprintf(txt_name, sizeof(txt_name), "copper-%d-%s.%03ldZ.goroutine.txt",
		 (int)getpid(), stamp, ts.tv_nsec / 1000000);
	err = prof_write_atomic(dir, txt_name, write_goroutine, &txt);
	if (err == 0) {
		snprintf(name, sizeof(name), "copper-%d-%s.%03ldZ.goroutine.pb.gz",
			 (int)getpid(), stamp, ts.tv_nsec / 1000000);
		err = prof_write_atomic(dir, name, write_goroutine, &pb);
		if (err) {
			/* Keep the pair whole: drop the .txt too. */
			char txt_path[4096];
			snprintf(txt_path, sizeof(txt_path), "%s/%s", dir, txt_name);
			unlink(txt_path);
		}
	}
	if (err == 0 && out && out_len)
		snprintf(out, out_len, "%s/%s", dir, txt_name);
	snapshot_free(&s);
	return err;
}

/* ------------------------------------------------------------------------
 * The dump thread
 * ---------------------------------------------------------------------- */

static void announce(const char *why, const char *dir, int err,
		     const char *path)
{
	if (err == 0)
		fprintf(stderr, "copper: %s: wrote %s (and .pb.gz beside it); "
				"stack guards: %s\n",
			why, path, introspect_guard_mode());
	else
		fprintf(stderr, "copper: %s: cannot write a task snapshot to "
				"%s: %s\n", why, dump_dir(dir), co_strerror(err));
}

static void watchdog_check(void)
{
	char path[4096], *dir = NULL;
	size_t max;
	bool fire = false;

	pthread_mutex_lock(&D.lock);
	max = D.watch_max;
	if (max) {
		bool above = co_num_tasks() > max;
		fire = above && !D.watch_above;
		D.watch_above = above;
		if (fire && D.watch_dir)
			dir = strdup(D.watch_dir);
	}
	pthread_mutex_unlock(&D.lock);
	if (fire) {
		char why[96];
		int err = dump_snapshot(dir, path, sizeof(path));
		snprintf(why, sizeof(why), "watchdog: more than %zu tasks", max);
		announce(why, dir, err, path);
	}
	free(dir);
}

/* The dump thread takes the dump signal and blocks every other one. */
static void dump_thread_mask(void)
{
	sigset_t set;

	sigfillset(&set);
	pthread_mutex_lock(&D.lock);
	if (D.signo)
		sigdelset(&set, D.signo);
	pthread_mutex_unlock(&D.lock);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static void *dump_thread(void *arg)
{
	struct pollfd pfd = {.fd = D.pipe[0], .events = POLLIN};
	(void)arg;

	dump_thread_mask();
	for (;;) {
		char buf[64], path[4096];
		int timeout = D.watch_max ? WATCHDOG_POLL_MS : -1;
		int r = poll(&pfd, 1, timeout);
		ssize_t n = r > 0 ? read(D.pipe[0], buf, sizeof(buf)) : 0;
		bool stop = false, dump = false;
		bool remask = false;
		for (ssize_t i = 0; i < n; i++) {
			stop |= buf[i] == 'q';
			dump |= buf[i] == 'd';
			remask |= buf[i] == 's';
		}
		if (stop)
			return NULL;
		if (remask)
			dump_thread_mask();
		if (dump) {
			pthread_mutex_lock(&D.lock);
			char *dir = D.sig_dir ? strdup(D.sig_dir) : NULL;
			pthread_mutex_unlock(&D.lock);
			int err = dump_snapshot(dir, path, sizeof(path));
			announce("signal", dir, err, path);
			free(dir);
		}
		watchdog_check();
	}
}

static void dump_signal(int sig)
{
	int saved = errno;
	(void)sig;
	if (write(D.pipe[1], "d", 1) < 0) {
		/* The pipe is full: a dump is already pending. */
	}
	errno = saved;
}

/* Starts the dump thread if it is not running; call with D.lock. */
static int thread_start_locked(void)
{
	int err;

	if (D.running)
		return 0;
	if (pipe2(D.pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	if ((err = pthread_create(&D.thread, NULL, dump_thread, NULL)) != 0) {
		close(D.pipe[0]);
		close(D.pipe[1]);
		D.pipe[0] = D.pipe[1] = -1;
		return -err;
	}
	D.running = true;
	return 0;
}

/* Writes one control byte, waiting for room if the pipe is full. */
static void send_byte(char c)
{
	while (write(D.pipe[1], &c, 1) < 0 && (errno == EAGAIN || errno == EINTR))
		poll(&(struct pollfd){.fd = D.pipe[1], .events = POLLOUT}, 1, 10);
}

static bool signal_usable(int signo)
{
	switch (signo) {
	case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE:
	case SIGILL: case SIGURG: case SIGABRT: case SIGTRAP:
		return false; /* the system's, or the runtime's own */
	default:
		return signo > 0 && signo < NSIG;
	}
}

CO_EXTERN int co_dump_on_signal(int signo, const char *dir)
{
	struct sigaction sa;
	char *copy = NULL;
	int err;

	if (!signal_usable(signo))
		return CO_EINVAL;
	if (dir && !(copy = strdup(dir)))
		return CO_ENOMEM;
	pthread_mutex_lock(&D.lock);
	if ((err = thread_start_locked()) < 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dump_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (D.signo && D.signo != signo)
		sigaction(D.signo, &D.old_sa, NULL);
	if (sigaction(signo, &sa, D.signo == signo ? NULL : &D.old_sa) != 0) {
		err = -errno;
		goto out;
	}
	D.signo = signo;
	free(D.sig_dir);
	D.sig_dir = copy;
	copy = NULL;
out:
	pthread_mutex_unlock(&D.lock);
	free(copy);
	if (err == 0) {
		/* Workers block it, so the dump thread takes it; a task calling
		 * this may run on worker 0, the caller's own thread. */
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, signo);
		if (co_self())
			pthread_sigmask(SIG_BLOCK, &one, NULL);
		send_byte('s'); /* must arrive: the thread re-masks on it */
	}
	return err;
}

CO_EXTERN int co_dump_tasks(const char *dir, char *path_out, size_t path_len)
{
	char path[4096];
	int err = dump_snapshot(dir, path, sizeof(path));

	if (err == 0 && path_out && path_len) {
		if (strlen(path) >= path_len)
			return CO_ERANGE;
		memcpy(path_out, path, strlen(path) + 1);
	}
	return err;
}

CO_EXTERN int co_watchdog(size_t max_tasks, const char *dir)
{
	char *copy = NULL;
	int err = 0;

	if (dir && !(copy = strdup(dir)))
		return CO_ENOMEM;
	pthread_mutex_lock(&D.lock);
	if (max_tasks && (err = thread_start_locked()) < 0)
		goto out;
	D.watch_max = max_tasks;
	D.watch_above = false;
	free(D.watch_dir);
	D.watch_dir = copy;
	copy = NULL;
out:
	pthread_mutex_unlock(&D.lock);
	free(copy);
	if (err == 0 && D.running && write(D.pipe[1], "w", 1) < 0) {
		/* Full pipe: the thread is awake anyway. */
	}
	return err;
}

CO_EXTERN int co_dump_json(int fd)
{
	struct snapshot s;
	int err;

	if (fd < 0)
		return CO_EINVAL;
	if ((err = snapshot_take(&s)) < 0)
		return err;
	err = goroutine_write_json(&s, fd);
	snapshot_free(&s);
	return err;
}

/* ------------------------------------------------------------------------
 * The runtime's life cycle and fatal errors
 * ---------------------------------------------------------------------- */

static int lifecycle_start(void)
{
	const char *v = getenv("COPPER_SIGDUMP");

	if (v && strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
		fprintf(stderr, "copper: invalid COPPER_SIGDUMP=\"%s\": want 0 "
				"or 1\n", v);
		return CO_EINVAL;
	}
	v = getenv("COPPER_DUMP_DIR");
	if (v && !*v) {
		fprintf(stderr, "copper: invalid COPPER_DUMP_DIR=\"\": want a "
				"directory\n");
		return CO_EINVAL;
	}
	if (getenv("COPPER_SIGDUMP") && strcmp(getenv("COPPER_SIGDUMP"), "0") == 0)
		return 0;
	/* This runs on worker 0, the thread that called co_run: block the
	 * dump signal here for the run, so that the dump thread takes it
	 * rather than a task running on this thread. */
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &one, &D.worker0_mask);
	D.worker0_masked = true;
	return co_dump_on_signal(SIGUSR1, NULL);
}

static void lifecycle_stop(void)
{
	if (D.worker0_masked) {
		pthread_sigmask(SIG_SETMASK, &D.worker0_mask, NULL);
		D.worker0_masked = false;
	}
	pthread_mutex_lock(&D.lock);
	bool running = D.running;
	if (D.signo)
		sigaction(D.signo, &D.old_sa, NULL);
	D.signo = 0;
	D.watch_max = 0;
	pthread_mutex_unlock(&D.lock);
	if (running) {
		send_byte('q');
		pthread_join(D.thread, NULL);
		close(D.pipe[0]);
		close(D.pipe[1]);
	}
	pthread_mutex_lock(&D.lock);
	D.running = false;
	D.pipe[0] = D.pipe[1] = -1;
	free(D.sig_dir);
	free(D.watch_dir);
	D.sig_dir = D.watch_dir = NULL;
	pthread_mutex_unlock(&D.lock);
}

/* After "fatal error: ...": every task, as debug=2, then a blank line. */
static void fatal_dump(int fd)
{
	struct snapshot s;

	if (snapshot_take(&s) < 0)
		return;
	if (goroutine_write(&s, fd, 2) == 0 && write(fd, "\n", 1) < 0) {
		/* Exiting anyway. */
	}
	snapshot_free(&s);
}

__attribute__((constructor)) static void dump_register(void)
{
	introspect_set_lifecycle(lifecycle_start, lifecycle_stop);
	introspect_set_fatal_dump(fatal_dump);
}
