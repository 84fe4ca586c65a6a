/* SPDX-License-Identifier: MIT */
/*
 * symbolize.c - turns recorded stack entries into the frames printers
 * show, with the rules Go's printers use.
 *
 * A recorded entry is a return address, except the leaf of a task caught
 * running (an exact pc).  The address looked up is R - 1 for a return
 * address, so that it falls inside the call instruction and names the
 * call's line (pprof-formats.md 1.2).  symbols.c does the DWARF work and
 * caches per address; this file adds the hiding rules:
 *
 *   - task entries (task_main and the assembly trampoline) are never
 *     printed, as Go never prints runtime.goexit;
 *   - at the top of a stack, frames of Copper's own runtime that are not
 *     public API (switch_from, sched_park, ...) are skipped until the
 *     first co_* function or user frame, as Go skips runtime.gopark and
 *     friends: a dump then starts at co_chan_recv(...), the call the user
 *     wrote.  A frame is Copper's runtime when its source file lies under
 *     a runtime/ directory and its name does not start with "co_".
 */
#include <string.h>

#include "pprof.h"
#include "profiler.h"
#include "symbols.h"

int prof_symbolize(uintptr_t pc, bool exact, struct prof_frame *out, int max)
{
	struct symbols_frame fr[SYMBOLS_FRAMES_MAX];
	int n;

	if (max > SYMBOLS_FRAMES_MAX)
		max = SYMBOLS_FRAMES_MAX;
	symbols_init();
	n = pc ? symbols_lookup(exact ? pc : pc - 1, fr, max) : 0;
	if (n <= 0) {
		out[0] = (struct prof_frame){"?", "?", 0, 0, false};
		return 1;
	}
	for (int i = 0; i < n; i++) {
		out[i].function = fr[i].function && *fr[i].function
					  ? fr[i].function
					  : "?";
		out[i].file = fr[i].file && *fr[i].file ? fr[i].file : "?";
		out[i].line = fr[i].line;
		out[i].entry = fr[i].function_start;
		out[i].inlined = i < n - 1;
	}
	return n;
}

bool prof_frame_is_internal(const struct prof_frame *f)
{
	if (strncmp(f->function, "co_", 3) == 0)
		return false;
	return strstr(f->file, "runtime/") != NULL;
}

bool prof_pc_is_entry(const struct snapshot *s, uintptr_t pc, bool exact)
{
	struct prof_frame f[SYMBOLS_FRAMES_MAX];
	uintptr_t at = exact ? pc : pc - 1;
	int n;

	/* The trampoline is a few bytes of assembly; switch_<arch>.S checks
	 * that it fits in 16 and that nothing else starts within them. */
	if (at >= s->hide_entry[1] && at < s->hide_entry[1] + 16)
		return true;
	n = prof_symbolize(pc, exact, f, SYMBOLS_FRAMES_MAX);
	return f[n - 1].entry && f[n - 1].entry == s->hide_entry[0];
}

int prof_pprof_symbolize(void *ctx, uintptr_t pc, struct pprof_frame *frames,
			 int max)
{
	struct symbols_frame fr[SYMBOLS_FRAMES_MAX];
	int n;
	(void)ctx;

	if (max > SYMBOLS_FRAMES_MAX)
		max = SYMBOLS_FRAMES_MAX;
	symbols_init();
	n = symbols_lookup(pc, fr, max);
	for (int i = 0; i < n; i++) {
		/* "?" is the symbolizer's unknown: pprof must see it as
		 * missing so that it may symbolize the address itself. */
		frames[i].function = fr[i].function;
		frames[i].file = fr[i].file && strcmp(fr[i].file, "?") != 0
					 ? fr[i].file
					 : NULL;
		frames[i].line = fr[i].line;
		frames[i].start_line = fr[i].start_line;
	}
	return n > 0 ? n : 0;
}

void prof_maps_get(struct prof_maps *pm)
{
	pm->refreshed = false;
	pm->last = 0;
	if (symbols_mappings(&pm->m, &pm->n) < 0)
		pm->m = NULL;
}

static bool pc_in(struct prof_maps *pm, uintptr_t pc)
{
	size_t lo = 0, hi = pm->n;

	/* Most addresses of a stack lie in the mapping the last one did. */
	if (pm->last < pm->n && pc >= pm->m[pm->last].start &&
	    pc < pm->m[pm->last].limit)
		return true;
	/* /proc/self/maps lists mappings by address. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc < pm->m[mid].start) {
			hi = mid;
		} else if (pc >= pm->m[mid].limit) {
			lo = mid + 1;
		} else {
			pm->last = mid;
			return true;
		}
	}
	return false;
}

bool prof_pc_mapped(struct prof_maps *pm, uintptr_t pc)
{
	if (!pm->m)
		return true; /* nothing to judge by: keep the frame */
	if (pc_in(pm, pc))
		return true;
	if (pm->refreshed)
		return false;
	/* Perhaps a library dlopened since the mappings were read: look
	 * once more, once per pass. */
	pm->refreshed = true;
	symbols_refresh();
	if (symbols_mappings(&pm->m, &pm->n) < 0) {
		pm->m = NULL;
		return true;
	}
	pm->last = 0;
	return pc_in(pm, pc);
}

int prof_pprof_add_mappings(struct pprof_builder *b)
{
	const struct symbols_mapping *m;
	size_t n;
	int err;

	symbols_init();
	if (symbols_mappings(&m, &n) < 0)
		return 0; /* pprof gets one fake mapping, as Go writes */
	for (size_t i = 0; i < n; i++) {
		err = pprof_mapping_add(b, m[i].start, m[i].limit, m[i].offset,
					m[i].path, m[i].build_id);
		if (err < 0)
			return err;
	}
	return 0;
}
