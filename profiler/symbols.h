/* SPDX-License-Identifier: MIT */
/*
 * symbols.h - the symbolizer: program counters of this process to function
 * names and file:line (DWARF through libdw), and the executable mappings
 * with their GNU build ids that pprof's Mapping messages carry.
 *
 * The symbolizer stands alone: it knows nothing of tasks or profiles.  The
 * profile writers hand it addresses after a stack was recorded, never from
 * a signal handler and never while the world is stopped: a cold lookup
 * reads DWARF, takes a mutex and allocates.
 *
 * Addresses are looked up exactly as given.  For a caller frame pass the
 * return address minus one, so that the address lies inside the call
 * instruction and resolves to the line of the call (pprof-formats.md 1.2,
 * "Location.address"); for a sampled leaf pass the PC itself.
 *
 * Every string handed out (function, file, path, build_id) is owned by the
 * symbolizer and stays valid until symbols_destroy, across refreshes.  The
 * same string is always the same pointer, so callers may compare and hash
 * them by address.
 */
#ifndef COPPER_PROFILER_SYMBOLS_H
#define COPPER_PROFILER_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

/* The deepest inline chain kept per address; deeper chains lose their
 * outermost frames.  A frames array of this size never truncates. */
#define SYMBOLS_FRAMES_MAX 32

/* One frame of a symbolized address: the function itself, or one level of
 * an inline chain.  Filled by symbols_lookup. */
struct symbols_frame {
	const char *function;     /* DWARF or ELF symbol name, as C has it
				   * (C++ names stay mangled) */
	const char *file;         /* absolute source path, "?" if unknown */
	int line;                 /* source line, 0 if unknown */
	uintptr_t function_start; /* entry of the physical function that holds
				   * the address; the same for every frame of
				   * an inline chain (Go's Frame.Entry) */
	int start_line;           /* DW_AT_decl_line of function, 0 if
				   * unknown */
};

/* One executable mapping of the process, as /proc/self/maps lists it. */
struct symbols_mapping {
	uintptr_t start;          /* first address */
	uintptr_t limit;          /* one past the last address */
	uintptr_t offset;         /* file offset of start */
	const char *path;         /* file, " (deleted)" removed; "[vdso]" */
	const char *build_id;     /* GNU build id, lowercase hex, "" if none */
};

/* Sets up libdw for this process.  Idempotent and thread-safe; the lookup
 * functions call it on first use.  0 or a negative errno. */
int symbols_init(void);

/* Frees everything, strings and mapping arrays included: nothing handed
 * out before stays valid.  No other call may be running; a later call
 * sets up afresh. */
void symbols_destroy(void);

/*
 * Symbolizes addr into at most max frames, innermost first: with inlining
 * frames[0] is the innermost inlined function and the last frame is the
 * function the code physically lies in.  Returns the number of frames
 * written, 0 if nothing is known about addr, or -EINVAL (bad arguments),
 * -ENOMEM.  Results are cached per address.  Thread-safe (one mutex);
 * never call it from a signal handler.
 */
int symbols_lookup(uintptr_t addr, struct symbols_frame *frames, int max);

/*
 * The executable mappings in /proc/self/maps order, each with its build
 * id.  The array stays valid until symbols_destroy (a refresh publishes a
 * new array and keeps the old one).  0 or a negative errno.
 */
int symbols_mappings(const struct symbols_mapping **out, size_t *n);

/*
 * Re-reads /proc/self/maps; if the executable mappings changed (dlopen,
 * dlclose), re-reports the modules to libdw, rebuilds the mappings and
 * drops the address cache.  Cheap when nothing changed: call it before
 * each profile.  A lookup of an address outside every known module does it
 * by itself once for that address.  Does nothing before symbols_init.
 */
void symbols_refresh(void);

#endif /* COPPER_PROFILER_SYMBOLS_H */
