/* SPDX-License-Identifier: MIT */
/*
 * goroutine.c - the goroutine profile: every task, where it is parked and
 * why, in Go's three forms and as JSON.
 *
 *   debug=0  pprof protobuf, gzipped: sample type goroutine/count, period
 *            goroutine/count 1, one sample per distinct (stack, labels)
 *            with the number of tasks; task entry frames left out (Go
 *            leaves out runtime.goexit), runtime frames kept.
 *   debug=1  Go's count profile: "goroutine profile: total N", then one
 *            record per distinct (stack, labels), "<count> @ <pcs>", the
 *            "# labels:" line, "#\t<pc-1>\t<func>+<off>\t<file>:<line>"
 *            frame lines aligned the way Go's tabwriter aligns them, sorted
 *            by count then key.
 *   debug=2  Go's traceback dump (Go 1.27 style): "goroutine N [status,
 *            M minutes labels:{...}]:", frames as "func(...)" and
 *            "\tfile:line +0xoff", "created by F in goroutine P"; the
 *            taking task first.  A task's name is shown as the label
 *            "copper.name", inside the labels Go 1.27 prints, so tools that
 *            parse Go dumps (panicparse, goleak) read ours unchanged.
 *
 * Keep in sync with ../shared/reference/pprof-formats.md (sections 1.4,
 * 2.0, 2.2, 2.3, 5) and docs/profiles.md.
 *
 * The formats work on a snapshot (snapshot.c) and symbolize after it was
 * taken: nothing here runs inside the snapshot's critical moments.
 *
 * What every text profile shares is textfmt.c's: grouping equal stacks,
 * debug=1's key and order, its TAB-aligned frame lines, and which frames
 * are shown at all (task entries never; Copper's leading runtime frames
 * not in debug=1 and 2, as Go hides runtime.*).  This file hands it
 * views of its task records and keeps what only the goroutine profile
 * has: the total line and counts of debug=1, the proto's sample and
 * period types, the whole of debug=2 and the JSON form.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

/* ------------------------------------------------------------------------
 * Tasks as the shared writer sees them (textfmt.c)
 * ---------------------------------------------------------------------- */

/* A task's stack and labels, as the shared writer reads them. */
static struct textfmt_stack task_view(const struct prof_task *t)
{
	return (struct textfmt_stack){t->pcs, t->labels, t->npcs,
				      t->leaf_is_pc};
}

/* The same for grouping: elem is an entry of snapshot.tasks. */
static void task_stack(const void *elem, struct textfmt_stack *st)
{
	*st = task_view(*(const struct prof_task *const *)elem);
}

/* Orders entries of snapshot.tasks as textfmt_stack_cmp orders stacks. */
static int cmp_task(const void *pa, const void *pb)
{
	const struct prof_task *const *ta = pa, *const *tb = pb;
	struct textfmt_stack a = task_view(*ta), b = task_view(*tb);

	return textfmt_stack_cmp(&a, &b);
}

/*
 * Groups the snapshot's tasks by (stack, labels).  Returns the number of
 * groups, or -ENOMEM.  It sorts the snapshot's own array in place, so
 * print a snapshot's debug=2 form, which wants id order, before grouping
 * it.
 */
static long group_tasks(const struct snapshot *s, struct textfmt_group **out)
{
	return textfmt_records_group(s->tasks, s->n, sizeof(*s->tasks),
				     cmp_task, task_stack, out);
}

/* ------------------------------------------------------------------------
 * debug=0: pprof protobuf
 * ---------------------------------------------------------------------- */

static int write_proto(const struct snapshot *s, int fd)
{
	struct textfmt_group *g = NULL;
	struct pprof_builder *b;
	long ng;
	int err = 0;

	if (!(b = pprof_builder_new(&err)))
		return err;
	if ((ng = group_tasks(s, &g)) < 0) {
		pprof_builder_free(b);
		return (int)ng;
	}
	pprof_time_set(b, s->time_nanos, 0);
	pprof_symbolizer_set(b, prof_pprof_symbolize, NULL);
	char note[128];
	snprintf(note, sizeof(note), "copper: stack guards: %s",
		 introspect_guard_mode());
	if (s->truncated &&
	    (err = pprof_comment_add(b, "copper: snapshot truncated: more "
					"tasks than the snapshot had room "
					"for; some are missing")) < 0)
		goto out;
	if ((err = pprof_comment_add(b, note)) < 0 ||
	    (err = pprof_sample_type_add(b, "goroutine", "count")) < 0 ||
	    (err = pprof_period_set(b, "goroutine", "count", 1)) < 0 ||
	    (err = prof_pprof_add_mappings(b)) < 0)
		goto out;
	for (long i = 0; i < ng; i++) {
		const struct textfmt_stack *st = &g[i].stack;
		uintptr_t pcs[PROF_MAX_FRAMES];
		struct pprof_label lb[64];
		size_t nl = 0;
		int n = textfmt_pcs_shown(s, st, pcs);

		for (size_t k = 0; st->labels && k < st->labels->n && nl < 64;
		     k++)
			lb[nl++] = (struct pprof_label){
				st->labels->pairs[k].key,
				st->labels->pairs[k].value, 0, NULL};
		err = pprof_sample_add(b, pcs, (size_t)n,
				       st->leaf_is_pc && n &&
					       pcs[0] == st->pcs[0],
				       &g[i].count, lb, nl);
		if (err < 0)
			goto out;
	}
	err = pprof_builder_write(b, fd);
out:
	textfmt_groups_free(g, ng);
	pprof_builder_free(b);
	return err;
}

/* ------------------------------------------------------------------------
 * debug=1: the count profile
 * ---------------------------------------------------------------------- */

static int write_debug1(const struct snapshot *s, FILE *f)
{
	struct textfmt_group *g = NULL;
	long ng = group_tasks(s, &g);
	int err;

	if (ng < 0)
		return (int)ng;
	if ((err = textfmt_groups_sort(g, ng)) < 0) {
		textfmt_groups_free(g, ng);
		return err;
	}
	fprintf(f, "goroutine profile: total %zu\n", s->n);
	for (long i = 0; i < ng; i++) {
		fprintf(f, "%" PRId64 " %s\n", g[i].count, g[i].key);
		textfmt_frames_write(f, s, &g[i].stack, false);
	}
	textfmt_groups_free(g, ng);
	return 0;
}

/* ------------------------------------------------------------------------
 * debug=2: one block per task
 * ---------------------------------------------------------------------- */

/* " labels:{"k": "v", ...}" with the name as "copper.name", keys sorted. */
static void print_header_labels(FILE *f, const struct prof_task *t)
{
	static const char name_key[] = "copper.name";
	size_t n = t->labels ? t->labels->n : 0;
	bool name_done = t->name == NULL, first = true;

	if (!n && name_done)
		return;
	fputs(" labels:{", f);
	for (size_t i = 0; i <= n; i++) {
		if (!name_done &&
		    (i == n || strcmp(name_key, t->labels->pairs[i].key) < 0)) {
			fputs(first ? "" : ", ", f);
			prof_fput_quoted(f, name_key);
			fputs(": ", f);
			prof_fput_quoted(f, t->name);
			name_done = true;
			first = false;
		}
		if (i == n)
			break;
		fputs(first ? "" : ", ", f);
		prof_fput_quoted(f, t->labels->pairs[i].key);
		fputs(": ", f);
		prof_fput_quoted(f, t->labels->pairs[i].value);
		first = false;
	}
	fputc('}', f);
}

static void print_header(FILE *f, const struct snapshot *s,
			 const struct prof_task *t)
{
	fprintf(f, "goroutine %" PRIu64 " [%s", t->id, t->status);
	if ((t->state == INTROSPECT_WAITING || t->state == INTROSPECT_SYSCALL) &&
	    t->wait_since > 0 && s->mono_nanos > t->wait_since) {
		int64_t minutes = (s->mono_nanos - t->wait_since) / 60000000000;
		if (minutes >= 1)
			fprintf(f, ", %" PRId64 " minutes", minutes);
	}
	print_header_labels(f, t);
	fputs("]:\n", f);
}

static void print_frame(const struct textfmt_stack *st, int i,
			const struct prof_frame *fr, int k, void *arg)
{
	FILE *f = arg;

	fprintf(f, "%s(...)\n\t%s:%d", fr[k].function, fr[k].file, fr[k].line);
	if (!fr[k].inlined && fr[k].entry && st->pcs[i] > fr[k].entry)
		fprintf(f, " +%#" PRIxPTR, st->pcs[i] - fr[k].entry);
	fputc('\n', f);
}

static void print_created_by(FILE *f, const struct prof_task *t)
{
	struct prof_frame fr[PROF_INLINE_MAX];
	int nf;

	if (t->creator_id == 0 || t->creator_pc == 0)
		return; /* task 1, like goroutine 1 */
	nf = prof_symbolize(t->creator_pc, false, fr, PROF_INLINE_MAX);
	/* The innermost frame holds the co_go call: its name and its line
	 * (with the physical function's offset). */
	fprintf(f, "created by %s in goroutine %" PRIu64 "\n\t%s:%d",
		fr[0].function, t->creator_id, fr[0].file, fr[0].line);
	if (fr[nf - 1].entry && t->creator_pc > fr[nf - 1].entry)
		fprintf(f, " +%#" PRIxPTR, t->creator_pc - fr[nf - 1].entry);
	fputc('\n', f);
}

void goroutine_print_task(FILE *f, const struct snapshot *s,
			  const struct prof_task *t)
{
	struct textfmt_stack st = task_view(t);

	print_header(f, s, t);
	if (t->npcs == 0)
		fputs("\tgoroutine running on other thread; stack unavailable\n", f);
	else if (textfmt_frames_each(s, &st, true, print_frame, f) == 0)
		textfmt_frames_each(s, &st, false, print_frame, f);
	print_created_by(f, t);
}

static int write_debug2(const struct snapshot *s, FILE *f)
{
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			fputc('\n', f);
		goroutine_print_task(f, s, s->tasks[i]);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * JSON
 * ---------------------------------------------------------------------- */

static void json_str(FILE *f, const char *str)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

struct json_frames {
	FILE *f;
	bool first;
};

static void json_frame(const struct textfmt_stack *st, int i,
		       const struct prof_frame *fr, int k, void *arg)
{
	struct json_frames *jf = arg;
	(void)st;
	(void)i;

	fputs(jf->first ? "{\"function\":" : ",{\"function\":", jf->f);
	json_str(jf->f, fr[k].function);
	fputs(",\"file\":", jf->f);
	json_str(jf->f, fr[k].file);
	fprintf(jf->f, ",\"line\":%d}", fr[k].line);
	jf->first = false;
}

static void json_task(FILE *f, const struct snapshot *s,
		      const struct prof_task *t)
{
	fprintf(f, "{\"id\":%" PRIu64 ",\"name\":", t->id);
	if (t->name)
		json_str(f, t->name);
	else
		fputs("null", f);
	static const char *const states[] = {"dead", "runnable", "running",
					     "waiting", "syscall"};
	fputs(",\"state\":", f);
	json_str(f, t->state >= 0 && t->state < 5 ? states[t->state] : "?");
	fputs(",\"status\":", f);
	json_str(f, t->status);
	bool waiting = t->state == INTROSPECT_WAITING ||
		       t->state == INTROSPECT_SYSCALL;
	fprintf(f, ",\"waiting_ns\":%" PRId64 ",\"creator\":%" PRIu64,
		waiting && t->wait_since > 0 && s->mono_nanos > t->wait_since
			? s->mono_nanos - t->wait_since
			: 0,
		t->creator_id);
	fprintf(f, ",\"longest_run_ns\":%" PRId64, t->longest_run_ns);
	fputs(",\"labels\":{", f);
	for (size_t i = 0; t->labels && i < t->labels->n; i++) {
		fputs(i ? "," : "", f);
		json_str(f, t->labels->pairs[i].key);
		fputc(':', f);
		json_str(f, t->labels->pairs[i].value);
	}
	fputs("},\"frames\":[", f);
	struct json_frames jf = {f, true};
	struct textfmt_stack st = task_view(t);

	textfmt_frames_each(s, &st, false, json_frame, &jf);
	fputs("]}", f);
}

int goroutine_write_json(const struct snapshot *s, int fd)
{
	int dfd = dup(fd);
	FILE *f = dfd >= 0 ? fdopen(dfd, "w") : NULL;

	if (!f) {
		int err = -errno;
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	fputs("[\n", f);
	for (size_t i = 0; i < s->n; i++) {
		json_task(f, s, s->tasks[i]);
		fputs(i + 1 < s->n ? ",\n" : "\n", f);
	}
	fputs("]\n", f);
	return fclose(f) == 0 ? 0 : -errno;
}

/* ------------------------------------------------------------------------
 * Entry
 * ---------------------------------------------------------------------- */

static int text_debug1(FILE *f, void *arg)
{
	return write_debug1(arg, f);
}

static int text_debug2(FILE *f, void *arg)
{
	return write_debug2(arg, f);
}

int goroutine_write(const struct snapshot *s, int fd, int debug)
{
	if (debug <= 0)
		return write_proto(s, fd);
	if (s->truncated)
		fprintf(stderr, "copper: goroutine profile: snapshot truncated, "
				"some tasks are missing\n");
	return textfmt_to_fd(fd, debug == 1 ? text_debug1 : text_debug2,
			     (void *)s);
}
