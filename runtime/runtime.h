/* SPDX-License-Identifier: MIT */
/*
 * runtime.h - the runtime module's internal interface, grouped by the file
 * that defines each part (as libuv's internal.h).  Nothing outside runtime/
 * includes this header: the profiler goes through introspect.h, tests
 * through testing.h.
 *
 * Vocabulary (the ten lines Go spends on G/M/P):
 *   task    a coroutine: a stack, a saved stack pointer and a record (Go's G).
 *   worker  an OS thread that runs tasks, with its own run queue, timer heap
 *           and libuv loop (Go's M and P in one: Copper never hands a
 *           worker's queue to another thread, so it needs no separate P;
 *           when every worker is stuck in a task, the monitor adds one).
 *   slot    a fixed-size piece of a stack region: guard page, stack, and the
 *           task record at its top.  A slot is reused by many tasks.
 *   park    a task stops running until something readies it; its worker
 *           switches to another task.  ready: the opposite.
 */
#ifndef COPPER_RUNTIME_RUNTIME_H
#define COPPER_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "introspect.h"
#include "switch.h"

#define CO_INTERNAL __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define CACHELINE 64

/* ------------------------------------------------------------------------
 * Task states (task.c)
 *
 * Each state answers the same questions: who owns the stack, is the task on
 * a run queue, who may change the state, what the profiler may read.
 *
 *   TASK_DEAD      The slot holds no task (in a stack pool, or never used).
 *                  Stack: nobody.  Queue: the free list.  Changed by: the
 *                  worker that allocates the slot.  Profiler: skips it.
 *   TASK_RUNNABLE  Ready to run.  Stack: nobody is executing it, registers
 *                  saved in ctx (or a fresh trampoline frame).  Queue: on
 *                  exactly one run queue (runnext, ring or global).  Changed
 *                  by: the worker that pops it.  Profiler: reads the saved
 *                  frame.
 *   TASK_RUNNING   Executing on worker `worker`.  Stack: that worker's
 *                  thread.  Queue: none.  Changed by: itself only.
 *                  Profiler: must ask that worker for the stack.
 *   TASK_WAITING   Parked; wait_reason says on what.  Stack: nobody;
 *                  registers saved.  Queue: the wait queue of the object it
 *                  waits on (channel, lock, timer heap), never a run queue.
 *                  Changed by: whoever wakes it, under that object's lock.
 *                  Profiler: reads the saved frame.
 *   TASK_SYSCALL   Parked while its blocking call runs on the thread pool
 *                  (co_blocking).  Like TASK_WAITING; woken by the worker's
 *                  libuv loop when the call completes.
 *
 *        co_go                 pop             park
 *   DEAD -----> RUNNABLE ----------> RUNNING ---------> WAITING / SYSCALL
 *                 ^   ^   yield         |                      |
 *                 |   +-----------------+                      |
 *                 +---------------- ready ---------------------+
 *                                       | exit
 *                                       v
 *                                     DEAD
 *
 * Transitions and the functions that perform them (sched.c), each through
 * task_set_state, which asserts that the transition is one of these:
 *   DEAD -> RUNNABLE          spawn (co_go, co_go_named, co_run)
 *   RUNNABLE -> RUNNING       mark_running (run_task, switch_from)
 *   RUNNING -> RUNNABLE       sched_yield_task and yield_slow (co_yield);
 *                             spawn_run_child (a spawn storm's co_go)
 *   RUNNING -> WAITING        sched_park (sched_park_on, co_sleep, ...)
 *   RUNNING -> SYSCALL        sched_park from co_blocking
 *   WAITING/SYSCALL -> RUNNABLE  task_make_runnable: sched_ready and
 *                             sleep_fire, the only two ready paths, both
 *                             followed by a wake-up (wakep)
 *   RUNNING -> DEAD           task_exit (the slot is freed after the
 *                             switch away from it)
 *
 * Keep in sync with task_state_names[], with introspect_state and with
 * the profiler's text formats.
 * ---------------------------------------------------------------------- */
enum task_state {
	TASK_DEAD = 0,
	TASK_RUNNABLE,
	TASK_RUNNING,
	TASK_WAITING,
	TASK_SYSCALL,
	TASK_NSTATES
};

/*
 * Why a task is parked: Go's vocabulary, Go's exact strings (debug=2 prints
 * them between brackets).  Never reuse a reason; add a new one.  Keep in
 * sync with wait_reason_names[] in task.c.
 */
enum wait_reason {
	WAIT_NONE = 0,
	WAIT_CHAN_RECV,
	WAIT_CHAN_SEND,
	WAIT_SELECT,
	WAIT_SELECT_NO_CASES,
	WAIT_CHAN_RECV_NIL,
	WAIT_CHAN_SEND_NIL,
	WAIT_SLEEP,
	WAIT_IO,
	WAIT_SYSCALL,
	WAIT_MUTEX_LOCK,
	WAIT_RWMUTEX_RLOCK,
	WAIT_RWMUTEX_LOCK,
	WAIT_COND_WAIT,
	WAIT_WG_WAIT,
	WAIT_ONCE,
	WAIT_NREASONS
};

CO_INTERNAL extern const char *const task_state_names[TASK_NSTATES];
CO_INTERNAL extern const char *const wait_reason_names[WAIT_NREASONS];

static inline bool wait_is_chan(enum wait_reason r)
{
	return r >= WAIT_CHAN_RECV && r <= WAIT_CHAN_SEND_NIL;
}

static inline bool wait_is_sync(enum wait_reason r)
{
	return r >= WAIT_MUTEX_LOCK && r <= WAIT_ONCE;
}

/* The text Go prints for a task: its wait reason when parked, else its state. */
CO_INTERNAL const char *task_status_text(enum task_state s, enum wait_reason r);

#define TASK_NAME_INLINE 24

/*
 * The task record.  It lives in the top bytes of the task's own stack slot
 * (stack.c draws the layout), so a parked task costs one touched page: the
 * record and the frames below it up to the first park.
 *
 * Fields are written by the task itself while it runs, or by the worker
 * that owns its state under the rules of enum task_state.  Fields the
 * profiler reads concurrently are atomics or written before the task is
 * published on a run queue.
 */
struct task {
	struct switch_ctx ctx;     /* saved sp; valid while not RUNNING */
	struct task *next;         /* link: run queue, global queue, free list */
	_Atomic uint8_t state;     /* enum task_state; see the table above */
	_Atomic uint8_t wait_reason; /* enum wait_reason while WAITING */
	uint8_t name_heap;         /* 1 if name points to malloc'd memory */
	uint8_t has_canary;        /* set at carve in GUARD_CANARY mode */
	uint8_t started;           /* 0 until task_main first runs: its saved
				      frame is the trampoline's, not a call */
	_Atomic uint8_t on_cpu;    /* 1 from just before it is switched in
				      until the next context has finished
				      switching away from it: while 1 its
				      saved registers are not valid */
	_Atomic uint64_t prof_mark; /* snapshot epoch << 2 | PROF_BUSY: the
				       last epoch it was recorded (or born)
				       in (introspect.c) */
	uint64_t id;               /* never reused; 0 while DEAD */
	int64_t wait_since;        /* coarse co_now() at park (0: never) */
	uint64_t creator_id;       /* id of the task that called co_go (0: none) */
	uintptr_t creator_pc;      /* return address of that co_go call */
	void (*fn)(void *);        /* entry, set at spawn */
	void *arg;                 /* its argument */
	void *labels;              /* profiler-owned label set, inherited */
	const char *name;          /* NULL, name_buf, or heap copy */
	struct worker *worker;     /* worker running it (RUNNING), last worker else */
	void *wait_obj;            /* object parked on (chan, lock): for dumps */
	_Atomic int64_t longest_run_ns; /* the longest run without a switch
				       the monitor reported (0: none) */
	uintptr_t stack_lo;        /* lowest usable byte of the stack */
	uintptr_t stack_hi;        /* one past the highest: the record's address */
	void *asan_fake_stack;     /* AddressSanitizer fake-stack handle */
	char name_buf[TASK_NAME_INLINE];
};

/* Debug checker of the state table's invariants; use as assert(task_check(t)). */
CO_INTERNAL bool task_check(const struct task *t);

/* True for the transitions of the table above. */
static inline bool task_transition_ok(enum task_state from,
				      enum task_state to)
{
	switch (to) {
	case TASK_RUNNABLE:
		return from == TASK_DEAD || from == TASK_RUNNING ||
		       from == TASK_WAITING || from == TASK_SYSCALL;
	case TASK_RUNNING:
		return from == TASK_RUNNABLE;
	case TASK_WAITING:
	case TASK_SYSCALL:
	case TASK_DEAD:
		return from == TASK_RUNNING;
	default:
		return false;
	}
}

/*
 * The one way a task's state changes (SQLite's assert_pager_state habit):
 * from is the state the caller knows the task is in, and debug builds
 * check both that and the transition.  mo orders the store as the call
 * site needs (release where the state publishes the fields before it).
 */
#define task_set_state(t, from, to, mo)                                        \
	do {                                                                   \
		assert(atomic_load_explicit(&(t)->state,                       \
					    memory_order_relaxed) == (from));  \
		assert(task_transition_ok((from), (to)));                      \
		atomic_store_explicit(&(t)->state, (to), (mo));                \
	} while (0)

/* ------------------------------------------------------------------------
 * Spinlocks and wait queues (used by chan.c, select.c, sync.c)
 *
 * Channel and lock state is held for a few dozen instructions, so a
 * test-and-test-and-set spinlock beats a futex mutex; after a bounded spin
 * it yields the CPU in case the holder's thread was descheduled.
 * ---------------------------------------------------------------------- */
typedef struct spinlock {
	_Atomic uint32_t locked;
} spinlock;

CO_INTERNAL void spin_lock_slow(spinlock *l);
static inline void spin_lock(spinlock *l)
{
	if (likely(!atomic_exchange_explicit(&l->locked, 1,
					     memory_order_acquire)))
		return;
	spin_lock_slow(l);
}
static inline bool spin_trylock(spinlock *l)
{
	return !atomic_load_explicit(&l->locked, memory_order_relaxed) &&
	       !atomic_exchange_explicit(&l->locked, 1, memory_order_acquire);
}
static inline void spin_unlock(spinlock *l)
{
	atomic_store_explicit(&l->locked, 0, memory_order_release);
}
/* The after-switch unlock callback for sched_park. */
CO_INTERNAL void spin_unlock_cb(void *l);

/* ------------------------------------------------------------------------
 * Configuration (config.c)
 * ---------------------------------------------------------------------- */
#define PROCS_MAX 1024          /* COPPER_PROCS's bound */

struct config {
	int procs;              /* COPPER_PROCS, default: CPUs */
	size_t stack_size;      /* COPPER_STACK_SIZE, usable bytes per task */
	int64_t stall_ns;       /* COPPER_STALL_MS in ns, 0: no stall reports */
	int misuse;             /* COPPER_MISUSE: enum misuse_mode */
	bool sigquit;           /* COPPER_SIGQUIT: SIGQUIT dumps and exits */
};

/* Reads COPPER_* into cfg; prints a message naming the variable and
 * returns -EINVAL on a bad value. */
CO_INTERNAL int config_load(struct config *cfg);

/* ------------------------------------------------------------------------
 * Stacks (stack.c)
 * ---------------------------------------------------------------------- */
enum stack_guard_mode {
	GUARD_MADVISE,  /* MADV_GUARD_INSTALL: no mapping per guard */
	GUARD_MPROTECT, /* one PROT_NONE page per stack, while mappings last */
	GUARD_CANARY,   /* a checked canary at the foot of the stack */
};

CO_INTERNAL extern const char *const stack_guard_mode_names[3];

CO_INTERNAL int stack_init(size_t usable_size);
/* The tests' door to the stack-guard fallbacks: NULL, or a function that
 * returns a guard mode to use whatever the kernel offers (or -1); set by
 * the test library only (testing.c), asked at every stack_init. */
CO_INTERNAL extern int (*stack_forced_mode)(void);
CO_INTERNAL void stack_destroy(void);
CO_INTERNAL enum stack_guard_mode stack_guard_mode(void);
/* A dead slot's record, or NULL when memory or mappings ran out. */
CO_INTERNAL struct task *stack_slot_get(struct worker *w);
CO_INTERNAL void stack_slot_put(struct worker *w, struct task *t);
/* Called by a worker with nothing to run: if spawners have been short of
 * slots, carves and touches a few fresh ones into the pool and returns
 * true (stack.c, "Preparing ahead"). */
CO_INTERNAL bool stack_prepare(void);
/* Slots carved so far and slots in the global pool (for tests). */
CO_INTERNAL void stack_counts(size_t *carved, size_t *pooled);
/* Returns a worker's cached slots to the global pool. */
CO_INTERNAL void stack_cache_flush(struct worker *w);
/* Calls fn for the record of every slot ever handed out (dead ones too). */
CO_INTERNAL void stack_each_slot(void (*fn)(struct task *, void *), void *arg);
/* The canary check of GUARD_CANARY mode; true when intact. */
CO_INTERNAL bool stack_canary_ok(const struct task *t);
/* If addr lies in the guard page of t's stack. */
CO_INTERNAL bool stack_addr_in_guard(const struct task *t, uintptr_t addr);

/* ------------------------------------------------------------------------
 * The scheduler (sched.c)
 * ---------------------------------------------------------------------- */
#define RUNQ_SIZE 256

/* Go's runq: single producer (the owner), many consumers (owner, thieves). */
struct runq {
	_Atomic uint32_t head;                    /* next to pop; CAS by all */
	_Atomic uint32_t tail;                    /* next free; owner stores */
	_Atomic(struct task *) buf[RUNQ_SIZE];
};

/* What the context that runs right after a switch must do for the task
 * that switched away (see "After the switch" in sched.c). */
enum after_op {
	AFTER_NONE = 0,
	AFTER_PARK,    /* call after_fn(after_arg), then nothing */
	AFTER_YIELD,   /* put the previous task on the run queue */
	AFTER_YIELD_SLOT, /* put the previous task in the yield slot */
	AFTER_YIELD_SLOT_WAKE, /* ... which was empty: then wakep */
	AFTER_SPAWN,   /* a spawner ran its child first: into runnext */
	AFTER_EXIT,    /* free the previous task's slot */
};

struct timer_heap {
	_Atomic uint32_t lock;  /* a spinlock; guards the rest */
	struct timer **items;   /* min-heap on when */
	uint32_t len;           /* timers in the heap */
	uint32_t cap;           /* allocated items */
	_Atomic int64_t next;   /* items[0]->when, or INT64_MAX: read lock-free */
};

/* A stall report's look at the task a worker runs: taken by the worker
 * itself in its SIGURG handler (introspect.c) when the monitor asks. */
#define STALL_PCS_MAX 64
enum { STALL_NONE = 0, STALL_ASK, STALL_BUSY, STALL_DONE };

struct stall_capture {
	_Atomic int req;            /* STALL_*: monitor asks, handler answers */
	uint64_t want_sw;           /* the worker's switch count when asked:
				       another count is another task */
	struct task *task;          /* the running task, and its id then */
	uint64_t id;
	uint64_t creator_id;        /* its creator and the co_go call */
	uintptr_t creator_pc;
	void *labels;               /* referenced by the handler */
	char name[64];              /* "" when unnamed */
	int npcs;                   /* pcs[0] the interrupted pc, then */
	uintptr_t pcs[STALL_PCS_MAX]; /* return addresses */
};

struct worker {
	/* Read by other workers (stealing, waking). */
	_Alignas(CACHELINE) struct runq runq;     /* local run queue */
	_Atomic(struct task *) runnext;           /* runs next; stolen last */
	_Atomic uint64_t nswitch;                 /* switches done; thieves
						     watch it before taking
						     runnext */
	int id;                                   /* 0 .. procs-1 */
	pthread_t thread;                         /* its OS thread */
	_Atomic bool thread_live;                 /* thread set and running:
						     it may be signalled */
	bool has_thread;                          /* a thread was started */
	uint64_t mon_sw;                          /* the monitor's last look: */
	int64_t mon_since;                        /* nswitch, and since when */
	int64_t mon_cpu;                          /* ... and its CPU time then */
	clockid_t cpu_clock;                      /* its thread's CPU clock */
	int tid;                                  /* its thread's id */
	_Atomic bool has_cpu_clock;               /* the two above are set */
	bool stall_reported;                      /* COPPER_STALL_MS said so */
	struct stall_capture stall;               /* ... about this task */
	bool finished;                            /* its thread left the
						     runtime (S.run_lock) */
	bool abandoned;                           /* co_run returned without
						     it (S.run_lock) */
	uv_async_t wake;                          /* wakes it from idle */

	/* Owned by the worker's thread. */
	_Alignas(CACHELINE) struct task *current; /* running task or NULL */
	struct switch_ctx sched_ctx;              /* the scheduler loop */
	void *sched_stack_lo;                     /* thread stack bounds, */
	size_t sched_stack_size;                  /* for sanitizers */
	void *sched_fake_stack;                   /* ASan fake stack */
	uint32_t tick;                            /* scheduling rounds */
	_Atomic(struct task *) yield_slot;        /* a yielded task, runnable,
						     behind the run queue;
						     thieves take it only after
						     RUNNEXT_STEAL_NS without
						     a switch (co_yield) */
	uint32_t rand;                            /* xorshift state */
	enum after_op after_op;                   /* pending after-switch op */
	bool after_emit;                          /* AFTER_PARK: emit the park
						     event, with */
	uint8_t after_reason;                     /* why, */
	void *after_obj;                          /* on what, */
	uint64_t after_id;                        /* and who */
	bool in_timers;                           /* firing timers under a
						     heap lock: unpark events
						     wait in unpark_defer */
	uint32_t nunpark_defer;
	struct {
		struct task *task;
		uint64_t id;
	} unpark_defer[32];
	struct task *after_task;                  /* ... on this task */
	void (*after_fn)(void *);                 /* AFTER_PARK callback */
	void *after_arg;                          /* ... and its argument */
	struct timer_heap timers;                 /* sleeping tasks */
	int timerfd;                              /* armed while idle */
	uv_poll_t timer_poll;                     /* polls timerfd */
	uv_loop_t loop;                           /* this worker's libuv loop */
	_Atomic uint32_t uv_pending;              /* libuv requests in flight:
						     what can still wake a task */
	bool spinning;                            /* looking for work */
	struct worker *rn_victim;                 /* a victim seen with a */
	uint64_t rn_nswitch;                      /* runnext: its switch count */
	int64_t rn_since;                         /* then, and since when */
	_Atomic bool idle;                        /* on the idle list */
	uint64_t *watch_sw;                       /* while idle: each worker's
						     nswitch at the last look
						     (sched.c, "The watch") */
	int64_t watch_period;                     /* ... and the time between
						     looks */
	struct worker *idle_next;                 /* idle list link */
	spinlock inbox_lk;                        /* guards inbox */
	struct netpoll *inbox;                    /* descriptors to (re)arm
						     or close (netpoll.c) */
	uint32_t nslots;                          /* slots in slot_cache */
	struct task *slot_cache[128];             /* dead slots (stack.c):
						     pointers only, so that
						     caching never touches a
						     cold record */
	uint64_t id_next, id_end;                 /* cached task ids */
	_Atomic uint64_t nspawned;                /* tasks spawned here */
	_Atomic uint64_t nexited;                 /* tasks exited here */
	struct task *yield_next;                  /* yield_slow's choice (at
						     the end: the hot fields
						     keep their lines) */
	/* The trace: a park or exit waiting to be written with the run
	 * that follows it (sched.c, trace_switch_*), of trace trace_gen. */
	uint8_t trace_pend;                       /* its event, 0: none */
	uint8_t trace_pend_reason;
	uint32_t trace_pend_gen;
	uint64_t trace_pend_id;
};

CO_INTERNAL struct worker *sched_worker(void);
CO_INTERNAL struct task *sched_current(void);
/* Parks the running task with the reason; after the switch, the next
 * context calls unlock(arg) if unlock is not NULL (release the lock that
 * protects the wait queue the task sits on: a waker can only find the task
 * once its registers are saved). */
CO_INTERNAL void sched_park(enum task_state state, enum wait_reason why,
			    void (*unlock)(void *), void *arg);
/* co_yield's body; co_yield is the assembly frame around it that returns
 * with an indirect jump (switch_<arch>.S). */
CO_INTERNAL void sched_yield_task(void);
/* Makes a parked task runnable on the calling worker (or the global queue
 * from a foreign thread). */
CO_INTERNAL void sched_ready(struct task *t);
/* Coarse monotonic time (a few ms resolution, cheap): for wait_since. */
CO_INTERNAL int64_t sched_coarse_now(void);
/* Number of workers and the array, for introspection. */
CO_INTERNAL int sched_nprocs(void);
/* Workers set up now: sched_nprocs() and those the monitor added. */
CO_INTERNAL int sched_nworkers(void);
/* A fast pseudo-random number (per worker state; select's poll order). */
CO_INTERNAL uint32_t sched_rand(void);
/* co_now() + ns, saturated below INT64_MAX (the heaps' "no timer"). */
CO_INTERNAL int64_t sched_deadline_after(int64_t ns);
CO_INTERNAL void sched_cpu_relax(void);
CO_INTERNAL struct worker *sched_workers(void);
CO_INTERNAL bool sched_running(void);
CO_INTERNAL bool sched_stopping(void);
/* The C entry of every task (hidden from dumps like Go's goexit). */
CO_INTERNAL uintptr_t sched_task_main_addr(void);

/* ------------------------------------------------------------------------
 * Timers (timer.c): a min-heap per worker.  A timer is added to the heap
 * of the worker the caller runs on and fires there; it may be deleted from
 * any thread (a select whose channel won resumes elsewhere), so each heap
 * has a lock, and fire() runs under it: once timer_del has returned, the
 * timer is neither in a heap nor firing, and its memory may go.
 * ---------------------------------------------------------------------- */
struct timer {
	int64_t when;                  /* deadline, co_now() nanoseconds */
	uint32_t index;                /* position in the heap while queued */
	bool queued;                   /* in home's heap; guarded by its lock */
	struct worker *home;           /* heap it was added to */
	void (*fire)(struct timer *);  /* called under the heap lock */
	void *arg;                     /* for fire */
};

CO_INTERNAL int timer_add(struct worker *w, struct timer *t);
/* sched.c: around firing timers under a heap lock, unpark events wait
 * until the lock is released. */
CO_INTERNAL void sched_timers_begin(struct worker *self);
CO_INTERNAL void sched_timers_end(struct worker *self);
/* The deferral is full: release the heap's lock, flush, lock again. */
CO_INTERNAL bool sched_timers_defer_full(struct worker *self);
CO_INTERNAL void sched_timers_flush(struct worker *self);
/* sched.c: a new earliest timer on some heap (wakes an idle worker). */
CO_INTERNAL void sched_timer_added(int64_t when);
/* True if t was removed before it fired. */
CO_INTERNAL bool timer_del(struct timer *t);
/* Fires every timer due at now; returns how many. */
CO_INTERNAL int timers_run(struct worker *w, int64_t now);
CO_INTERNAL void timer_heap_free(struct timer_heap *h);
static inline int64_t timer_next(struct worker *w)
{
	return atomic_load_explicit(&w->timers.next, memory_order_relaxed);
}

struct select_state;

/*
 * A parked task's place in a wait queue (Go's sudog).  It lives on the
 * parked task's stack, which stays put while it waits; one task has one
 * waiter per channel it selects on.  All fields are guarded by the lock
 * of the queue's owner (channel or primitive).
 */
struct waiter {
	struct task *task;          /* who waits */
	struct waiter *next, *prev; /* queue links */
	void *elem;                 /* send: source; receive: destination */
	struct select_state *sel;   /* NULL unless part of a select */
	int index;                  /* the case index in that select */
	int result;                 /* set by the waker: 0 or -EPIPE */
	int64_t since;              /* co_now() when queued, if profiled */
	bool queued;                /* on a queue now */
	bool handoff;               /* sync: ownership handed to it */
};

struct waitq {
	struct waiter *head, *tail;
};

static inline void waitq_push(struct waitq *q, struct waiter *w)
{
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	w->queued = true;
}

static inline void waitq_remove(struct waitq *q, struct waiter *w)
{
	if (!w->queued)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	w->next = w->prev = NULL;
	w->queued = false;
}

static inline struct waiter *waitq_pop(struct waitq *q)
{
	struct waiter *w = q->head;
	if (w)
		waitq_remove(q, w);
	return w;
}

/*
 * Run generations.  Channels and locks outlive co_run, and so can their
 * wait queues: a task of an earlier run parked on one stays queued after
 * its run ended and its stack was unmapped.  Every object that queues
 * waiters keeps the generation (co_run's count) of its last locked use;
 * whoever takes its lock in a later run finds the generation changed and
 * forgets those waiters before touching the queue.  One load and compare
 * under a lock that is taken anyway.
 */
CO_INTERNAL extern _Atomic uint32_t sched_run_gen;

/* True (and *run brought up to date) if the object was last used under
 * its lock in an earlier run; call with that lock held. */
static inline bool run_changed(uint32_t *run)
{
	uint32_t gen = atomic_load_explicit(&sched_run_gen,
					    memory_order_relaxed);
	if (likely(*run == gen))
		return false;
	*run = gen;
	return true;
}

/* Pops the first waiter that may be woken: a select's waiter only if this
 * call wins its select (select.c). */
CO_INTERNAL struct waiter *waitq_pop_ready(struct waitq *q);

/* Parks the running task, recording how long it waited for the block
 * profile when that is on.  unlock(arg) runs after the switch. */
CO_INTERNAL void sched_park_on(enum wait_reason why, void *obj,
			       void (*unlock)(void *), void *arg);

/* ------------------------------------------------------------------------
 * Events (hooks.c; the protocol is in introspect.h): hook_on(e) is the
 * one load and branch an event site pays while nobody listens.
 * ---------------------------------------------------------------------- */
CO_INTERNAL extern _Atomic unsigned hooks_events;
CO_INTERNAL extern _Atomic unsigned hooks_sub_events;
CO_INTERNAL extern _Atomic unsigned hooks_trace_events;
CO_INTERNAL void hooks_emit(const struct introspect_event_info *ev);

static inline bool hook_on(enum introspect_event e)
{
	return unlikely(atomic_load_explicit(&hooks_events,
					     memory_order_relaxed) &
			(1u << e));
}

/* Behind hook_on, which also counts the trace's events: a subscriber
 * wants e (hooks_emit), the trace records it (tracebuf_put). */
static inline bool hook_subscribed(enum introspect_event e)
{
	return atomic_load_explicit(&hooks_sub_events, memory_order_relaxed) &
	       (1u << e);
}

static inline bool hook_traced(enum introspect_event e)
{
	return atomic_load_explicit(&hooks_trace_events,
				    memory_order_relaxed) &
	       (1u << e);
}

/* The execution trace's recorder (tracebuf.c): the events it records
 * join hooks_events while it runs.  tracebuf_put_switch writes a park or
 * exit and the run that follows it on the same worker as one record with
 * one clock read; tracebuf_gen numbers the traces (a pending switch of
 * an earlier trace is not written into a later one). */
CO_INTERNAL void hooks_set_trace(unsigned events);
CO_INTERNAL void tracebuf_put(int worker, enum introspect_event type,
			      uint64_t id, uint64_t other, int reason);
CO_INTERNAL void tracebuf_put_switch(int worker, enum introspect_event type,
				     uint64_t id, int reason, uint64_t next);
CO_INTERNAL extern _Atomic uint32_t tracebuf_gen;

/* The CPU's counter, which introspect_clock_now reads when
 * sched_clock_counter() says it is the event clock (the kernel's
 * clocksource is tsc or arch_sys_counter); the first call calibrates. */
CO_INTERNAL bool sched_clock_counter(void);
static inline uint64_t clock_counter_read(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	return 0;
#endif
}

/* ------------------------------------------------------------------------
 * Single-owner hooks (task.c): label reference counting.  (The
 * profiler's parts start and stop with co_run through hooks.c's
 * lifecycle list, which takes several.)
 * ---------------------------------------------------------------------- */
struct runtime_hooks {
	/* Label sets are the profiler's, reference counted: a spawned task
	 * shares its parent's set, an exiting one drops it. */
	void (*labels_ref)(void *labels);
	void (*labels_unref)(void *labels);
};

CO_INTERNAL extern struct runtime_hooks runtime_hooks;

/* hooks.c: co_run calls every start added with introspect_add_lifecycle
 * in the order added; on a failure, the stops of those already started,
 * in reverse, and returns the failure.  hooks_lifecycle_stop calls every
 * stop in reverse order. */
CO_INTERNAL int hooks_lifecycle_start(void);
CO_INTERNAL void hooks_lifecycle_stop(void);

/* The profiler's printer of stall reports (introspect.h), or NULL. */
struct stall_report;
CO_INTERNAL extern void (*stall_report_hook)(const struct stall_report *);
/* The monitor's part in a fatal error (fatal.c): prints the symbolized
 * stack a fault handler left for it, off the broken stack. */
CO_INTERNAL void fatal_serve(void);
/* The interrupted pc, frame pointer and stack pointer of a signal
 * handler's ucontext (the snapshot, stall and fault handlers). */
static inline void uc_regs(const void *ucv, uintptr_t *pc, uintptr_t *fp,
			   uintptr_t *sp)
{
	const ucontext_t *uc = ucv;
#if defined(__x86_64__)
	*pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	*fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
	*sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	*pc = (uintptr_t)uc->uc_mcontext.pc;
	*fp = (uintptr_t)uc->uc_mcontext.regs[29];
	*sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
}

/* Fills w->stall from the SIGURG handler's context (introspect.c). */
CO_INTERNAL void stall_capture_here(struct worker *w, uintptr_t pc,
				    uintptr_t fp, uintptr_t sp);

/* ------------------------------------------------------------------------
 * Snapshot epochs (introspect.c): the goroutine profile's consistent
 * snapshot.  The scheduler calls these at the three points where a task's
 * stack can change or vanish: before it runs, when it is born, before it
 * exits.  Each costs one relaxed load while no snapshot is open.
 * ---------------------------------------------------------------------- */
#define PROF_BUSY 1u

struct snapshot_gate {
	_Atomic bool active;      /* a snapshot is being taken */
	_Atomic uint64_t epoch;   /* the current snapshot's number */
	bool membarrier;          /* expedited membarrier works: switches
				     need no fence (set at start-up) */
};

CO_INTERNAL extern struct snapshot_gate snapshot_gate;
/* Before t (not RUNNING yet) is switched in: record it if it is due. */
CO_INTERNAL void snapshot_before_run(struct task *t);
/* The running task is about to exit: record it if it is due. */
CO_INTERNAL void snapshot_before_exit(struct task *t);
/* The signal that asks a worker to record its running task. */
CO_INTERNAL int snapshot_signal_init(void);
CO_INTERNAL void snapshot_signal_destroy(void);

static inline void snapshot_task_born(struct task *t)
{
	atomic_store_explicit(&t->prof_mark,
			      atomic_load_explicit(&snapshot_gate.epoch,
						   memory_order_relaxed)
				      << 2,
			      memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * The netpoller's hooks into the worker loop (netpoll.c)
 * ---------------------------------------------------------------------- */
struct netpoll;
/* On the home thread: (re)arm or close the posted descriptors. */
CO_INTERNAL void netpoll_inbox_run(struct worker *w);
/* uv_walk close callback for descriptors abandoned at shutdown. */
CO_INTERNAL void netpoll_abandon(uv_handle_t *h);

/* ------------------------------------------------------------------------
 * Misuse reports (misuse.c): the program used an object wrongly; the call
 * still returns its code, and the runtime says so (COPPER_MISUSE).
 * ---------------------------------------------------------------------- */
enum misuse_mode { MISUSE_REPORT = 0, MISUSE_FATAL, MISUSE_SILENT };

enum misuse_kind {
	MISUSE_UNLOCK,        /* co_mutex_unlock of an unlocked mutex */
	MISUSE_RUNLOCK,       /* co_rwmutex_runlock with no reader */
	MISUSE_RWUNLOCK,      /* co_rwmutex_unlock with no writer */
	MISUSE_CLOSE_CLOSED,  /* co_chan_close of a closed channel */
	MISUSE_SEND_CLOSED,   /* a send on a closed channel */
	MISUSE_WG_NEGATIVE,   /* co_wg below zero */
	MISUSE_NKINDS
};

CO_INTERNAL void misuse_set_mode(int mode);
/* Reports kind at call site site (the public function's return address). */
CO_INTERNAL void misuse_report(enum misuse_kind kind, uintptr_t site);
#define MISUSE(kind) misuse_report((kind), \
				   (uintptr_t)__builtin_return_address(0))

/* ------------------------------------------------------------------------
 * Fatal errors (fatal.c): a broken internal invariant, never user input.
 * ---------------------------------------------------------------------- */
CO_INTERNAL _Noreturn void co_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* Prints every task (the fatal dumper, under an alarm) to stderr; for
 * signal handlers that end the process next. */
CO_INTERNAL void fatal_dump_all(void);

/* ------------------------------------------------------------------------
 * Signals (signal.c): the workers' mask and SIGQUIT.
 * ---------------------------------------------------------------------- */
/* The signals a worker blocks: all but the synchronous ones, SIGURG and
 * SIGPROF. */
CO_INTERNAL void signal_worker_mask(sigset_t *set);
/* sched.c: blocks signo on co_run's caller until co_run returns (at
 * once on that thread, else by asking it and waiting up to 1 s); 0 when
 * no co_run runs. */
CO_INTERNAL int sched_caller_block(int signo);
CO_INTERNAL int signal_init(const struct config *cfg);
CO_INTERNAL void signal_destroy(void);

/* Installs the SIGSEGV/SIGBUS handler on an alternate stack that turns a
 * fault in a guard page into "fatal error: stack overflow" naming the task. */
CO_INTERNAL int fatal_signals_init(void);
/* Set by the profiler: prints the task dump after a fatal message. */
CO_INTERNAL extern void (*fatal_dump_hook)(int fd);
CO_INTERNAL int fatal_thread_init(void);   /* per worker: the alt stack */
CO_INTERNAL void fatal_thread_destroy(void);
CO_INTERNAL void fatal_signals_destroy(void);

#endif /* COPPER_RUNTIME_RUNTIME_H */
