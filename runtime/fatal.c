/* SPDX-License-Identifier: MIT */
/*
 * fatal.c - the runtime's two ways to die: co_fatal() for a broken internal
 * invariant, and the SIGSEGV/SIGBUS handler that turns a touch of a stack's
 * guard page into "fatal error: stack overflow" naming the task.
 *
 * Both print in Go's words ("fatal error: ..."), so people and log scanners
 * recognise them, and exit with status 2 as Go does.  They never run for a
 * caller's bad argument: that returns an error code (STYLE.md rule 11).
 *
 * The fault handler runs on a per-worker alternate signal stack, because
 * the faulting stack is exactly the one that has no room left.  It only
 * reads the faulting thread's current task and formats with write(2); a
 * fault that is not in the current task's guard page is handed back to the
 * previous handler (or the default action), so ordinary crashes still dump
 * core and sanitizers still report.
 */
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "introspect.h"
#include "runtime.h"

#define ALTSTACK_SIZE (512 * 1024) /* the fatal dump symbolizes on it */

static struct sigaction old_segv, old_bus;
static _Thread_local void *altstack_mem;
static _Thread_local stack_t altstack_old;

/* The profiler installs a dumper here: it prints the task table after the
 * fatal message (issue: the debug=2 dump).  NULL until then. */
void (*fatal_dump_hook)(int fd);

_Noreturn void co_fatal(const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fatal error: %s\n", buf);
	fflush(stderr);
	if (fatal_dump_hook)
		fatal_dump_hook(STDERR_FILENO);
	_exit(2);
}

/* Async-signal-safe formatting: append a string or an unsigned number. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0 && at + 1 < cap)
		buf[at++] = tmp[--n];
	return at;
}

static void put_hex(char *buf, size_t *at, size_t cap, uintptr_t v)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[2 + 2 * sizeof(v)];
	int n = 0;

	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	*at = put_str(buf, *at, cap, "0x");
	while (n > 0 && *at + 1 < cap)
		buf[(*at)++] = tmp[--n];
}

/*
 * The overflowing task's stack, symbolized.  Nothing that symbolizes is
 * safe here (the fault may have hit inside malloc, or inside the
 * symbolizer), and this thread has no stack but the alternate one: so the
 * handler leaves the return addresses in fatal_req and the monitor thread,
 * which looks every 10 ms, prints them through the profiler's printer
 * (stall_report_hook, with .fatal set) in debug=2 form.  The handler waits
 * up to FATAL_SERVE_NS for that; without an answer (no monitor, or it is
 * stuck behind a lock the dying task held) it prints the raw addresses,
 * with exe+offset for addr2line, as before.
 */
#define FATAL_SERVE_NS 2000000000

static struct {
	_Atomic int state;        /* 0 idle, 1 asked, 2 printing, 3 done */
	struct stall_report r;
	uintptr_t pcs[STALL_PCS_MAX];
} fatal_req;

void fatal_serve(void)
{
	int asked = 1;

	if (likely(atomic_load_explicit(&fatal_req.state,
					memory_order_relaxed) != 1))
		return;
	if (!atomic_compare_exchange_strong(&fatal_req.state, &asked, 2))
		return;
	if (stall_report_hook)
		stall_report_hook(&fatal_req.r);
	atomic_store(&fatal_req.state, 3);
}

/* The executable's load address and extent, found at start-up (not in
 * the handler): raw frames inside it print as exe+offset, which addr2line
 * resolves for a PIE binary too. */
static uintptr_t exe_base, exe_end;

static int find_exe(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	exe_base = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		if (ph->p_type == PT_LOAD && end > exe_end)
			exe_end = end;
	}
	return 1; /* the first object is the executable */
}

static void put_frame(char *buf, size_t *n, size_t cap, uintptr_t pc)
{
	*n = put_str(buf, *n, cap, "\t");
	put_hex(buf, n, cap, pc);
	if (pc >= exe_base && pc < exe_end) {
		*n = put_str(buf, *n, cap, " exe+");
		put_hex(buf, n, cap, pc - exe_base);
	}
	*n = put_str(buf, *n, cap, "\n");
}

static void print_frames(struct task *t, const ucontext_t *uc)
{
	uintptr_t pc, fp, sp;
	int npcs;

	/* Not introspect_self_stack: sp has overflowed below the stack, the
	 * frame pointer chain above it is still the task's. */
	uc_regs(uc, &pc, &fp, &sp);
	fatal_req.pcs[0] = pc;
	npcs = 1 + introspect_walk_fp(fp, t->stack_lo, t->stack_hi,
				      fatal_req.pcs + 1, STALL_PCS_MAX - 1);
	fatal_req.r = (struct stall_report){
		.id = t->id, .name = t->name, .labels = t->labels,
		.worker = t->worker ? t->worker->id : -1,
		.creator_id = t->creator_id, .creator_pc = t->creator_pc,
		.fatal = true, .pcs = fatal_req.pcs, .npcs = npcs,
	};
	if (stall_report_hook && sched_running()) {
		struct timespec ms = {0, 1000000};
		if (write(STDERR_FILENO, "\n", 1) < 0) {
			/* Exiting anyway. */
		}
		atomic_store(&fatal_req.state, 1);
		for (int64_t waited = 0; waited < FATAL_SERVE_NS;
		     waited += 1000000) {
			if (atomic_load(&fatal_req.state) == 3)
				return;
			nanosleep(&ms, NULL);
		}
		int asked = 1;
		if (!atomic_compare_exchange_strong(&fatal_req.state, &asked,
						    0)) {
			/* The monitor is printing it: give it a moment. */
			for (int i = 0; i < 1000 &&
					atomic_load(&fatal_req.state) != 3;
			     i++)
				nanosleep(&ms, NULL);
			return;
		}
	}
	char buf[4096];
	size_t n = put_str(buf, 0, sizeof(buf),
			   "\nframes (for exe+OFF: addr2line -f -e <program> "
			   "OFF):\n");
	for (int i = 0; i < npcs; i++)
		put_frame(buf, &n, sizeof(buf), fatal_req.pcs[i]);
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* Exiting anyway. */
	}
}

static void dump_timed_out(int sig)
{
	static const char msg[] = "\n(task dump timed out)\n";
	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* Exiting anyway. */
	}
	_exit(2);
}

/* The full dump of every task, symbolized, is not async-signal-safe: try
 * it with an alarm that still ends the process with status 2. */
void fatal_dump_all(void)
{
	struct sigaction sa;

	if (!fatal_dump_hook)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dump_timed_out;
	sigaction(SIGALRM, &sa, NULL);
	alarm(5);
	if (write(STDERR_FILENO, "\n", 1) < 0) {
		/* Exiting anyway. */
	}
	fatal_dump_hook(STDERR_FILENO);
}

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	struct worker *w = sched_worker();
	struct task *t = w ? w->current : NULL;
	struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;

	/* A guard page touched; or, in canary mode (no guard), a fault with
	 * the canary gone: a deep overflow ran into unmapped memory. */
	if (t && (stack_addr_in_guard(t, (uintptr_t)si->si_addr) ||
		  (t->has_canary && !stack_canary_ok(t)))) {
		char msg[512];
		size_t n = 0;
		n = put_str(msg, n, sizeof(msg),
			    "fatal error: stack overflow\n\ntask ");
		n = put_u64(msg, n, sizeof(msg), t->id);
		if (t->name) {
			n = put_str(msg, n, sizeof(msg), " (");
			n = put_str(msg, n, sizeof(msg), t->name);
			n = put_str(msg, n, sizeof(msg), ")");
		}
		n = put_str(msg, n, sizeof(msg), " overflowed its ");
		n = put_u64(msg, n, sizeof(msg), t->stack_hi - t->stack_lo);
		n = put_str(msg, n, sizeof(msg),
			    "-byte stack (COPPER_STACK_SIZE); created by task ");
		n = put_u64(msg, n, sizeof(msg), t->creator_id);
		n = put_str(msg, n, sizeof(msg), "\n");
		if (write(STDERR_FILENO, msg, n) < 0) {
			/* Nothing more to do: we are exiting anyway. */
		}
		print_frames(t, uc);
		/* Past a guard page nothing else was touched; without one (a
		 * canary), the overflow wrote over its neighbours' stacks and
		 * records, and a dump could trip over them. */
		if (stack_addr_in_guard(t, (uintptr_t)si->si_addr))
			fatal_dump_all();
		_exit(2);
	}
	/* Not ours: put the previous disposition back and return; the
	 * faulting instruction runs again and meets it. */
	sigaction(sig, old, NULL);
	if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL &&
	    old->sa_handler != SIG_IGN)
		old->sa_handler(sig);
	else if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction)
		old->sa_sigaction(sig, si, uc);
}

int fatal_signals_init(void)
{
	struct sigaction sa;

	if (!exe_end)
		dl_iterate_phdr(find_exe, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old_segv) != 0)
		return -1;
	if (sigaction(SIGBUS, &sa, &old_bus) != 0) {
		sigaction(SIGSEGV, &old_segv, NULL);
		return -1;
	}
	return 0;
}

void fatal_signals_destroy(void)
{
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
}

int fatal_thread_init(void)
{
	stack_t ss;

	altstack_mem = malloc(ALTSTACK_SIZE);
	if (!altstack_mem)
		return -1;
	ss.ss_sp = altstack_mem;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, &altstack_old) != 0) {
		free(altstack_mem);
		altstack_mem = NULL;
		return -1;
	}
	return 0;
}

void fatal_thread_destroy(void)
{
	if (!altstack_mem)
		return;
	if (altstack_old.ss_flags & SS_DISABLE) {
		stack_t off = {.ss_flags = SS_DISABLE};
		sigaltstack(&off, NULL);
	} else {
		sigaltstack(&altstack_old, NULL);
	}
	free(altstack_mem);
	altstack_mem = NULL;
}
