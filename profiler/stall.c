/* SPDX-License-Identifier: MIT */
/*
 * stall.c - prints the stall reports of COPPER_STALL_MS: a task that has
 * held its worker that long without a switch, with its stack, while it
 * still runs; and one line more when it switches at last.  The same
 * printer gives a fatal stack overflow the dying task's stack, symbolized
 * on the monitor thread rather than on the broken stack (fatal.c).
 *
 * The runtime's monitor thread finds the stall and has the worker record
 * the running task's stack in its SIGURG handler (runtime/introspect.h,
 * "Stall reports"); this file only symbolizes and prints, on the monitor
 * thread, in the goroutine profile's debug=2 form so that the stack reads
 * like every other Copper dump.  Each report is one write(2) to stderr, so
 * reports from two workers never interleave.  Go has no such report; the
 * nearest are seastar's reactor stall backtraces (a thread's stack, not
 * the task's) and tokio-console's busy-task warning (no stack).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

static void stall_print_task(FILE *f, const struct stall_report *r);

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void stall_print(FILE *f, const struct stall_report *r)
{
	if (r->misuse) {
		if (r->fatal)
			fprintf(f, "fatal error: %s\n\n", r->misuse);
		else if (r->id)
			fprintf(f, "copper: misuse: %s, in goroutine %" PRIu64
				   " (reported once per call site; "
				   "COPPER_MISUSE=fatal stops the program, "
				   "=silent hides this):\n",
				r->misuse, r->id);
		else
			fprintf(f, "copper: misuse: %s, outside a task\n",
				r->misuse);
		if (r->id)
			stall_print_task(f, r);
		return;
	}
	if (r->fatal) {
		stall_print_task(f, r);
		return;
	}
	if (r->ended && r->run_over) {
		fprintf(f, "copper: stall: goroutine %" PRIu64 " had run for "
			   "about %" PRId64 " ms without a switch when the run "
			   "ended\n",
			r->id, r->ran_ns / 1000000);
		return;
	}
	if (r->ended) {
		fprintf(f, "copper: stall: goroutine %" PRIu64 " ran for about "
			   "%" PRId64 " ms before it switched\n",
			r->id, r->ran_ns / 1000000);
		return;
	}
	fprintf(f, "copper: stall: goroutine %" PRIu64 " has run for %" PRId64
		   " ms on worker %d without a switch:\n",
		r->id, r->ran_ns / 1000000, r->worker);
	stall_print_task(f, r);
}

/* The task in debug=2 form, as the goroutine profile prints it. */
static void stall_print_task(FILE *f, const struct stall_report *r)
{
	struct prof_task *t = calloc(1, sizeof(*t) + (size_t)r->npcs *
						     sizeof(uintptr_t));
	if (!t)
		return;
	struct snapshot s = {.mono_nanos = co_now()};
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	t->id = r->id;
	t->creator_id = r->creator_id;
	t->creator_pc = r->creator_pc;
	t->status = "running";
	t->state = INTROSPECT_RUNNING;
	t->name = r->name;
	t->labels = r->labels;
	t->npcs = (uint16_t)r->npcs;
	t->leaf_is_pc = !r->returns_only;
	memcpy(t->pcs, r->pcs, (size_t)r->npcs * sizeof(uintptr_t));
	goroutine_print_task(f, &s, t);
	fputc('\n', f);
	free(t);
}

static void stall_report(const struct stall_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	stall_print(f, r);
	if (fclose(f) == 0)
		write_all(STDERR_FILENO, buf, len);
	free(buf);
}

__attribute__((constructor)) static void stall_register(void)
{
	introspect_set_stall_report(stall_report);
}
