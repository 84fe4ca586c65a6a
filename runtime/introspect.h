/* SPDX-License-Identifier: MIT */
/*
 * introspect.h - the one gateway from the profiler into the runtime.
 *
 * The profiler never includes runtime.h: it sees tasks only as the
 * snapshots this interface hands out, and attaches to the runtime only
 * through the hook table.  The protocol:
 *
 *   1. introspect_each_task(fn, arg) calls fn once for every live task with
 *      a struct task_info copied from its record.  Records are read while
 *      tasks run: a task may change state during the walk.  A consistent
 *      snapshot (every task exactly once, at one instant) needs the
 *      stop-the-world epoch that the goroutine profile adds on top.
 *   2. For a task that is not RUNNING, info.frame is the address of the
 *      frame record its last switch_context left ([saved fp][return pc]);
 *      walking the frame-pointer chain from there gives its stack.  The
 *      walker must bound every read by [stack_lo, stack_hi).
 *   3. Events (spawn, exit, park, unpark, block, contention, worker
 *      start/stop, thread creation, ...) reach every subscriber (introspect_subscribe), outside
 *      the runtime's locks; a subscriber sees tasks as handles and reads
 *      them through introspect_task_info.
 */
#ifndef COPPER_RUNTIME_INTROSPECT_H
#define COPPER_RUNTIME_INTROSPECT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>


/* ------------------------------------------------------------------------
 * Events
 *
 * Several subscribers may listen to any set of events; each costs the
 * runtime one load and one predictable branch at the event site while
 * nobody listens.  A hook runs on the thread where the event happened,
 * with no runtime lock held, possibly in a task (which it must not park)
 * or in the scheduler; it must be quick and must not subscribe or
 * unsubscribe.
 * Task handles stay readable while the run lasts, but the task may have
 * moved on (or exited) by the time a hook looks: the event carries what
 * it needs (id, reason, object) as of the event.
 * ---------------------------------------------------------------------- */
enum introspect_event {
	INTROSPECT_EV_SPAWN,        /* task created by other (NULL: co_run) */
	INTROSPECT_EV_EXIT,         /* task about to exit, still running */
	INTROSPECT_EV_PARK,         /* task parked: reason, object */
	INTROSPECT_EV_UNPARK,       /* task readied by other (NULL: a timer,
				       I/O or a thread outside the runtime) */
	INTROSPECT_EV_BLOCK,        /* task runs again after ns parked on
				       object for reason (block profile):
				       channels, select, the sync
				       primitives; not IO, sleep or
				       blocking calls, as in Go */
	INTROSPECT_EV_CONTENDED,    /* lock object handed on by task to a
				       waiter that waited ns (mutex profile) */
	INTROSPECT_EV_WORKER_START, /* worker's thread tid begins */
	INTROSPECT_EV_WORKER_STOP,  /* ... and ends */
	INTROSPECT_EV_RUN,          /* task starts running on worker (after
				       the switch: the execution trace) */
	INTROSPECT_EV_IDLE,         /* worker has nothing to run and waits */
	INTROSPECT_EV_THREAD_CREATE, /* the runtime started an OS thread:
					worker index, or -1 for the monitor;
					emitted on the creating thread right
					after pthread_create succeeded, so a
					hook may walk the creator's stack
					(threadcreate profile) */
	INTROSPECT_EV_BLOCKING_BEGIN, /* task's co_blocking call begins on
				       libuv's pool thread tid (emitted there) */
	INTROSPECT_EV_BLOCKING_END, /* ... and has returned (task still parked) */
	INTROSPECT_NEVENTS
};

#define INTROSPECT_EV(e) (1u << (e))

struct introspect_event_info {
	enum introspect_event event;
	const void *task;          /* handle for introspect_task_info */
	uint64_t id;               /* its id at the event */
	const void *other;         /* parent (spawn) or waker (unpark) */
	uint64_t other_id;         /* ... its id at the event, 0: none */
	int reason;                /* enum wait_reason (park, block) */
	const void *object;        /* channel or lock (park, block, contended) */
	int64_t ns;                /* waited (block) or delay (contended:
				      summed over the waiters admitted) */
	int worker;                /* worker start/stop, run, idle: its
				      index; thread create: its index,
				      -1 for the monitor */
	int tid;                   /* ... and its thread's id, for timers
				      (blocking begin/end: the pool thread's) */
};

typedef void (*introspect_hook)(const struct introspect_event_info *ev,
				void *arg);

/* Subscribes fn(ev, arg) to the events in mask (INTROSPECT_EV bits);
 * returns an id for introspect_unsubscribe, -EINVAL or -ENOSPC. */
int introspect_subscribe(unsigned mask, introspect_hook fn, void *arg)
	__attribute__((visibility("hidden")));
/* Returns once fn is never called again. */
void introspect_unsubscribe(int id) __attribute__((visibility("hidden")));

/* ------------------------------------------------------------------------
 * The execution trace's recorder (tracebuf.c)
 *
 * While it runs, the runtime itself writes the trace's events (spawn,
 * exit, park, unpark, run, idle, worker start and stop) into a ring per
 * worker, each keeping its last ring_events; events from threads that
 * are not workers share one more ring.  Subscribers are not involved:
 * a generic hook cost 2.3x on a ping-pong, the recorder a fraction.
 * ---------------------------------------------------------------------- */
/* Worker indexes: COPPER_PROCS's 1,024 and the monitor's 256 more. */
#define INTROSPECT_WORKERS_MAX 1280

struct introspect_trace_ev {
	int64_t ts;                /* introspect_clock_now(); an unpark on a
				      worker: the time of that worker's next
				      event (its next switch), or the end's
				      if none came, which saves a clock read
				      (tracebuf.c) */
	uint64_t id;               /* the task (0: none) */
	uint64_t other;            /* parent (spawn), waker (unpark), 0 */
	int16_t type;              /* enum introspect_event */
	int16_t reason;            /* park: enum wait_reason */
	int32_t worker;            /* the ring's worker, -1: elsewhere */
};

/* Starts recording; ring_events is a power of two.  -EINVAL, -EBUSY
 * (one runs), -ENOMEM. */
int introspect_trace_begin(size_t ring_events)
	__attribute__((visibility("hidden")));
/* Stops recording once no worker is writing, and hands over what the
 * rings kept: *out (malloc'd, the caller frees) holds *n events, each
 * ring's oldest first, rings one after another; *dropped counts the
 * records overwritten (a park or exit and the run after it are one).  -EINVAL if none runs, -ENOMEM (the events are gone). */
int introspect_trace_end(struct introspect_trace_ev **out, size_t *n,
			 uint64_t *dropped)
	__attribute__((visibility("hidden")));

struct task_info;
/* The task behind a handle, as introspect_each_task describes it; false
 * if the handle holds no live task any more. */
bool introspect_task_info(const void *task, struct task_info *info)
	__attribute__((visibility("hidden")));

/* The values of task_info.state: enum task_state (runtime.h), which
 * introspect.c checks against these. */
enum introspect_state {
	INTROSPECT_DEAD = 0,
	INTROSPECT_RUNNABLE,
	INTROSPECT_RUNNING,
	INTROSPECT_WAITING,
	INTROSPECT_SYSCALL,
};

struct task_info {
	const void *handle;      /* the task record; identity within a walk */
	uint64_t id;             /* task id */
	int state;               /* enum task_state (runtime.h) */
	const char *status;      /* Go's text: "chan receive", "running", ... */
	int64_t wait_since;      /* co_now() at park, 0 if never parked */
	uint64_t creator_id;     /* 0 for task 1 */
	uintptr_t creator_pc;    /* return address of the co_go call */
	const char *name;        /* NULL if unnamed; valid during fn only */
	void *labels;            /* the profiler's label set, or NULL */
	uintptr_t frame;         /* first frame record, 0 while running */
	uintptr_t stack_lo;      /* stack bounds for the walk */
	uintptr_t stack_hi;
	int worker;              /* worker it runs or last ran on */
	bool parked;             /* waiting or in a blocking call */
	int64_t longest_run_ns;  /* longest stall reported (COPPER_STALL_MS) */
	uintptr_t entry;         /* the function the task was started with */
};

/*
 * Consistent snapshots (Go 1.19's concurrent goroutine profile).
 *
 * introspect_snapshot() opens a new epoch; every task alive at that
 * instant is then handed to ops->record exactly once, with its stack as it
 * was at the instant: the walker records parked tasks from their saved
 * frames; a task about to run, be born or exit after the instant is
 * recorded first by the scheduler (or marked as born after it); a task
 * running on another worker is recorded by that worker in a signal
 * handler.  No worker is ever stopped: the pause a running task sees is
 * one signal handler that walks its own stack, whatever the task count.
 *
 * ops->record runs on any thread, possibly in a signal handler: it must be
 * async-signal-safe (no locks, no malloc).  leaf_pc is the exact
 * interrupted pc for a task caught running, else 0; fp is the first frame
 * record ([saved fp][return address]) to walk, bounded by the info's
 * stack_lo/stack_hi.  self_id names the calling task (recorded first, as
 * "running"), 0 outside tasks.  Returns the number of tasks recorded.
 */
struct introspect_snapshot_ops {
	void (*record)(const struct task_info *ti, uintptr_t leaf_pc,
		       uintptr_t fp, void *arg);
	void *arg;
};

size_t introspect_snapshot(const struct introspect_snapshot_ops *ops)
	__attribute__((visibility("hidden")));

/* The calling task's label set (NULL outside tasks or when unset), and
 * a way to replace it: the old set is returned for the caller to drop. */
void *introspect_self_labels(void) __attribute__((visibility("hidden")));
void *introspect_self_labels_swap(void *labels)
	__attribute__((visibility("hidden")));
/* Entry points that start every task's stack, for printers to hide (Go
 * hides runtime.goexit): the C entry and the assembly trampoline. */
void introspect_task_entries(uintptr_t *task_main, uintptr_t *trampoline)
	__attribute__((visibility("hidden")));
/* Installs the reference counting of label sets (see runtime_hooks). */
void introspect_set_label_hooks(void (*ref)(void *), void (*unref)(void *))
	__attribute__((visibility("hidden")));
/* Adds a part to what co_run starts before task 1 runs (a negative
 * return makes co_run fail with it, once the parts started before it
 * are stopped) and stops once task 1 has returned: starts in the order
 * added, stops in reverse (up to 16 parts; -ENOSPC beyond).  Call from a
 * constructor, before any co_run.  The profiler's service thread, dump
 * signal and profile rates start here. */
int introspect_add_lifecycle(int (*start)(void), void (*stop)(void))
	__attribute__((visibility("hidden")));
/* Installs the profiler's fatal dumper (deadlock, co_fatal). */
void introspect_set_fatal_dump(void (*dump)(int fd))
	__attribute__((visibility("hidden")));
/*
 * Stall reports (COPPER_STALL_MS).  The monitor thread calls the printer
 * when a task has held its worker that long without a switch (ended
 * false; pcs is its stack then, pcs[0] the interrupted pc and the rest
 * return addresses), and once more when it switched at last (ended true,
 * ran_ns the total, no pcs).  Times are as the monitor saw them, to its
 * look period.  Called on the monitor thread, never in a signal handler;
 * labels is referenced for the duration of the call.
 */
struct stall_report {
	uint64_t id;
	const char *name;        /* NULL if unnamed */
	void *labels;            /* the profiler's label set, or NULL */
	int worker;
	uint64_t creator_id;     /* who started it, and where */
	uintptr_t creator_pc;
	int64_t ran_ns;
	bool ended;
	bool run_over;           /* ended because co_run is returning: the
				    task had not switched */
	bool fatal;              /* not a stall: the stack of a task dying of
				    a stack overflow; print the task alone */
	const char *misuse;      /* not a stall: a misuse (misuse.c) with
				    this message; with fatal, Go's "fatal
				    error: <misuse>" */
	bool returns_only;       /* pcs[0] is a return address too */
	const uintptr_t *pcs;
	int npcs;
};

void introspect_set_stall_report(void (*report)(const struct stall_report *))
	__attribute__((visibility("hidden")));

/*
 * Frame-pointer walk from the frame record at fp ([saved fp][return
 * address]), every read bounded by [lo, hi): a broken chain ends the walk,
 * never faults.  Async-signal-safe.  Returns the addresses stored.
 */
int introspect_walk_fp(uintptr_t fp, uintptr_t lo, uintptr_t hi,
		       uintptr_t *pcs, int max)
	__attribute__((visibility("hidden")));

/*
 * The calling thread's own stack, async-signal-safe: usable from a
 * signal handler (pass its ucontext: the walk starts at the interrupted
 * pc and frame), from malloc, from the sync primitives (NULL: from the
 * caller's frame).  Bounded by the running task's stack, or the worker's
 * thread stack when it runs no task, or the bounds a thread registered
 * with introspect_thread_register; a thread that never registered has
 * its stack's mapping looked up once, on its first call (/proc/self/maps
 * read with plain system calls); failing that, only the interrupted pc
 * is known.  pcs[0] is the exact pc when uc is given (then
 * *leaf_is_pc is set), else a return address.  Returns the count.
 */
int introspect_self_stack(uintptr_t *pcs, int max, const void *uc,
			  bool *leaf_is_pc)
	__attribute__((visibility("hidden")));
/* Records the calling thread's stack bounds for introspect_self_stack
 * (not async-signal-safe: call it when the thread starts). */
void introspect_thread_register(void) __attribute__((visibility("hidden")));

/*
 * Signals a profiler part takes (runtime/signal.c has the table): fn
 * becomes signo's handler (SA_SIGINFO, SA_RESTART; SIGURG held off while
 * it runs), and no thread of the runtime takes signo: workers block it
 * from their start, co_run's caller from now until co_run returns.  The
 * part's own thread must leave it unblocked.  fn NULL puts back the
 * program's action.  -EINVAL for a signal the system or the runtime
 * keeps (introspect_signal_usable false).
 */
int introspect_signal_route(int signo, void (*fn)(int, siginfo_t *, void *))
	__attribute__((visibility("hidden")));
bool introspect_signal_usable(int signo) __attribute__((visibility("hidden")));

/* A cheap clock for events (the CPU's counter where the kernel keeps
 * time with it, else co_now()'s ns), and the ns between two readings. */
uint64_t introspect_clock_now(void) __attribute__((visibility("hidden")));
int64_t introspect_clock_ns(uint64_t from, uint64_t to)
	__attribute__((visibility("hidden")));

/* The calling thread's worker index, -1 on any other thread. */
int introspect_worker_self(void) __attribute__((visibility("hidden")));
/* Go's text for a wait reason of a park or block event ("chan
 * receive", ...); "?" out of range. */
const char *introspect_reason_name(int reason)
	__attribute__((visibility("hidden")));

/* ------------------------------------------------------------------------
 * CPU profiling: runtime/signal.c owns SIGPROF; the CPU profiler
 * subscribes.  The protocol:
 *
 *   1. introspect_set_prof_handler(fn) installs the runtime's SIGPROF
 *      handler; from then on every SIGPROF a timer sends (SI_TIMER)
 *      calls fn(cookie, overrun, uc) in the handler, on the thread the
 *      timer measures (overrun: the periods that passed since the last
 *      tick beyond one, si_overrun).  fn returns false for a cookie it
 *      does not know (a timer of the program's own): that SIGPROF, like
 *      any other, goes to the handler the program had.
 *      fn must be async-signal-safe.  NULL puts the old disposition back,
 *      SIG_IGN in place of SIG_DFL: a SIGPROF still pending on some thread
 *      must not kill the process (Go does the same, golang/go#19320).
 *   2. introspect_prof_timer_create(tid, period, cookie, &t) arms a timer
 *      on thread tid's CPU clock (CLOCK_THREAD_CPUTIME_ID of that thread,
 *      any thread of the process) that sends it SIGPROF every period_ns of
 *      its CPU time (first expiry random within a period, as Go does, so
 *      that short-lived threads are not biased).  Workers leave SIGPROF
 *      unblocked, and so do libuv's pool threads, which inherit a
 *      worker's mask.  Delete every timer before its thread ends
 *      (INTROSPECT_EV_WORKER_STOP runs on the thread, before it ends).
 *   3. In the handler, introspect_sig_self(uc, &s) says what was
 *      interrupted: the registers, the bounds of the stack they are on
 *      (every read of the walk must stay inside them), and the task that
 *      ran, if the signal caught task code (not the scheduler, not a
 *      half-done switch, not an exiting task).
 * ---------------------------------------------------------------------- */
typedef bool (*introspect_prof_fn)(void *cookie, int overrun,
				   const void *uc);

int introspect_set_prof_handler(introspect_prof_fn fn)
	__attribute__((visibility("hidden")));
/* 0 or a negative errno (-EINVAL: no such thread, or a bad period). */
int introspect_prof_timer_create(int tid, int64_t period_ns, void *cookie,
				 timer_t *out)
	__attribute__((visibility("hidden")));
void introspect_prof_timer_delete(timer_t t)
	__attribute__((visibility("hidden")));

struct introspect_sig_self {
	uintptr_t pc, sp, fp;       /* the interrupted registers */
	uintptr_t lr;               /* aarch64's link register, else 0 */
	uintptr_t stack_lo;         /* the stack sp lies on: the running */
	uintptr_t stack_hi;         /* task's, the worker's own, or a
				       registered thread's; 0, 0: unknown */
	uint64_t task_id;           /* the task interrupted, 0: none */
	const char *name;           /* its name or NULL, and its label set */
	void *labels;               /* or NULL: valid until the handler
				       returns (the task, stopped under it,
				       holds them); reference to keep */
};
/* Async-signal-safe; call only in a signal handler, with its uc. */
void introspect_sig_self(const void *uc, struct introspect_sig_self *out)
	__attribute__((visibility("hidden")));

/* Current task id and whether the runtime is running. */
bool introspect_running(void) __attribute__((visibility("hidden")));

/* Calls fn for every live task; returns the number visited. */
size_t introspect_each_task(void (*fn)(const struct task_info *, void *),
			    void *arg) __attribute__((visibility("hidden")));
/* Live task count (as co_num_tasks). */
size_t introspect_num_tasks(void) __attribute__((visibility("hidden")));
/* The guard mode in force: "guard pages (MADV_GUARD_INSTALL)", ... */
const char *introspect_guard_mode(void) __attribute__((visibility("hidden")));

#endif /* COPPER_RUNTIME_INTROSPECT_H */
