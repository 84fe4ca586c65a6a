/* SPDX-License-Identifier: MIT */
/*
 * stack.c - task stacks: regions, guard pages, the slot pool, and the task
 * table that falls out of them.
 *
 * How it works.  Stacks are carved from large regions mapped with
 * MAP_NORESERVE, so the kernel commits a page only when it is touched.
 * Each region holds REGION_SLOTS slots of equal size:
 *
 *   slot base                                               slot top
 *   | guard page | usable stack, grows down  ...  | task record |
 *   ^            ^ stack_lo                       ^ stack_hi == record
 *
 * The task record sits at the top of its own stack, so a task that parks
 * soon after it starts has touched exactly one page: the record and the
 * few frames below it.  That is the memory floor for a parked task whose
 * stack stays at its address (DESIGN.md "Stacks stay put").
 *
 * Guards.  One mprotect'ed page per stack splits the region's mapping in
 * two, so vm.max_map_count (65530) would stop us near 32k tasks.  Linux
 * 6.13's MADV_GUARD_INSTALL marks guard pages in the page tables instead,
 * without new mappings; we install them in batches with process_madvise on
 * our own pidfd (one system call per SLOT_BATCH guards).  Without it we fall
 * back to mprotect while mappings last (stopping at a quarter of the limit,
 * leaving the rest to the program), then to a canary word at the foot of
 * each stack that the scheduler checks at every switch.  The mode is
 * reported by stack_guard_mode() and shown in dumps.
 *
 * The pool.  A slot is never unmapped while the runtime runs: a dead task's
 * slot goes to its worker's cache, overflow to a global pool, and is
 * reused warm (its pages already committed, its guard already installed),
 * so steady-state spawning costs neither a page fault nor a system call.
 * Caches and pool are arrays of pointers, not lists threaded through the
 * records: with 200,000 tasks in flight the records are cold, and a list
 * would cost a cache miss per slot moved.
 *
 * Preparing ahead.  A fresh slot costs its spawner two things it cannot
 * make cheaper: a share of a guard-installing system call that also
 * allocates page tables, and the first touch of the record's page, which
 * the kernel must zero (1.2-2 us on this project's machines, 70% of a cold
 * spawn).  A burst of spawns from one task would pay them all serially on
 * one thread while the other workers look for work.  So when a spawner
 * finds the pool empty, for the second time in the run (the first is the
 * program starting, which may want only a few tasks), it raises
 * want_fresh, and spinning workers (with
 * nothing to run) carve and touch PREPARE_BATCH slots at a time into the
 * pool until it holds PREPARE_TARGET (each of several preparers may pass
 * it by one batch), stealing work between batches:
 * the faults move to idle cores, the spawner gets slots that are already
 * warm.  It costs at most PREPARE_TARGET touched pages that nobody may
 * use.  Rejected: deferring the first touch to the worker that first runs
 * the task (the spawner must then queue something that is not the record,
 * and the task table would have to know about it); MADV_POPULATE_WRITE
 * from the spawner (not cheaper per page here).
 *
 * The task table.  Every slot ever handed out is in some region, below the
 * region's `carved` mark, and a slot's record says whether it holds a live
 * task (state != TASK_DEAD).  So walking the regions is walking the task
 * table: spawning and exiting insert into and remove from the table for
 * free, with no lock and no list to maintain.  Rejected: a global
 * intrusive list or a hash of tasks (a shared lock or atomic on every spawn
 * and exit, which the spawn benchmark would pay twice per task).
 *
 * Invariants:
 *   - regions and slots are never unmapped before stack_destroy;
 *   - a carved slot's record is either initialised or still untouched,
 *     hence all zero, which reads as TASK_DEAD;
 *   - a slot in a cache or the pool has state TASK_DEAD and id 0;
 *   - region_lock guards regions[], nregions and every carved mark; the
 *     pool lock guards the global pool; a worker's cache is its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime.h"


#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define REGION_SLOTS 1024  /* slots per mapping */
#define SLOT_BATCH 64      /* slots carved (and guarded) per batch */
#define CACHE_MAX 128      /* slots a worker keeps (worker.slot_cache) */
#define CACHE_MOVE 64      /* slots moved to/from the global pool at once */
#define PREPARE_BATCH 16   /* slots an idle worker prepares between looks at
			      its queues (about 30 us of page faults) */
#define PREPARE_TARGET 512 /* pool level preparing stops at (2 MiB) */
_Static_assert(CACHE_MAX == sizeof(((struct worker *)0)->slot_cache) /
				     sizeof(struct task *),
	       "the worker's slot cache holds CACHE_MAX slots");
#define CANARY 0x436f707065722121ull /* "Copper!!" */
#define CANARY_WORDS 32 /* 256 bytes: a frame's unwritten gaps (alignment,
			   sanitizer redzones) cannot all straddle it */

struct region {
	char *base;      /* first slot */
	uint32_t carved; /* slots handed out so far, from the base up */
};

const char *const stack_guard_mode_names[3] = {
	[GUARD_MADVISE] = "guard pages (MADV_GUARD_INSTALL)",
	[GUARD_MPROTECT] = "guard pages (mprotect)",
	[GUARD_CANARY] = "canary",
};

static struct {
	size_t page;              /* system page size */
	size_t usable;            /* usable bytes per stack (config) */
	size_t slot_size;         /* guard + usable */
	enum stack_guard_mode mode;
	int pidfd;                /* for process_madvise; -1 if unusable */
	size_t mprotect_budget;   /* guards mprotect may still install */

	pthread_mutex_t region_lock; /* guards everything below */
	struct region *regions;
	uint32_t nregions, regions_cap;

	_Atomic bool want_fresh;     /* a spawner found the pool empty */
	_Atomic uint32_t carves;     /* times spawners carved for themselves */

	pthread_mutex_t pool_lock;   /* guards pool, npool, pool_cap */
	struct task **pool;          /* dead slots, as pointers: moving them
					never touches their cold records */
	size_t npool, pool_cap;
} stk = {
	.region_lock = PTHREAD_MUTEX_INITIALIZER,
	.pool_lock = PTHREAD_MUTEX_INITIALIZER,
	.pidfd = -1,
};

static inline struct task *slot_record(char *slot)
{
	uintptr_t top = (uintptr_t)slot + stk.slot_size;
	return (struct task *)((top - sizeof(struct task)) & ~(uintptr_t)63);
}

static size_t read_max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	unsigned long v = 65530;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

/* Installs guards at the foot of n slots from first; falls back a mode on
 * failure.  Called with region_lock held. */
static void guards_install_locked(char *first, uint32_t n)
{
	if (stk.mode == GUARD_MADVISE && stk.pidfd >= 0) {
		struct iovec iov[SLOT_BATCH];
		for (uint32_t i = 0; i < n; i++) {
			iov[i].iov_base = first + (size_t)i * stk.slot_size;
			iov[i].iov_len = stk.page;
		}
		long done = syscall(SYS_process_madvise, stk.pidfd, iov,
				    (size_t)n, MADV_GUARD_INSTALL, 0u);
		if (done == (long)(n * stk.page))
			return;
		/* Partial or refused: finish one at a time below. */
		close(stk.pidfd);
		stk.pidfd = -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		char *g = first + (size_t)i * stk.slot_size;
		if (stk.mode == GUARD_MADVISE &&
		    madvise(g, stk.page, MADV_GUARD_INSTALL) == 0)
			continue;
		if (stk.mode == GUARD_MADVISE)
			stk.mode = GUARD_MPROTECT;
		if (stk.mode == GUARD_MPROTECT && stk.mprotect_budget > 0 &&
		    mprotect(g, stk.page, PROT_NONE) == 0) {
			stk.mprotect_budget--;
			continue;
		}
		stk.mode = GUARD_CANARY;
		/* Canary slots keep their foot page writable. */
	}
}

static int region_add_locked(void)
{
	if (stk.nregions == stk.regions_cap) {
		uint32_t cap = stk.regions_cap ? stk.regions_cap * 2 : 16;
		struct region *r = realloc(stk.regions, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		stk.regions = r;
		stk.regions_cap = cap;
	}
	void *base = mmap(NULL, stk.slot_size * REGION_SLOTS,
			  PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -ENOMEM;
	stk.regions[stk.nregions].base = base;
	stk.regions[stk.nregions].carved = 0;
	stk.nregions++;
	return 0;
}

/* Writes a fresh slot's record: its first touch, so the page fault that
 * gives the slot its first page happens here. */
static struct task *slot_init(char *slot, bool canary)
{
	struct task *t = slot_record(slot);

	/* A fresh page is zero: only the non-zero fields need writing. */
	t->stack_lo = (uintptr_t)slot + stk.page;
	t->stack_hi = (uintptr_t)t;
	if (canary) {
		uint64_t *w = (uint64_t *)t->stack_lo;
		for (int k = 0; k < CANARY_WORDS; k++)
			w[k] = CANARY ^ (uintptr_t)&w[k];
		t->has_canary = 1;
	}
	return t;
}

/* Carves up to max (<= SLOT_BATCH) fresh slots into out, last carved
 * first; returns how many.  The slots are published to the task table
 * before their records are written: untouched, they read as dead. */
static uint32_t slots_carve(struct task **out, uint32_t max)
{
	struct region *r;
	uint32_t n;
	char *first;
	bool canary;

	pthread_mutex_lock(&stk.region_lock);
	if (stk.nregions == 0 ||
	    stk.regions[stk.nregions - 1].carved == REGION_SLOTS) {
		if (region_add_locked() < 0) {
			pthread_mutex_unlock(&stk.region_lock);
			return 0;
		}
	}
	r = &stk.regions[stk.nregions - 1];
	n = REGION_SLOTS - r->carved;
	if (n > max)
		n = max;
	first = r->base + (size_t)r->carved * stk.slot_size;
	guards_install_locked(first, n);
	canary = stk.mode == GUARD_CANARY;
	r->carved += n;
	pthread_mutex_unlock(&stk.region_lock);
	/* Outside the lock: these faults must not hold up other carvers. */
	for (uint32_t i = 0; i < n; i++)
		out[n - 1 - i] = slot_init(first + (size_t)i * stk.slot_size,
					   canary);
	return n;
}

int stack_init(size_t usable_size)
{
	long page = sysconf(_SC_PAGESIZE);

	stk.page = page > 0 ? (size_t)page : 4096;
	stk.usable = usable_size;
	stk.slot_size = usable_size + stk.page;
	stk.mode = GUARD_MADVISE;
	stk.mprotect_budget = read_max_map_count() / 4;
	stk.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0u);
	stk.npool = 0;
	atomic_store(&stk.want_fresh, false); /* a new run starts unprepared */
	atomic_store(&stk.carves, 0);
	/* Probe once: a kernel without MADV_GUARD_INSTALL says EINVAL. */
	void *probe = mmap(NULL, 2 * stk.page, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (probe == MAP_FAILED)
		return -ENOMEM;
	if (madvise(probe, stk.page, MADV_GUARD_INSTALL) != 0)
		stk.mode = GUARD_MPROTECT;
	munmap(probe, 2 * stk.page);
	int forced = stack_forced_mode ? stack_forced_mode() : -1;
	if (forced >= 0)
		stk.mode = (enum stack_guard_mode)forced;
	return 0;
}

/* Set only by the test library (testing.c, COPPER_TEST_GUARD_MODE). */
int (*stack_forced_mode)(void);

void stack_destroy(void)
{
	pthread_mutex_lock(&stk.region_lock);
	for (uint32_t i = 0; i < stk.nregions; i++) {
		/* Poisoned frames were unpoisoned when their tasks exited, or
		 * by sched's release_abandoned for tasks co_run left behind. */
		munmap(stk.regions[i].base, stk.slot_size * REGION_SLOTS);
	}
	free(stk.regions);
	stk.regions = NULL;
	stk.nregions = stk.regions_cap = 0;
	pthread_mutex_unlock(&stk.region_lock);
	free(stk.pool);
	stk.pool = NULL;
	stk.npool = stk.pool_cap = 0;
	if (stk.pidfd >= 0)
		close(stk.pidfd);
	stk.pidfd = -1;
}

enum stack_guard_mode stack_guard_mode(void)
{
	return stk.mode;
}

/* Moves up to CACHE_MOVE slots from the global pool into w's cache. */
static uint32_t pool_take(struct worker *w)
{
	uint32_t n;

	pthread_mutex_lock(&stk.pool_lock);
	n = stk.npool < CACHE_MOVE ? (uint32_t)stk.npool : CACHE_MOVE;
	stk.npool -= n;
	if (n)
		memcpy(w->slot_cache, stk.pool + stk.npool,
		       n * sizeof(struct task *));
	pthread_mutex_unlock(&stk.pool_lock);
	return n;
}

/* Moves n slots into the global pool; false when it cannot grow. */
static bool pool_give(struct task *const *slots, size_t n)
{
	bool ok = true;

	pthread_mutex_lock(&stk.pool_lock);
	if (stk.npool + n > stk.pool_cap) {
		size_t cap = stk.pool_cap ? stk.pool_cap : 1024;
		while (cap < stk.npool + n)
			cap *= 2;
		struct task **p = realloc(stk.pool, cap * sizeof(*p));
		if (p) {
			stk.pool = p;
			stk.pool_cap = cap;
		} else {
			ok = false;
		}
	}
	if (ok) {
		memcpy(stk.pool + stk.npool, slots, n * sizeof(*slots));
		stk.npool += n;
	}
	pthread_mutex_unlock(&stk.pool_lock);
	return ok;
}

struct task *stack_slot_get(struct worker *w)
{
	if (unlikely(w->nslots == 0)) {
		w->nslots = pool_take(w);
		if (w->nslots == 0) {
			/* The first carve is a start-up, not a burst: a
			 * program with a few tasks should not pay for 512
			 * prepared stacks (nor a worker's 1.5 ms of faults). */
			if (atomic_fetch_add_explicit(&stk.carves, 1,
						      memory_order_relaxed) > 0)
				atomic_store_explicit(&stk.want_fresh, true,
						      memory_order_relaxed);
			w->nslots = slots_carve(w->slot_cache, SLOT_BATCH);
		}
		if (w->nslots == 0)
			return NULL;
	}
	struct task *t = w->slot_cache[--w->nslots];
	if (likely(w->nslots > 0)) {
		/* The next spawn writes the next slot's record and frame. */
		const char *next = (const char *)w->slot_cache[w->nslots - 1];
		__builtin_prefetch(next, 1);
		__builtin_prefetch(next + CACHELINE, 1);
		__builtin_prefetch(next - CACHELINE, 1);
	}
	return t;
}

bool stack_prepare(void)
{
	struct task *batch[PREPARE_BATCH];
	uint32_t n;
	size_t npool;

	if (likely(!atomic_load_explicit(&stk.want_fresh, memory_order_relaxed)))
		return false;
	pthread_mutex_lock(&stk.pool_lock);
	npool = stk.npool;
	pthread_mutex_unlock(&stk.pool_lock);
	if (npool >= PREPARE_TARGET) {
		atomic_store_explicit(&stk.want_fresh, false,
				      memory_order_relaxed);
		return false;
	}
	n = slots_carve(batch, PREPARE_BATCH);
	if (n == 0 || !pool_give(batch, n)) {
		/* Out of memory or mappings: the spawner will say so. */
		atomic_store_explicit(&stk.want_fresh, false,
				      memory_order_relaxed);
		return false;
	}
	return true;
}

void stack_slot_put(struct worker *w, struct task *t)
{
	if (unlikely(w->nslots == CACHE_MAX)) {
		/* Hand the older half to the pool; keep the warm half. */
		if (pool_give(w->slot_cache, CACHE_MOVE)) {
			memmove(w->slot_cache, w->slot_cache + CACHE_MOVE,
				(CACHE_MAX - CACHE_MOVE) * sizeof(struct task *));
			w->nslots -= CACHE_MOVE;
		} else {
			return; /* no memory to pool it: the slot stays dead */
		}
	}
	w->slot_cache[w->nslots++] = t;
}

void stack_cache_flush(struct worker *w)
{
	if (w->nslots && pool_give(w->slot_cache, w->nslots))
		w->nslots = 0;
}

void stack_each_slot(void (*fn)(struct task *, void *), void *arg)
{
	struct region *copy;
	uint32_t n;

	/* Copy the region list and walk without the lock: regions are never
	 * unmapped while the runtime runs, and a carved slot stays carved,
	 * so spawning tasks need not wait for a long walk. */
	pthread_mutex_lock(&stk.region_lock);
	n = stk.nregions;
	copy = malloc(n * sizeof(*copy) + 1);
	if (copy && n)
		memcpy(copy, stk.regions, n * sizeof(*copy));
	pthread_mutex_unlock(&stk.region_lock);
	if (!copy) {
		/* Out of memory: walk under the lock instead. */
		pthread_mutex_lock(&stk.region_lock);
		for (uint32_t i = 0; i < stk.nregions; i++)
			for (uint32_t j = 0; j < stk.regions[i].carved; j++)
				fn(slot_record(stk.regions[i].base +
					       (size_t)j * stk.slot_size),
				   arg);
		pthread_mutex_unlock(&stk.region_lock);
		return;
	}
	atomic_thread_fence(memory_order_acquire);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < copy[i].carved; j++)
			fn(slot_record(copy[i].base + (size_t)j * stk.slot_size),
			   arg);
	free(copy);
}

void stack_counts(size_t *carved, size_t *pooled)
{
	size_t c = 0;

	pthread_mutex_lock(&stk.region_lock);
	for (uint32_t i = 0; i < stk.nregions; i++)
		c += stk.regions[i].carved;
	pthread_mutex_unlock(&stk.region_lock);
	if (carved)
		*carved = c;
	if (pooled) {
		pthread_mutex_lock(&stk.pool_lock);
		*pooled = stk.npool;
		pthread_mutex_unlock(&stk.pool_lock);
	}
}

bool stack_canary_ok(const struct task *t)
{
	const uint64_t *w = (const uint64_t *)t->stack_lo;
	uint64_t bad = 0;

	for (int k = 0; k < CANARY_WORDS; k++)
		bad |= w[k] ^ (CANARY ^ (uintptr_t)&w[k]);
	return bad == 0;
}

bool stack_addr_in_guard(const struct task *t, uintptr_t addr)
{
	return addr < t->stack_lo && addr >= t->stack_lo - stk.page;
}
