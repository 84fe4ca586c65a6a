/* SPDX-License-Identifier: MIT */
/*
 * introspect.c - the profiler's gateway (protocol in introspect.h): copies
 * task records out of the task table, which is the set of stack slots
 * (stack.c explains why).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "introspect.h"

#include "copper.h"
#include "runtime.h"

struct walk {
	void (*fn)(const struct task_info *, void *);
	void *arg;
	size_t visited;
};

static void info_fill(struct task_info *info, struct task *t,
		      enum task_state s);

static void visit_slot(struct task *t, void *arg)
{
	struct walk *wk = arg;
	struct task_info info;
	enum task_state s = atomic_load_explicit(&t->state, memory_order_acquire);

	if (s == TASK_DEAD)
		return;
	info_fill(&info, t, s);
	wk->fn(&info, wk->arg);
	wk->visited++;
}

size_t introspect_each_task(void (*fn)(const struct task_info *, void *),
			    void *arg)
{
	struct walk wk = {fn, arg, 0};

	if (!sched_running())
		return 0;
	stack_each_slot(visit_slot, &wk);
	return wk.visited;
}

size_t introspect_num_tasks(void)
{
	return co_num_tasks();
}

const char *introspect_guard_mode(void)
{
	return stack_guard_mode_names[stack_guard_mode()];
}

bool introspect_task_info(const void *handle, struct task_info *info)
{
	struct task *t = (struct task *)handle;
	enum task_state s;

	if (!t)
		return false;
	s = atomic_load(&t->state);
	if (s == TASK_DEAD || t->id == 0)
		return false;
	info_fill(info, t, s);
	return true;
}

void *introspect_self_labels(void)
{
	struct task *t = sched_current();
	return t ? t->labels : NULL;
}

void *introspect_self_labels_swap(void *labels)
{
	struct task *t = sched_current();
	void *old;

	if (!t)
		return labels;
	old = t->labels;
	t->labels = labels;
	return old;
}

void introspect_task_entries(uintptr_t *task_main, uintptr_t *trampoline)
{
	*task_main = sched_task_main_addr();
	*trampoline = (uintptr_t)switch_trampoline;
}

const char *introspect_reason_name(int reason)
{
	return reason >= 0 && reason < WAIT_NREASONS ? wait_reason_names[reason]
						     : "?";
}

void introspect_set_label_hooks(void (*ref)(void *), void (*unref)(void *))
{
	runtime_hooks.labels_ref = ref;
	runtime_hooks.labels_unref = unref;
}

_Static_assert((int)INTROSPECT_DEAD == (int)TASK_DEAD &&
		       (int)INTROSPECT_RUNNABLE == (int)TASK_RUNNABLE &&
		       (int)INTROSPECT_RUNNING == (int)TASK_RUNNING &&
		       (int)INTROSPECT_WAITING == (int)TASK_WAITING &&
		       (int)INTROSPECT_SYSCALL == (int)TASK_SYSCALL,
	       "introspect_state mirrors enum task_state");

void (*stall_report_hook)(const struct stall_report *);

void introspect_set_stall_report(void (*report)(const struct stall_report *))
{
	stall_report_hook = report;
}

/*
 * Why the walk is bounded the way it is: code built without frame
 * pointers breaks the chain, so links must move strictly upward, stay
 * aligned and stay inside [lo, hi); a broken chain ends the walk early but
 * never faults.  Rejected: libunwind/DWARF CFI (slow, not async-signal-
 * safe in general); backtrace(3) (current stack only, locks on first use).
 *
 * Not instrumented by AddressSanitizer: a chain broken by code without
 * frame pointers (ASan's own interceptors) can lead the walk to any word
 * of the stack, a redzone included; the read is in bounds and harmless,
 * and ASan would report it as an overflow.
 */
__attribute__((no_sanitize_address)) int
introspect_walk_fp(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
		   int max)
{
	int n = 0;

	while (n < max && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) &&
	       (fp & (sizeof(uintptr_t) - 1)) == 0) {
		const uintptr_t *rec = (const uintptr_t *)fp;
		uintptr_t next = rec[0];
		uintptr_t ret = rec[1];

		if (ret == 0)
			break;
		pcs[n++] = ret;
		if (next <= fp)
			break; /* the chain must grow toward the stack's top */
		fp = next;
	}
	return n;
}

static _Thread_local uintptr_t self_lo, self_hi
	__attribute__((tls_model("initial-exec")));
static _Thread_local bool self_probed
	__attribute__((tls_model("initial-exec")));

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * The stack of a thread nobody registered (the main thread, the
 * program's own threads, libuv's pool; the heap profiler walks them from
 * malloc): the bounds of the mapping that holds sp, read once per thread
 * from /proc/self/maps with plain system calls, so async-signal-safe, no
 * malloc and no lock.  Every address from sp to the mapping's end is
 * mapped, and the walk only reads upward from the caller's frame.  The
 * main thread's [stack] grows down: a later walk from below the extent
 * seen here gets the pc alone, as before.
 */
static bool self_probe(uintptr_t sp)
{
	char buf[1024];
	uintptr_t v[2] = {0, 0};
	int field = 0, fd;
	ssize_t got;
	bool found = false;
	int saved_errno = errno; /* callers are malloc and signal handlers */

	self_probed = true;
	if ((fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)) < 0) {
		errno = saved_errno;
		return false;
	}
	while (!found && (got = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < got && !found; i++) {
			int d = hex_digit(buf[i]);
			if (buf[i] == '\n') {
				field = 0;
				v[0] = v[1] = 0;
			} else if (field < 2 && d >= 0) {
				v[field] = v[field] << 4 | (uintptr_t)d;
			} else if (field == 0 && buf[i] == '-') {
				field = 1;
			} else if (field == 1) {
				field = 2; /* the rest of the line */
				found = sp >= v[0] && sp < v[1];
			}
		}
	}
	close(fd);
	errno = saved_errno;
	if (found) {
		self_lo = v[0];
		self_hi = v[1];
	}
	return found;
}

void introspect_thread_register(void)
{
	pthread_attr_t attr;
	void *lo;
	size_t size;

	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
		self_lo = (uintptr_t)lo;
		self_hi = (uintptr_t)lo + size;
	}
	pthread_attr_destroy(&attr);
}

int introspect_self_stack(uintptr_t *pcs, int max, const void *uc,
			  bool *leaf_is_pc)
{
	struct worker *w = sched_worker();
	struct task *t = w ? w->current : NULL;
	uintptr_t fp, sp, lo = self_lo, hi = self_hi;
	int n = 0;

	if (leaf_is_pc)
		*leaf_is_pc = uc != NULL;
	if (max <= 0)
		return 0;
	if (uc) {
		uc_regs(uc, &pcs[n++], &fp, &sp);
	} else {
		fp = (uintptr_t)__builtin_frame_address(0);
		sp = fp;
	}
	if (t && sp >= t->stack_lo && sp < t->stack_hi) {
		lo = t->stack_lo;
		hi = t->stack_hi;
	} else if (w && w->sched_stack_lo && sp >= (uintptr_t)w->sched_stack_lo &&
		   sp < (uintptr_t)w->sched_stack_lo + w->sched_stack_size) {
		lo = (uintptr_t)w->sched_stack_lo;
		hi = lo + w->sched_stack_size;
	} else if (!(sp >= lo && sp < hi)) {
		/* Unknown: probed once if the thread never registered. */
		if (lo || self_probed || !self_probe(sp))
			return n; /* the pc alone */
		lo = self_lo;
		hi = self_hi;
	}
	return n + introspect_walk_fp(fp, lo, hi, pcs + n, max - n);
}

/* In a signal handler on worker w: the task whose code was interrupted
 * at sp, or NULL when it was the scheduler, a half-done switch, or a task
 * exiting (id 0: its name and labels may be going). */
static struct task *task_interrupted(struct worker *w, uintptr_t sp)
{
	struct task *t = w->current;

	if (t && t->id != 0 && atomic_load(&t->on_cpu) && sp >= t->stack_lo &&
	    sp < t->stack_hi)
		return t;
	return NULL;
}

/* The stack the interrupted sp lies on, as introspect_self_stack picks
 * it; false when it is none the runtime knows. */
static bool sig_bounds(struct worker *w, uintptr_t sp, uintptr_t *lo,
		       uintptr_t *hi)
{
	struct task *t = w ? w->current : NULL;

	if (t && sp >= t->stack_lo && sp < t->stack_hi) {
		*lo = t->stack_lo;
		*hi = t->stack_hi;
	} else if (w && w->sched_stack_lo &&
		   sp >= (uintptr_t)w->sched_stack_lo &&
		   sp < (uintptr_t)w->sched_stack_lo + w->sched_stack_size) {
		*lo = (uintptr_t)w->sched_stack_lo;
		*hi = *lo + w->sched_stack_size;
	} else if (sp >= self_lo && sp < self_hi) {
		*lo = self_lo;
		*hi = self_hi;
	} else {
		*lo = *hi = 0;
		return false;
	}
	return true;
}

void introspect_sig_self(const void *uc, struct introspect_sig_self *out)
{
	struct worker *w = sched_worker();
	struct task *t;

	uc_regs(uc, &out->pc, &out->fp, &out->sp);
#if defined(__aarch64__)
	out->lr = (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.regs[30];
#else
	out->lr = 0;
#endif
	sig_bounds(w, out->sp, &out->stack_lo, &out->stack_hi);
	t = w ? task_interrupted(w, out->sp) : NULL;
	out->task_id = t ? t->id : 0;
	out->name = t ? t->name : NULL;
	out->labels = t ? t->labels : NULL;
}

/* In the SIGURG handler of worker w, asked by the monitor (STALL_ASK):
 * the task it runs, with its stack from the interrupted registers. */
void stall_capture_here(struct worker *w, uintptr_t pc, uintptr_t fp,
			uintptr_t sp)
{
	struct stall_capture *c = &w->stall;
	struct task *t = task_interrupted(w, sp);
	int ask = STALL_ASK;

	if (!atomic_compare_exchange_strong(&c->req, &ask, STALL_BUSY))
		return;
	if (!t || atomic_load_explicit(&w->nswitch, memory_order_relaxed) !=
			  c->want_sw) {
		atomic_store(&c->req, STALL_NONE); /* in the scheduler */
		return;
	}
	c->task = t;
	c->id = t->id;
	c->creator_id = t->creator_id;
	c->creator_pc = t->creator_pc;
	c->labels = t->labels;
	if (c->labels && runtime_hooks.labels_ref)
		runtime_hooks.labels_ref(c->labels);
	size_t i = 0;
	for (; t->name && t->name[i] && i < sizeof(c->name) - 1; i++)
		c->name[i] = t->name[i];
	c->name[i] = '\0';
	c->pcs[0] = pc;
	c->npcs = 1 + introspect_walk_fp(fp, t->stack_lo, t->stack_hi,
					 c->pcs + 1, STALL_PCS_MAX - 1);
	atomic_store(&c->req, STALL_DONE);
}

void introspect_set_fatal_dump(void (*dump)(int fd))
{
	fatal_dump_hook = dump;
}

bool introspect_running(void)
{
	return sched_running();
}

/* ------------------------------------------------------------------------
 * Consistent snapshots (protocol in introspect.h)
 *
 * Each task carries prof_mark = epoch << 2 | PROF_BUSY.  A task is due in
 * epoch E while its mark's epoch is below E.  Whoever moves the mark from
 * "due" to E|BUSY with a CAS records the task and then stores E: the walker
 * (for a task whose registers are saved: on_cpu == 0), the scheduler just
 * before the task runs (it waits while the walker holds BUSY), the task
 * itself just before it exits, or its worker's signal handler while it
 * runs.  A task born during the snapshot gets mark E at birth.  So every
 * task alive at the instant the epoch was opened is recorded once, with
 * the stack it had then (or, if it was running then, a moment later).
 *
 * Rejected: stopping every worker for the whole walk (Go before 1.19: the
 * pause grows with the task count, and a task in a tight loop could not be
 * stopped at all without preemption); copying every task record under a
 * stop (still O(n) pause).
 * ---------------------------------------------------------------------- */

struct snapshot_gate snapshot_gate;

static struct {
	pthread_mutex_t lock;                    /* one snapshot at a time */
	const struct introspect_snapshot_ops *ops; /* valid while active */
	_Atomic size_t recorded;                 /* tasks recorded so far */
	_Atomic int inflight;                    /* hooks between enter and
						    leave: the end of a
						    snapshot waits for them */
	struct sigaction old_urg;                /* restored at shutdown */
} snap = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void info_fill(struct task_info *info, struct task *t,
		      enum task_state s)
{
	info->handle = t;
	info->id = t->id;
	info->state = s;
	info->status = task_status_text(
		s, atomic_load_explicit(&t->wait_reason, memory_order_relaxed));
	info->wait_since = t->wait_since;
	info->creator_id = t->creator_id;
	info->creator_pc = t->creator_pc;
	info->name = t->name;
	info->labels = t->labels;
	info->frame = s == TASK_RUNNING
			      ? 0
			      : (uintptr_t)t->ctx.sp + SWITCH_FRAME_OFFSET;
	info->stack_lo = t->stack_lo;
	info->stack_hi = t->stack_hi;
	info->worker = t->worker ? t->worker->id : -1;
	info->parked = s == TASK_WAITING || s == TASK_SYSCALL;
	info->longest_run_ns = atomic_load_explicit(&t->longest_run_ns,
						    memory_order_relaxed);
	info->entry = (uintptr_t)t->fn;
}

/* Claims t for the current epoch: true if the caller must record it. */
static bool claim(struct task *t, uint64_t epoch)
{
	uint64_t m = atomic_load(&t->prof_mark);

	if ((m >> 2) >= epoch)
		return false;
	return atomic_compare_exchange_strong(&t->prof_mark, &m,
					      epoch << 2 | PROF_BUSY);
}

static void release(struct task *t, uint64_t epoch, bool done)
{
	atomic_store(&t->prof_mark, done ? epoch << 2 : (epoch - 1) << 2);
}

static void record(struct task *t, enum task_state s, uintptr_t leaf_pc,
		   uintptr_t fp)
{
	struct task_info info;

	info_fill(&info, t, s);
	snap.ops->record(&info, leaf_pc, fp, snap.ops->arg);
	atomic_fetch_add(&snap.recorded, 1);
}

/* Records a task whose registers are saved (on_cpu == 0, claimed). */
static void record_saved(struct task *t, uint64_t epoch)
{
	enum task_state s = atomic_load(&t->state);

	/* A task that is being switched in shows the state it had. */
	if (s == TASK_RUNNING)
		s = TASK_RUNNABLE;
	if (!t->started) {
		/* Never ran: its entry function at its entry pc, as Go shows
		 * a goroutine that has not started. */
		record(t, s, (uintptr_t)t->fn, 0);
	} else {
		record(t, s, 0, (uintptr_t)t->ctx.sp + SWITCH_FRAME_OFFSET);
	}
	release(t, epoch, true);
}

/*
 * A scheduler hook or a signal handler may have seen `active` just before
 * the snapshot ended.  It registers first and checks `active` again; the
 * end of a snapshot clears `active`, then waits until no hook is
 * registered before it lets go of ops (both sides seq_cst, so one sees the
 * other).  Async-signal-safe: two atomic adds.
 */
static bool hook_enter(void)
{
	atomic_fetch_add(&snap.inflight, 1);
	if (atomic_load(&snapshot_gate.active))
		return true;
	atomic_fetch_sub(&snap.inflight, 1);
	return false;
}

static void hook_leave(void)
{
	atomic_fetch_sub(&snap.inflight, 1);
}

void snapshot_before_run(struct task *t)
{
	if (!hook_enter())
		return;
	uint64_t epoch = atomic_load(&snapshot_gate.epoch);
	if (claim(t, epoch)) {
		record_saved(t, epoch);
	} else {
		/* The walker may be reading this stack now: wait for it. */
		while (atomic_load(&t->prof_mark) & PROF_BUSY)
			sched_cpu_relax();
	}
	hook_leave();
}

void snapshot_before_exit(struct task *t)
{
	if (!hook_enter())
		return;
	uint64_t epoch = atomic_load(&snapshot_gate.epoch);
	if (claim(t, epoch)) {
		record(t, TASK_RUNNING, 0, (uintptr_t)__builtin_frame_address(0));
		release(t, epoch, true);
	}
	hook_leave();
}

/* SIGURG: record the task this worker is running, if it is due. */
static void snapshot_signal(int sig, siginfo_t *si, void *ucv)
{
	struct worker *w = sched_worker();
	uintptr_t pc, fp, sp;
	int saved_errno = errno;
	(void)sig;
	(void)si;

	if (!w)
		goto out;
	uc_regs(ucv, &pc, &fp, &sp);
	if (atomic_load_explicit(&w->stall.req, memory_order_relaxed) ==
	    STALL_ASK)
		stall_capture_here(w, pc, fp, sp);
	if (!hook_enter())
		goto out;
	/* Only task code; id 0: exiting, after its own check for a
	 * snapshot. */
	struct task *t = task_interrupted(w, sp);
	if (t) {
		uint64_t epoch = atomic_load(&snapshot_gate.epoch);
		if (claim(t, epoch)) {
			record(t, TASK_RUNNING, pc, fp);
			release(t, epoch, true);
		}
	}
	hook_leave();
out:
	errno = saved_errno;
}

static int membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0u, 0);
}

int snapshot_signal_init(void)
{
	struct sigaction sa;

	snapshot_gate.membarrier =
		membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = snapshot_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGURG, &sa, &snap.old_urg) == 0 ? 0 : -errno;
}

void snapshot_signal_destroy(void)
{
	sigaction(SIGURG, &snap.old_urg, NULL);
}

struct walk_state {
	uint64_t epoch;
	size_t pending; /* due tasks found running */
};

static void walk_slot(struct task *t, void *arg)
{
	struct walk_state *ws = arg;
	enum task_state s = atomic_load(&t->state);

	if (s == TASK_DEAD || t->id == 0 || !claim(t, ws->epoch))
		return;
	if (atomic_load(&t->on_cpu)) {
		release(t, ws->epoch, false); /* running: its worker records it */
		ws->pending++;
		return;
	}
	if (atomic_load(&t->state) == TASK_DEAD) {
		release(t, ws->epoch, true); /* exited before the epoch */
		return;
	}
	record_saved(t, ws->epoch);
}

/* Asks every worker to record its running task, then walks again, until
 * no due task is left running.  Bounded: a task that keeps dodging (on
 * and off CPU between passes) is caught by the scheduler hook. */
static void catch_running(struct walk_state *ws)
{
	for (int pass = 0; ws->pending && pass < 1000 && !sched_stopping();
	     pass++) {
		struct worker *self = sched_worker();
		for (int i = 0; i < sched_nworkers(); i++) {
			struct worker *w = &sched_workers()[i];
			if (w != self && atomic_load(&w->thread_live))
				pthread_kill(w->thread, SIGURG);
		}
		struct timespec ts = {0, pass < 10 ? 20000 : 200000};
		nanosleep(&ts, NULL);
		ws->pending = 0;
		stack_each_slot(walk_slot, ws);
	}
}

size_t introspect_snapshot(const struct introspect_snapshot_ops *ops)
{
	struct walk_state ws = {0, 0};
	struct task *self = sched_current();

	if (!ops || !ops->record || !sched_running())
		return 0;
	pthread_mutex_lock(&snap.lock);
	snap.ops = ops;
	atomic_store(&snap.recorded, 0);
	ws.epoch = atomic_fetch_add(&snapshot_gate.epoch, 1) + 1;
	atomic_store(&snapshot_gate.active, true);
	/* Every worker now either sees active, or its on_cpu stores are
	 * visible to the walk (see mark_running). */
	if (snapshot_gate.membarrier)
		membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
	/* The instant is here.  The caller first, as Go prints it. */
	if (self && claim(self, ws.epoch)) {
		record(self, TASK_RUNNING, 0, (uintptr_t)__builtin_frame_address(0));
		release(self, ws.epoch, true);
	}
	stack_each_slot(walk_slot, &ws);
	catch_running(&ws);
	atomic_store(&snapshot_gate.active, false);
	while (atomic_load(&snap.inflight))
		sched_cpu_relax(); /* a hook that saw `active` is recording */
	size_t n = atomic_load(&snap.recorded);
	snap.ops = NULL;
	pthread_mutex_unlock(&snap.lock);
	return n;
}
