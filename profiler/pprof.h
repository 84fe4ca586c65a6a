/* SPDX-License-Identifier: MIT */
/*
 * pprof.h - the pprof encoder: builds a perftools.profiles.Profile (the
 * schema in profiler/profile.proto) and writes it gzipped, as Go's
 * runtime/pprof does for `go tool pprof`.
 *
 * How it is used: a profile kind (goroutine, heap, CPU, ...) creates one
 * builder, declares its sample types and period as Go does for that kind
 * (reference/pprof-formats.md table 1.4), adds the executable mappings, sets
 * a symbolizer, then adds one sample per aggregated stack and finally writes
 * the builder to a file descriptor or to memory.  The builder de-duplicates
 * as it goes, like Go's profileBuilder: one string table entry per distinct
 * string, one Location per distinct address, one Function per distinct
 * (name, file).  It knows nothing about the runtime; stacks are plain
 * address arrays.
 *
 * Contract with the symbolizer (profiler/symbols.c): the builder calls it
 * once per distinct address, at the first sample that uses the address,
 * from the thread that adds the sample, so never inside a signal handler or
 * a stop-the-world pause as long as samples are added after the pause.  The
 * address it passes is already the one to look up: for a caller frame the
 * builder has subtracted one from the return address (see
 * pprof_sample_add), so the symbolizer must not adjust it again.
 *
 * Invariants of a written profile: string_table[0] == ""; location,
 * function and mapping ids are 1, 2, 3, ... in order of first use (mappings:
 * in order of pprof_mapping_add); every sample has one value per sample
 * type; a location's mapping is the first mapping whose [start, limit)
 * holds its address.
 *
 * A builder is not thread safe: one thread uses it at a time.  All actions
 * return 0 or a negative errno; -EINVAL for NULL or inconsistent arguments,
 * -ENOMEM when memory runs out (the builder is then unchanged, or holds
 * only unused strings, functions and locations, and can still be written).
 */
#ifndef COPPER_PROFILER_PPROF_H
#define COPPER_PROFILER_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most frames (an address and the functions inlined at it) that one
 * address may expand to; a symbolizer is never asked for more. */
#define PPROF_MAX_FRAMES 32

/* A profile under construction.  Opaque; see pprof.c. */
struct pprof_builder;

/*
 * One frame of a symbolized address, filled in by the symbolizer.  The
 * strings need to live only until the callback's next call: the builder
 * copies them at once.
 */
struct pprof_frame {
	const char *function;	/* Function.name and .system_name; NULL or "" if unknown */
	const char *file;	/* Function.filename; NULL or "" if unknown */
	int64_t line;		/* Line.line: the source line of the address, 0 if unknown */
	int64_t start_line;	/* Function.start_line: where the function begins, 0 if unknown */
};

/*
 * A symbolizer: fills frames[0..max) for the address pc and returns how
 * many it filled, innermost (inlined callee) first and the function the code
 * was physically inlined into last; 0 when the address is unknown (the
 * Location is then written without lines, for pprof to symbolize through
 * the mapping), a negative errno to fail the pprof_sample_add that asked.
 * pc is used as given: it already points inside the instruction of interest.
 */
typedef int (*pprof_symbolize_fn)(void *ctx, uintptr_t pc,
				  struct pprof_frame *frames, int max);

/*
 * A sample label (Sample.label).  With str non-NULL it is a string label
 * {key, str} like Go's goroutine labels; with str NULL it is a numeric
 * label {key, num, num_unit} like the heap profile's "bytes".  An empty str
 * is written as string index 0, which pprof drops, as Go's would be.
 */
struct pprof_label {
	const char *key;	/* Label.key; required */
	const char *str;	/* Label.str; NULL for a numeric label */
	int64_t num;		/* Label.num; used when str is NULL */
	const char *num_unit;	/* Label.num_unit, e.g. "bytes"; NULL for none */
};

/* A new, empty builder with time_nanos set to now (Go sets it when its
 * builder is created).  NULL with *err = -ENOMEM on failure; err may be
 * NULL. */
struct pprof_builder *pprof_builder_new(int *err);
/* Frees b and everything it holds.  NULL is a no-op. */
void pprof_builder_free(struct pprof_builder *b);

/* Appends Profile.sample_type {type, unit}.  Sample types come before the
 * first sample: later ones return -EINVAL. */
int pprof_sample_type_add(struct pprof_builder *b, const char *type,
			  const char *unit);
/* Sets Profile.period_type {type, unit} and Profile.period. */
int pprof_period_set(struct pprof_builder *b, const char *type,
		     const char *unit, int64_t period);
/* Sets Profile.default_sample_type; type must name a sample type already
 * added (-EINVAL otherwise).  Go sets it only for allocs ("alloc_space"). */
int pprof_default_sample_type_set(struct pprof_builder *b, const char *type);
/* Sets Profile.time_nanos (Unix ns) and duration_nanos (0 leaves it out). */
void pprof_time_set(struct pprof_builder *b, int64_t time_nanos,
		    int64_t duration_nanos);
/* Appends a Profile.comment. */
int pprof_comment_add(struct pprof_builder *b, const char *text);

/*
 * Appends a Mapping for [start, limit) at file_offset in file (NULL: "")
 * with build_id (hex, NULL: "").  Ids follow the order of the calls, and
 * mapping 1 is what pprof calls the main binary.  Mapping.has_functions is
 * decided at write time as Go does: true iff at least one location falls in
 * the mapping and every such location was fully symbolized (function, file
 * and line).  With no mapping at all, the writer emits one all-zero mapping
 * that holds every location, as Go does when /proc/self/maps is unreadable.
 */
int pprof_mapping_add(struct pprof_builder *b, uint64_t start, uint64_t limit,
		      uint64_t file_offset, const char *file,
		      const char *build_id);

/* Sets the symbolizer used for addresses first seen after this call.
 * Without one, locations carry addresses only. */
void pprof_symbolizer_set(struct pprof_builder *b, pprof_symbolize_fn fn,
			  void *ctx);

/*
 * Appends a Sample: the stack stack[0..depth), leaf first, with one value
 * per sample type (values[0..number of sample types)) and nlabels labels.
 * Every entry of stack is a return address, except stack[0] when leaf_is_pc
 * is true (the exact PC a CPU sample interrupted).  A return address R is
 * recorded and symbolized as R - 1, inside the call instruction, exactly as
 * Go writes Location.address; an exact PC is recorded as is.  A return
 * address of 0 is -EINVAL.  depth may be 0 (a sample with no locations).
 * Samples are not merged: the caller aggregates identical stacks.
 */
int pprof_sample_add(struct pprof_builder *b, const uintptr_t *stack,
		     size_t depth, bool leaf_is_pc, const int64_t *values,
		     const struct pprof_label *labels, size_t nlabels);

/* Serializes the profile, gzips it (level 1, like Go) and writes all of it
 * to fd, retrying short writes and EINTR.  Returns 0 or the first error
 * (-EBADF, -ENOSPC, -EPIPE, ..., -ENOMEM); after an error the file holds
 * an incomplete profile.  The builder is not changed: it may be written
 * again. */
int pprof_builder_write(const struct pprof_builder *b, int fd);
/* The same, into memory: *out is a malloc'd buffer of *len gzipped bytes,
 * for the caller to free(). */
int pprof_builder_encode(const struct pprof_builder *b, uint8_t **out,
			 size_t *len);

/* Testing hook (defined only when built with -DCOPPER_TESTING, as the
 * test suites are): the nth memory allocation the encoder makes from now on
 * fails, once; 0 turns failures off.  Returns how many allocations the
 * previous setting still had to go: 0 if its failure happened (or none was
 * set).  Not thread safe. */
unsigned long pprof_testing_fail_alloc(unsigned long nth);

#endif /* COPPER_PROFILER_PPROF_H */
