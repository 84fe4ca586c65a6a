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

/* Symbolizes one stack entry: pc is a return address unless exact.
 * Returns the number of frames (inline chain, innermost first), ≥ 1. */
PROF_INTERNAL int prof_symbolize(uintptr_t pc, bool exact,
				 struct prof_frame *out, int max);
/* True if pc lies in an executable mapping of the process: a return
 * address outside every one is junk from a broken frame chain. */
PROF_INTERNAL bool prof_pc_mapped(uintptr_t pc);
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
 * The goroutine profile (goroutine.c)
 * ---------------------------------------------------------------------- */
PROF_INTERNAL int goroutine_write(const struct snapshot *s, int fd,
				  int debug);
/* debug=2 text for one task (also used by leak checks and dumps). */
PROF_INTERNAL void goroutine_print_task(FILE *f, const struct snapshot *s,
					const struct prof_task *t);
/* JSON, one object per task. */
PROF_INTERNAL int goroutine_write_json(const struct snapshot *s, int fd);

#endif /* COPPER_PROFILER_PROFILER_H */
