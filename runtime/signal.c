/* SPDX-License-Identifier: MIT */
/*
 * signal.c - the runtime's signals: which ones its threads block, and
 * SIGQUIT, which does what Go's does.
 *
 * The table (docs/design.md, "Signals", has the long form):
 *
 *   signal     handled by              on which thread
 *   SIGSEGV,   fatal.c: a guard-page   the faulting thread (workers
 *   SIGBUS     touch is "fatal error:  leave the synchronous signals
 *              stack overflow"         unblocked), on its alternate stack
 *   SIGURG     introspect.c: record    a worker, asked by a snapshot or
 *              the running task        by the monitor (stall reports)
 *   SIGUSR1    profiler/dump.c through the profiler's service thread
 *   (or the    introspect_signal_      (workers block it from their
 *   dump sig.) route: a task snapshot  start, co_run's caller from the
 *              to a file               route on: sched_caller_block)
 *   SIGQUIT    here: every task in     any thread that does not block it:
 *              debug=2 form on         co_run's caller or a thread of the
 *              stderr, then exit 2     program's (workers block it)
 *   SIGPROF    here, for the CPU     the thread whose CPU clock the
 *              profiler: a timer's     timer measures (workers and the
 *              tick, passed to the     pool threads leave it unblocked);
 *              subscriber (below)      other SIGPROFs go to the program's
 *                                      old handler
 *   SIGPIPE    blocked on workers: a write to a closed pipe returns EPIPE
 *   others     left to the program: workers block them, so the kernel
 *              delivers them to co_run's caller or the program's threads
 *
 * SIGQUIT (kill -QUIT, or Ctrl-\ on a terminal) is the on-call engineer's
 * "where is everything stuck": like Go, Copper prints every task, running
 * ones included, and exits with status 2.  COPPER_SIGQUIT=0 leaves SIGQUIT
 * to the program (its default action dumps core).  The handler prints
 * through the fatal dumper (fatal.c), which symbolizes in the handler
 * under an alarm: the receiving thread is normally co_run's caller,
 * asleep in pthread_cond_wait and holding nothing.  Rejected: handing the
 * dump to the monitor thread (it sleeps for good while every worker is
 * idle, which is exactly when a stuck program is asked to dump, and a
 * handler cannot signal its condition variable).
 *
 * A profiler part takes a signal with introspect_signal_route: this file
 * installs the handler, remembers the program's action to put back, and
 * has co_run's caller block the signal for the rest of the run (the
 * caller waits on a condition variable in co_run, and blocks it there
 * when asked).  The part's own thread unblocks it.  Rejected for that
 * last step: queueing the signal to the caller with a cookie so that its
 * handler adds it to the mask its return restores (what dump.c did: a
 * page of code to get right around nested handlers, for a thread that
 * is only waiting and can be asked).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "copper.h"
#include "introspect.h"
#include "runtime.h"

static struct sigaction old_quit;
static bool quit_installed;

/* Signals routed to a profiler part, and the actions they replaced. */
static struct {
	pthread_mutex_t lock;
	uint64_t routed;                /* bit signo-1 */
	struct sigaction old[65];
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool introspect_signal_usable(int signo)
{
	switch (signo) {
	case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE:
	case SIGILL: case SIGURG: case SIGABRT: case SIGTRAP: case SIGQUIT:
	case SIGPROF:
		return false; /* the system's, or the runtime's own */
	default:
		return signo > 0 && signo < NSIG && signo <= 64;
	}
}

int introspect_signal_route(int signo,
			    void (*fn)(int, siginfo_t *, void *))
{
	uint64_t bit;
	struct sigaction sa;
	int err = 0;

	if (!introspect_signal_usable(signo))
		return CO_EINVAL;
	bit = (uint64_t)1 << (signo - 1);
	pthread_mutex_lock(&R.lock);
	if (!fn) {
		if (R.routed & bit)
			sigaction(signo, &R.old[signo], NULL);
		R.routed &= ~bit;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	/* A snapshot's request waits until the handler returns: no dump
	 * shows a task inside it, wherever it ran. */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGURG);
	if (sigaction(signo, &sa, R.routed & bit ? NULL : &R.old[signo]) != 0) {
		err = -errno;
		goto out;
	}
	R.routed |= bit;
out:
	pthread_mutex_unlock(&R.lock);
	if (err == 0 && fn) {
		/* Workers block it from their start; the caller from now
		 * (one still starting up blocks it before it first waits). */
		err = sched_caller_block(signo);
		if (err == CO_ETIMEDOUT)
			err = 0;
	}
	return err;
}

void signal_worker_mask(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
	sigdelset(set, SIGFPE);
	sigdelset(set, SIGILL);
	sigdelset(set, SIGURG);
	sigdelset(set, SIGPROF); /* the CPU profiler's per-thread timers */
}

static void quit_handler(int sig)
{
	static const char msg[] = "SIGQUIT: quit\n";
	(void)sig;

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* Exiting anyway. */
	}
	fatal_dump_all();
	_exit(2);
}

int signal_init(const struct config *cfg)
{
	struct sigaction sa;

	quit_installed = false;
	if (!cfg->sigquit)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = quit_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGQUIT, &sa, &old_quit) != 0)
		return -errno;
	quit_installed = true;
	return 0;
}

void signal_destroy(void)
{
	if (quit_installed)
		sigaction(SIGQUIT, &old_quit, NULL);
	quit_installed = false;
}

/* ------------------------------------------------------------------------
 * SIGPROF for the CPU profiler (the protocol is in introspect.h).
 *
 * The handler is installed while a subscriber is set and hands it the
 * ticks of the per-thread timers (si_code SI_TIMER; the cookie is the
 * timer's sigev_value); any other SIGPROF (a program's own setitimer, a
 * kill) goes to the handler the program had before.  Unsubscribing puts
 * that one back, but SIG_IGN for SIG_DFL: a tick already pending on some
 * thread when its timer was deleted must not end the process (Go's
 * setProcessCPUProfilerTimer, golang/go#19320).  Rejected: keeping
 * SIGPROF blocked on workers and unblocking it only while profiling (a
 * thread can change only its own mask, so every worker would have to
 * notice; one stuck in a task never would); creating each timer on its
 * own thread with CLOCK_THREAD_CPUTIME_ID (the same need to notice): a
 * thread's CPU clock is named from outside by its tid, as glibc's
 * pthread_getcpuclockid does.
 * ---------------------------------------------------------------------- */
static _Atomic(introspect_prof_fn) prof_fn;
static struct sigaction prof_old;   /* the program's, while installed */
static bool prof_installed;         /* guarded by prof_lock */
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;

static void prof_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	introspect_prof_fn fn = atomic_load(&prof_fn);

	if (si && si->si_code == SI_TIMER && fn &&
	    fn(si->si_value.sival_ptr, si->si_overrun, uc)) {
		/* One of the profile's ticks. */
	} else if (prof_old.sa_flags & SA_SIGINFO) {
		if (prof_old.sa_sigaction)
			prof_old.sa_sigaction(sig, si, uc);
	} else if (prof_old.sa_handler != SIG_DFL &&
		   prof_old.sa_handler != SIG_IGN) {
		prof_old.sa_handler(sig);
	}
	errno = saved;
}

int introspect_set_prof_handler(introspect_prof_fn fn)
{
	struct sigaction sa;
	int err = 0;

	pthread_mutex_lock(&prof_lock);
	if (fn && !prof_installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = prof_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGPROF, &sa, &prof_old) != 0)
			err = -errno;
		else
			prof_installed = true;
	}
	atomic_store(&prof_fn, err ? NULL : fn);
	if (!fn && prof_installed) {
		struct sigaction back = prof_old;
		if (!(back.sa_flags & SA_SIGINFO) &&
		    back.sa_handler == SIG_DFL)
			back.sa_handler = SIG_IGN;
		sigaction(SIGPROF, &back, NULL);
		prof_installed = false;
	}
	pthread_mutex_unlock(&prof_lock);
	return err;
}

/* glibc's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), which
 * pthread_getcpuclockid uses: the CPU clock of one thread, by tid. */
static clockid_t thread_cpu_clock(int tid)
{
	return (clockid_t)((~(unsigned)tid << 3) | 6);
}

int introspect_prof_timer_create(int tid, int64_t period_ns, void *cookie,
				 timer_t *out)
{
	struct sigevent sev;
	struct itimerspec its;
	uint32_t r = 0;

	if (tid <= 0 || period_ns <= 0 || !out)
		return -EINVAL;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGPROF;
	sev.sigev_value.sival_ptr = cookie;
	sev._sigev_un._tid = tid;
	if (timer_create(thread_cpu_clock(tid), &sev, out) != 0)
		return -errno;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)tid * 2654435761u;
	int64_t first = 1 + (int64_t)(r % (uint64_t)period_ns);
	its.it_interval.tv_sec = period_ns / 1000000000;
	its.it_interval.tv_nsec = period_ns % 1000000000;
	its.it_value.tv_sec = first / 1000000000;
	its.it_value.tv_nsec = first % 1000000000;
	if (timer_settime(*out, 0, &its, NULL) != 0) {
		int err = -errno;
		timer_delete(*out);
		return err;
	}
	return 0;
}

void introspect_prof_timer_delete(timer_t t)
{
	timer_delete(t);
}
