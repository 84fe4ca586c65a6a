/* SPDX-License-Identifier: MIT */
/*
 * stackwalk.c - frame-pointer stack walking, safe in a signal handler.
 *
 * Copper is built with -fno-omit-frame-pointer and asks its users to do the
 * same, so every frame starts with a record [saved frame pointer][return
 * address] and the records form a chain up the stack.  Walking it is a
 * handful of loads per frame, needs no unwind tables and no allocation,
 * and so can run in a signal handler (a running task records its own
 * stack that way).
 *
 * Robustness: code built without frame pointers breaks the chain.  Every
 * read is bounded by the task's own stack [lo, hi), links must move
 * strictly upward and stay aligned, so a broken chain ends the walk early
 * but never faults.  Rejected: libunwind/DWARF CFI unwinding (slow, not
 * async-signal-safe in general, and it would parse unwind tables inside a
 * pause); backtrace(3) (works only on the current stack, takes locks on
 * first use).
 */
#include "profiler.h"

int stackwalk_fp(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
		 int max)
{
	int n = 0;

	while (n < max && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) &&
	       (fp & (sizeof(uintptr_t) - 1)) == 0) {
		const uintptr_t *rec = (const uintptr_t *)fp;
		uintptr_t next = rec[0];
		uintptr_t ret = rec[1];

		if (ret == 0)
			break;
		pcs[n++] = ret;
		if (next <= fp)
			break; /* the chain must grow toward the stack's top */
		fp = next;
	}
	return n;
}
