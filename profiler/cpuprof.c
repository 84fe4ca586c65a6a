/* SPDX-License-Identifier: MIT */
/*
 * cpuprof.c - the CPU profile: co_cpu_profile_start / co_cpu_profile_stop,
 * Go's pprof.StartCPUProfile / StopCPUProfile.
 *
 * How it works.  Every thread that runs the program's code gets a timer on
 * its own CPU clock (runtime/signal.c creates it: timer_create on the
 * thread's CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID) that sends it SIGPROF
 * every 1/hz s of CPU time it uses (100 Hz by default; COPPER_CPUPROFILE_HZ
 * or co_set_cpu_profile_rate).  Those threads are
 *
 *   - every worker, the ones running when the profile starts and the ones
 *     that start later (the monitor adds some): a subscription to
 *     INTROSPECT_EV_WORKER_START/STOP, taken once at load, keeps their
 *     tids; a worker's timer is deleted on the worker itself as it stops,
 *     before its thread ends;
 *   - libuv's pool threads, from the first co_blocking call each runs
 *     while the profile is on (INTROSPECT_EV_BLOCKING_BEGIN, on the pool
 *     thread), with the calling task's labels and name while its call
 *     runs;
 *   - the thread that starts the profile, if it is none of these (a
 *     program's main thread before co_run, say).
 *
 * The handler (cpuprof_tick) only records: it walks the interrupted stack
 * (cpuprof_unwind.c: frame pointers, plus the CFI of libraries built
 * without them) into the next free record of the thread's own ring (one
 * ring per thread, single producer: the handler; single consumer: the
 * drain), takes a reference on the task's label set and copies its name.
 * No lock, no malloc.  A ring that is full counts the sample as lost.
 * The timer's cookie names the thread's ring (CPUPROF_COOKIE and an index
 * into a table of rings that only grows), and the ring carries the
 * profile's generation and its thread: a tick still pending from an
 * earlier profile's timer is dropped, and a SIGPROF of a timer the
 * program made itself is handed back to signal.c, which forwards it.
 *
 * A profiler thread (started with the profile, all signals blocked)
 * drains the rings every CPUPROF_DRAIN_MS into a table of distinct
 * (stack, labels, name) with their sample counts.  At stop it drains a
 * last time, symbolizes, encodes Go's CPU profile (samples/count,
 * cpu/nanoseconds; period_type cpu/nanoseconds, period 1e9/hz;
 * time_nanos at start, duration_nanos the wall time profiled) and writes
 * it gzipped to the descriptor; stop returns what the write returned.
 * A task's labels become string labels, its name the label
 * "copper.name" (as the goroutine dump shows it), so pprof -tagfocus
 * selects either.
 *
 * Invariants: while P.state is CPUPROF_RUNNING, every thread in P.threads
 * with has_timer has exactly one timer, and no other thread has one of
 * ours; at stop every timer is deleted before the handler is uninstalled
 * and before the rings are read a last time; P.inflight counts handlers
 * between their check of P.active and their last write: stop waits for
 * zero after clearing P.active, so no handler writes a ring once stop has
 * drained it.
 *
 * Rejected: setitimer(ITIMER_PROF) (one process-wide timer: the kernel
 * picks the thread to signal, so on busy machines some threads are
 * under-sampled, golang/go#35057, and one signal per process tick caps
 * the rate at hz in total); a ring shared by all threads (every tick of
 * every thread would write one cache line); symbolizing in the handler
 * (libdw locks and allocates); copying whole stacks to walk later (the
 * interrupted stack changes the moment the handler returns); encoding on
 * the thread that calls stop (a SIGPIPE there may be unblocked and kill
 * the process: the profiler thread blocks it and gets EPIPE).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define CPUPROF_HZ_DEFAULT 100
#define CPUPROF_HZ_MAX 10000
#define CPUPROF_RING 32          /* records per thread between drains */
#define CPUPROF_DRAIN_MS 20      /* the profiler thread's period */
#define CPUPROF_MAX_WORKERS 4096 /* worker indexes tracked */
#define CPUPROF_NAME 48          /* bytes of a task name kept */
#define CPUPROF_NAME_KEY "copper.name"
#define CPUPROF_MAX_THREADS 4096 /* rings ever made */
#define CPUPROF_COOKIE 0xc0ffeeu /* a timer cookie's upper half */

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

/* One sample as the handler leaves it. */
struct cpuprof_rec {
	uint32_t weight;                  /* ticks: 1 + the timer's overrun */
	uint16_t npcs;                    /* entries in pcs */
	bool leaf_is_pc;                  /* pcs[0] is the interrupted pc */
	struct labels *labels;            /* referenced by the handler */
	char name[CPUPROF_NAME];          /* the task's name, "" if none */
	uintptr_t pcs[PROF_MAX_FRAMES];   /* leaf first */
};

/* A thread being profiled, with its ring.  Allocated outside handlers
 * and never freed: a tick pending from an old timer may still name it. */
struct cpuprof_thread {
	_Atomic uint32_t head;            /* next record to fill (handler) */
	_Atomic uint32_t tail;            /* next record to read (drain) */
	_Atomic uint64_t gen;             /* the profile it belongs to, 0:
					     none */
	_Atomic uint64_t lost;            /* ticks dropped: ring full */
	_Atomic int tid;                  /* its thread; set under P.lock */
	bool has_timer;                   /* timer is armed; under P.lock */
	timer_t timer;
	struct cpuprof_thread *next;      /* P.threads or P.free list */
	uint32_t index;                   /* in P.rings; its cookie's low half */
	struct cpuprof_rec recs[CPUPROF_RING];
};

/* One distinct (stack, labels, name) of the profile: the drain's table. */
struct cpuprof_entry {
	struct cpuprof_entry *next;       /* bucket chain */
	uint64_t hash;
	int64_t count;                    /* ticks */
	struct labels *labels;            /* one reference per entry */
	char *name;                       /* malloc'd, NULL if none */
	uint16_t npcs;
	bool leaf_is_pc;
	uintptr_t pcs[];
};

enum cpuprof_state { CPUPROF_IDLE, CPUPROF_RUNNING, CPUPROF_STOPPING };

static struct {
	pthread_mutex_t lock;             /* guards all but the atomics */
	pthread_cond_t cond;              /* wakes the profiler thread */
	enum cpuprof_state state;
	_Atomic bool active;              /* handlers record */
	_Atomic uint64_t gen;             /* the current profile's number */
	_Atomic int inflight;             /* handlers past the active check */
	int hz_set;                       /* co_set_cpu_profile_rate, 0:
					     none */
	int hz;                           /* of the profile running */
	int fd;                           /* where it goes */
	int64_t start_wall, start_mono;   /* ns */
	struct cpuprof_thread *threads;   /* profiled in this profile */
	struct cpuprof_thread *free;      /* ready for another */
	struct cpuprof_thread *_Atomic rings[CPUPROF_MAX_THREADS];
					  /* every ring made, by index: read
					     by handlers, never shrinks */
	_Atomic uint32_t nrings;
	int worker_tid[CPUPROF_MAX_WORKERS]; /* live workers' tids, 0: none */
	int blocking_sub;                 /* subscription id, -1: none */
	pthread_t thread;                 /* the profiler thread */
	bool quit;                        /* it must finish */
	int result;                       /* its write's result */
	bool done;                        /* ... which is ready */
	struct cpuprof_entry **tab;       /* the drain's hash table */
	size_t tab_cap, tab_n;
	int64_t lost;                     /* ticks lost, drained */
} P = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.blocking_sub = -1,
};

/* The co_blocking call running on this pool thread, for its samples. */
static _Thread_local struct {
	volatile bool on;                 /* between BEGIN and END */
	struct labels *labels;            /* the task's (it holds them) */
	char name[CPUPROF_NAME];
	uint64_t armed_gen;               /* the profile this thread was
					     armed for */
	bool registered;                  /* its stack bounds are known */
} blk __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------------
 * The handler
 * ---------------------------------------------------------------------- */

static void copy_name(char *dst, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i < CPUPROF_NAME - 1; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* The ring a timer cookie names, or NULL for a cookie not ours. */
static struct cpuprof_thread *ring_of(void *cookie)
{
	uintptr_t v = (uintptr_t)cookie;

	if (sizeof(v) < 8 || (uint32_t)((uint64_t)v >> 32) != CPUPROF_COOKIE ||
	    (uint32_t)v >= atomic_load(&P.nrings))
		return NULL;
	return atomic_load(&P.rings[(uint32_t)v]);
}

static bool cpuprof_tick(void *cookie, int overrun, const void *uc)
{
	struct cpuprof_thread *th = ring_of(cookie);
	struct introspect_sig_self ss;

	if (!th)
		return false; /* the program's own timer */
	atomic_fetch_add(&P.inflight, 1);
	/* A tick of an old profile's timer, pending when it was deleted,
	 * may name a ring that a new profile gave to another thread: the
	 * generation and the thread must both match (the ring has one
	 * producer). */
	if (!th || !atomic_load(&P.active) ||
	    atomic_load_explicit(&th->gen, memory_order_relaxed) !=
		    atomic_load_explicit(&P.gen, memory_order_relaxed) ||
	    atomic_load_explicit(&th->tid, memory_order_relaxed) != gettid())
		goto out;
	uint32_t h = atomic_load_explicit(&th->head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&th->tail, memory_order_acquire);
	uint32_t weight = 1 + (overrun > 0 ? (uint32_t)overrun : 0);
	if (h - t >= CPUPROF_RING) {
		atomic_fetch_add_explicit(&th->lost, weight,
					  memory_order_relaxed);
		goto out;
	}
	struct cpuprof_rec *r = &th->recs[h % CPUPROF_RING];
	introspect_sig_self(uc, &ss);
	r->weight = weight;
	r->npcs = (uint16_t)cpuprof_unwind(&ss, r->pcs, PROF_MAX_FRAMES);
	r->leaf_is_pc = true;
	if (ss.task_id) {
		r->labels = ss.labels;
		copy_name(r->name, ss.name);
	} else if (blk.on) {
		r->labels = blk.labels; /* the parked caller holds them */
		copy_name(r->name, blk.name);
	} else {
		r->labels = NULL;
		r->name[0] = '\0';
	}
	labels_ref(r->labels);
	atomic_store_explicit(&th->head, h + 1, memory_order_release);
out:
	atomic_fetch_sub(&P.inflight, 1);
	return true;
}

/* ------------------------------------------------------------------------
 * Threads and their timers (under P.lock)
 * ---------------------------------------------------------------------- */

static struct cpuprof_thread *thread_find_locked(int tid)
{
	for (struct cpuprof_thread *th = P.threads; th; th = th->next)
		if (th->tid == tid && th->has_timer)
			return th;
	return NULL;
}

/* Arms a timer on thread tid for the running profile, unless it has one.
 * A thread that is gone already (-EINVAL) is no error. */
static int thread_arm_locked(int tid)
{
	struct cpuprof_thread *th;
	int err;

	if (tid <= 0 || thread_find_locked(tid))
		return 0;
	if ((th = P.free)) {
		P.free = th->next;
	} else {
		uint32_t n = atomic_load(&P.nrings);
		if (n >= CPUPROF_MAX_THREADS)
			return CO_ENOMEM;
		th = mmap(NULL, sizeof(*th), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (th == MAP_FAILED)
			return CO_ENOMEM;
		th->index = n;
		atomic_store(&P.rings[n], th);
		atomic_store(&P.nrings, n + 1);
	}
	atomic_store(&th->head, 0);
	atomic_store(&th->tail, 0);
	atomic_store(&th->lost, 0);
	atomic_store(&th->gen, atomic_load(&P.gen));
	th->tid = tid;
	th->next = P.threads;
	P.threads = th;
	err = introspect_prof_timer_create(
		tid, 1000000000 / P.hz,
		(void *)(uintptr_t)((uint64_t)CPUPROF_COOKIE << 32 | th->index),
		&th->timer);
	th->has_timer = err == 0;
	return err == -EINVAL ? 0 : err;
}

static void thread_disarm_locked(struct cpuprof_thread *th)
{
	if (th->has_timer)
		introspect_prof_timer_delete(th->timer);
	th->has_timer = false;
}

/* A worker starts or stops: on its own thread. */
static void worker_hook(const struct introspect_event_info *ev, void *arg)
{
	(void)arg;
	if (ev->worker < 0 || ev->worker >= CPUPROF_MAX_WORKERS)
		return;
	pthread_mutex_lock(&P.lock);
	if (ev->event == INTROSPECT_EV_WORKER_START) {
		P.worker_tid[ev->worker] = ev->tid;
		if (P.state == CPUPROF_RUNNING && atomic_load(&P.active))
			thread_arm_locked(ev->tid);
	} else {
		P.worker_tid[ev->worker] = 0;
		struct cpuprof_thread *th = thread_find_locked(ev->tid);
		if (th)
			thread_disarm_locked(th); /* its ring is drained later */
	}
	pthread_mutex_unlock(&P.lock);
}

/* A co_blocking call begins or ends on a pool thread. */
static void blocking_hook(const struct introspect_event_info *ev, void *arg)
{
	struct task_info info;
	(void)arg;

	if (ev->event == INTROSPECT_EV_BLOCKING_END) {
		blk.on = false;
		atomic_signal_fence(memory_order_seq_cst);
		blk.labels = NULL;
		return;
	}
	if (!blk.registered) {
		introspect_thread_register();
		blk.registered = true;
	}
	uint64_t gen = atomic_load(&P.gen);
	if (blk.armed_gen != gen) {
		pthread_mutex_lock(&P.lock);
		if (P.state == CPUPROF_RUNNING && atomic_load(&P.active))
			thread_arm_locked(ev->tid);
		pthread_mutex_unlock(&P.lock);
		blk.armed_gen = gen;
	}
	if (introspect_task_info(ev->task, &info)) {
		copy_name(blk.name, info.name);
		blk.labels = info.labels;
	} else {
		blk.name[0] = '\0';
		blk.labels = NULL;
	}
	atomic_signal_fence(memory_order_seq_cst);
	blk.on = true;
}

__attribute__((constructor)) static void cpuprof_register(void)
{
	/* For the whole life of the process: a profile must know the
	 * workers that run when it starts.  Worker events are rare. */
	introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_WORKER_START) |
				     INTROSPECT_EV(INTROSPECT_EV_WORKER_STOP),
			     worker_hook, NULL);
	/* COPPER_CPUPROFILE_HZ, checked as co_run starts. */
	introspect_add_lifecycle(cpuprof_env_check, NULL);
}

/* ------------------------------------------------------------------------
 * The drain: rings to the table of distinct samples
 * ---------------------------------------------------------------------- */

static uint64_t rec_hash(const struct cpuprof_rec *r)
{
	uint64_t h = 1469598103934665603ull ^ r->npcs;

	for (int i = 0; i < r->npcs; i++)
		h = (h ^ r->pcs[i]) * 1099511628211ull;
	h = (h ^ (uintptr_t)r->labels) * 1099511628211ull;
	for (const char *c = r->name; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	return h;
}

static bool entry_is(const struct cpuprof_entry *e, uint64_t h,
		     const struct cpuprof_rec *r)
{
	return e->hash == h && e->npcs == r->npcs &&
	       e->leaf_is_pc == r->leaf_is_pc && e->labels == r->labels &&
	       strcmp(e->name ? e->name : "", r->name) == 0 &&
	       memcmp(e->pcs, r->pcs, r->npcs * sizeof(uintptr_t)) == 0;
}

static int table_grow(void)
{
	size_t cap = P.tab_cap ? P.tab_cap * 2 : 256;
	struct cpuprof_entry **tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return CO_ENOMEM;
	for (size_t i = 0; i < P.tab_cap; i++) {
		struct cpuprof_entry *e = P.tab[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = tab[e->hash & (cap - 1)];
			tab[e->hash & (cap - 1)] = e;
		}
	}
	free(P.tab);
	P.tab = tab;
	P.tab_cap = cap;
	return 0;
}

/* Adds one record; its label reference moves to the table. */
static void table_add(struct cpuprof_rec *r)
{
	uint64_t h = rec_hash(r);
	struct cpuprof_entry *e;

	if (P.tab_n >= P.tab_cap / 2 && table_grow() < 0)
		goto lost;
	for (e = P.tab[h & (P.tab_cap - 1)]; e; e = e->next) {
		if (entry_is(e, h, r)) {
			e->count += r->weight;
			labels_unref(r->labels);
			return;
		}
	}
	e = malloc(sizeof(*e) + r->npcs * sizeof(uintptr_t));
	if (!e)
		goto lost;
	e->hash = h;
	e->count = r->weight;
	e->labels = r->labels;
	e->name = r->name[0] ? strdup(r->name) : NULL;
	e->npcs = r->npcs;
	e->leaf_is_pc = r->leaf_is_pc;
	memcpy(e->pcs, r->pcs, r->npcs * sizeof(uintptr_t));
	e->next = P.tab[h & (P.tab_cap - 1)];
	P.tab[h & (P.tab_cap - 1)] = e;
	P.tab_n++;
	return;
lost:
	P.lost += r->weight;
	labels_unref(r->labels);
}

static void table_free(void)
{
	for (size_t i = 0; i < P.tab_cap; i++) {
		struct cpuprof_entry *e = P.tab[i], *next;
		for (; e; e = next) {
			next = e->next;
			labels_unref(e->labels);
			free(e->name);
			free(e);
		}
	}
	free(P.tab);
	P.tab = NULL;
	P.tab_cap = P.tab_n = 0;
}

/* Empties every ring into the table; call with P.lock (the list). */
static void drain_locked(void)
{
	for (struct cpuprof_thread *th = P.threads; th; th = th->next) {
		uint32_t t = atomic_load_explicit(&th->tail,
						  memory_order_relaxed);
		uint32_t h = atomic_load_explicit(&th->head,
						  memory_order_acquire);
		for (; t != h; t++)
			table_add(&th->recs[t % CPUPROF_RING]);
		atomic_store_explicit(&th->tail, t, memory_order_release);
		P.lost += (int64_t)atomic_exchange(&th->lost, 0);
	}
}

/* ------------------------------------------------------------------------
 * Encoding (Go's CPU profile, pprof-formats.md table 1.4)
 * ---------------------------------------------------------------------- */

static int add_entry(struct pprof_builder *b, const struct snapshot *s,
		     const struct cpuprof_entry *e, int64_t period)
{
	struct textfmt_stack st = {e->pcs, e->labels, e->npcs, e->leaf_is_pc};
	uintptr_t pcs[PROF_MAX_FRAMES];
	struct pprof_label lb[65];
	size_t nl = 0;
	int64_t v[2] = {e->count, e->count * period};
	int n = textfmt_pcs_shown(s, &st, pcs);

	for (size_t k = 0; e->labels && k < e->labels->n && nl < 64; k++)
		lb[nl++] = (struct pprof_label){e->labels->pairs[k].key,
						e->labels->pairs[k].value, 0,
						NULL};
	if (e->name)
		lb[nl++] = (struct pprof_label){CPUPROF_NAME_KEY, e->name, 0,
						NULL};
	return pprof_sample_add(b, pcs, (size_t)n,
				e->leaf_is_pc && n && pcs[0] == e->pcs[0], v,
				lb, nl);
}

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int encode_write(int fd, int hz, int64_t duration)
{
	struct snapshot s = {0};
	struct pprof_builder *b;
	int64_t period = 1000000000 / hz;
	char note[160];
	int err = 0;

	if (!(b = pprof_builder_new(&err)))
		return err;
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	pprof_time_set(b, P.start_wall, duration > 0 ? duration : 1);
	pprof_symbolizer_set(b, prof_pprof_symbolize, NULL);
	if ((err = pprof_sample_type_add(b, "samples", "count")) < 0 ||
	    (err = pprof_sample_type_add(b, "cpu", "nanoseconds")) < 0 ||
	    (err = pprof_period_set(b, "cpu", "nanoseconds", period)) < 0 ||
	    (err = prof_pprof_add_mappings(b)) < 0)
		goto out;
	if (P.lost) {
		snprintf(note, sizeof(note),
			 "copper: %lld samples lost (a thread's buffer was "
			 "full)", (long long)P.lost);
		if ((err = pprof_comment_add(b, note)) < 0)
			goto out;
	}
	for (size_t i = 0; i < P.tab_cap; i++)
		for (struct cpuprof_entry *e = P.tab[i]; e; e = e->next)
			if ((err = add_entry(b, &s, e, period)) < 0)
				goto out;
	err = pprof_builder_write(b, fd);
out:
	pprof_builder_free(b);
	return err;
}

/* What the running profile holds so far, written to fd as stop would
 * write it, the profile going on: the admin port cuts windows of its own
 * out of one session with two of these and a delta (net/admin.c).
 * Symbolizes under P.lock: drains and worker events wait meanwhile (the
 * rings hold the ticks).  -EINVAL if no profile runs. */
int cpuprof_write_now(int fd)
{
	int err;

	pthread_mutex_lock(&P.lock);
	if (P.state != CPUPROF_RUNNING) {
		pthread_mutex_unlock(&P.lock);
		return CO_EINVAL;
	}
	drain_locked();
	err = encode_write(fd, P.hz, now_ns(CLOCK_MONOTONIC) - P.start_mono);
	pthread_mutex_unlock(&P.lock);
	return err;
}

/* ------------------------------------------------------------------------
 * The profiler thread
 * ---------------------------------------------------------------------- */

static void *cpuprof_thread(void *arg)
{
	sigset_t all;
	(void)arg;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	pthread_mutex_lock(&P.lock);
	while (!P.quit) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += CPUPROF_DRAIN_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&P.cond, &P.lock, &until);
		drain_locked();
	}
	/* Stopped: no timer is left and no handler runs (stop saw to it). */
	drain_locked();
	int fd = P.fd, hz = P.hz;
	int64_t duration = now_ns(CLOCK_MONOTONIC) - P.start_mono;
	pthread_mutex_unlock(&P.lock);
	/* Symbolizing takes the symbolizer's lock, never P.lock: a worker
	 * that starts meanwhile only waits for the drain above. */
	int err = encode_write(fd, hz, duration);
	pthread_mutex_lock(&P.lock);
	P.result = err;
	P.done = true;
	pthread_cond_broadcast(&P.cond);
	pthread_mutex_unlock(&P.lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Configuration
 * ---------------------------------------------------------------------- */

/* COPPER_CPUPROFILE_HZ, or the default; -EINVAL (with a message) for a
 * bad value. */
static int env_hz(int *hz)
{
	const char *v = getenv("COPPER_CPUPROFILE_HZ");
	char *end;
	long n;

	*hz = CPUPROF_HZ_DEFAULT;
	if (!v)
		return 0;
	errno = 0;
	n = (*v >= '0' && *v <= '9') ? strtol(v, &end, 10) : -1;
	if (n < 1 || n > CPUPROF_HZ_MAX || errno || *end) {
		fprintf(stderr, "copper: invalid COPPER_CPUPROFILE_HZ=\"%s\": "
				"want samples per second of CPU time, 1 to "
				"%d\n", v, CPUPROF_HZ_MAX);
		return CO_EINVAL;
	}
	*hz = (int)n;
	return 0;
}

int cpuprof_env_check(void)
{
	int hz;

	return env_hz(&hz);
}

CO_EXTERN int co_set_cpu_profile_rate(int hz)
{
	int err = 0;

	if (hz < 0 || hz > CPUPROF_HZ_MAX)
		return CO_EINVAL;
	pthread_mutex_lock(&P.lock);
	if (P.state != CPUPROF_IDLE)
		err = CO_EBUSY;
	else
		P.hz_set = hz;
	pthread_mutex_unlock(&P.lock);
	return err;
}

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

/* Arms the timers of a profile that begins; call with P.lock. */
static int arm_all_locked(bool caller_is_task)
{
	int err;

	for (int i = 0; i < CPUPROF_MAX_WORKERS; i++)
		if (P.worker_tid[i] && (err = thread_arm_locked(
						P.worker_tid[i])) < 0)
			return err;
	if (!caller_is_task) {
		/* Outside tasks: the calling thread runs code of its own. */
		introspect_thread_register();
		if ((err = thread_arm_locked((int)gettid())) < 0)
			return err;
	}
	return 0;
}

/* Deletes every timer and waits for handlers in flight; call with
 * P.lock.  After it, no handler writes a ring of this profile. */
static void disarm_all_locked(void)
{
	atomic_store(&P.active, false);
	for (struct cpuprof_thread *th = P.threads; th; th = th->next)
		thread_disarm_locked(th);
	while (atomic_load(&P.inflight) > 0)
		sched_yield();
}

/* Back to idle: threads to the free list, the table emptied. */
static void reset_locked(void)
{
	while (P.threads) {
		struct cpuprof_thread *th = P.threads;
		P.threads = th->next;
		for (uint32_t t = atomic_load(&th->tail);
		     t != atomic_load(&th->head); t++)
			labels_unref(th->recs[t % CPUPROF_RING].labels);
		atomic_store(&th->gen, 0);
		th->next = P.free;
		P.free = th;
	}
	table_free();
	P.lost = 0;
	P.state = CPUPROF_IDLE;
}

CO_EXTERN int co_cpu_profile_start(int fd)
{
	int hz, err, fl;

	if (fd < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
		return CO_EBADF;
	if ((fl & O_ACCMODE) == O_RDONLY)
		return CO_EBADF;
	pthread_mutex_lock(&P.lock);
	if (P.state != CPUPROF_IDLE) {
		pthread_mutex_unlock(&P.lock);
		return CO_EBUSY;
	}
	if (P.hz_set) {
		hz = P.hz_set;
	} else if ((err = env_hz(&hz)) < 0) {
		pthread_mutex_unlock(&P.lock);
		return err;
	}
	P.state = CPUPROF_RUNNING;
	P.hz = hz;
	P.fd = fd;
	P.quit = P.done = false;
	P.result = 0;
	P.start_wall = now_ns(CLOCK_REALTIME);
	P.start_mono = now_ns(CLOCK_MONOTONIC);
	atomic_fetch_add(&P.gen, 1);
	cpuprof_unwind_prepare();
	if ((err = introspect_set_prof_handler(cpuprof_tick)) < 0)
		goto fail;
	atomic_store(&P.active, true);
	if ((err = arm_all_locked(co_self() != 0)) < 0)
		goto fail_handler;
	if ((err = -pthread_create(&P.thread, NULL, cpuprof_thread, NULL)) < 0)
		goto fail_handler;
	uint64_t gen = atomic_load(&P.gen);
	pthread_mutex_unlock(&P.lock);
	/* Outside P.lock: hooks take P.lock, and an unsubscriber holding the
	 * hooks' lock waits for them (lock order: never P.lock, then the
	 * hooks' lock). */
	int sub = introspect_subscribe(
		INTROSPECT_EV(INTROSPECT_EV_BLOCKING_BEGIN) |
			INTROSPECT_EV(INTROSPECT_EV_BLOCKING_END),
		blocking_hook, NULL);
	pthread_mutex_lock(&P.lock);
	bool keep = P.state == CPUPROF_RUNNING && atomic_load(&P.gen) == gen;
	if (keep)
		P.blocking_sub = sub;
	pthread_mutex_unlock(&P.lock);
	if (!keep && sub >= 0)
		introspect_unsubscribe(sub); /* stopped meanwhile */
	return 0;
fail_handler:
	disarm_all_locked();
	introspect_set_prof_handler(NULL);
fail:
	reset_locked();
	pthread_mutex_unlock(&P.lock);
	return err;
}

/* Waits for the profiler thread's write.  In a task this holds the
 * worker, as Go's StopCPUProfile holds its M.  Rejected: waiting through
 * co_blocking (a completion is delivered by the caller's worker's loop,
 * which tasks that never park can keep from running: stop would hang
 * until they park). */
static void wait_done(void)
{
	pthread_mutex_lock(&P.lock);
	while (!P.done)
		pthread_cond_wait(&P.cond, &P.lock);
	pthread_mutex_unlock(&P.lock);
}

CO_EXTERN int co_cpu_profile_stop(void)
{
	int sub, err;

	pthread_mutex_lock(&P.lock);
	if (P.state != CPUPROF_RUNNING) {
		pthread_mutex_unlock(&P.lock);
		return CO_EINVAL;
	}
	P.state = CPUPROF_STOPPING;
	disarm_all_locked();
	sub = P.blocking_sub;
	P.blocking_sub = -1;
	P.quit = true;
	pthread_cond_broadcast(&P.cond);
	pthread_mutex_unlock(&P.lock);
	if (sub >= 0)
		introspect_unsubscribe(sub);
	introspect_set_prof_handler(NULL);
	wait_done();
	pthread_join(P.thread, NULL);
	pthread_mutex_lock(&P.lock);
	err = P.result;
	reset_locked();
	pthread_mutex_unlock(&P.lock);
	return err;
}
