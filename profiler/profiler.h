/* SPDX-License-Identifier: MIT */
/*
 * profiler.h - the profiler module's internal interface, grouped by the
 * file that defines each part.  Nothing outside profiler/ (and the admin
 * port, later) includes it.  The module reaches the runtime only through
 * runtime/introspect.h; pprof.h (the encoder) and symbols.h (DWARF) are
 * its own lower layers.
 */
#ifndef COPPER_PROFILER_PROFILER_H
#define COPPER_PROFILER_PROFILER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PROF_INTERNAL __attribute__((visibility("hidden")))

/* Frames kept per task (Go 1.23 keeps 128 in profiles, 100 in dumps). */
#define PROF_MAX_FRAMES 64

/* ------------------------------------------------------------------------
 * Labels (labels.c): immutable, reference-counted, keys sorted.
 * ---------------------------------------------------------------------- */
struct label_pair {
	const char *key;
	const char *value;
};

struct labels {
	_Atomic long refs;          /* tasks and snapshot records holding it */
	size_t n;                   /* pairs, sorted by key */
	struct label_pair pairs[];  /* strings follow the array */
};

PROF_INTERNAL void labels_ref(struct labels *l);
PROF_INTERNAL void labels_unref(struct labels *l);
/* Appends Go's debug=1 form, {"k":"v", "k2":"v2"}, to buf; returns the
 * length it needs (like snprintf). */
PROF_INTERNAL size_t labels_format_debug1(const struct labels *l, char *buf,
					  size_t len);
/* Writes a string with Go's %q quoting. */
PROF_INTERNAL void prof_fput_quoted(FILE *f, const char *s);

/* ------------------------------------------------------------------------
 * Snapshots (snapshot.c)
 * ---------------------------------------------------------------------- */

/* One task as it was at the snapshot's instant. */
struct prof_task {
	uint64_t id;               /* task id */
	uint64_t creator_id;       /* 0 for task 1 */
	uintptr_t creator_pc;      /* return address of the co_go call */
	int64_t wait_since;        /* co_now() at park, 0 if unknown */
	int64_t longest_run_ns;    /* longest stall reported, 0: none */
	uintptr_t entry;           /* the function the task was started with */
	const char *status;        /* "chan receive", "running", ... (static) */
	const char *name;          /* copy in the arena, or NULL */
	struct labels *labels;     /* referenced until the snapshot is freed */
	int state;                 /* the runtime's task state */
	uint16_t npcs;             /* frames in pcs (room for one more) */
	bool leaf_is_pc;           /* pcs[0] is an exact pc, not a return */
	bool self;                 /* the task that took the snapshot */
	uintptr_t pcs[];           /* leaf first */
};

struct snapshot {
	struct prof_task **tasks;  /* n records, sorted by id (self first) */
	size_t n;                  /* tasks recorded */
	size_t cap;                /* room for records */
	_Atomic size_t next;       /* records claimed (may pass cap) */
	char *arena;               /* records, claimed with `used` */
	size_t arena_size;
	_Atomic size_t used;
	bool truncated;            /* more tasks than room: some are missing */
	int64_t time_nanos;        /* wall clock at the instant */
	int64_t mono_nanos;        /* co_now() at the instant */
	uintptr_t hide_entry[2];   /* task_main and the trampoline */
	uint64_t self_id;          /* the task taking it, 0 outside tasks */
};

/* Takes a consistent snapshot of every task (runtime/introspect.h). */
PROF_INTERNAL int snapshot_take(struct snapshot *s);
PROF_INTERNAL void snapshot_free(struct snapshot *s);
/* Unmaps the arena kept for the next snapshot (co_run is returning). */
PROF_INTERNAL void snapshot_release_kept(void);

/* ------------------------------------------------------------------------
 * Symbols for printing (symbolize.c): libdw through symbols.h, with the
 * rules Go's printers use to hide runtime frames.
 * ---------------------------------------------------------------------- */
struct prof_frame {
	const char *function;      /* "?" when unknown */
	const char *file;          /* "?" when unknown */
	int line;
	uintptr_t entry;           /* function start, 0 if unknown */
	bool inlined;              /* not the last frame of its address */
};

/* Frames of one address's inline chain that a printer asks for. */
#define PROF_INLINE_MAX 32

/* Symbolizes one stack entry: pc is a return address unless exact.
 * Returns the number of frames (inline chain, innermost first), ≥ 1. */
PROF_INTERNAL int prof_symbolize(uintptr_t pc, bool exact,
				 struct prof_frame *out, int max);
/* The executable mappings, taken once for a pass over many addresses
 * (the symbolizer's lock is not taken per address). */
struct symbols_mapping;
struct prof_maps {
	const struct symbols_mapping *m;  /* NULL: unknown */
	size_t n;
	size_t last;                      /* the mapping of the last hit */
	bool refreshed;                   /* re-read once this pass */
};
PROF_INTERNAL void prof_maps_get(struct prof_maps *pm);
/* True if pc lies in an executable mapping of the process: a return
 * address outside every one is junk from a broken frame chain.  On a
 * miss it re-reads the mappings once per pass (a library dlopened since
 * they were read). */
PROF_INTERNAL bool prof_pc_mapped(struct prof_maps *pm, uintptr_t pc);
/* True for a frame of Copper's own runtime that is not public API:
 * printers skip them at the top of a stack, as Go skips runtime.*. */
PROF_INTERNAL bool prof_frame_is_internal(const struct prof_frame *f);
/* True for a task entry frame (task_main, trampoline): never printed. */
PROF_INTERNAL bool prof_pc_is_entry(const struct snapshot *s, uintptr_t pc,
				    bool exact);
/* The pprof builder's symbolizer callback (ctx unused). */
struct pprof_frame;
PROF_INTERNAL int prof_pprof_symbolize(void *ctx, uintptr_t pc,
				       struct pprof_frame *frames, int max);
/* Adds the process's executable mappings to a pprof builder. */
struct pprof_builder;
PROF_INTERNAL int prof_pprof_add_mappings(struct pprof_builder *b);

/* ------------------------------------------------------------------------
 * The debug=1 text every profile shares (textfmt.c)
 *
 * Past its first lines, Go prints every pprof text profile at debug=1 the
 * same way (pprof-formats.md 2.0): records with equal stacks merged, each
 * a header line ending in "@ <pc> <pc> ...", the frames as TAB-aligned
 * "#\t<pc-1>\t<func>+<off>\t<file>:<line>" lines, then an empty line.
 * Only the numbers before the "@" differ: "<count>" for goroutine (2.2),
 * "<inuse>: <bytes> [<allocs>: <bytes>]" for heap (2.4), "<cycles>
 * <count>" for block and mutex (2.5).  The goroutine profile prints
 * through these; heap, block and mutex are to print through them too.
 *
 * A profile describes its records as textfmt_stack views (a callback
 * and a comparator over them), groups them with textfmt_records_group,
 * sets each group's `order` if it does not sort by count (summing over
 * its records from `first`), sorts with textfmt_groups_sort, and for
 * each group prints its own numbers, " ", the group's key, "\n", and
 * textfmt_frames_write.  The `s` these take is read only for its
 * hide_entry (the task entries never shown); a profile without a
 * snapshot fills one with introspect_task_entries, as stall.c does.
 * ---------------------------------------------------------------------- */

/* One record's stack, as the writer reads it: a view into the caller's
 * record, valid while that record is. */
struct textfmt_stack {
	const uintptr_t *pcs;         /* leaf first, return addresses but
					 for an exact leaf */
	const struct labels *labels;  /* NULL: no "# labels:" line */
	int npcs;                     /* entries in pcs */
	bool leaf_is_pc;              /* pcs[0] is an exact pc (a running
					 task's leaf), not a return */
};

/* Fills *st from the record at elem, an element of the caller's array. */
typedef void (*textfmt_stack_fn)(const void *elem, struct textfmt_stack *st);

/* Runs fn on a stdio stream over a duplicate of fd (64 KiB buffer), then
 * flushes and closes it: fn's error, else the stream's, else 0.  Every
 * text profile writes through it. */
PROF_INTERNAL int textfmt_to_fd(int fd, int (*fn)(FILE *f, void *arg),
				void *arg);

/* Orders label sets by content, no labels first. */
PROF_INTERNAL int textfmt_labels_cmp(const struct labels *a,
				     const struct labels *b);

/* Orders stacks by length, leaf kind and addresses, then label sets:
 * equal means one group.  Inline because a profile's comparator calls it
 * for every comparison of a sort over all its records. */
static inline int textfmt_stack_cmp(const struct textfmt_stack *a,
				    const struct textfmt_stack *b)
{
	int c;

	if (a->npcs != b->npcs)
		return a->npcs < b->npcs ? -1 : 1;
	if (a->leaf_is_pc != b->leaf_is_pc)
		return a->leaf_is_pc ? 1 : -1;
	c = memcmp(a->pcs, b->pcs, (size_t)a->npcs * sizeof(uintptr_t));
	return c ? c : textfmt_labels_cmp(a->labels, b->labels);
}

/* The records of one (stack, labels). */
struct textfmt_group {
	struct textfmt_stack stack;   /* theirs (all equal); set by grouping */
	size_t first;                 /* index of the first in the sorted
					 array, the rest follow; grouping */
	int64_t count;                /* how many; set by grouping */
	int64_t order;                /* sorted by, descending: count as
					 grouping sets it, or the caller's
					 (heap: in-use bytes; block and
					 mutex: cycles) */
	char *key;                    /* "@ 0x.. 0x..[\n# labels: {...}]",
					 set by textfmt_groups_sort */
};

/* Sorts the n records of size bytes at recs in place with cmp, which
 * must order them as textfmt_stack_cmp orders their stacks (build both
 * views in cmp and call it: see textfmt.c on speed), and returns one
 * group per run of equal records in *out (free with
 * textfmt_groups_free); the number of groups, or -ENOMEM. */
PROF_INTERNAL long textfmt_records_group(void *recs, size_t n, size_t size,
					 int (*cmp)(const void *, const void *),
					 textfmt_stack_fn stack_of,
					 struct textfmt_group **out);
/* Gives every group its key and sorts by order descending, then key, as
 * Go's keysByCount; 0 or -ENOMEM. */
PROF_INTERNAL int textfmt_groups_sort(struct textfmt_group *g, long n);
PROF_INTERNAL void textfmt_groups_free(struct textfmt_group *g, long n);

/* Called for each frame shown: stack entry i of st, frame k of its
 * inline chain fr[0..nf). */
typedef void (*textfmt_frame_fn)(const struct textfmt_stack *st, int i,
				 const struct prof_frame *fr, int k,
				 void *arg);
/* Passes fn the frames of st a printer shows, innermost first: never a
 * task entry; with hide_internal, not the leading frames of Copper's
 * runtime either (Go's allFrames=false).  Returns how many it passed. */
PROF_INTERNAL int textfmt_frames_each(const struct snapshot *s,
				      const struct textfmt_stack *st,
				      bool hide_internal, textfmt_frame_fn fn,
				      void *arg);
/* Copies to out (room for st->npcs) the entries of st that are not task
 * entries, for a proto sample; returns how many. */
PROF_INTERNAL int textfmt_pcs_shown(const struct snapshot *s,
				    const struct textfmt_stack *st,
				    uintptr_t *out);
/* Writes one record's frame lines, aligned as Go's tabwriter aligns them,
 * and the empty line that ends the record.  all_frames: Copper's leading
 * runtime frames too (block, mutex); else hidden, unless that hides every
 * frame (goroutine, heap).  "#\t0x0" if nothing is left to show. */
PROF_INTERNAL void textfmt_frames_write(FILE *f, const struct snapshot *s,
					const struct textfmt_stack *st,
					bool all_frames);

/* ------------------------------------------------------------------------
 * The service thread (service.c): one thread with its own libuv loop for
 * what the profiler does for an outside asker (dumps, the admin port),
 * started on first need, stopped as co_run returns.
 * ---------------------------------------------------------------------- */
#include <signal.h>
struct uv_loop_s;
/* Starts the thread if it does not run; 0 or a negative code. */
PROF_INTERNAL int service_start(void);
PROF_INTERNAL bool service_running(void);
/* The loop: use it on the service thread only. */
PROF_INTERNAL struct uv_loop_s *service_loop(void);
PROF_INTERNAL bool service_on_thread(void);
/* Runs fn(arg) on the service thread soon (starting it if need be);
 * 0, -ENOMEM, or -ECANCELED while it stops. */
PROF_INTERNAL int service_call(void (*fn)(void *arg), void *arg);
/* ... and waits until it ran (inline on the service thread); fails
 * with -ECANCELED if the thread does not run. */
PROF_INTERNAL int service_call_sync(void (*fn)(void *arg), void *arg);
/* On the service thread: blocks every signal but those in unblocked. */
PROF_INTERNAL void service_set_sigmask(const sigset_t *unblocked);

/* The execution trace (trace.c) is running. */
PROF_INTERNAL bool trace_running(void);

/* ------------------------------------------------------------------------
 * Delta profiles (delta.c): after minus before, two gzipped profiles of
 * one kind, matched by stack and labels, with duration_ns as the
 * interval; keep_inuse leaves inuse_* values as after has them
 * (godeltaprof's heap).  *out is malloc'd gzip; 0, -EINVAL (not two
 * profiles of one kind), -ENOMEM.
 * ---------------------------------------------------------------------- */
PROF_INTERNAL int pprof_delta(const void *before, size_t before_len,
			      const void *after, size_t after_len,
			      int64_t duration_ns, bool keep_inuse, char **out,
			      size_t *out_len);

/* ------------------------------------------------------------------------
 * The goroutine profile (goroutine.c)
 * ---------------------------------------------------------------------- */
PROF_INTERNAL int goroutine_write(const struct snapshot *s, int fd,
				  int debug);
/* debug=2 text for one task (also used by leak checks and dumps). */
PROF_INTERNAL void goroutine_print_task(FILE *f, const struct snapshot *s,
					const struct prof_task *t);
/* JSON, one object per task. */
PROF_INTERNAL int goroutine_write_json(const struct snapshot *s, int fd);

/* ------------------------------------------------------------------------
 * The block and mutex profiles (contention.c)
 * ---------------------------------------------------------------------- */
PROF_INTERNAL int contention_block_write(int fd, int debug);
PROF_INTERNAL int contention_mutex_write(int fd, int debug);
/* Records (distinct stack and label set) in each. */
PROF_INTERNAL int contention_block_count(void);
PROF_INTERNAL int contention_mutex_count(void);
/* Applies $COPPER_BLOCKPROFILERATE and $COPPER_MUTEXPROFILEFRACTION (at
 * co_run's start); -EINVAL, with a message naming the variable, for a
 * bad value. */
PROF_INTERNAL int contention_env_load(void);
/* How many leading entries of a recorded stack are Copper's own frames
 * (runtime or profiler internals, whole inline chains), to leave out so
 * that the stack starts at the public call; never all of them. */
PROF_INTERNAL int contention_pcs_trim(const uintptr_t *pcs, int n);

/* ------------------------------------------------------------------------
 * The threadcreate profile (threadcreate.c)
 * ---------------------------------------------------------------------- */
PROF_INTERNAL int threadcreate_write(int fd, int debug);
PROF_INTERNAL int threadcreate_count(void);
/* Counts a thread the caller has just created, with the caller's stack
 * (the profiler's own threads; the runtime's come as events). */
PROF_INTERNAL void threadcreate_note_self(void);

/* ------------------------------------------------------------------------
 * The heap sampler (memprof.c) and the heap/allocs profiles (heap.c)
 * ---------------------------------------------------------------------- */

/* One (stack, size) bucket's cumulative sampled counts, raw (unscaled). */
struct memprof_record {
	const uintptr_t *pcs;      /* leaf first (the allocating function);
				      lives as long as the process */
	int npcs;
	size_t size;               /* allocation size of the bucket */
	int64_t alloc_objects;     /* sampled allocations */
	int64_t alloc_bytes;
	int64_t free_objects;      /* frees of them */
	int64_t free_bytes;
};

/* A copy of every bucket in *out (free() it); the count or -ENOMEM. */
PROF_INTERNAL long memprof_records(struct memprof_record **out);
/* Buckets now (co_profile_count). */
PROF_INTERNAL long memprof_count(void);
/* The sampling rate in bytes (0: off). */
PROF_INTERNAL long memprof_rate(void);
/* False when the allocator is not interposed (AddressSanitizer). */
PROF_INTERNAL bool memprof_available(void);
/* -EINVAL (after a message naming it) if COPPER_MEMPROFILERATE was
 * invalid; a life-cycle part: co_run calls it before task 1 runs. */
PROF_INTERNAL int memprof_env_check(void);
/* Writes heap (allocs false) or allocs (true) at debug 0 or 1 (2 is 1). */
PROF_INTERNAL int heap_write(int fd, int debug, bool allocs);
PROF_INTERNAL int heap_count(void);

/* ------------------------------------------------------------------------
 * The CPU profile (cpuprof.c, cpuprof_unwind.c)
 * ---------------------------------------------------------------------- */
/* COPPER_CPUPROFILE_HZ at co_run's start: -EINVAL, with a message naming
 * it, for a bad value. */
PROF_INTERNAL int cpuprof_env_check(void);
/* The running profile so far, written as stop writes it (the profile
 * goes on); -EINVAL if none runs. */
PROF_INTERNAL int cpuprof_write_now(int fd);
struct introspect_sig_self;
/* In the SIGPROF handler: the interrupted stack into pcs (pcs[0] the
 * exact pc, then return addresses); frame pointers, and the CFI of
 * libraries built without them.  Async-signal-safe.  Returns the count. */
PROF_INTERNAL int cpuprof_unwind(const struct introspect_sig_self *ss,
				 uintptr_t *pcs, int max);
/* Before a profile's first tick: the unwind tables (built on the first
 * call, kept; rebuilt when the mappings changed). */
PROF_INTERNAL void cpuprof_unwind_prepare(void);

#endif /* COPPER_PROFILER_PROFILER_H */
