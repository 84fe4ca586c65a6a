/* SPDX-License-Identifier: MIT */
/*
 * dump.c - task snapshots on a signal, on demand and from a watchdog;
 * the JSON dump; the fatal-error dump.
 *
 * `kill -USR1 <pid>` must work on a process whose every worker is busy or
 * stuck, so nothing happens on a worker: the signal handler only wakes
 * the profiler's service thread (service.c), which takes a consistent snapshot (snapshot.c never stops a worker) and
 * writes two files into the dump directory:
 *
 *     copper-<pid>-<UTC time>.goroutine.pb.gz   debug=0, for go tool pprof
 *     copper-<pid>-<UTC time>.goroutine.txt     debug=2, for people
 *
 * each first to a hidden temporary file of its own in the same directory,
 * then given its name by a rename that never replaces a file, the .pb.gz
 * before the .txt (no reader ever sees half a file or half a pair, and a
 * full disk leaves nothing behind), then announced on stderr.  The time
 * is to the millisecond; a second dump in the same millisecond, or a name
 * already taken, gets the first free <time>-2, -3, ... instead.  The same
 * thread (a libuv timer on its loop) polls the watchdog every 10 ms while one is armed.
 *
 * The dump signal reaches the service thread because no other thread of
 * Copper's takes it: the runtime routes it (introspect_signal_route,
 * runtime/signal.c) so that workers and co_run's caller block it, and the
 * service thread is the one Copper thread that lets it in.  Its handler
 * only wakes the service loop (uv_async_send is async-signal-safe).
 *
 * Invariants: a dump never replaces a file and leaves no file behind on
 * error; co_dump_tasks checks its path against -ERANGE and -EINVAL before
 * taking the snapshot (a suffixed name found too long later is reported
 * after the temporary files are removed).
 *
 * Environment: COPPER_SIGDUMP=0 disables the SIGUSR1 set-up (1, the
 * default, enables it); COPPER_DUMP_DIR names the directory (default
 * $TMPDIR, else /tmp).  A bad value stops co_run with a message.
 *
 * Rejected: dumping inside the signal handler (nothing in a snapshot or
 * DWARF lookup is async-signal-safe); dumping from a task (all workers may
 * be stuck, which is exactly when a dump is wanted); having co_run's
 * caller block from the start every signal a dump might use, as the
 * workers do (SIGINT, SIGTERM and the program's own signals would then
 * stay pending with COPPER_SIGDUMP=0); a time stamp finer
 * than the millisecond (two dumps can still meet, and the names would no
 * longer be those documented).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <uv.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define WATCHDOG_POLL_MS 10
#define DUMP_PATH_MAX 4096      /* longest path, with its NUL */
#define DUMP_NAME_TRIES 1000    /* suffixes (and temporary names) tried */

static struct {
	pthread_mutex_t lock;       /* guards everything here */
	pthread_mutex_t name_lock;  /* held while a dump picks its names */
	int signo;                  /* the dump signal, 0 if none */
	char *sig_dir;              /* where signal dumps go (NULL: default) */
	size_t watch_max;           /* watchdog threshold, 0: off */
	char *watch_dir;
	bool watch_above;           /* count was above the threshold */
} D = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.name_lock = PTHREAD_MUTEX_INITIALIZER,
};

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

/* "copper-<pid>-<UTC time to the millisecond>", the name of a dump
 * without the suffix that tells two dumps of one millisecond apart. */
static void dump_base_name(char *buf, size_t len)
{
	char stamp[64];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	snprintf(buf, len, "copper-%d-%s.%03ldZ", (int)getpid(), stamp,
		 ts.tv_nsec / 1000000);
}

/*
 * Writes one form of s (debug 0 or 2) to a new file beside dir/<base><ext>
 * and copies its path to tmp: a hidden name that no other write shares
 * (the process-wide sequence number, and O_EXCL against a stale file of a
 * process that had the same pid), so that two dumps at once never write
 * into one file.  Flushed to disk; removed again on error.
 */
static int write_temp(const char *dir, const char *base, const char *ext,
		      const struct snapshot *s, int debug,
		      char tmp[DUMP_PATH_MAX])
{
	static _Atomic unsigned long seq;
	int fd = -1, err;

	for (int i = 0; fd < 0 && i < DUMP_NAME_TRIES; i++) {
		unsigned long n = atomic_fetch_add(&seq, 1);
		if ((size_t)snprintf(tmp, DUMP_PATH_MAX, "%s/.%s%s.%d.%lu.tmp",
				     dir, base, ext, (int)getpid(),
				     n) >= DUMP_PATH_MAX)
			return CO_EINVAL;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return -errno;
	}
	if (fd < 0)
		return -EEXIST;
	err = goroutine_write(s, fd, debug);
	if (err == 0 && fsync(fd) != 0)
		err = -errno;
	if (close(fd) != 0 && err == 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/*
 * Moves tmp to path unless path exists; never replaces a file.  Returns 0,
 * -EEXIST, or -errno.  renameat2(RENAME_NOREPLACE) where the file system
 * has it; a hard link where it has not (NFS, some FUSE file systems), since
 * link() does not replace either; where neither exists, a check before a
 * plain rename, which D.name_lock keeps safe against this process's own
 * dumps (the pid in the name keeps other processes away).
 */
static int publish(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -errno;
	if (link(tmp, path) == 0) {
		unlink(tmp);
		return 0;
	}
	if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS)
		return -errno;
	if (faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	return rename(tmp, path) == 0 ? 0 : -errno;
}

/*
 * Gives the two temporary files their names: <base>.goroutine.pb.gz and
 * .txt, or <base>-<n>.goroutine... (n = 2, 3, ...) for the first n whose
 * names are both free, so that no dump replaces another, whether of this
 * process in the same millisecond or a stale one.  The .pb.gz goes first:
 * once the .txt (the name announced and returned) exists, so does its
 * pair.  On error nothing is left under a final name and the temporary
 * files are still there for the caller to remove; -ERANGE if the .txt
 * path does not fit in out (out_len > 0).
 */
static int publish_pair(const char *dir, const char *base, const char *pb_tmp,
			const char *txt_tmp, char *out, size_t out_len)
{
	char pb[DUMP_PATH_MAX], txt[DUMP_PATH_MAX], suffix[16] = "";
	int err = -EEXIST;

	pthread_mutex_lock(&D.name_lock);
	for (int n = 1; n <= DUMP_NAME_TRIES && err == -EEXIST; n++) {
		if (n > 1)
			snprintf(suffix, sizeof(suffix), "-%d", n);
		if ((size_t)snprintf(pb, sizeof(pb), "%s/%s%s.goroutine.pb.gz",
				     dir, base, suffix) >= sizeof(pb) ||
		    (size_t)snprintf(txt, sizeof(txt), "%s/%s%s.goroutine.txt",
				     dir, base, suffix) >= sizeof(txt)) {
			err = CO_EINVAL;
			break;
		}
		if (out && out_len && strlen(txt) >= out_len) {
			err = CO_ERANGE;
			break;
		}
		if ((err = publish(pb_tmp, pb)) != 0)
			continue;
		if ((err = publish(txt_tmp, txt)) == 0)
			break;
		/* The .txt name is taken (a stale file): take the .pb.gz
		 * back to its temporary name and try the next pair. */
		if (rename(pb, pb_tmp) != 0)
			unlink(pb);
	}
	pthread_mutex_unlock(&D.name_lock);
	if (err == 0 && out && out_len)
		memcpy(out, txt, strlen(txt) + 1);
	return err;
}

/*
 * Writes both files of a snapshot and copies the .txt path to out (when
 * out_len > 0).  Every check that can fail without a disk (the path's
 * length against DUMP_PATH_MAX, -EINVAL, and against out_len, -ERANGE)
 * comes before the snapshot; whatever fails later removes what it wrote.
 */
static int dump_snapshot(const char *dir, char *out, size_t out_len)
{
	struct snapshot s;
	char base[96], txt[DUMP_PATH_MAX], pb_tmp[DUMP_PATH_MAX];
	char txt_tmp[DUMP_PATH_MAX];
	int err;

	dir = dump_dir(dir);
	dump_base_name(base, sizeof(base));
	if ((size_t)snprintf(txt, sizeof(txt), "%s/%s.goroutine.txt", dir,
			     base) >= sizeof(txt))
		return CO_EINVAL;
	if (out && out_len && strlen(txt) >= out_len)
		return CO_ERANGE;
	if ((err = snapshot_take(&s)) < 0)
		return err;
	/* The .txt first: the .pb.gz groups the snapshot, which reorders it
	 * (group_tasks), and debug=2 prints in id order. */
	err = write_temp(dir, base, ".goroutine.txt", &s, 2, txt_tmp);
	if (err == 0) {
		err = write_temp(dir, base, ".goroutine.pb.gz", &s, 0, pb_tmp);
		if (err == 0) {
			err = publish_pair(dir, base, pb_tmp, txt_tmp, out,
					   out_len);
			if (err)
				unlink(pb_tmp);
		}
		if (err)
			unlink(txt_tmp);
	}
	snapshot_free(&s);
	return err;
}

/* ------------------------------------------------------------------------
 * On the service thread
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
	char path[DUMP_PATH_MAX], *dir = NULL;
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

/* The dump's handles on the service loop, made there (dump_attach). */
static uv_async_t dump_async;       /* the signal handler's wake-up */
static uv_timer_t watch_timer;      /* the watchdog's poll */
static _Atomic bool dump_attached;  /* both exist */

static void dump_on_signal(uv_async_t *a)
{
	char path[DUMP_PATH_MAX];
	(void)a;

	pthread_mutex_lock(&D.lock);
	char *dir = D.sig_dir ? strdup(D.sig_dir) : NULL;
	pthread_mutex_unlock(&D.lock);
	int err = dump_snapshot(dir, path, sizeof(path));
	announce("signal", dir, err, path);
	free(dir);
}

static void dump_on_watch(uv_timer_t *t)
{
	(void)t;
	watchdog_check();
}

/* On the service thread: the handles, and the mask that lets the dump
 * signal in (every other signal stays blocked there). */
static void dump_attach(void *arg)
{
	sigset_t in;
	(void)arg;

	if (!atomic_load(&dump_attached)) {
		uv_async_init(service_loop(), &dump_async, dump_on_signal);
		uv_timer_init(service_loop(), &watch_timer);
		atomic_store(&dump_attached, true);
	}
	sigemptyset(&in);
	pthread_mutex_lock(&D.lock);
	if (D.signo)
		sigaddset(&in, D.signo);
	bool watch = D.watch_max > 0;
	pthread_mutex_unlock(&D.lock);
	service_set_sigmask(&in);
	if (watch)
		uv_timer_start(&watch_timer, dump_on_watch, WATCHDOG_POLL_MS,
			       WATCHDOG_POLL_MS);
	else
		uv_timer_stop(&watch_timer);
}

/* On the service thread, as co_run ends. */
static void dump_detach(void *arg)
{
	(void)arg;
	if (atomic_exchange(&dump_attached, false)) {
		uv_close((uv_handle_t *)&dump_async, NULL);
		uv_close((uv_handle_t *)&watch_timer, NULL);
	}
}

/* The handler: uv_async_send is async-signal-safe, and several signals
 * before the loop looks make one dump. */
static void dump_signal(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;
	(void)sig, (void)si, (void)ctx;

	if (atomic_load(&dump_attached))
		uv_async_send(&dump_async);
	errno = saved;
}

/* Brings the service thread up with the dump's handles and mask. */
static int dump_service_update(void)
{
	int err = service_start();
	return err < 0 ? err : service_call_sync(dump_attach, NULL);
}

CO_EXTERN int co_dump_on_signal(int signo, const char *dir)
{
	char *copy = NULL;
	int err, old;

	if (!introspect_signal_usable(signo))
		return CO_EINVAL;
	if (dir && !(copy = strdup(dir)))
		return CO_ENOMEM;
	if ((err = dump_service_update()) < 0) {
		free(copy);
		return err;
	}
	pthread_mutex_lock(&D.lock);
	old = D.signo;
	free(D.sig_dir);
	D.sig_dir = copy;
	D.signo = signo;
	pthread_mutex_unlock(&D.lock);
	/* The service thread lets the new signal in before any thread of
	 * the runtime stops taking it. */
	if ((err = dump_service_update()) == 0 &&
	    (err = introspect_signal_route(signo, dump_signal)) == 0 &&
	    old && old != signo)
		introspect_signal_route(old, NULL);
	if (err) {
		pthread_mutex_lock(&D.lock);
		D.signo = old == signo ? 0 : old;
		pthread_mutex_unlock(&D.lock);
	}
	return err;
}

CO_EXTERN int co_dump_tasks(const char *dir, char *path_out, size_t path_len)
{
	return dump_snapshot(dir, path_out, path_out ? path_len : 0);
}

CO_EXTERN int co_watchdog(size_t max_tasks, const char *dir)
{
	char *copy = NULL;
	int err = 0;

	if (dir && !(copy = strdup(dir)))
		return CO_ENOMEM;
	if (max_tasks && (err = service_start()) < 0) {
		free(copy);
		return err;
	}
	pthread_mutex_lock(&D.lock);
	D.watch_max = max_tasks;
	D.watch_above = false;
	free(D.watch_dir);
	D.watch_dir = copy;
	pthread_mutex_unlock(&D.lock);
	if (service_running())
		err = service_call_sync(dump_attach, NULL);
	return err == CO_ECANCELED && !max_tasks ? 0 : err;
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
	bool sigdump = !v || strcmp(v, "0") != 0;
	int signo;

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
	pthread_mutex_lock(&D.lock);
	signo = D.signo; /* chosen before co_run */
	pthread_mutex_unlock(&D.lock);
	if (sigdump)
		return co_dump_on_signal(SIGUSR1, NULL);
	/* Routed again: this run's caller blocks it too. */
	return signo ? introspect_signal_route(signo, dump_signal) : 0;
}

static void lifecycle_stop(void)
{
	pthread_mutex_lock(&D.lock);
	int signo = D.signo;
	D.signo = 0;
	D.watch_max = 0;
	pthread_mutex_unlock(&D.lock);
	if (signo)
		introspect_signal_route(signo, NULL);
	service_call_sync(dump_detach, NULL);
	pthread_mutex_lock(&D.lock);
	free(D.sig_dir);
	free(D.watch_dir);
	D.sig_dir = D.watch_dir = NULL;
	pthread_mutex_unlock(&D.lock);
	snapshot_release_kept();
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
	introspect_add_lifecycle(lifecycle_start, lifecycle_stop);
	introspect_set_fatal_dump(fatal_dump);
}
