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
 *   SIGUSR1    profiler/dump.c: a      Copper's dump thread (everyone
 *   (or the    task snapshot to a      else blocks it)
 *   dump sig.) file
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
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "runtime.h"

static struct sigaction old_quit;
static bool quit_installed;

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
