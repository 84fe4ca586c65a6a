/* SPDX-License-Identifier: MIT */
/*
 * sched.c - the M:N scheduler: workers, run queues, work stealing, parking,
 * idle sleep, and co_run / co_go / co_yield.
 *
 * Design notes
 * ------------
 * Vocabulary: runtime.h.  A worker is an OS thread with a local run queue
 * (Go's runq: a 256-entry ring, owner pushes, anyone pops with a CAS) and a
 * `runnext` slot; tasks that do not fit go to one global queue under a
 * mutex.  co_go and wake-ups put the task in runnext, as Go does, so a
 * task that hands work to another (channel send, then receive) runs its
 * partner next on the same worker with warm caches.
 *
 * Direct switches.  When a task parks or yields, it picks its successor
 * itself from the local queue and switches straight to it: one context
 * switch, not two.  Only when the local queue is empty, every 61st round
 * (to look at the global queue, timers and I/O, as Go's schedule() does),
 * or when a timer has expired, does it switch to the worker's scheduler
 * context (its thread stack) to do the slow work: timers, libuv, the
 * global queue, stealing, sleeping.
 *
 * After the switch.  A task must not become visible to other workers
 * before its registers are saved, or another worker could resume a
 * half-switched context.  So every park publishes nothing itself; it
 * leaves an `after_op` in its worker and the context that runs next on
 * the same thread completes it (unlocks the wait queue, pushes a yielding
 * task back on the run queue, frees a dead task's slot).  This is Go's
 * gopark(unlockf) and mcall, without a g0 switch in between.
 *
 * Idle workers.  A worker with nothing to do spins for a bounded time
 * looking for work to steal (at most half the busy workers spin, and at
 * least one): SPIN_PAUSE_NS with the pause instruction, then the rest of
 * SPIN_NS calling sched_yield between looks, no longer counted as a
 * spinner (a yield may cost it a time slice, so wakers should not count
 * on it).  Spinning buys a quick
 * reaction and saves a sleep and a wake-up (5-10 us of kernel time on a
 * virtual machine) when work comes soon, but a pausing spinner keeps a
 * core from every other thread: with wrk and the server on two cores a
 * 50 us pause spin cost 35% of the server's CPU and a third of its
 * requests/s.  A yielding spinner gives the core to any other runnable
 * thread and otherwise keeps looking (HTTP hello: 80-90 k -> 130-140 k
 * req/s; the channel and spawn benchmarks unchanged).  Rejected: no spin
 * (every hand-off between workers then pays a wake-up: pingpong on two
 * workers 90 -> 160 ns), and a shorter pause spin (between the two).
 * Then the worker registers on the idle list and blocks in its libuv loop
 * (epoll), which also delivers its timers (a timerfd with nanosecond
 * deadlines), its thread-pool completions and its I/O.  Whoever makes work
 * available while some worker is idle and none is spinning wakes one
 * (wakep), with a full barrier between publishing the work and reading the
 * idle count; an idle worker publishes itself, then re-checks every queue
 * before it blocks.  One of the two always sees the other: no lost
 * wake-up.
 *
 * Timers.  Each worker has a min-heap of timers (timer.c): a sleeping
 * task's timer goes on the heap of the worker it ran on.  Busy workers
 * test their own heap's top on every switch; a worker looking for work
 * fires the due timers of every heap, because a worker running a task
 * that never parks cannot fire its own (Go's findrunnable steals timers
 * the same way); idle workers arm their timerfd for the earliest deadline
 * of all heaps, and a new earliest timer wakes an idle worker armed for
 * later (Go's wakeNetPoller).  A timer may thus fire before its task has
 * finished switching out: wakers wait for on_cpu to clear, as the
 * kernel's try_to_wake_up does.  libuv's own timers have a resolution of
 * one millisecond; the timerfd gives co_sleep(100 us) a wake-up within the
 * kernel's timer slack (50 us by default) instead.
 *
 * Rejected designs:
 *   - Switching to the scheduler context on every park (Go's mcall): two
 *     switches and a cold stack per park; direct switches halve the cost of
 *     ping-pong and yield.
 *   - A separate P as in Go: Copper does not hand a worker's run queue to
 *     another thread.  co_blocking sends blocking calls to libuv's pool;
 *     for a task that blocks or computes without it, idle workers take
 *     what waits behind it (the watch) and the monitor adds a worker when
 *     every worker is stuck ("The monitor" below says why not handoffp).
 *   - One libuv loop on an I/O thread feeding all workers: every timer and
 *     completion would cross threads twice.  Per-worker loops keep a
 *     sleeping task's timer on the thread that will run it.
 *   - Idle workers sleeping on a futex: they would need a second wake-up
 *     path for libuv events; blocking in the loop covers both.
 *
 * Lock order: idle_lock, then global_lock; channel and sync locks are
 * never held when a scheduler lock is taken except through sched_ready,
 * which takes none of them on the fast path (runnext and the ring are
 * lock-free) and global_lock only when the ring overflows.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "copper.h"
#include "introspect.h"
#include "runtime.h"
#include "sanitizer.h"

#define SCHED_GLOBAL_EVERY 61 /* rounds between forced scheduler visits */
#define SPIN_NS 50000         /* how long an idle worker spins for work */
#define SPIN_PAUSE_NS 5000    /* ... of which pausing, before yielding */
#define RUNNEXT_STEAL_NS 40000 /* before a thief takes a runnext task */
#define RUNNEXT_STEAL_IDLE_NS 5000 /* ... when several workers look for work */
#define ID_BATCH 16           /* task ids a worker reserves at once (Go: 16) */
#define MONITOR_EXTRA_MAX 256  /* workers the monitor may add */
_Static_assert(PROCS_MAX + MONITOR_EXTRA_MAX == INTROSPECT_WORKERS_MAX,
	       "introspect.h's worker bound");
#define CO_RUN_RECLAIM_NS 1000000000 /* the next co_run waits this long
					 for threads the last abandoned */
#define CO_RUN_GRACE_NS 50000000 /* co_run waits this long for workers
				    still inside a task, then leaves them */
#define SPAWN_RUN_CHILD_AT (RUNQ_SIZE / 2) /* co_go runs the child at once
						 from this ring length on */

static struct {
	struct config cfg;
	struct worker *workers;       /* room for nmax, cache-line aligned */
	int nprocs;                   /* COPPER_PROCS: workers running tasks */
	int nmax;                     /* workers that may ever be set up */
	_Atomic int nworkers;         /* workers set up (nworkers()) */
	_Atomic int nstuck;           /* ... of them stuck in one task
					 (the monitor's last look) */
	_Atomic bool running;         /* between co_run's start and return */
	_Atomic bool stopping;        /* task 1 returned: workers wind down */
	_Atomic uint64_t next_id;     /* next unreserved task id */

	pthread_mutex_t global_lock;  /* guards gbuf, ghead, gcap */
	struct task **gbuf;           /* global run queue: a ring of pointers,
					 so moving tasks never touches their
					 (cold) records */
	size_t ghead, gcap;           /* first entry; capacity (power of 2) */
	_Atomic uint32_t gcount;      /* its length; read without the lock */

	pthread_mutex_t idle_lock;    /* guards idle_list and wake sends */
	struct worker *idle_list;     /* workers blocked in their loop */
	_Atomic int nidle;            /* length of idle_list */
	_Atomic int nspinning;        /* workers spinning for work */
	_Atomic int64_t poll_until;   /* deadline idle workers are armed for */
	uint64_t *watch_sw;           /* nmax rows of nmax: the watch's
					 switch counts (idle_block) */

	pthread_t monitor;            /* the monitor thread (monitor_run) */
	pthread_attr_t worker_attr;   /* workers' threads: their signal mask */
	bool monitor_gave_up;         /* a worker thread failed to start */
	bool monitor_done;            /* it left the run's memory (run_lock) */
	bool monitor_abandoned;       /* co_run returned without it */
	_Atomic bool monitor_deep;    /* it sleeps until a worker wakes */
	pthread_mutex_t run_lock;     /* guards nabandoned; with run_cond, */
	pthread_cond_t run_cond;      /* co_run waits for task 1 and workers */
	int nabandoned;               /* threads of a kept run still out */
	bool kept;                    /* the last run's memory is still
					 allocated: it abandoned threads */
	/* Signals routed away from co_run's caller (sched_caller_block),
	 * under run_lock: asked for, and blocked there by now. */
	pthread_t caller;             /* the thread in co_run */
	bool caller_live;             /* ... between start-up and return */
	sigset_t caller_mask;         /* its mask before co_run */
	uint64_t caller_want;         /* bit signo-1 */
	uint64_t caller_blocked;
} S = {
	.global_lock = PTHREAD_MUTEX_INITIALIZER,
	.idle_lock = PTHREAD_MUTEX_INITIALIZER,
	.run_lock = PTHREAD_MUTEX_INITIALIZER,
};

_Atomic uint32_t sched_run_gen; /* co_run's count (runtime.h) */

/* Workers set up so far: nprocs at start, more when the monitor adds one
 * for workers stuck in a task.  Entries below it never change. */
static inline int nworkers(void)
{
	return atomic_load_explicit(&S.nworkers, memory_order_acquire);
}

static _Thread_local struct worker *tls_worker
	__attribute__((tls_model("initial-exec")));

static void task_main(void *arg);
static void request_stop(void);
static void worker_exited(struct worker *w);
static void park_emit(struct worker *w, struct task *prev)
	__attribute__((cold, noinline));
static void run_emit(struct worker *w, struct task *t)
	__attribute__((cold, noinline));
static void *worker_thread(void *arg);

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

/* Not inlined, so that code resumed on another thread after a switch reads
 * this thread's worker rather than a TLS address cached before it. */
__attribute__((noinline)) struct worker *sched_worker(void)
{
	struct worker *w = tls_worker;
	__asm__ volatile("" ::: "memory");
	return w;
}

struct task *sched_current(void)
{
	struct worker *w = sched_worker();
	return w ? w->current : NULL;
}

int sched_nprocs(void) { return S.nprocs; }
int sched_nworkers(void) { return nworkers(); }
struct worker *sched_workers(void) { return S.workers; }
bool sched_running(void) { return atomic_load(&S.running); }
bool sched_stopping(void) { return atomic_load(&S.stopping); }

static inline int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

CO_EXTERN int64_t co_now(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t sched_coarse_now(void) { return clock_ns(CLOCK_MONOTONIC_COARSE); }

/*
 * The block event's clock (Go's cputicks).  While the block profile is on,
 * every park is timed, and clock_gettime costs 40-50 ns on this project's
 * VMs: with two per park, a third of a ping-pong round trip.  The CPU's
 * counter (TSC, cntvct_el0) costs a few ns.  It is used only when the
 * kernel itself keeps time with it (clocksource "tsc" or
 * "arch_sys_counter": found stable and synchronised across CPUs), its
 * rate measured once against CLOCK_MONOTONIC over 2 ms, on the first
 * timed park; otherwise waits are timed with co_now().
 */
#define BLOCK_CLOCK_CAL_NS 2000000

static bool block_clock_tsc;         /* the counter is in use */
static double block_ns_per_tick;     /* its period, measured */
static pthread_once_t block_clock_once = PTHREAD_ONCE_INIT;
static _Atomic bool block_clock_ready; /* the two above are set */

#define block_ticks_read clock_counter_read

static void block_clock_calibrate(void)
{
	char name[64] = "";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
			"current_clocksource", "re");

	if (f) {
		if (!fgets(name, sizeof(name), f))
			name[0] = '\0';
		fclose(f);
	}
	if (strcmp(name, "tsc\n") != 0 && strcmp(name, "arch_sys_counter\n") != 0)
		return;
	int64_t m0 = co_now(), m1;
	uint64_t t0 = block_ticks_read(), t1;
	do {
		m1 = co_now();
		t1 = block_ticks_read();
	} while (m1 - m0 < BLOCK_CLOCK_CAL_NS);
	if (t1 <= t0)
		return;
	block_ns_per_tick = (double)(m1 - m0) / (double)(t1 - t0);
	block_clock_tsc = true;
}

static void block_clock_init(void)
{
	block_clock_calibrate();
	atomic_store_explicit(&block_clock_ready, true, memory_order_release);
}

/* A timestamp for timing a wait: counter ticks, or ns. */
static inline uint64_t block_clock_now(void)
{
	if (unlikely(!atomic_load_explicit(&block_clock_ready,
					   memory_order_acquire)))
		pthread_once(&block_clock_once, block_clock_init);
	return block_clock_tsc ? block_ticks_read() : (uint64_t)co_now();
}

static inline int64_t block_clock_ns(uint64_t from, uint64_t to)
{
	if (to <= from)
		return 0;
	return block_clock_tsc ? (int64_t)((double)(to - from) * block_ns_per_tick)
			       : (int64_t)(to - from);
}

uint64_t introspect_clock_now(void)
{
	return block_clock_now();
}

bool sched_clock_counter(void)
{
	(void)block_clock_now(); /* calibrated */
	return block_clock_tsc;
}

int64_t introspect_clock_ns(uint64_t from, uint64_t to)
{
	return block_clock_ns(from, to);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static inline uint32_t fastrand(struct worker *w)
{
	uint32_t x = w->rand;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return w->rand = x;
}

int64_t sched_deadline_after(int64_t ns)
{
	int64_t now = co_now();

	/* Saturate: INT64_MAX itself means "no timer" to the heaps. */
	return ns >= INT64_MAX - 1 - now ? INT64_MAX - 1 : now + ns;
}

/* A seed from the kernel, so that select's choices differ from run to run
 * and from worker to worker, as Go's fastrand does (seeded from
 * getrandom at start-up).  Never zero: xorshift stays at zero. */
static uint32_t rand_seed(void)
{
	uint32_t seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)co_now() ^ (uint32_t)(uintptr_t)&seed;
	return seed ? seed : 0x2545f491u;
}

uint32_t sched_rand(void)
{
	static _Thread_local uint32_t foreign;
	struct worker *w = sched_worker();

	if (w)
		return fastrand(w);
	if (unlikely(foreign == 0))
		foreign = rand_seed();
	foreign ^= foreign << 13;
	foreign ^= foreign >> 17;
	foreign ^= foreign << 5;
	return foreign;
}

void sched_cpu_relax(void) { cpu_relax(); }

/* ------------------------------------------------------------------------
 * Spinlocks
 * ---------------------------------------------------------------------- */

/*
 * A waiter that loses the race for a freed lock backs off for a random
 * number of pauses below a window that doubles with each loss (up to
 * SPIN_BACKOFF_MAX), before it watches the lock again.  Without it every
 * waiter that saw the release tries its exchange at once: a release
 * handed over among W waiters moves the lock's line W times (the herd of
 * docs/design.md, "Many workers"); with it, the losers spread out and a
 * hand-off costs a few transfers whatever W is.  The first try after a
 * release is not delayed, so a lock with one waiter (2 workers) pays
 * nothing.
 */
#define SPIN_BACKOFF_MAX 256

void spin_lock_slow(spinlock *l)
{
	uint32_t window = 4;

	for (int i = 0;; i++) {
		while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
			if (i++ < 1000) {
				cpu_relax();
			} else {
				/* The holder's thread may be descheduled. */
				sched_yield();
				i = 0;
			}
		}
		if (!atomic_exchange_explicit(&l->locked, 1,
					      memory_order_acquire))
			return;
		for (uint32_t n = sched_rand() & (window - 1); n > 0; n--)
			cpu_relax();
		if (window < SPIN_BACKOFF_MAX)
			window *= 2;
	}
}

void spin_unlock_cb(void *l) { spin_unlock(l); }

/* ------------------------------------------------------------------------
 * Run queues (Go's runqput / runqget / runqgrab)
 * ---------------------------------------------------------------------- */

/* Doubles the global ring; call with global_lock held. */
static bool global_grow_locked(size_t need)
{
	size_t cap = S.gcap ? S.gcap : 1024;
	struct task **buf;

	while (cap < need)
		cap *= 2;
	if (cap == S.gcap)
		return true;
	if (!(buf = malloc(cap * sizeof(*buf))))
		return false;
	for (size_t i = 0; i < atomic_load(&S.gcount); i++)
		buf[i] = S.gbuf[(S.ghead + i) & (S.gcap - 1)];
	free(S.gbuf);
	S.gbuf = buf;
	S.ghead = 0;
	S.gcap = cap;
	return true;
}

static void global_put(struct task *const *tasks, uint32_t n)
{
	pthread_mutex_lock(&S.global_lock);
	size_t len = atomic_load(&S.gcount);
	if (len + n > S.gcap && !global_grow_locked(len + n))
		co_fatal("global_put: out of memory for the run queue");
	for (uint32_t i = 0; i < n; i++)
		S.gbuf[(S.ghead + len + i) & (S.gcap - 1)] = tasks[i];
	atomic_fetch_add(&S.gcount, n);
	pthread_mutex_unlock(&S.global_lock);
}

/* Ring full: move half of it and t to the global queue.  False if a thief
 * took from the ring meanwhile (the caller retries). */
static bool runq_put_slow(struct worker *w, struct task *t, uint32_t h,
			  uint32_t tl)
{
	uint32_t n = (tl - h) / 2;
	struct task *batch[RUNQ_SIZE / 2 + 1];

	for (uint32_t i = 0; i < n; i++)
		batch[i] = atomic_load_explicit(&w->runq.buf[(h + i) % RUNQ_SIZE],
						memory_order_relaxed);
	if (!atomic_compare_exchange_strong_explicit(
		    &w->runq.head, &h, h + n, memory_order_release,
		    memory_order_relaxed))
		return false;
	batch[n] = t;
	global_put(batch, n + 1);
	return true;
}

static void runq_put_tail(struct worker *w, struct task *t)
{
	for (;;) {
		uint32_t h = atomic_load_explicit(&w->runq.head,
						  memory_order_acquire);
		uint32_t tl = atomic_load_explicit(&w->runq.tail,
						   memory_order_relaxed);
		if (tl - h < RUNQ_SIZE) {
			atomic_store_explicit(&w->runq.buf[tl % RUNQ_SIZE], t,
					      memory_order_relaxed);
			atomic_store_explicit(&w->runq.tail, tl + 1,
					      memory_order_release);
			return;
		}
		if (runq_put_slow(w, t, h, tl))
			return;
	}
}

/* Puts t in runnext; the task it displaces goes to the ring's tail.  The
 * exchange is a full barrier, which wakep relies on. */
static inline void runq_put_next(struct worker *w, struct task *t)
{
	struct task *old = atomic_exchange(&w->runnext, t);
	if (old)
		runq_put_tail(w, old);
}

/*
 * Starts loading the record and saved frame of a task that will run soon.
 * With many short tasks in flight (a burst of co_go) each one's record and
 * stack were last written by another core or evicted long ago: switching
 * in would wait for memory twice (the record, then the frame its saved sp
 * points to).  A queue knows its next task one run ahead, long enough to
 * hide most of that.  The slot may have been taken meanwhile: a prefetch
 * of a stale pointer costs nothing and cannot fault.
 */
static inline void task_prefetch(const struct task *t)
{
	__builtin_prefetch(t, 1);
	__builtin_prefetch((const char *)t + CACHELINE, 1);
	/* A fresh task's frame sits right below its record. */
	__builtin_prefetch((const char *)t - CACHELINE, 1);
}

static struct task *runq_get(struct worker *w)
{
	struct task *t = atomic_load_explicit(&w->runnext, memory_order_relaxed);

	if (t && atomic_compare_exchange_strong(&w->runnext, &t, NULL))
		return t;
	for (;;) {
		uint32_t h = atomic_load_explicit(&w->runq.head,
						  memory_order_acquire);
		uint32_t tl = atomic_load_explicit(&w->runq.tail,
						   memory_order_relaxed);
		if (tl == h)
			return NULL;
		t = atomic_load_explicit(&w->runq.buf[h % RUNQ_SIZE],
					 memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(
			    &w->runq.head, &h, h + 1, memory_order_release,
			    memory_order_relaxed)) {
			if (tl - h > 1)
				task_prefetch(atomic_load_explicit(
					&w->runq.buf[(h + 1) % RUNQ_SIZE],
					memory_order_relaxed));
			return t;
		}
	}
}

static bool runq_empty(struct worker *w)
{
	return atomic_load(&w->runq.head) == atomic_load(&w->runq.tail) &&
	       atomic_load(&w->runnext) == NULL;
}

/*
 * Takes victim's runnext (or its yield slot) only once the victim has not
 * switched for RUNNEXT_STEAL_NS.  A task readied into runnext is usually
 * the partner of the running one (a channel send wakes the receiver, the
 * sender parks soon after): stealing it splits the pair across workers and
 * every message then costs a cache-line transfer (bufchan: 16 M/s split,
 * 70 M/s together).  Go waits about 3 us; we wait longer, still within a
 * spinning thief's budget (SPIN_NS), so a woken task whose waker keeps
 * running is picked up after at most that long.
 *
 * Unless several workers have nothing to do: then the wait is
 * RUNNEXT_STEAL_IDLE_NS, Go's order of magnitude.  That is the worker
 * pool's convoy (docs/design.md, "Many workers"): the producer, readied
 * into the runnext of a pool task that does not park, waits there while
 * the job buffer drains, and every pool task parks.  With 16 workers the
 * buffer drains in 5 us, well inside 40, and one worker after another
 * goes idle; the second idle one moves the producer.  A pair streaming
 * through a buffer keeps its 40 us while at most one worker is idle (two
 * workers: always), and pairs that switch are never taken (the switch
 * count moves).
 */
static struct task *steal_runnext(struct worker *w, struct worker *victim)
{
	struct task *next = atomic_load(&victim->runnext);
	struct task *slot = atomic_load(&victim->yield_slot);
	uint64_t sw = atomic_load(&victim->nswitch);

	if (!next && !slot)
		return NULL;
	if (w->rn_victim != victim || w->rn_nswitch != sw) {
		w->rn_victim = victim;
		w->rn_nswitch = sw;
		w->rn_since = co_now();
		return NULL;
	}
	int looking = atomic_load_explicit(&S.nidle, memory_order_relaxed) +
		      atomic_load_explicit(&S.nspinning, memory_order_relaxed);
	int64_t hold = looking >= 2 ? RUNNEXT_STEAL_IDLE_NS : RUNNEXT_STEAL_NS;
	if (co_now() - w->rn_since < hold)
		return NULL;
	/* The victim has run one task for a while: whatever waits in its
	 * runnext or yield slot would wait for as long as that task runs. */
	w->rn_victim = NULL;
	if (next && atomic_compare_exchange_strong(&victim->runnext, &next, NULL))
		return next;
	if (slot && atomic_compare_exchange_strong(&victim->yield_slot, &slot,
						   NULL))
		return slot;
	return NULL;
}

/*
 * Steals half of victim's ring into w's (empty) ring and returns one task
 * to run.  runnext is taken only if it stayed put while the victim did no
 * switch for a moment: a task readied into runnext is usually about to run
 * on its worker (ping-pong), and stealing it would only move the pair
 * across threads.
 */
static struct task *runq_steal(struct worker *w, struct worker *victim)
{
	uint32_t wt = atomic_load_explicit(&w->runq.tail, memory_order_relaxed);

	for (;;) {
		uint32_t h = atomic_load_explicit(&victim->runq.head,
						  memory_order_acquire);
		uint32_t tl = atomic_load_explicit(&victim->runq.tail,
						   memory_order_acquire);
		uint32_t n = tl - h;
		n -= n / 2;
		if (n == 0)
			return steal_runnext(w, victim);
		if (n > RUNQ_SIZE / 2)
			continue; /* read head and tail out of step */
		for (uint32_t i = 0; i < n; i++) {
			struct task *t = atomic_load_explicit(
				&victim->runq.buf[(h + i) % RUNQ_SIZE],
				memory_order_relaxed);
			atomic_store_explicit(&w->runq.buf[(wt + i) % RUNQ_SIZE],
					      t, memory_order_relaxed);
		}
		if (atomic_compare_exchange_strong_explicit(
			    &victim->runq.head, &h, h + n, memory_order_release,
			    memory_order_relaxed)) {
			struct task *t = atomic_load_explicit(
				&w->runq.buf[(wt + n - 1) % RUNQ_SIZE],
				memory_order_relaxed);
			if (n > 1)
				atomic_store_explicit(&w->runq.tail, wt + n - 1,
						      memory_order_release);
			return t;
		}
	}
}

/* Takes a fair share of the global queue: one to run, more into the ring. */
static struct task *global_get(struct worker *w, uint32_t max)
{
	struct task *t;

	if (atomic_load_explicit(&S.gcount, memory_order_relaxed) == 0)
		return NULL;
	pthread_mutex_lock(&S.global_lock);
	uint32_t n = atomic_load(&S.gcount);
	if (n == 0) {
		pthread_mutex_unlock(&S.global_lock);
		return NULL;
	}
	/* Never more than the ring can hold: an overflow would come back
	 * here for global_lock, which we hold. */
	uint32_t room = RUNQ_SIZE - (atomic_load(&w->runq.tail) -
				     atomic_load(&w->runq.head));
	uint32_t take = n / (uint32_t)S.nprocs + 1;
	if (take > n)
		take = n;
	if (take > max)
		take = max;
	if (take > room + 1)
		take = room + 1;
	t = S.gbuf[S.ghead];
	for (uint32_t i = 1; i < take; i++)
		runq_put_tail(w, S.gbuf[(S.ghead + i) & (S.gcap - 1)]);
	S.ghead = (S.ghead + take) & (S.gcap - 1);
	atomic_fetch_sub(&S.gcount, take);
	pthread_mutex_unlock(&S.global_lock);
	return t;
}

/* ------------------------------------------------------------------------
 * Waking idle workers
 * ---------------------------------------------------------------------- */

/* With workers added by the monitor, COPPER_PROCS workers may already run
 * tasks besides the stuck ones: then nobody more is woken (the limit on
 * parallelism is kept loosely, as a worker that comes unstuck runs on
 * until it idles). */
static inline bool procs_all_busy(void)
{
	int n = nworkers();

	if (likely(n == S.nprocs))
		return false;
	return n - atomic_load(&S.nidle) - atomic_load(&S.nstuck) >= S.nprocs;
}

static void monitor_kick(void);

/* Wakes one idle worker as a spinner.  Sending under idle_lock keeps the
 * worker's async handle open until the send is done (worker_destroy
 * closes it under the same lock). */
static void wake_one(void)
{
	pthread_mutex_lock(&S.idle_lock);
	struct worker *v = S.idle_list;
	if (v && !atomic_load(&S.stopping)) {
		S.idle_list = v->idle_next;
		v->idle = false;
		atomic_fetch_sub(&S.nidle, 1);
		atomic_fetch_add(&S.nspinning, 1);
		v->spinning = true;
		uv_async_send(&v->wake);
	}
	pthread_mutex_unlock(&S.idle_lock);
}

/* A timer became the earliest of its heap: an idle worker armed for a
 * later deadline (or none) must re-arm (Go's wakeNetPoller). */
void sched_timer_added(int64_t when)
{
	if (atomic_load_explicit(&S.nidle, memory_order_relaxed) > 0 &&
	    when < atomic_load_explicit(&S.poll_until, memory_order_relaxed))
		wake_one();
}

/* Called after making work available, behind a full barrier. */
static inline void wakep(void)
{
	if (atomic_load_explicit(&S.nidle, memory_order_relaxed) > 0 &&
	    atomic_load_explicit(&S.nspinning, memory_order_relaxed) == 0 &&
	    likely(!procs_all_busy()))
		wake_one();
}

static void idle_push(struct worker *w)
{
	pthread_mutex_lock(&S.idle_lock);
	w->idle = true;
	w->idle_next = S.idle_list;
	S.idle_list = w;
	atomic_fetch_add(&S.nidle, 1);
	pthread_mutex_unlock(&S.idle_lock);
}

static void idle_remove(struct worker *w)
{
	pthread_mutex_lock(&S.idle_lock);
	if (w->idle) {
		struct worker **pp = &S.idle_list;
		while (*pp != w)
			pp = &(*pp)->idle_next;
		*pp = w->idle_next;
		w->idle = false;
		atomic_fetch_sub(&S.nidle, 1);
	}
	pthread_mutex_unlock(&S.idle_lock);
	monitor_kick();
}

static void spin_stop(struct worker *w)
{
	if (!w->spinning)
		return;
	w->spinning = false;
	atomic_fetch_sub(&S.nspinning, 1);
}

/* ------------------------------------------------------------------------
 * Switching
 * ---------------------------------------------------------------------- */

/* Completes what the context that switched away left to do (see "After
 * the switch" above).  Runs on the thread that performed the switch. */
static inline void after_switch(struct worker *w)
{
	enum after_op op = w->after_op;
	struct task *prev = w->after_task;

	if (op == AFTER_NONE)
		return;
	w->after_op = AFTER_NONE;
	/* Its registers are saved now; clear on_cpu before anything can
	 * publish it (a run queue, an unlocked wait queue, the pool). */
	atomic_store_explicit(&prev->on_cpu, 0, memory_order_release);
	switch (op) {
	case AFTER_PARK:
		if (w->after_fn)
			w->after_fn(w->after_arg);
		if (unlikely(w->after_emit))
			park_emit(w, prev);
		break;
	case AFTER_YIELD:
		runq_put_tail(w, prev);
		break;
	case AFTER_YIELD_SLOT:
		atomic_store_explicit(&w->yield_slot, prev,
				      memory_order_release);
		break;
	case AFTER_YIELD_SLOT_WAKE:
		atomic_store_explicit(&w->yield_slot, prev,
				      memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		wakep();
		break;
	case AFTER_SPAWN:
		runq_put_next(w, prev);
		wakep();
		break;
	case AFTER_EXIT:
		stack_slot_put(w, prev);
		break;
	case AFTER_NONE:
		break;
	}
}

static inline void mark_running(struct worker *w, struct task *t)
{
	/* Store on_cpu, then load active: a snapshot does the mirror image
	 * (store active, then membarrier, then load on_cpu), so one of the
	 * two sees the other without a fence on this path. */
	atomic_store_explicit(&t->on_cpu, 1, memory_order_relaxed);
	if (unlikely(!snapshot_gate.membarrier))
		atomic_thread_fence(memory_order_seq_cst);
	else
		atomic_signal_fence(memory_order_seq_cst);
	if (unlikely(atomic_load_explicit(&snapshot_gate.active,
					  memory_order_relaxed)))
		snapshot_before_run(t);
	w->current = t;
	t->worker = w;
	task_set_state(t, TASK_RUNNABLE, TASK_RUNNING, memory_order_relaxed);
	atomic_store_explicit(&w->nswitch,
			      atomic_load_explicit(&w->nswitch,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/*
 * The successor a parking task may switch to directly, or NULL when the
 * worker must go through its scheduler context: nothing local, the
 * periodic visit, an expired timer, or shutdown.
 */
static inline struct task *pick_next_local(struct worker *w)
{
	if (unlikely(++w->tick % SCHED_GLOBAL_EVERY == 0))
		return NULL;
	if (unlikely(timer_next(w) != INT64_MAX) && co_now() >= timer_next(w))
		return NULL;
	if (unlikely(atomic_load_explicit(&S.stopping, memory_order_relaxed)))
		return NULL;
	struct task *t = runq_get(w);
	if (!t && atomic_load_explicit(&w->yield_slot, memory_order_relaxed))
		t = atomic_exchange(&w->yield_slot, NULL);
	return t;
}

/*
 * Switches from the running task t to next (or to the scheduler when next
 * is NULL).  Returns when t is resumed, possibly on another worker: the
 * switch hands back the resumer's worker, so no TLS read follows it.
 * Inlined into its three callers (park, yield, exit): a yield then saves
 * the callee-saved registers once in its own prologue and once in the
 * switch, instead of a third time in a frame of switch_from's.  Profiles
 * do not care: identical waits still share one return address (their
 * park path's), and the symbolizer hides runtime frames, inlined ones
 * too.
 */
static inline __attribute__((always_inline)) void
switch_from(struct worker *w, struct task *t, struct task *next)
{
	if (unlikely(t->has_canary) && !stack_canary_ok(t))
		co_fatal("stack overflow in task %llu (%s), created by task "
			 "%llu: the canary at the foot of its stack is gone",
			 (unsigned long long)t->id, t->name ? t->name : "",
			 (unsigned long long)t->creator_id);
	struct switch_ctx *to;

	if (next) {
		mark_running(w, next);
		san_switch_start(&t->asan_fake_stack, t->id == 0,
				 (void *)next->stack_lo,
				 next->stack_hi - next->stack_lo);
		to = &next->ctx;
	} else {
		w->current = NULL;
		san_switch_start(&t->asan_fake_stack, t->id == 0,
				 w->sched_stack_lo, w->sched_stack_size);
		to = &w->sched_ctx;
	}
	w = switch_context(&t->ctx, to, w);
	san_switch_finish(t->asan_fake_stack);
	after_switch(w);
	if (unlikely(hook_on(INTROSPECT_EV_RUN)))
		run_emit(w, t);
}

static inline __attribute__((always_inline)) void
park(enum task_state state, enum wait_reason why, void *obj,
     void (*unlock)(void *), void *arg)
{
	struct worker *w = sched_worker();
	struct task *t = w->current;

	assert(t && (state == TASK_WAITING || state == TASK_SYSCALL));
	t->wait_obj = obj;
	atomic_store_explicit(&t->wait_reason, why, memory_order_relaxed);
	t->wait_since = sched_coarse_now();
	task_set_state(t, TASK_RUNNING, state, memory_order_release);
	/* The park event goes out after the switch, once unlock has run:
	 * what it needs is kept here, as the task may be running again
	 * elsewhere by then. */
	w->after_emit = hook_on(INTROSPECT_EV_PARK);
	if (unlikely(w->after_emit)) {
		w->after_reason = (uint8_t)why;
		w->after_obj = obj;
		w->after_id = t->id;
	}
	w->after_op = AFTER_PARK;
	w->after_task = t;
	w->after_fn = unlock;
	w->after_arg = arg;
	switch_from(w, t, pick_next_local(w));
}

void sched_park(enum task_state state, enum wait_reason why,
		void (*unlock)(void *), void *arg)
{
	park(state, why, NULL, unlock, arg);
}

void sched_park_on(enum wait_reason why, void *obj, void (*unlock)(void *),
		   void *arg)
{
	/* Go's block profile leaves out network waits (and sleeps, which
	 * do not come here): so does the event. */
	if (likely(!hook_on(INTROSPECT_EV_BLOCK)) || why == WAIT_IO) {
		park(TASK_WAITING, why, obj, unlock, arg);
		return;
	}
	struct task *t = sched_worker()->current;
	uint64_t start = block_clock_now();
	park(TASK_WAITING, why, obj, unlock, arg);
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_BLOCK, .task = t, .id = t->id,
		.reason = why, .object = obj,
		.ns = block_clock_ns(start, block_clock_now()),
	};
	hooks_emit(&ev);
}

/*
 * The trace writes a park or an exit together with the run that follows
 * it on the same worker, with one clock read: they are one switch.  The
 * park (after the switch, in after_switch) or the exit (before it) is
 * kept pending on the worker; the run (run_emit) writes both; when the
 * worker goes through its scheduler loop instead, the loop writes the
 * pending event alone (trace_flush) and the run later reads its own time.
 * Writing them apart cost a ping-pong 5 ns a round trip more.
 */
static void trace_pend(struct worker *w, enum introspect_event e,
		       uint64_t id, int reason)
{
	w->trace_pend = (uint8_t)e + 1;
	w->trace_pend_reason = (uint8_t)reason;
	w->trace_pend_id = id;
	w->trace_pend_gen = atomic_load_explicit(&tracebuf_gen,
						 memory_order_relaxed);
}

/* The pending park or exit, if it belongs to the running trace. */
static inline bool trace_pending(struct worker *w)
{
	if (likely(!w->trace_pend))
		return false;
	if (w->trace_pend_gen == atomic_load_explicit(&tracebuf_gen,
						      memory_order_relaxed))
		return true;
	w->trace_pend = 0; /* an earlier trace's */
	return false;
}

static void trace_flush(struct worker *w)
{
	if (trace_pending(w))
		tracebuf_put(w->id, (enum introspect_event)(w->trace_pend - 1),
			     w->trace_pend_id, 0, w->trace_pend_reason);
	w->trace_pend = 0;
}

/* The park event, on the context that ran after the switch, once the
 * wait queue's lock was released (after_switch). */
__attribute__((cold, noinline)) static void park_emit(struct worker *w,
						     struct task *prev)
{
	if (hook_traced(INTROSPECT_EV_PARK))
		trace_pend(w, INTROSPECT_EV_PARK, w->after_id, w->after_reason);
	if (!hook_subscribed(INTROSPECT_EV_PARK))
		return;
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_PARK, .task = prev, .id = w->after_id,
		.reason = w->after_reason, .object = w->after_obj,
	};
	hooks_emit(&ev);
}

/* The run event (the trace): t runs on w now, after the switch. */
__attribute__((cold, noinline)) static void run_emit(struct worker *w,
						    struct task *t)
{
	if (hook_traced(INTROSPECT_EV_RUN)) {
		if (trace_pending(w))
			tracebuf_put_switch(
				w->id,
				(enum introspect_event)(w->trace_pend - 1),
				w->trace_pend_id, w->trace_pend_reason, t->id);
		else
			tracebuf_put(w->id, INTROSPECT_EV_RUN, t->id, 0, 0);
		w->trace_pend = 0;
	}
	if (!hook_subscribed(INTROSPECT_EV_RUN))
		return;
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_RUN, .task = t, .id = t->id,
		.worker = w->id,
	};
	hooks_emit(&ev);
}

/* The unpark event: now, or after the timer heap's lock when a timer
 * fired it (hooks.c, "Locks"). */
__attribute__((cold, noinline)) static void unpark_emit(struct task *t)
{
	struct worker *w = sched_worker();

	if (hook_traced(INTROSPECT_EV_UNPARK))
		tracebuf_put(w ? w->id : -1, INTROSPECT_EV_UNPARK, t->id,
			     w && !w->in_timers && w->current ? w->current->id
							      : 0,
			     0);
	if (!hook_subscribed(INTROSPECT_EV_UNPARK))
		return;
	if (w && w->in_timers) {
		/* timers_run flushes before this can fill (timers_defer_full) */
		w->unpark_defer[w->nunpark_defer].task = t;
		w->unpark_defer[w->nunpark_defer++].id = t->id;
		return;
	}
	struct task *waker = w && !w->in_timers ? w->current : NULL;
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_UNPARK, .task = t, .id = t->id,
		.other = waker, .other_id = waker ? waker->id : 0,
	};
	hooks_emit(&ev);
}

void sched_timers_begin(struct worker *self)
{
	self->in_timers = true;
}

void sched_timers_end(struct worker *self)
{
	self->in_timers = false;
	sched_timers_flush(self);
}

/* The unpark events deferred while a heap's lock was held, with the ids
 * the tasks had when their timers fired. */
void sched_timers_flush(struct worker *self)
{
	for (uint32_t i = 0; i < self->nunpark_defer; i++) {
		struct introspect_event_info ev = {
			.event = INTROSPECT_EV_UNPARK,
			.task = self->unpark_defer[i].task,
			.id = self->unpark_defer[i].id,
		};
		hooks_emit(&ev);
	}
	self->nunpark_defer = 0;
}

bool sched_timers_defer_full(struct worker *self)
{
	return self->nunpark_defer ==
	       sizeof(self->unpark_defer) / sizeof(self->unpark_defer[0]);
}

/*
 * A waker can find a task before it has finished switching away: a timer
 * added just before the park can fire on another worker.  Wait until its
 * registers are saved (after_switch clears on_cpu), as the kernel's
 * try_to_wake_up waits for p->on_cpu.  Wakers that found the task through
 * a lock its park released never wait here: on_cpu is cleared first.
 */
static inline void wait_off_cpu(struct task *t)
{
	while (unlikely(atomic_load_explicit(&t->on_cpu, memory_order_acquire)))
		cpu_relax();
}

/* WAITING/SYSCALL -> RUNNABLE: the one transition every ready path
 * (sched_ready, sleep_fire) makes before it queues the task. */
static inline void task_make_runnable(struct task *t)
{
	wait_off_cpu(t);
	assert(task_check(t));
	if (hook_on(INTROSPECT_EV_UNPARK))
		unpark_emit(t);
	enum task_state from = atomic_load_explicit(&t->state,
						    memory_order_relaxed);
	assert(from == TASK_WAITING || from == TASK_SYSCALL);
	(void)from; /* read by the asserts only */
	atomic_store_explicit(&t->wait_reason, WAIT_NONE, memory_order_relaxed);
	task_set_state(t, from, TASK_RUNNABLE, memory_order_relaxed);
}

void sched_ready(struct task *t)
{
	struct worker *w = sched_worker();

	task_make_runnable(t);
	if (likely(w != NULL)) {
		runq_put_next(w, t);
	} else {
		global_put(&t, 1);
		atomic_thread_fence(memory_order_seq_cst);
	}
	wakep();
}

/* Drops what a task owns besides its slot: a heap copy of its name and
 * its reference to a label set. */
static void task_release(struct task *t)
{
	if (t->name_heap)
		free((void *)t->name);
	t->name = NULL;
	t->name_heap = 0;
	if (t->labels && runtime_hooks.labels_unref)
		runtime_hooks.labels_unref(t->labels);
	t->labels = NULL;
}

static _Noreturn void task_exit(void)
{
	struct worker *w = sched_worker();
	struct task *t = w->current;

	if (hook_on(INTROSPECT_EV_EXIT)) {
		if (hook_traced(INTROSPECT_EV_EXIT)) {
			trace_flush(w); /* a park pending from before */
			trace_pend(w, INTROSPECT_EV_EXIT, t->id, 0);
		}
		struct introspect_event_info ev = {
			.event = INTROSPECT_EV_EXIT, .task = t, .id = t->id,
		};
		if (hook_subscribed(INTROSPECT_EV_EXIT))
			hooks_emit(&ev);
	}
	if (unlikely(atomic_load_explicit(&snapshot_gate.active,
					  memory_order_relaxed)))
		snapshot_before_exit(t);
	if (t->id == 1)
		request_stop(); /* co_run returns; the rest are abandoned */
	/* Id 0 first: a signal handler that samples this task (a snapshot,
	 * a stall report) takes id 0 as "exiting" and reads nothing that
	 * task_release frees. */
	t->id = 0;
	atomic_signal_fence(memory_order_seq_cst);
	task_release(t);
	task_set_state(t, TASK_RUNNING, TASK_DEAD, memory_order_release);
	atomic_store_explicit(&w->nexited,
			      atomic_load_explicit(&w->nexited,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
	w->after_op = AFTER_EXIT;
	w->after_task = t;
	san_unpoison_stack(t);
	switch_from(w, t, pick_next_local(w));
	co_fatal("task_exit: a dead task was resumed");
}

int introspect_worker_self(void)
{
	struct worker *w = tls_worker;
	return w ? w->id : -1;
}

uintptr_t sched_task_main_addr(void) { return (uintptr_t)task_main; }

static void task_main(void *arg)
{
	struct task *t = arg;

	san_switch_finish(NULL);
	after_switch(sched_worker());
	if (unlikely(hook_on(INTROSPECT_EV_RUN)))
		run_emit(sched_worker(), t);
	t->started = 1;
	t->fn(t->arg);
	task_exit();
}

/* ------------------------------------------------------------------------
 * Spawning
 * ---------------------------------------------------------------------- */

static uint64_t id_alloc(struct worker *w)
{
	if (unlikely(w->id_next == w->id_end)) {
		w->id_next = atomic_fetch_add(&S.next_id, ID_BATCH);
		w->id_end = w->id_next + ID_BATCH;
	}
	return w->id_next++;
}

static void task_set_name(struct task *t, const char *name)
{
	size_t len = strlen(name);

	if (len < TASK_NAME_INLINE) {
		memcpy(t->name_buf, name, len + 1);
		t->name = t->name_buf;
		return;
	}
	char *copy = strdup(name);
	if (copy) {
		t->name = copy;
		t->name_heap = 1;
	} else {
		/* Out of memory: keep a truncated name rather than fail. */
		memcpy(t->name_buf, name, TASK_NAME_INLINE - 1);
		t->name_buf[TASK_NAME_INLINE - 1] = '\0';
		t->name = t->name_buf;
	}
}

/*
 * A spawn storm: a task that starts children faster than they run would
 * keep every child alive at once, a stack each (1,000,000 children, a
 * gigabyte).  Go bounds it with its time slice: the spawner is preempted
 * and the children run.  Here, once half the ring waits, the new child
 * runs at once and the spawner waits in runnext: a short child exits and
 * the spawner goes on with the child's warm stack in the slot cache, so
 * a storm costs no more memory than a ring's worth of tasks.  Rejected:
 * co_yield in co_go (the spawner then queues behind the whole ring and,
 * behind a ring of yielding tasks, is moved to and fro between the ring
 * and the global queue for seconds), and a bigger ring (it only moves
 * the bound).
 */
static void spawn_run_child(struct worker *w, struct task *parent,
			    struct task *child)
{
	task_set_state(parent, TASK_RUNNING, TASK_RUNNABLE,
		       memory_order_relaxed);
	w->after_op = AFTER_SPAWN;
	w->after_task = parent;
	switch_from(w, parent, child);
}

static uint64_t spawn(const char *name, void (*fn)(void *), void *arg,
		      uintptr_t pc)
{
	struct worker *w = sched_worker();
	struct task *parent;
	struct task *t;

	if (unlikely(!fn || !w))
		return 0;
	t = stack_slot_get(w);
	if (unlikely(!t))
		return 0;
	assert(task_check(t));
	parent = w->current;
	t->id = id_alloc(w);
	t->fn = fn;
	t->arg = arg;
	t->creator_id = parent ? parent->id : 0;
	t->creator_pc = pc;
	t->labels = parent ? parent->labels : NULL;
	if (t->labels && runtime_hooks.labels_ref)
		runtime_hooks.labels_ref(t->labels);
	t->wait_since = 0;
	t->wait_obj = NULL;
	atomic_store_explicit(&t->longest_run_ns, 0, memory_order_relaxed);
	t->worker = w;
	t->name = NULL;
	if (name)
		task_set_name(t, name);
	atomic_store_explicit(&t->wait_reason, WAIT_NONE, memory_order_relaxed);
	atomic_store_explicit(&t->on_cpu, 0, memory_order_relaxed);
	t->started = 0;
	snapshot_task_born(t);
	switch_init_stack(&t->ctx, (void *)t, task_main, t);
	if (hook_on(INTROSPECT_EV_SPAWN)) {
		struct worker *self = sched_worker();
		if (hook_traced(INTROSPECT_EV_SPAWN))
			tracebuf_put(self ? self->id : -1, INTROSPECT_EV_SPAWN,
				     t->id, parent ? parent->id : 0, 0);
		struct introspect_event_info ev = {
			.event = INTROSPECT_EV_SPAWN, .task = t, .id = t->id,
			.other = parent, .other_id = parent ? parent->id : 0,
		};
		if (hook_subscribed(INTROSPECT_EV_SPAWN))
			hooks_emit(&ev);
	}
	task_set_state(t, TASK_DEAD, TASK_RUNNABLE, memory_order_relaxed);
	atomic_store_explicit(&w->nspawned,
			      atomic_load_explicit(&w->nspawned,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
	uint64_t id = t->id; /* once queued, t may run, exit and be reused */
	if (unlikely(atomic_load_explicit(&w->runq.tail, memory_order_relaxed) -
			     atomic_load_explicit(&w->runq.head,
						  memory_order_relaxed) >=
		     SPAWN_RUN_CHILD_AT) &&
	    parent &&
	    !atomic_load_explicit(&S.stopping, memory_order_relaxed)) {
		spawn_run_child(w, parent, t);
		return id;
	}
	runq_put_next(w, t);
	wakep();
	return id;
}

CO_EXTERN __attribute__((noinline)) uint64_t co_go(void (*fn)(void *), void *arg)
{
	return spawn(NULL, fn, arg, (uintptr_t)__builtin_return_address(0));
}

CO_EXTERN __attribute__((noinline)) uint64_t co_go_named(const char *name,
							 void (*fn)(void *),
							 void *arg)
{
	return spawn(name, fn, arg, (uintptr_t)__builtin_return_address(0));
}

/*
 * co_yield puts the caller behind every runnable task of its worker.  Go's
 * Gosched sends the goroutine to the global queue; here the common case is
 * two or three tasks taking turns on one worker, so the yielder goes into
 * the worker's one-task yield slot, which sits behind the run queue: when
 * the ring and runnext are empty, the slot's task runs next and the caller
 * takes its place, without touching the ring.  Taking the slot is an
 * exchange, because a thief may take it too (steal_runnext, once the
 * worker has not switched for a while); every scheduler visit (at least
 * every 61 rounds) flushes it into the ring.
 *
 * yield_slow is co_yield when the fast path does not apply.  Returns
 * false when nobody else can run here; otherwise prepares the switch and
 * leaves the successor (NULL: the scheduler) in w->yield_next for
 * sched_yield_task, which makes the switch itself.
 */
static __attribute__((noinline)) bool yield_slow(struct worker *w,
						 struct task *t)
{
	struct task *next = pick_next_local(w);

	if (!next && (w->tick % SCHED_GLOBAL_EVERY) != 0 &&
	    timer_next(w) == INT64_MAX &&
	    !atomic_load_explicit(&S.stopping, memory_order_relaxed))
		return false; /* nobody else to run here */
	task_set_state(t, TASK_RUNNING, TASK_RUNNABLE, memory_order_relaxed);
	if (next) {
		/* Keep round-robin order: the slot's task goes behind the
		 * ring, the caller behind it. */
		struct task *slot = NULL;
		if (atomic_load_explicit(&w->yield_slot, memory_order_relaxed))
			slot = atomic_exchange(&w->yield_slot, NULL);
		if (slot)
			runq_put_tail(w, slot);
		/* The slot was empty: a task now waits behind the running
		 * one, so an idle worker must know (the fast path swaps
		 * one waiting task for another and needs no wake-up). */
		w->after_op = slot ? AFTER_YIELD_SLOT : AFTER_YIELD_SLOT_WAKE;
	} else {
		/* Through the scheduler, which flushes the slot anyway. */
		w->after_op = AFTER_YIELD;
	}
	w->after_task = t;
	w->yield_next = next;
	return true;
}

/*
 * The fast path is the two-task swap: no visit due, no timer, runnext and
 * the ring empty, a task in the slot.  It makes no call before the switch
 * but the worker lookup.  Anything else asks yield_slow, which makes the
 * same decision the long way; its result is read back from the worker
 * rather than kept across the call, so no value lives across a call on
 * the way to the switch (measured: each register the compiler must save
 * for that shows in the yield's time).  Both paths switch at
 * the same place, so a yielded task's stack is the same whichever path
 * it took, and tasks yielding at one line group into one profile record.
 * co_yield itself is the assembly frame around this (switch_<arch>.S).
 */
void sched_yield_task(void)
{
	struct worker *w = sched_worker();
	struct task *t = w ? w->current : NULL;
	struct task *next;

	if (!t)
		return;
	uint32_t tick = w->tick + 1;
	if (likely(tick % SCHED_GLOBAL_EVERY != 0 &&
		   timer_next(w) == INT64_MAX &&
		   !atomic_load_explicit(&S.stopping, memory_order_relaxed) &&
		   !atomic_load_explicit(&w->runnext, memory_order_relaxed) &&
		   atomic_load_explicit(&w->runq.head, memory_order_relaxed) ==
			   atomic_load_explicit(&w->runq.tail,
						memory_order_relaxed) &&
		   atomic_load_explicit(&w->yield_slot,
					memory_order_relaxed)) &&
	    likely((next = atomic_exchange(&w->yield_slot, NULL)) != NULL)) {
		w->tick = tick;
		task_set_state(t, TASK_RUNNING, TASK_RUNNABLE,
			       memory_order_relaxed);
		w->after_op = AFTER_YIELD_SLOT;
		w->after_task = t;
	} else {
		if (!yield_slow(w, t))
			return;
		w = sched_worker();
		t = w->current;
		next = w->yield_next;
	}
	switch_from(w, t, next);
}

CO_EXTERN uint64_t co_self(void)
{
	struct task *t = sched_current();
	return t ? t->id : 0;
}

CO_EXTERN size_t co_num_tasks(void)
{
	uint64_t spawned = 0, exited = 0;

	if (!atomic_load(&S.running) || !S.workers)
		return 0;
	/* Exits first: a task counted as exited was spawned before. */
	for (int i = 0; i < nworkers(); i++)
		exited += atomic_load(&S.workers[i].nexited);
	for (int i = 0; i < nworkers(); i++)
		spawned += atomic_load(&S.workers[i].nspawned);
	return spawned > exited ? (size_t)(spawned - exited) : 0;
}

/* ------------------------------------------------------------------------
 * Sleeping and blocking calls
 * ---------------------------------------------------------------------- */

/* A sleeping task's timer fired: ready it at the tail, keeping the order
 * of timers due together.  Like every other ready path it wakes an idle
 * worker when nobody spins: the firing worker may go on to run a task
 * that never parks. */
static void sleep_fire(struct timer *tm)
{
	struct task *t = tm->arg;

	task_make_runnable(t);
	runq_put_tail(sched_worker(), t);
	atomic_thread_fence(memory_order_seq_cst);
	wakep();
}

CO_EXTERN void co_sleep(int64_t ns)
{
	struct worker *w = sched_worker();
	struct task *t = w ? w->current : NULL;
	struct timer tm;

	if (ns <= 0) {
		co_yield();
		return;
	}
	if (!t) {
		struct timespec ts = {ns / 1000000000, ns % 1000000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		return;
	}
	tm.when = sched_deadline_after(ns);
	tm.fire = sleep_fire;
	tm.arg = t;
	if (timer_add(w, &tm) < 0) {
		/* No memory for the heap: still honour the duration. */
		while (co_now() < tm.when)
			co_yield();
		return;
	}
	sched_park(TASK_WAITING, WAIT_SLEEP, NULL, NULL);
}

struct blocking_req {
	uv_work_t req;           /* libuv's request; req.data is this */
	void (*fn)(void *);      /* the blocking call */
	void *arg;               /* its argument */
	struct task *task;       /* the parked caller */
	struct worker *worker;   /* whose loop the request is on */
	int err;                 /* uv_queue_work's refusal, if any */
};

/* On the pool thread: the call begins or has returned (the caller is
 * parked all along, so its record holds still). */
static void blocking_event(struct blocking_req *b, enum introspect_event e)
{
	if (!hook_on(e))
		return;
	struct introspect_event_info ev = {
		.event = e, .task = b->task, .id = b->task->id, .worker = -1,
		.tid = (int)gettid(),
	};
	hooks_emit(&ev);
}

static void blocking_work(uv_work_t *req)
{
	struct blocking_req *b = req->data;
	blocking_event(b, INTROSPECT_EV_BLOCKING_BEGIN);
	b->fn(b->arg);
	blocking_event(b, INTROSPECT_EV_BLOCKING_END);
}

static void blocking_done(uv_work_t *req, int status)
{
	struct blocking_req *b = req->data;
	struct worker *w = b->worker; /* b dies with the caller's frame */
	(void)status;
	/* Ready before the count drops: the deadlock check reads the count
	 * first, then the queues. */
	sched_ready(b->task);
	atomic_fetch_sub(&w->uv_pending, 1);
}

/* After the caller has switched away: queue the call on this thread's loop. */
static void blocking_submit(void *arg)
{
	struct blocking_req *b = arg;
	struct worker *w = sched_worker();

	b->worker = w;
	b->req.data = b;
	b->err = uv_queue_work(&w->loop, &b->req, blocking_work, blocking_done);
	if (b->err == 0)
		atomic_fetch_add(&w->uv_pending, 1);
	else
		sched_ready(b->task);
}

CO_EXTERN int co_blocking(void (*fn)(void *), void *arg)
{
	struct task *t = sched_current();
	struct blocking_req b = {.fn = fn, .arg = arg, .task = t};

	if (!fn)
		return CO_EINVAL;
	if (!t)
		return CO_EPERM;
	sched_park(TASK_SYSCALL, WAIT_SYSCALL, blocking_submit, &b);
	return b.err ? b.err : 0;
}

/* ------------------------------------------------------------------------
 * The scheduler loop
 * ---------------------------------------------------------------------- */

static void run_task(struct worker *w, struct task *t)
{
	assert(task_check(t));
	mark_running(w, t);
	san_switch_start(&w->sched_fake_stack, false, (void *)t->stack_lo,
			 t->stack_hi - t->stack_lo);
	switch_context(&w->sched_ctx, &t->ctx, w);
	san_switch_finish(w->sched_fake_stack);
	after_switch(w);
	if (unlikely(w->trace_pend))
		trace_flush(w);
}

static void uv_poll_nowait(struct worker *w)
{
	if (atomic_load_explicit(&w->uv_pending, memory_order_relaxed))
		uv_run(&w->loop, UV_RUN_NOWAIT);
}

static bool any_work(void)
{
	if (atomic_load(&S.gcount))
		return true;
	for (int i = 0; i < nworkers(); i++)
		if (!runq_empty(&S.workers[i]))
			return true;
	return false;
}

static struct task *steal_any(struct worker *w)
{
	int n = nworkers();
	int start = (int)(fastrand(w) % (uint32_t)n);

	for (int i = 0; i < n; i++) {
		struct worker *v = &S.workers[(start + i) % n];
		if (v == w)
			continue;
		struct task *t = runq_steal(w, v);
		if (t)
			return t;
	}
	return global_get(w, RUNQ_SIZE / 2);
}

/* Spins looking for work, up to SPIN_NS (see "Idle workers" above); at
 * most half the busy workers (and at least one) spin at a time.  Counted
 * as spinning (wakep then wakes nobody) only while it pauses; while it
 * yields it keeps looking uncounted.  A spinner also prepares fresh
 * stacks between looks when a spawner ran short (stack_prepare). */
static struct task *spin_for_work(struct worker *w)
{
	if (!w->spinning) {
		int busy = nworkers() - atomic_load(&S.nidle);
		if (2 * atomic_load(&S.nspinning) >= (busy > 1 ? busy : 1) + 1)
			return NULL;
		w->spinning = true;
		atomic_fetch_add(&S.nspinning, 1);
	}
	int64_t start = co_now(), now;
	for (uint32_t i = 0;; i++) {
		struct task *t = steal_any(w); /* the global queue too */
		if (!t)
			t = runq_get(w);
		if (t) {
			spin_stop(w);
			/* Go's resetspinning: keep a spinner while there is
			 * work, so bursts spread over the workers. */
			atomic_thread_fence(memory_order_seq_cst);
			wakep();
			return t;
		}
		if (atomic_load_explicit(&S.stopping, memory_order_relaxed))
			break;
		if (stack_prepare()) {
			/* A batch of fresh stacks for a busy spawner, between
			 * two looks for work; then spin afresh. */
			start = co_now();
			continue;
		}
		if ((i & 15) == 15) {
			/* Readiness and completions can make work too: look
			 * at this worker's loop without blocking (Go's
			 * netpoll(0) while spinning). */
			uv_poll_nowait(w);
			if ((t = runq_get(w)) != NULL) {
				spin_stop(w);
				return t;
			}
		}
		now = co_now();
		if (now - start >= SPIN_NS)
			break;
		if (now - start >= SPIN_PAUSE_NS) {
			/* Off the spinner count first: sched_yield may lose
			 * the core for a whole time slice, and meanwhile a
			 * producer should wake an idle worker rather than
			 * count on this one.  Go's rule after dropping
			 * spinning: look once more before going on. */
			if (w->spinning) {
				spin_stop(w);
				atomic_thread_fence(memory_order_seq_cst);
				continue;
			}
			sched_yield(); /* the core to whoever else wants it */
		} else {
			for (int k = 0; k < 4; k++)
				cpu_relax();
		}
	}
	spin_stop(w);
	return NULL;
}

/*
 * Go's checkdead: every worker idle, no timer pending, no libuv request in
 * flight, no runnable task, yet tasks are alive.  Then nothing can ever
 * wake them.  Called by a worker that just went idle.
 */
static bool deadlocked(void)
{
	bool dead = false;

	pthread_mutex_lock(&S.idle_lock);
	if (atomic_load(&S.nidle) != nworkers() || atomic_load(&S.stopping))
		goto out;
	for (int i = 0; i < nworkers(); i++)
		if (timer_next(&S.workers[i]) != INT64_MAX ||
		    atomic_load(&S.workers[i].uv_pending))
			goto out;
	dead = !any_work() && co_num_tasks() > 0;
out:
	pthread_mutex_unlock(&S.idle_lock);
	return dead;
}

static void deadlock_line(struct task *t, void *arg)
{
	enum task_state s = atomic_load(&t->state);
	(void)arg;
	if (s == TASK_DEAD)
		return;
	fprintf(stderr, "goroutine %llu [%s]: created by goroutine %llu%s%s\n",
		(unsigned long long)t->id,
		task_status_text(s, atomic_load(&t->wait_reason)),
		(unsigned long long)t->creator_id, t->name ? ", name " : "",
		t->name ? t->name : "");
}

static _Noreturn void deadlock_exit(void)
{
	static atomic_flag reported = ATOMIC_FLAG_INIT;

	/* Several idle workers may find the deadlock at once: one reports,
	 * the others wait for the exit. */
	if (atomic_flag_test_and_set(&reported))
		for (;;)
			pause();
	fflush(stdout);
	fprintf(stderr, "fatal error: all goroutines are asleep - deadlock!\n\n");
	if (fatal_dump_hook)
		fatal_dump_hook(STDERR_FILENO);
	else
		stack_each_slot(deadlock_line, NULL);
	fflush(stderr);
	_exit(2);
}

/* The earliest timer of any worker. */
static int64_t timers_next_all(void)
{
	int64_t next = INT64_MAX;

	for (int i = 0; i < nworkers(); i++) {
		int64_t t = timer_next(&S.workers[i]);
		if (t < next)
			next = t;
	}
	return next;
}

/*
 * Fires the due timers of every worker, readying their tasks here.  A
 * worker busy with a task that never parks cannot run its own timers, so
 * the others do it for it (Go's findrunnable steals timers the same way).
 */
static void timers_run_all(struct worker *w)
{
	int64_t now = co_now();

	timers_run(w, now);
	for (int i = 0; i < nworkers(); i++)
		if (&S.workers[i] != w && timer_next(&S.workers[i]) <= now)
			timers_run(&S.workers[i], now);
}

/*
 * The watch.  A task can wait behind a running one where only its own
 * worker takes it without delay: in runnext or the yield slot (thieves
 * leave those alone for RUNNEXT_STEAL_NS, see steal_runnext).  If that
 * worker's task then never parks, the waiting task would wait forever
 * behind it.  So an idle worker does not sleep unbounded while another
 * worker is busy: it wakes after watch_period and takes what waits in
 * runnext or a yield slot of a worker that has not switched since its
 * last look, so a task waits at most two periods.  The period is
 * WATCH_MIN_NS while some such task waits, and
 * doubles up to WATCH_MAX_NS while none does; a look costs a few loads
 * per worker and no spinning.  Go needs no such watch, because its
 * sysmon preempts a goroutine that runs for 10 ms; C code cannot be
 * preempted, but what waits behind it can move.  Rejected: waking an
 * idle worker on every yield into the slot (the two-task swap of
 * co_yield would pay a wake-up per switch whenever a worker idles), and
 * leaving it to a monitor thread alone (a 10-20 ms tick is too slow for
 * a task that only wants the other core).
 */
#define WATCH_MIN_NS 500000    /* a waiting task is taken within 1 ms */
#define WATCH_MAX_NS 16000000  /* ... the back-off while nothing waits */

static inline bool waits_behind(struct worker *v)
{
	return atomic_load_explicit(&v->runnext, memory_order_relaxed) ||
	       atomic_load_explicit(&v->yield_slot, memory_order_relaxed);
}

/* Records every other worker's switch count; returns when to look again,
 * or INT64_MAX when no other worker runs a task (nothing can wait behind
 * one, and new work comes with a wake-up). */
static int64_t watch_arm(struct worker *w, int64_t now)
{
	bool busy = false, waiting = false;

	for (int i = 0; i < nworkers(); i++) {
		struct worker *v = &S.workers[i];
		if (v == w)
			continue;
		w->watch_sw[i] = atomic_load_explicit(&v->nswitch,
						      memory_order_relaxed);
		if (atomic_load_explicit(&v->idle, memory_order_relaxed))
			continue;
		busy = true;
		waiting |= waits_behind(v);
	}
	if (!busy)
		return INT64_MAX;
	if (waiting || w->watch_period == 0)
		w->watch_period = WATCH_MIN_NS;
	else if (w->watch_period < WATCH_MAX_NS)
		w->watch_period *= 2;
	return now + w->watch_period;
}

/* Takes a task that waited in runnext or a yield slot through a whole
 * watch period of a worker that did not switch meanwhile. */
static struct task *watch_take(struct worker *w)
{
	for (int i = 0; i < nworkers(); i++) {
		struct worker *v = &S.workers[i];
		struct task *t;
		if (v == w || atomic_load_explicit(&v->nswitch,
						   memory_order_relaxed) !=
				      w->watch_sw[i])
			continue;
		t = atomic_load(&v->runnext);
		if (t && atomic_compare_exchange_strong(&v->runnext, &t, NULL))
			return t;
		t = atomic_load(&v->yield_slot);
		if (t && atomic_compare_exchange_strong(&v->yield_slot, &t,
							NULL))
			return t;
	}
	return NULL;
}

/* Blocks in the loop until something happens: a wake-up, I/O, a timer,
 * or the watch.  Returns a task the watch took, or NULL (look again). */
static struct task *idle_block(struct worker *w)
{
	if (unlikely(hook_on(INTROSPECT_EV_IDLE))) {
		if (hook_traced(INTROSPECT_EV_IDLE))
			tracebuf_put(w->id, INTROSPECT_EV_IDLE, 0, 0, 0);
		struct introspect_event_info ev = {
			.event = INTROSPECT_EV_IDLE, .worker = w->id,
		};
		if (hook_subscribed(INTROSPECT_EV_IDLE))
			hooks_emit(&ev);
	}
	for (;;) {
		idle_push(w);
		atomic_thread_fence(memory_order_seq_cst);
		if (any_work() || atomic_load(&S.stopping)) {
			idle_remove(w);
			return NULL;
		}
		if (deadlocked())
			deadlock_exit();
		int64_t now = co_now();
		int64_t d = timers_next_all();
		int64_t watch = watch_arm(w, now);
		int64_t arm = d < watch ? d : watch;
		atomic_store(&S.poll_until, d);
		if (arm != INT64_MAX) {
			struct itimerspec its = {
				.it_value = {arm / 1000000000,
					     arm % 1000000000},
			};
			if (arm <= 0)
				its.it_value.tv_nsec = 1;
			timerfd_settime(w->timerfd, TFD_TIMER_ABSTIME, &its,
					NULL);
		}
		uv_run(&w->loop, UV_RUN_ONCE);
		atomic_compare_exchange_strong(&S.poll_until, &d, INT64_MAX);
		/* Still on the idle list: nobody woke this worker. */
		bool unwoken = atomic_load(&w->idle);
		idle_remove(w);
		now = co_now();
		if (!unwoken || now < watch || now >= d ||
		    atomic_load(&S.stopping))
			return NULL;
		struct task *t = watch_take(w);
		if (t || any_work())
			return t;
		/* Nothing was stranded: sleep again, without spinning. */
	}
}

static struct task *find_work(struct worker *w)
{
	struct task *t;

	struct task *slot = atomic_exchange(&w->yield_slot, NULL);
	if (slot) /* to the ring, behind the run queue */
		runq_put_tail(w, slot);
	for (;;) {
		if (atomic_load(&S.stopping))
			return NULL;
		if (timers_next_all() != INT64_MAX)
			timers_run_all(w);
		uv_poll_nowait(w);
		if (w->tick % SCHED_GLOBAL_EVERY == 0 &&
		    (t = global_get(w, RUNQ_SIZE / 2)) != NULL)
			break;
		if ((t = runq_get(w)) != NULL)
			break;
		if ((t = global_get(w, RUNQ_SIZE / 2)) != NULL)
			break;
		if ((t = spin_for_work(w)) != NULL)
			break;
		if (co_now() >= timers_next_all())
			continue;
		if ((t = idle_block(w)) != NULL)
			break;
	}
	spin_stop(w);
	return t;
}

static void sched_loop(struct worker *w)
{
	struct task *t;

	while ((t = find_work(w)) != NULL) {
		w->tick++;
		run_task(w, t);
	}
}

/* ------------------------------------------------------------------------
 * Workers: start and stop
 * ---------------------------------------------------------------------- */

/* Another thread wants this worker: to wake it, or to have its loop
 * (re)arm or close descriptors it owns. */
static void wake_cb(uv_async_t *h)
{
	netpoll_inbox_run(h->data);
}

/* Shutdown: close every handle on the loop; descriptors abandoned by
 * their tasks are closed and freed with them. */
static void walk_close(uv_handle_t *h, void *arg)
{
	struct worker *w = arg;

	if (uv_is_closing(h))
		return;
	if (h == (uv_handle_t *)&w->wake || h == (uv_handle_t *)&w->timer_poll)
		uv_close(h, NULL);
	else
		uv_close(h, netpoll_abandon);
}

static void timer_fd_cb(uv_poll_t *h, int status, int events)
{
	struct worker *w = h->data;
	uint64_t expirations;
	(void)status;
	(void)events;
	if (read(w->timerfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: disarmed meanwhile; nothing to do. */
	}
}

static int worker_init(struct worker *w, int id)
{
	int err;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->rand = rand_seed();
	atomic_store(&w->timers.next, INT64_MAX);
	w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timerfd < 0)
		return -errno;
	if ((err = uv_loop_init(&w->loop)) != 0)
		goto out_close_fd;
	if ((err = uv_async_init(&w->loop, &w->wake, wake_cb)) != 0)
		goto out_close_loop;
	w->wake.data = w;
	if ((err = uv_poll_init(&w->loop, &w->timer_poll, w->timerfd)) != 0)
		goto out_close_async;
	w->timer_poll.data = w;
	if ((err = uv_poll_start(&w->timer_poll, UV_READABLE, timer_fd_cb)) != 0)
		goto out_close_poll;
	return 0;

out_close_poll:
	uv_close((uv_handle_t *)&w->timer_poll, NULL);
out_close_async:
	uv_close((uv_handle_t *)&w->wake, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
out_close_loop:
	uv_loop_close(&w->loop);
out_close_fd:
	close(w->timerfd);
	return err;
}

/* Runs on the worker's own thread once its loop has ended: waits for
 * blocking calls still in flight, then closes the loop. */
static void worker_destroy(struct worker *w)
{
	pthread_mutex_lock(&S.idle_lock);
	uv_walk(&w->loop, walk_close, w);
	pthread_mutex_unlock(&S.idle_lock);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	close(w->timerfd);
	timer_heap_free(&w->timers);
	stack_cache_flush(w);
}

static void worker_bind_thread(struct worker *w)
{
	pthread_attr_t attr;

	tls_worker = w;
	w->thread = pthread_self();
	w->tid = (int)gettid();
	atomic_store(&w->has_cpu_clock,
		     pthread_getcpuclockid(pthread_self(), &w->cpu_clock) == 0);
	atomic_store(&w->thread_live, true);
	w->sched_stack_lo = NULL;
	w->sched_stack_size = 0;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &w->sched_stack_lo,
				      &w->sched_stack_size);
		pthread_attr_destroy(&attr);
	}
}

/*
 * libuv starts its thread pool inside the first request that needs one,
 * and the pool's threads inherit the signal mask of the thread making it:
 * always a worker (co_blocking and name lookups submit from a worker's
 * loop), so no pool thread takes a process-directed signal that no worker
 * would take either.
 */
/* A worker's thread begins or ends: its id is what a CPU profiler needs
 * for a per-thread timer (timer_create, SIGEV_THREAD_ID). */
static void worker_event(struct worker *w, enum introspect_event e)
{
	if (!hook_on(e))
		return;
	if (hook_traced(e))
		tracebuf_put(w->id, e, 0, 0, 0);
	struct introspect_event_info ev = {
		.event = e, .worker = w->id, .tid = (int)gettid(),
	};
	if (hook_subscribed(e))
		hooks_emit(&ev);
}

/* The runtime started a thread (worker index, -1 for the monitor): on
 * the creating thread, so the threadcreate profile records its stack. */
static void thread_created(int worker)
{
	if (!hook_on(INTROSPECT_EV_THREAD_CREATE))
		return;
	struct introspect_event_info ev = {
		.event = INTROSPECT_EV_THREAD_CREATE, .worker = worker,
	};
	hooks_emit(&ev);
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	sigset_t all;

	/* Exactly the workers' mask, whatever the creating thread blocked
	 * (the monitor blocks everything, SIGSEGV and SIGURG included). */
	signal_worker_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	worker_bind_thread(w);
	fatal_thread_init();
	worker_event(w, INTROSPECT_EV_WORKER_START);
	sched_loop(w);
	worker_event(w, INTROSPECT_EV_WORKER_STOP);
	worker_destroy(w);
	fatal_thread_destroy();
	tls_worker = NULL;
	worker_exited(w);
	return NULL;
}

static void sched_reset(void)
{
	free(S.gbuf);
	S.gbuf = NULL;
	S.ghead = S.gcap = 0;
	atomic_store(&S.gcount, 0);
	S.idle_list = NULL;
	atomic_store(&S.nidle, 0);
	atomic_store(&S.nspinning, 0);
	atomic_store(&S.stopping, false);
	atomic_store(&S.next_id, 1);
	atomic_store(&S.poll_until, INT64_MAX);
}

/* Asks every worker to leave its loop (task 1 returned, or start-up
 * failed).  Under idle_lock, so no worker closes its wake handle while a
 * send is under way (worker_destroy). */
static void request_stop(void)
{
	pthread_mutex_lock(&S.idle_lock);
	atomic_store(&S.stopping, true);
	for (int i = 0; i < nworkers(); i++)
		uv_async_send(&S.workers[i].wake);
	pthread_mutex_unlock(&S.idle_lock);
	pthread_mutex_lock(&S.run_lock);
	pthread_cond_broadcast(&S.run_cond);
	pthread_mutex_unlock(&S.run_lock);
}

/*
 * The end of a worker thread, its last touch of the runtime's memory.  A
 * thread co_run waited for tells co_run; a thread co_run abandoned tells
 * the next co_run, which frees what the run left once none is left.
 */
static void worker_exited(struct worker *w)
{
	pthread_mutex_lock(&S.run_lock);
	atomic_store(&w->thread_live, false);
	w->finished = true;
	if (w->abandoned)
		S.nabandoned--;
	pthread_cond_broadcast(&S.run_cond);
	pthread_mutex_unlock(&S.run_lock);
}

/* Configuration, stacks, workers and signal handlers; undoes its own
 * work on failure. */
static int runtime_init(void)
{
	int err, i;

	if ((err = config_load(&S.cfg)) != 0)
		return err;
	S.nprocs = S.cfg.procs;
	misuse_set_mode(S.cfg.misuse);
	S.nmax = S.nprocs + MONITOR_EXTRA_MAX;
	sched_reset();
	atomic_store(&S.nworkers, S.nprocs);
	if ((err = stack_init(S.cfg.stack_size)) != 0)
		return err;
	/* Room for the workers the monitor may add: untouched until then,
	 * so it costs address space, not memory. */
	S.workers = aligned_alloc(CACHELINE,
				  sizeof(struct worker) * (size_t)S.nmax);
	if (!S.workers) {
		err = CO_ENOMEM;
		goto out_stacks;
	}
	S.watch_sw = calloc((size_t)S.nmax * (size_t)S.nmax,
			    sizeof(*S.watch_sw));
	if (!S.watch_sw) {
		err = CO_ENOMEM;
		free(S.workers);
		S.workers = NULL;
		goto out_stacks;
	}
	for (i = 0; i < S.nprocs; i++) {
		if ((err = worker_init(&S.workers[i], i)) != 0)
			goto out_workers;
		S.workers[i].watch_sw = S.watch_sw + (size_t)i * (size_t)S.nmax;
		S.workers[i].has_thread = true; /* start_threads will try */
	}
	if ((err = fatal_signals_init()) != 0)
		goto out_workers;
	if ((err = snapshot_signal_init()) != 0)
		goto out_fatal;
	if ((err = signal_init(&S.cfg)) != 0)
		goto out_snapshot;
	return 0;

out_snapshot:
	snapshot_signal_destroy();
out_fatal:
	fatal_signals_destroy();
out_workers:
	while (i-- > 0)
		worker_destroy(&S.workers[i]);
	free(S.workers);
	S.workers = NULL;
	free(S.watch_sw);
	S.watch_sw = NULL;
out_stacks:
	stack_destroy();
	return err;
}

/* Tasks abandoned when task 1 returned still own their names and label
 * references; their stacks go with the regions. */
static void release_abandoned(struct task *t, void *arg)
{
	(void)arg;
	if (atomic_load(&t->state) == TASK_DEAD)
		return;
	task_release(t);
	/* Its live frames are poisoned; the next mapping at this address
	 * must not inherit that (only the frames in use: unpoisoning whole
	 * stacks would commit shadow for every byte of every region). */
	san_unpoison_range((char *)t->ctx.sp - 512,
			   t->stack_hi - ((uintptr_t)t->ctx.sp - 512));
}

static void runtime_fini(void)
{
	stack_each_slot(release_abandoned, NULL);
	signal_destroy();
	snapshot_signal_destroy();
	fatal_signals_destroy();
	free(S.workers);
	S.workers = NULL;
	free(S.watch_sw);
	S.watch_sw = NULL;
	stack_destroy();
}

/* The deadline of a wait on run_cond, ns from now (CLOCK_MONOTONIC). */
static struct timespec run_deadline(int64_t ns)
{
	int64_t at = co_now() + ns;
	return (struct timespec){at / 1000000000, at % 1000000000};
}

/* ------------------------------------------------------------------------
 * The monitor (Go's sysmon)
 *
 * A worker whose task never parks — it computes, or it is blocked in the
 * kernel (a write to a full pipe, a usleep loop) — runs nothing else, and
 * what waits on its queues, on timers, or for task 1 to return waits with
 * it.  When every worker is in that state the whole program stops.  Go's
 * sysmon retakes the P of an M in a system call and hands it to another
 * M.  Copper cannot take a worker's queues from under a task that may
 * call into the runtime at any instant without a fence on every runtime
 * entry, so it does the other half: a monitor thread looks at every
 * worker every MONITOR_PERIOD_NS; a worker that has run one task for
 * MONITOR_STUCK_NS without a switch is stuck; when tasks or due timers
 * wait, no worker is idle to take them, and fewer than COPPER_PROCS
 * workers are free, the monitor sets up one more worker (its own queue,
 * loop and thread), which steals what waits — runnext and yield slots
 * included, as the stuck worker does not switch.  A stuck worker that
 * comes back runs on; wakep then wakes an idle worker only while fewer
 * than COPPER_PROCS run unstuck, so the extra workers sleep until the
 * next stall.  At most MONITOR_EXTRA_MAX workers are ever added; at the
 * bound tasks wait, and the monitor says so once.
 *
 * What it does not move: descriptors homed on a stuck worker's loop
 * (netpoll.c) are polled by that loop only, so a task in IO wait on one
 * waits until that worker comes back.
 *
 * A worker that has not switched for MONITOR_STUCK_NS is stuck only if
 * its thread ran at all meanwhile (a task that burns CPU) or sleeps in
 * the kernel (a task blocked in a system call).  A thread that was ready
 * to run but got no CPU in all that time is not: the machine is
 * overloaded, and another thread would wait the same way.  (A loaded
 * machine looked, to the monitor, like stuck tasks everywhere, and it
 * added workers up to its bound: an ASan suite on a 2-core machine at
 * load 300 grew to 267 threads, making the load it reacted to.  Stricter
 * rules were tried: "ran at least a quarter of the time" starved a task
 * parked behind a spinner that got 15% of a shared CPU; "a twentieth"
 * still grew to 267 threads under ASan, where task exits themselves
 * take long.  The growth under ASan on an overloaded machine remains.)
 *
 * Cost with nothing stuck: a look every 10 ms while any worker is busy
 * (a few loads and a thread CPU clock read per worker), and none at all
 * once every worker has idled for MONITOR_IDLE_LOOKS looks: then it
 * sleeps until a worker wakes.
 *
 * Rejected: handing the stuck worker's queues to a new thread (Go's
 * handoffp) — the stuck task's own calls into the runtime would then
 * race the new owner unless every entry paid a fence; signals that
 * preempt a task (C code holds locks and libc state a switch must not
 * interrupt).
 * ---------------------------------------------------------------------- */
#define MONITOR_PERIOD_NS 10000000 /* a look every 10 ms */
#define MONITOR_STUCK_NS 20000000  /* one task that long: stuck */
#define MONITOR_IDLE_LOOKS 50      /* all idle that many looks: sleep */

/* Work nobody runs yet: queued somewhere, or a timer due. */
static bool work_waiting(int64_t now)
{
	if (any_work() || timers_next_all() <= now)
		return true;
	for (int i = 0; i < nworkers(); i++)
		if (waits_behind(&S.workers[i]))
			return true;
	return false;
}

static bool all_idle(void)
{
	for (int i = 0; i < nworkers(); i++)
		if (S.workers[i].has_thread && !atomic_load(&S.workers[i].idle))
			return false;
	return true;
}

/* Sets up worker nworkers() and starts its thread. */
static void monitor_add_worker(void)
{
	static bool told;
	int n = nworkers();
	struct worker *w = &S.workers[n];

	if (n >= S.nmax) {
		if (!told)
			fprintf(stderr, "copper: every worker is stuck in a task "
				"and %d workers were added already (the limit); "
				"runnable tasks wait\n", MONITOR_EXTRA_MAX);
		told = true;
		return;
	}
	if (S.monitor_gave_up || worker_init(w, n) != 0)
		return;
	w->watch_sw = S.watch_sw + (size_t)n * (size_t)S.nmax;
	w->has_thread = true;
	/* Under run_lock, against the stop: co_run counts the workers to
	 * wait for under it, after setting stopping; a worker published
	 * after that would never be waited for. */
	pthread_mutex_lock(&S.run_lock);
	if (atomic_load(&S.stopping)) {
		pthread_mutex_unlock(&S.run_lock);
		w->has_thread = false;
		worker_destroy(w); /* never published */
		return;
	}
	atomic_store_explicit(&S.nworkers, n + 1, memory_order_release);
	int err = pthread_create(&w->thread, &S.worker_attr, worker_thread, w);
	pthread_mutex_unlock(&S.run_lock);
	if (err == 0)
		thread_created(n);
	if (err != 0) {
		/* Nobody queues on a worker that never ran: step back, and
		 * add no more this run.  Its loop stays open (a few
		 * descriptors, once): a thread that read the count a moment
		 * ago may still send to its wake handle. */
		w->has_thread = false;
		atomic_store_explicit(&S.nworkers, n, memory_order_release);
		S.monitor_gave_up = true;
		fprintf(stderr, "copper: the monitor could not start a worker "
			"thread: %s; stuck workers are not relieved\n",
			strerror(err));
	}
}

/*
 * Stall reports (COPPER_STALL_MS).  A worker that has run one task that
 * long is asked (SIGURG, the snapshot signal) to describe it: the task's
 * id, name, labels and stack from the interrupted registers, written by
 * the worker itself into w->stall.  The profiler's printer symbolizes it
 * here, on the monitor thread; when the task switches at last, one more
 * line gives the total, and the task keeps the longest such run for the
 * JSON dump.
 */
#define STALL_ANSWER_NS 20000000 /* how long the monitor waits for it */

static void stall_begin(struct worker *w, int64_t now)
{
	struct stall_capture *c = &w->stall;
	int64_t give_up = co_now() + STALL_ANSWER_NS;
	int req;

	c->want_sw = w->mon_sw; /* the task the monitor saw, not a later one */
	atomic_store(&c->req, STALL_ASK);
	if (!atomic_load(&w->thread_live) || pthread_kill(w->thread, SIGURG))
		atomic_store(&c->req, STALL_NONE);
	while ((req = atomic_load(&c->req)) == STALL_ASK ||
	       req == STALL_BUSY) {
		int ask = STALL_ASK;
		if (co_now() >= give_up &&
		    atomic_compare_exchange_strong(&c->req, &ask, STALL_NONE))
			return; /* no answer: ask again at the next look */
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	if (req != STALL_DONE)
		return; /* it was between tasks: look again */
	w->stall_reported = true;
	struct stall_report r = {
		.id = c->id, .name = c->name[0] ? c->name : NULL,
		.labels = c->labels, .worker = w->id,
		.creator_id = c->creator_id, .creator_pc = c->creator_pc,
		.ran_ns = now - w->mon_since, .ended = false,
		.pcs = c->pcs, .npcs = c->npcs,
	};
	if (stall_report_hook)
		stall_report_hook(&r);
}

static void stall_end(struct worker *w, int64_t now)
{
	struct stall_capture *c = &w->stall;
	int64_t ran = now - w->mon_since;
	struct stall_report r = {
		.id = c->id, .name = c->name[0] ? c->name : NULL,
		.labels = c->labels, .worker = w->id, .ran_ns = ran,
		.ended = true, .run_over = atomic_load(&S.stopping),
	};

	w->stall_reported = false;
	atomic_store(&c->req, STALL_NONE);
	if (stall_report_hook)
		stall_report_hook(&r);
	/* The record stays mapped while the run lasts; if the task has gone
	 * its slot holds another id (or 0), and the note is dropped. */
	if (c->task->id == c->id &&
	    ran > atomic_load_explicit(&c->task->longest_run_ns,
				       memory_order_relaxed))
		atomic_store_explicit(&c->task->longest_run_ns, ran,
				      memory_order_relaxed);
	if (c->labels && runtime_hooks.labels_unref)
		runtime_hooks.labels_unref(c->labels);
	c->labels = NULL;
}

/* One look at every worker; returns whether all were idle. */
/* A worker's thread CPU time in ns, or -1 if unknown. */
static int64_t worker_cpu_ns(struct worker *w)
{
	struct timespec ts;

	if (!atomic_load(&w->has_cpu_clock) ||
	    clock_gettime(w->cpu_clock, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* True if the worker's thread sleeps in the kernel ('S' or 'D' in
 * /proc/self/task/<tid>/stat): a task blocked in a system call. */
static bool worker_in_kernel(struct worker *w)
{
	char path[64], buf[256];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", w->tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return true; /* unknown: as before the rule */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces */
	return !p || p[1] != ' ' || p[2] == 'S' || p[2] == 'D';
}

/* A worker past MONITOR_STUCK_NS without a switch: stuck in its task, or
 * only waiting for a CPU (see the top of this part)? */
static bool worker_really_stuck(struct worker *w)
{
	int64_t cpu = worker_cpu_ns(w);

	if (cpu < 0 || w->mon_cpu < 0)
		return true;
	if (cpu > w->mon_cpu)
		return true;
	return worker_in_kernel(w);
}

static bool monitor_look(int64_t now)
{
	int n = nworkers(), stuck = 0, idle = 0;

	fatal_serve();

	for (int i = 0; i < n && !atomic_load(&S.stopping); i++) {
		struct worker *w = &S.workers[i];
		uint64_t sw = atomic_load_explicit(&w->nswitch,
						   memory_order_relaxed);
		bool is_idle = atomic_load(&w->idle) || !w->has_thread;
		/* Only a task can be stuck: a worker in its scheduler (or
		 * whose thread has not started yet) is not. */
		bool in_task = __atomic_load_n(&w->current, __ATOMIC_RELAXED);
		if (is_idle || !in_task || sw != w->mon_sw ||
		    w->mon_since == 0) {
			if (w->stall_reported)
				stall_end(w, now);
			w->mon_sw = sw;
			w->mon_since = now;
			w->mon_cpu = is_idle ? -1 : worker_cpu_ns(w);
			idle += is_idle;
			continue;
		}
		if (S.cfg.stall_ns && now - w->mon_since >= S.cfg.stall_ns &&
		    !w->stall_reported)
			stall_begin(w, now);
		if (now - w->mon_since >= MONITOR_STUCK_NS &&
		    worker_really_stuck(w))
			stuck++;
	}
	atomic_store(&S.nstuck, stuck);
	if (stuck > 0 && n - stuck < S.nprocs &&
	    atomic_load(&S.nidle) == 0 && work_waiting(now) &&
	    !atomic_load(&S.stopping))
		monitor_add_worker();
	return idle == n;
}

static void *monitor_run(void *arg)
{
	sigset_t all;
	int idle_looks = 0;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	introspect_thread_register();
	pthread_mutex_lock(&S.run_lock);
	int64_t period = MONITOR_PERIOD_NS;
	if (S.cfg.stall_ns && S.cfg.stall_ns / 2 < period)
		period = S.cfg.stall_ns / 2 > 1000000 ? S.cfg.stall_ns / 2
						      : 1000000;
	while (!atomic_load(&S.stopping)) {
		struct timespec until = run_deadline(period);
		pthread_cond_timedwait(&S.run_cond, &S.run_lock, &until);
		if (atomic_load(&S.stopping))
			break;
		pthread_mutex_unlock(&S.run_lock);
		idle_looks = monitor_look(co_now()) ? idle_looks + 1 : 0;
		pthread_mutex_lock(&S.run_lock);
		if (idle_looks < MONITOR_IDLE_LOOKS)
			continue;
		/* Everyone idle for a while: sleep until a worker wakes
		 * (monitor_kick) or the run ends. */
		atomic_store(&S.monitor_deep, true);
		while (atomic_load(&S.monitor_deep) && all_idle() &&
		       !atomic_load(&S.stopping))
			pthread_cond_wait(&S.run_cond, &S.run_lock);
		atomic_store(&S.monitor_deep, false);
		idle_looks = 0;
	}
	pthread_mutex_unlock(&S.run_lock);
	/* Close the stall reports still open: their totals, their labels. */
	for (int i = 0; i < nworkers(); i++)
		if (S.workers[i].stall_reported)
			stall_end(&S.workers[i], co_now());
	/* The last touch of the run's memory (see monitor_finish). */
	pthread_mutex_lock(&S.run_lock);
	S.monitor_done = true;
	if (S.monitor_abandoned)
		S.nabandoned--;
	pthread_cond_broadcast(&S.run_cond);
	pthread_mutex_unlock(&S.run_lock);
	return NULL;
}

/*
 * co_run waits for the monitor as it waits for workers: up to
 * CO_RUN_GRACE_NS, since a stall report being symbolized or a stderr
 * nobody reads can hold it.  Past that it is abandoned like a worker:
 * detached, counted in nabandoned, and the run's memory kept until it
 * is gone.  Returns whether it was abandoned.
 */
static bool monitor_finish(void)
{
	struct timespec until = run_deadline(CO_RUN_GRACE_NS);
	bool done;

	pthread_mutex_lock(&S.run_lock);
	while (!S.monitor_done &&
	       pthread_cond_timedwait(&S.run_cond, &S.run_lock, &until) !=
		       ETIMEDOUT)
		;
	done = S.monitor_done;
	if (!done) {
		S.monitor_abandoned = true;
		S.nabandoned++;
	}
	pthread_mutex_unlock(&S.run_lock);
	if (done)
		pthread_join(S.monitor, NULL);
	else
		pthread_detach(S.monitor);
	return !done;
}

/* A worker left its idle sleep: wake the monitor if it sleeps for good. */
static void monitor_kick(void)
{
	/* seq_cst: the store of idle = false must come before this load,
	 * as the monitor's store of monitor_deep comes before its loads of
	 * idle (the store-buffer pattern). */
	if (likely(!atomic_load(&S.monitor_deep)))
		return;
	pthread_mutex_lock(&S.run_lock);
	if (atomic_exchange(&S.monitor_deep, false))
		pthread_cond_broadcast(&S.run_cond);
	pthread_mutex_unlock(&S.run_lock);
}

static int monitor_start(void)
{
	atomic_store(&S.monitor_deep, false);
	S.monitor_done = false;
	S.monitor_abandoned = false;
	int err = pthread_create(&S.monitor, NULL, monitor_run, NULL);
	if (err == 0)
		thread_created(-1);
	return -err;
}

/* Starts the worker threads; returns how many run. */
static int start_threads(void)
{
	sigset_t mask;
	int started;

	/* Workers start with their mask already in place: no window in
	 * which a process-directed signal could land on one. */
	pthread_attr_init(&S.worker_attr);
	signal_worker_mask(&mask);
	pthread_attr_setsigmask_np(&S.worker_attr, &mask);
	/* The threadcreate profile walks this thread's stack: give the walk
	 * its bounds (the monitor registers its own). */
	if (hook_on(INTROSPECT_EV_THREAD_CREATE))
		introspect_thread_register();
	for (started = 0; started < S.nprocs; started++) {
		struct worker *w = &S.workers[started];
		int err = pthread_create(&w->thread, &S.worker_attr,
					 worker_thread, w);
		if (err) {
			for (int i = started; i < S.nprocs; i++)
				S.workers[i].has_thread = false;
			/* Run with the workers we have; say so. */
			fprintf(stderr,
				"copper: could only start %d of %d workers: %s\n",
				started, S.nprocs, strerror(err));
			break;
		}
		thread_created(started);
	}
	return started;
}

/*
 * After task 1 returned: waits up to CO_RUN_GRACE_NS for the workers to
 * leave their loops, joins those that did, and abandons the others: a
 * thread still inside a task (computing, or blocked in the kernel) is
 * detached and left to run; when its task next enters the runtime (parks,
 * yields, exits), the thread sees the stop, finishes, and counts itself
 * out of S.nabandoned.  Returns how many were abandoned.
 */
static int workers_finish(void)
{
	struct timespec until = run_deadline(CO_RUN_GRACE_NS);
	int live, abandoned = 0;
	int started = nworkers();

	pthread_mutex_lock(&S.run_lock);
	for (;;) {
		live = 0;
		for (int i = 0; i < started; i++)
			live += S.workers[i].has_thread &&
				!S.workers[i].finished;
		if (live == 0 ||
		    pthread_cond_timedwait(&S.run_cond, &S.run_lock, &until) ==
			    ETIMEDOUT)
			break;
	}
	for (int i = 0; i < started; i++) {
		struct worker *w = &S.workers[i];
		if (w->has_thread && !w->finished) {
			w->abandoned = true;
			abandoned++;
		}
	}
	S.nabandoned += abandoned;
	pthread_mutex_unlock(&S.run_lock);
	for (int i = 0; i < started; i++) {
		struct worker *w = &S.workers[i];
		if (!w->has_thread)
			continue;
		if (w->abandoned)
			pthread_detach(w->thread);
		else
			pthread_join(w->thread, NULL);
	}
	return abandoned;
}

/*
 * A run that abandoned threads keeps its memory (workers, stacks, the
 * records its tasks point into) until the last of them is gone: the next
 * co_run frees it then.  It waits up to CO_RUN_RECLAIM_NS for them (a
 * thread that was only slow to wind down, under a sanitizer, say), then
 * returns CO_EBUSY while one still runs.
 */
static int reclaim_abandoned_run(void)
{
	struct timespec until = run_deadline(CO_RUN_RECLAIM_NS);

	pthread_mutex_lock(&S.run_lock);
	while (S.nabandoned > 0 &&
	       pthread_cond_timedwait(&S.run_cond, &S.run_lock, &until) !=
		       ETIMEDOUT)
		;
	int left = S.nabandoned;
	pthread_mutex_unlock(&S.run_lock);
	if (left > 0)
		return CO_EBUSY;
	S.kept = false;
	runtime_fini();
	return 0;
}

/* run_cond waits on CLOCK_MONOTONIC: a wall-clock step must not stretch
 * co_run's grace period. */
/* On co_run's caller: blocks the signals routed away from it since it
 * last looked, and tells the askers. */
static void caller_block_locked(void)
{
	uint64_t add = S.caller_want & ~S.caller_blocked;
	sigset_t set;

	if (!add)
		return;
	sigemptyset(&set);
	for (int s = 1; s <= 64; s++)
		if (add >> (s - 1) & 1)
			sigaddset(&set, s);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	S.caller_blocked |= add;
	pthread_cond_broadcast(&S.run_cond);
}

int sched_caller_block(int signo)
{
	uint64_t bit = (uint64_t)1 << (signo - 1);
	struct timespec until;
	int err = 0;

	if (signo < 1 || signo > 64 || signo >= NSIG)
		return CO_EINVAL;
	pthread_mutex_lock(&S.run_lock);
	if (!S.caller_live)
		goto out; /* no run: the caller's mask is the program's */
	S.caller_want |= bit;
	if (pthread_equal(pthread_self(), S.caller)) {
		caller_block_locked();
		goto out;
	}
	pthread_cond_broadcast(&S.run_cond);
	until = run_deadline(1000000000);
	while (S.caller_live && !(S.caller_blocked & bit) && err == 0)
		err = -pthread_cond_timedwait(&S.run_cond, &S.run_lock, &until);
	if (err == -ETIMEDOUT)
		err = CO_ETIMEDOUT; /* still starting up: it blocks it soon */
out:
	pthread_mutex_unlock(&S.run_lock);
	return err;
}

static void run_cond_init(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&S.run_cond, &attr);
	pthread_condattr_destroy(&attr);
}

CO_EXTERN int co_run(void (*main_fn)(void *), void *arg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	bool expected = false;
	int err, started = 0;
	bool monitor_kept = false;

	if (!main_fn)
		return CO_EINVAL;
	pthread_once(&once, run_cond_init);
	if (!atomic_compare_exchange_strong(&S.running, &expected, true))
		return CO_EBUSY;
	if (S.kept && (err = reclaim_abandoned_run()) != 0)
		goto out;
	atomic_fetch_add(&sched_run_gen, 1);
	if ((err = runtime_init()) != 0)
		goto out;
	/* The profiler's start-up (its environment checks, the dump signal)
	 * completes before task 1 can run: a bad COPPER_SIGDUMP must stop
	 * co_run before main_fn starts, and an early SIGUSR1 must find its
	 * handler. */
	pthread_mutex_lock(&S.run_lock);
	S.caller = pthread_self();
	S.caller_want = S.caller_blocked = 0;
	pthread_sigmask(SIG_BLOCK, NULL, &S.caller_mask);
	S.caller_live = true;
	pthread_mutex_unlock(&S.run_lock);
	err = hooks_lifecycle_start();
	if (err == 0) {
		/* Task 1 waits on worker 0's queue until the threads start;
		 * the calling thread borrows worker 0 only to put it there. */
		tls_worker = &S.workers[0];
		if (spawn(NULL, main_fn, arg,
			  (uintptr_t)__builtin_return_address(0)) != 1)
			err = CO_ENOMEM;
		tls_worker = NULL;
		if (err)
			hooks_lifecycle_stop();
	}
	if (err == 0) {
		/* The calling thread runs no task: it waits for task 1 to
		 * return, so that co_run returns then whatever the other
		 * tasks do (Go's main returning). */
		started = start_threads();
		if (started == 0) {
			err = CO_ENOMEM;
			request_stop();
		}
		bool monitor = started > 0 && monitor_start() == 0;
		pthread_mutex_lock(&S.run_lock);
		while (!atomic_load(&S.stopping)) {
			caller_block_locked();
			pthread_cond_wait(&S.run_cond, &S.run_lock);
		}
		pthread_mutex_unlock(&S.run_lock);
		if (monitor)
			monitor_kept = monitor_finish();
		hooks_lifecycle_stop();
	}
	pthread_mutex_lock(&S.run_lock);
	S.caller_live = false;
	pthread_sigmask(SIG_SETMASK, &S.caller_mask, NULL);
	pthread_cond_broadcast(&S.run_cond);
	pthread_mutex_unlock(&S.run_lock);
	int abandoned = (started ? workers_finish() : 0) + monitor_kept;
	if (started)
		pthread_attr_destroy(&S.worker_attr);
	/* Objects may be used between runs: waiters of this run are
	 * forgotten from now on (runtime.h, "Run generations"). */
	atomic_fetch_add(&sched_run_gen, 1);
	/* Workers that never started have their loops still open. */
	for (int i = started; i < S.nprocs; i++)
		worker_destroy(&S.workers[i]);
	if (abandoned) {
		/* The program's SIGQUIT and SIGURG come back now; the fault
		 * handler stays while an abandoned task may still overflow. */
		signal_destroy();
		snapshot_signal_destroy();
		S.kept = true;
	} else {
		runtime_fini();
	}
out:
	atomic_store(&S.running, false);
	return err;
}
