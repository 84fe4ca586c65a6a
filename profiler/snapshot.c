/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - takes a consistent snapshot of every task into an arena.
 *
 * The runtime (introspect_snapshot) decides when each task is recorded
 * and guarantees each is recorded once; this file decides what a record
 * holds and where it goes.  Records are written from any worker, some from
 * inside a signal handler, so record_task may not lock or allocate: it
 * claims space in a preallocated arena with one atomic add, copies the
 * task's fields, walks its stack by frame pointers and takes a reference
 * on its label set.  Symbolization happens later, outside the snapshot.
 *
 * The arena is mapped with MAP_NORESERVE and sized for twice the task
 * count plus slack: only the pages records touch are committed, so the
 * bound costs address space, not memory.  If it still overflows (a burst
 * of spawns between counting and opening the epoch), the snapshot says it
 * is truncated rather than corrupting memory.
 *
 * Keeping the arena.  With a million tasks the records touch about 300
 * MiB.  Unmapping that after each profile and faulting it in again during
 * the next walk cost a fifth of the write (d0 at 1M: 400-500 ms, now
 * ~350 ms), and the freed memory fed the kernel's free page reporting,
 * whose worker thread takes a CPU for milliseconds, sometimes the one a
 * running task is on.  So the last arena is kept, with MADV_FREE on the
 * part records touched: its pages stay mapped and are rewritten without a
 * fault, unless memory runs short, when the kernel takes them back
 * without writing them anywhere.  One arena is kept; a second snapshot
 * taken meanwhile maps its own; co_run's end unmaps it.  The cache is
 * claimed with one atomic exchange, so the fatal dump may use it from a
 * signal handler.  Rejected: keeping the pages dirty (a profiled process
 * would hold the memory for good), pre-faulting with MADV_POPULATE_WRITE
 * (the faults move, the reporting of the freed pages stays).
 *
 * Invariant: after snapshot_take returns, tasks[0..n) point at complete
 * records, sorted with the taking task first, then by id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define NAME_MAX_COPY 128
#define RECORD_MAX \
	(sizeof(struct prof_task) + (PROF_MAX_FRAMES + 1) * sizeof(uintptr_t) + \
	 NAME_MAX_COPY)

static void *arena_alloc(struct snapshot *s, size_t size)
{
	size = (size + 15) & ~(size_t)15;
	size_t at = atomic_fetch_add(&s->used, size);
	if (at + size > s->arena_size)
		return NULL;
	return s->arena + at;
}

static void record_task(const struct task_info *ti, uintptr_t leaf_pc,
			uintptr_t fp, void *arg)
{
	struct snapshot *s = arg;
	uintptr_t pcs[PROF_MAX_FRAMES];
	int n = 0;
	size_t slot, name_len = 0;
	struct prof_task *t;

	if (leaf_pc)
		pcs[n++] = leaf_pc;
	n += introspect_walk_fp(fp, ti->stack_lo, ti->stack_hi, pcs + n,
			  PROF_MAX_FRAMES - n);
	if (ti->name) {
		while (name_len < NAME_MAX_COPY - 1 && ti->name[name_len])
			name_len++;
	}
	slot = atomic_fetch_add(&s->next, 1);
	/* One pc more than walked: room for the entry frame that
	 * stacks_fix may add. */
	t = slot < s->cap ? arena_alloc(s, sizeof(*t) +
						   (n + 1) * sizeof(uintptr_t) +
						   name_len + 1)
			  : NULL;
	if (!t) {
		/* A kept arena's tasks array is not zeroed: mark the hole. */
		if (slot < s->cap)
			s->tasks[slot] = NULL;
		s->truncated = true;
		return;
	}
	t->id = ti->id;
	t->creator_id = ti->creator_id;
	t->creator_pc = ti->creator_pc;
	t->wait_since = ti->wait_since;
	t->longest_run_ns = ti->longest_run_ns;
	t->entry = ti->entry;
	t->status = ti->status;
	t->state = ti->state;
	t->npcs = (uint16_t)n;
	t->leaf_is_pc = leaf_pc != 0;
	t->self = ti->id == s->self_id && ti->id != 0;
	memcpy(t->pcs, pcs, n * sizeof(uintptr_t));
	t->name = NULL;
	if (ti->name) {
		char *copy = (char *)&t->pcs[n + 1];
		memcpy(copy, ti->name, name_len);
		copy[name_len] = '\0';
		t->name = copy;
	}
	t->labels = ti->labels;
	labels_ref(t->labels);
	atomic_thread_fence(memory_order_release);
	s->tasks[slot] = t;
}

static int cmp_task(const void *a, const void *b)
{
	const struct prof_task *x = *(const struct prof_task *const *)a;
	const struct prof_task *y = *(const struct prof_task *const *)b;

	if (x->self != y->self)
		return x->self ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void *map_noreserve(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* The kept arena (see "Keeping the arena"); owned by whoever set busy. */
static struct {
	_Atomic bool busy;
	struct prof_task **tasks;  /* NULL when nothing is kept */
	char *arena;
	size_t cap, arena_size;
} kept;

static bool kept_claim(void)
{
	return !atomic_exchange_explicit(&kept.busy, true,
					 memory_order_acquire);
}

static void kept_release(void)
{
	atomic_store_explicit(&kept.busy, false, memory_order_release);
}

static void unmap_arena(struct prof_task **tasks, size_t cap, char *arena,
			size_t arena_size)
{
	if (tasks)
		munmap(tasks, cap * sizeof(*tasks));
	if (arena)
		munmap(arena, arena_size);
}

/* Gives s the kept arena if it is big enough; otherwise maps a new one. */
static int arena_get(struct snapshot *s)
{
	if (kept_claim()) {
		if (kept.tasks && kept.cap >= s->cap) {
			s->cap = kept.cap;
			s->arena_size = kept.arena_size;
			s->tasks = kept.tasks;
			s->arena = kept.arena;
			kept.tasks = NULL;
			kept.arena = NULL;
		} else if (kept.tasks) {
			/* Too small for this many tasks: a new one will be
			 * kept in its place. */
			unmap_arena(kept.tasks, kept.cap, kept.arena,
				    kept.arena_size);
			kept.tasks = NULL;
			kept.arena = NULL;
		}
		kept_release();
	}
	if (!s->tasks) {
		s->arena_size = s->cap * RECORD_MAX;
		s->tasks = map_noreserve(s->cap * sizeof(*s->tasks));
		s->arena = map_noreserve(s->arena_size);
	}
	return s->tasks && s->arena ? 0 : CO_ENOMEM;
}

/* madvise rounds the length up to whole pages itself, and the ranges
 * start at a mapping's start, so no page size is needed here (sysconf is
 * not async-signal-safe).  Kernels before 4.5 lack MADV_FREE: the pages
 * are then dropped outright, as munmap would have. */
static void lazy_free(void *p, size_t len)
{
	if (len && madvise(p, len, MADV_FREE) != 0)
		madvise(p, len, MADV_DONTNEED);
}

/* Keeps s's arena (its touched pages lazily freed) if none is kept. */
static void arena_put(struct snapshot *s)
{
	if (!s->tasks || !s->arena || !kept_claim())
		return;
	if (!kept.tasks) {
		size_t used = atomic_load(&s->used);
		size_t claimed = atomic_load(&s->next);

		if (used > s->arena_size)
			used = s->arena_size;
		if (claimed > s->cap)
			claimed = s->cap;
		lazy_free(s->arena, used);
		lazy_free(s->tasks, claimed * sizeof(*s->tasks));
		kept.tasks = s->tasks;
		kept.arena = s->arena;
		kept.cap = s->cap;
		kept.arena_size = s->arena_size;
		s->tasks = NULL;
		s->arena = NULL;
	}
	kept_release();
}

void snapshot_release_kept(void)
{
	if (!kept_claim())
		return; /* a snapshot is using it: it stays until the next */
	unmap_arena(kept.tasks, kept.cap, kept.arena, kept.arena_size);
	kept.tasks = NULL;
	kept.arena = NULL;
	kept_release();
}

/*
 * After the snapshot, outside any pause: two repairs the signal-safe walk
 * could not make, because they need symbols.
 *
 * A junk frame.  A library built without frame pointers (libc's write,
 * say) may leave a value in the frame-pointer register that passes the
 * walk's checks and yields a "return address" that is no code at all:
 * the stack ends at the first address outside every executable mapping.
 *
 * The entry frame.  A task's stack ends in task_main, which called the
 * task's function.  When the program was built with sibling calls (no
 * -fno-optimize-sibling-calls), that function may have jumped to another
 * and left no frame: then the frame below task_main is not the entry
 * function, and the entry function goes in as the outermost shown frame
 * (its first instruction), so every record names what the task was
 * started with.  Tasks that share a stack top share the lookup.
 */
/* The index of the return address into task_main in t's stack (the
 * entry was called from there), or -1.  It sits at the end, before the
 * trampoline, and has one value in every stack: found by symbols once,
 * then by that value (*main_ret). */
static int main_frame(const struct snapshot *s, const struct prof_task *t,
		      uintptr_t *main_ret)
{
	for (int k = t->npcs - 1; k >= 0 && k >= t->npcs - 3; k--) {
		uintptr_t pc = t->pcs[k];
		bool exact = k == 0 && t->leaf_is_pc;
		if (exact)
			continue;
		if (*main_ret) {
			if (pc == *main_ret)
				return k;
			continue;
		}
		bool trampoline = pc - 1 >= s->hide_entry[1] &&
				  pc - 1 < s->hide_entry[1] + 16;
		if (!trampoline && prof_pc_is_entry(s, pc, false)) {
			*main_ret = pc;
			return k;
		}
	}
	return -1;
}

static void stacks_fix(struct snapshot *s)
{
	/* A small cache of "is the frame below task_main not the entry?",
	 * by that frame's pc and the entry: tasks share few stack tops. */
	struct {
		uintptr_t pc, entry;
		bool exact, missing;
	} seen[64] = {{0}};
	uintptr_t main_ret = 0;
	struct prof_maps pm;

	prof_maps_get(&pm);
	for (size_t i = 0; i < s->n; i++) {
		struct prof_task *t = s->tasks[i];
		int k;

		for (k = t->leaf_is_pc ? 1 : 0; k < t->npcs; k++)
			if (!prof_pc_mapped(&pm, t->pcs[k])) {
				t->npcs = (uint16_t)k;
				break;
			}
		k = main_frame(s, t, &main_ret);
		if (k <= 0 || !t->entry)
			continue;
		uintptr_t pc = t->pcs[k - 1];
		bool exact = k - 1 == 0 && t->leaf_is_pc;
		size_t slot = (pc ^ t->entry) % 64;
		if (seen[slot].pc != pc || seen[slot].entry != t->entry ||
		    seen[slot].exact != exact) {
			struct prof_frame fr[32];
			int nf = prof_symbolize(pc, exact, fr, 32);
			seen[slot].pc = pc;
			seen[slot].entry = t->entry;
			seen[slot].exact = exact;
			seen[slot].missing = fr[nf - 1].entry &&
					     fr[nf - 1].entry != t->entry;
		}
		if (!seen[slot].missing)
			continue;
		/* pcs holds room for one more (record_task). */
		memmove(&t->pcs[k + 1], &t->pcs[k],
			(size_t)(t->npcs - k) * sizeof(uintptr_t));
		t->pcs[k] = t->entry + 1; /* a "return address" into its entry */
		t->npcs++;
	}
}

int snapshot_take(struct snapshot *s)
{
	struct introspect_snapshot_ops ops = {record_task, s};
	struct timespec ts;

	memset(s, 0, sizeof(*s));
	/* Outside co_run there are no tasks: an empty snapshot. */
	s->cap = 2 * co_num_tasks() + 4096;
	if (arena_get(s) < 0) {
		snapshot_free(s);
		return CO_ENOMEM;
	}
	introspect_task_entries(&s->hide_entry[0], &s->hide_entry[1]);
	s->self_id = co_self();
	clock_gettime(CLOCK_REALTIME, &ts);
	s->time_nanos = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	s->mono_nanos = co_now();
	if (introspect_running())
		introspect_snapshot(&ops);
	s->n = atomic_load(&s->next);
	if (s->n > s->cap)
		s->n = s->cap;
	/* Drop holes left by records that found no room. */
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->tasks[i])
			s->tasks[k++] = s->tasks[i];
	s->n = k;
	qsort(s->tasks, s->n, sizeof(*s->tasks), cmp_task);
	stacks_fix(s);
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; s->tasks && i < s->n; i++)
		labels_unref(s->tasks[i]->labels);
	arena_put(s);
	unmap_arena(s->tasks, s->cap, s->arena, s->arena_size);
	memset(s, 0, sizeof(*s));
}
