/* SPDX-License-Identifier: MIT */
/*
 * misuse.c - reports a program's misuse of Copper's objects: unlocking a
 * mutex nobody holds, closing a closed channel, sending on a closed one, a
 * wait group going below zero.
 *
 * The calls keep returning their error codes (-EPERM, -EPIPE, -ERANGE),
 * which C programs check; but a code nobody checks hides a bug that Go
 * would stop the program for.  So the runtime also says so, with the
 * task and its stack, in one of three ways (COPPER_MISUSE):
 *
 *   report  (default) a few lines on stderr, once per call site: the
 *           message in Go's words and the task in debug=2 form;
 *   fatal   Go's behaviour: "fatal error: <message>", the task, every
 *           other task, exit status 2;
 *   silent  nothing but the code.
 *
 * The stack is walked here, on the calling task's own stack, and printed
 * through the profiler's task printer (introspect.h's stall report with
 * .misuse set): this is an ordinary call, not a signal handler, so
 * symbolizing is safe.  Call sites already reported are kept in a small
 * table; past MISUSE_SITES distinct sites every misuse is reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "introspect.h"
#include "runtime.h"

#define MISUSE_SITES 256

static const char *const misuse_text[MISUSE_NKINDS] = {
	[MISUSE_UNLOCK] = "co_mutex_unlock of unlocked mutex "
			  "(Go: sync: unlock of unlocked mutex)",
	[MISUSE_RUNLOCK] = "co_rwmutex_runlock of unlocked rwmutex "
			   "(Go: sync: RUnlock of unlocked RWMutex)",
	[MISUSE_RWUNLOCK] = "co_rwmutex_unlock of unlocked rwmutex "
			    "(Go: sync: Unlock of unlocked RWMutex)",
	[MISUSE_CLOSE_CLOSED] = "close of closed channel",
	[MISUSE_SEND_CLOSED] = "send on closed channel",
	[MISUSE_WG_NEGATIVE] = "negative co_wg counter "
			       "(Go: sync: negative WaitGroup counter)",
};

static struct {
	int mode;                      /* enum misuse_mode */
	spinlock lk;                   /* guards the table */
	uintptr_t sites[MISUSE_SITES]; /* call sites reported */
	int nsites;
} M;

void misuse_set_mode(int mode)
{
	M.mode = mode;
}

/* True the first time site is seen (or when the table is full). */
static bool site_new(uintptr_t site)
{
	bool fresh = true;

	spin_lock(&M.lk);
	for (int i = 0; i < M.nsites; i++)
		if (M.sites[i] == site) {
			fresh = false;
			break;
		}
	if (fresh && M.nsites < MISUSE_SITES)
		M.sites[M.nsites++] = site;
	spin_unlock(&M.lk);
	return fresh;
}

__attribute__((noinline)) void misuse_report(enum misuse_kind kind,
					     uintptr_t site)
{
	uintptr_t pcs[STALL_PCS_MAX];
	struct task *t = sched_current();
	int mode = M.mode;

	if (mode == MISUSE_SILENT || (mode == MISUSE_REPORT && !site_new(site)))
		return;
	struct stall_report r = {
		.misuse = misuse_text[kind],
		.fatal = mode == MISUSE_FATAL,
		.worker = -1,
		.returns_only = true,
	};
	if (t) {
		r.id = t->id;
		r.name = t->name;
		r.labels = t->labels;
		r.creator_id = t->creator_id;
		r.creator_pc = t->creator_pc;
		r.worker = t->worker ? t->worker->id : -1;
		/* From here: the printer hides the runtime's leading
		 * frames and starts at the public call. */
		r.npcs = introspect_self_stack(pcs, STALL_PCS_MAX, NULL, NULL);
		r.pcs = pcs;
	}
	if (stall_report_hook) {
		stall_report_hook(&r);
	} else {
		fprintf(stderr, "%s%s\n", mode == MISUSE_FATAL ?
			"fatal error: " : "copper: misuse: ", misuse_text[kind]);
	}
	if (mode == MISUSE_FATAL) {
		fflush(stderr);
		if (fatal_dump_hook)
			fatal_dump_hook(STDERR_FILENO);
		_exit(2);
	}
}
