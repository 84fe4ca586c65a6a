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
