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
 * each first to a hidden temporary file of its own in the same directory,
 * then given its name by a rename that never replaces a file, the .pb.gz
 * before the .txt (no reader ever sees half a file or half a pair, and a
 * full disk leaves nothing behind), then announced on stderr.  The time
 * is to the millisecond; a second dump in the same millisecond, or a name
 * already taken, gets the first free <time>-2, -3, ... instead.  The same
 * thread polls the watchdog every 10 ms while one is armed.
 *
 * The dump signal reaches the dump thread because every other thread of
 * Copper's blocks it: the workers block every signal a dump may use from
 * their start (runtime/signal.c), and the thread that called co_run
 * (called "worker 0" below, from when it was one; it now runs no task
 * and only waits) blocks SIGUSR1 from lifecycle_start on.  A signal
 * chosen later with co_dump_on_signal is blocked on that thread as well:
 * the caller, a task on a worker, queues the signal to it alone, with a
 * cookie, and the handler, seeing the cookie, adds the signal to the
 * mask that its return restores (a "kick").  Its old mask comes back
 * when co_run returns.
 *
 * Invariants: a dump never replaces a file and leaves no file behind on
 * error; co_dump_tasks checks its path against -ERANGE and -EINVAL before
 * taking the snapshot (a suffixed name found too long later is reported
 * after the temporary files are removed); while co_run runs, only the
 * dump thread (and threads of the program's own) leave the dump signal
 * unblocked, unless worker 0 could not be kicked (worker0_kick).
 *
 * Environment: COPPER_SIGDUMP=0 disables the SIGUSR1 set-up (1, the
 * default, enables it); COPPER_DUMP_DIR names the directory (default
 * $TMPDIR, else /tmp).  A bad value stops co_run with a message.
 *
 * Rejected: dumping inside the signal handler (nothing in a snapshot or
 * DWARF lookup is async-signal-safe); dumping from a task (all workers may
 * be stuck, which is exactly when a dump is wanted); blocking on worker 0
 * from the start every signal a dump might use, as the other workers do
 * (SIGINT, SIGTERM and the program's own signals would then stay pending
 * whenever no dump thread runs, with COPPER_SIGDUMP=0); re-masking worker
 * 0 at a scheduler safe point (a worker stuck in a loop never reaches one,
 * and the scheduler is not the profiler's to change); a time stamp finer
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

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define WATCHDOG_POLL_MS 10
#define DUMP_PATH_MAX 4096      /* longest path, with its NUL */
#define DUMP_NAME_TRIES 1000    /* suffixes (and temporary names) tried */
#define KICK_TIMEOUT_MS 1000    /* wait for worker 0 to block a signal */

/* What worker 0's handler answers to a kick: D.worker0_ack is the kick's
 * index << 2 | one of these, or -1 while no answer has come. */
enum { KICK_BLOCKED = 1, KICK_NESTED = 2 };
#define KICK_SLOTS 64           /* kick indexes, reused in turn */

static struct {
	pthread_mutex_t lock;       /* guards everything but the pipe, the
	                             * name lock and the atomics */
	pthread_mutex_t name_lock;  /* held while a dump picks its names */
	bool running;               /* the dump thread exists */
	pthread_t thread;
	int pipe[2];                /* signal handler -> dump thread */
	int signo;                  /* the dump signal, 0 if none */
	struct sigaction old_sa;    /* restored when the runtime stops */
	char *sig_dir;              /* where signal dumps go (NULL: default) */
	size_t watch_max;           /* watchdog threshold, 0: off */
	char *watch_dir;
	bool watch_above;           /* count was above the threshold */
	pthread_t worker0;          /* the thread that called co_run */
	_Atomic bool worker0_live;  /* co_run runs there: set and cleared on
	                             * worker 0 by lifecycle_start/stop */
	sigset_t worker0_mask;      /* worker 0's mask before lifecycle_start */
	_Atomic uint64_t worker0_blocked; /* what worker 0 blocks now, bit
	                             * sig-1; changed under lock only */
	_Atomic int worker0_ack;    /* worker 0's answer to a kick */
	unsigned kick_seq;          /* kicks sent, under lock */
} D = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.name_lock = PTHREAD_MUTEX_INITIALIZER,
	.pipe = {-1, -1},
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
		char buf[64], path[DUMP_PATH_MAX];
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

/* An address in here marks a kick: the dump signal, queued by this
 * process to worker 0 alone, so that worker 0 blocks it
 * (worker0_block_locked).  Which one tells the answer to this kick from a
 * late answer to an earlier one. */
static char kick_cookies[KICK_SLOTS];

_Static_assert(NSIG <= 65, "worker0_blocked holds signals 1 to 64");

static bool worker0_blocks(int sig)
{
	return atomic_load(&D.worker0_blocked) >> (sig - 1) & 1;
}

/* The index of the kick si carries, or -1 if it is not a kick. */
static int kick_index(const siginfo_t *si)
{
	uintptr_t p, base = (uintptr_t)kick_cookies;

	if (!si || si->si_code != SI_QUEUE || si->si_pid != getpid())
		return -1;
	p = (uintptr_t)si->si_value.sival_ptr;
	return p >= base && p < base + KICK_SLOTS ? (int)(p - base) : -1;
}

/*
 * A kick, in the handler on worker 0: block sig there for the rest of the
 * run by adding it to the mask that returning from this handler restores.
 * If that mask blocks more than worker 0 does, this handler interrupted
 * another one (the runtime's SIGURG handler, say), whose own return would
 * restore the older mask and undo the change: answer KICK_NESTED, and the
 * kicker kicks again.  Once co_run is ending (worker0_live false), worker
 * 0's mask is being restored, and a late kick changes nothing.
 */
static void kick_take(int sig, ucontext_t *uc, int index)
{
	if (!atomic_load(&D.worker0_live))
		return;
	for (int s = 1; s < NSIG; s++) {
		if (s != sig && sigismember(&uc->uc_sigmask, s) == 1 &&
		    !worker0_blocks(s)) {
			atomic_store(&D.worker0_ack, index << 2 | KICK_NESTED);
			return;
		}
	}
	sigaddset(&uc->uc_sigmask, sig);
	atomic_store(&D.worker0_ack, index << 2 | KICK_BLOCKED);
}

static void dump_signal(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;

	int kick = kick_index(si);

	if (kick >= 0)
		kick_take(sig, ctx, kick);
	else if (write(D.pipe[1], "d", 1) < 0) {
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

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Kicks worker 0 with signo until its handler answers KICK_BLOCKED (see
 * kick_take); false if that does not happen within KICK_TIMEOUT_MS.  A
 * kick waits only while worker 0 has signo blocked: in a handler of signo
 * for a moment, or for good if code on worker 0 blocked it behind
 * Copper's back, and then worker 0 blocks it already.  After a NESTED
 * answer it waits 1 ms, doubling to 100 ms, before the next kick: a
 * handler lasts that long, or worker 0's mask changed since co_run began
 * (then every answer is NESTED, and a second of fast kicks would only
 * interrupt worker 0's system calls).  Called with D.lock.
 */
static bool worker0_kick(int signo)
{
	const struct timespec pause = {0, 50 * 1000};
	int64_t end = mono_ms() + KICK_TIMEOUT_MS, backoff_ns = 1000000;
	int ack;

	for (;;) {
		int index = (int)(D.kick_seq++ % KICK_SLOTS);
		union sigval cookie = {.sival_ptr = &kick_cookies[index]};

		atomic_store(&D.worker0_ack, -1);
		if (pthread_sigqueue(D.worker0, signo, cookie) != 0)
			return false;
		while ((ack = atomic_load(&D.worker0_ack)) == -1 ||
		       ack >> 2 != index) {
			if (mono_ms() >= end)
				return false;
			nanosleep(&pause, NULL);
		}
		if ((ack & 3) == KICK_BLOCKED)
			return true;
		if (mono_ms() + backoff_ns / 1000000 >= end)
			return false;
		struct timespec ts = {0, (long)backoff_ns};
		nanosleep(&ts, NULL);
		if (backoff_ns < 100000000)
			backoff_ns *= 2;
	}
}

/*
 * Makes worker 0 block signo for the rest of the run, as the other workers
 * do from their start (they block every signal a dump can use): directly
 * on worker 0 itself, by a kick from any other thread.  Call with D.lock
 * (no kick then races co_run's end, worker0_restore), after installing
 * dump_signal for signo, which is what takes the kick.
 */
static void worker0_block_locked(int signo)
{
	if (!atomic_load(&D.worker0_live) || worker0_blocks(signo))
		return;
	if (pthread_equal(pthread_self(), D.worker0)) {
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, signo);
		pthread_sigmask(SIG_BLOCK, &one, NULL);
	} else if (!worker0_kick(signo)) {
		return;
	}
	atomic_fetch_or(&D.worker0_blocked, (uint64_t)1 << (signo - 1));
}

/* On worker 0 as co_run ends (or fails to start): no more kicks, and the
 * mask worker 0 had before lifecycle_start. */
static void worker0_restore(void)
{
	pthread_mutex_lock(&D.lock);
	bool live = atomic_exchange(&D.worker0_live, false);
	pthread_mutex_unlock(&D.lock);
	if (live)
		pthread_sigmask(SIG_SETMASK, &D.worker0_mask, NULL);
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
	sa.sa_sigaction = dump_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	/* A snapshot's request waits until the handler returns: no dump
	 * shows a task inside it, wherever it ran. */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGURG);
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
	/* Every worker blocks it, so the dump thread takes it. */
	worker0_block_locked(signo);
out:
	pthread_mutex_unlock(&D.lock);
	free(copy);
	if (err == 0)
		send_byte('s'); /* must arrive: the thread re-masks on it */
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
	sigset_t block, now;
	uint64_t bits = 0;
	bool sigdump;
	int err;

	if ((err = cpuprof_env_check()) < 0)
		return err; /* COPPER_CPUPROFILE_HZ, checked at start-up */
	if (v && strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
		fprintf(stderr, "copper: invalid COPPER_SIGDUMP=\"%s\": want 0 "
				"or 1\n", v);
		return CO_EINVAL;
	}
	sigdump = !v || strcmp(v, "0") != 0;
	v = getenv("COPPER_DUMP_DIR");
	if (v && !*v) {
		fprintf(stderr, "copper: invalid COPPER_DUMP_DIR=\"\": want a "
				"directory\n");
		return CO_EINVAL;
	}
	/* This runs on worker 0, the thread that called co_run: block the
	 * dump signal here for the run, so that the dump thread takes it
	 * rather than a task running on this thread.  Record the thread and
	 * its mask in any case: co_dump_on_signal, called later from any
	 * worker, blocks its signal here too. */
	sigemptyset(&block);
	pthread_mutex_lock(&D.lock);
	if (sigdump)
		sigaddset(&block, SIGUSR1);
	if (D.signo)
		sigaddset(&block, D.signo); /* chosen before co_run */
	pthread_sigmask(SIG_BLOCK, &block, &D.worker0_mask);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&now, s) == 1)
			bits |= (uint64_t)1 << (s - 1);
	atomic_store(&D.worker0_blocked, bits);
	D.worker0 = pthread_self();
	atomic_store(&D.worker0_live, true);
	pthread_mutex_unlock(&D.lock);
	if (sigdump && (err = co_dump_on_signal(SIGUSR1, NULL)) < 0) {
		worker0_restore(); /* co_run does not call lifecycle_stop */
		return err;
	}
	return 0;
}

static void lifecycle_stop(void)
{
	worker0_restore();
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
	introspect_set_lifecycle(lifecycle_start, lifecycle_stop);
	introspect_set_fatal_dump(fatal_dump);
}
