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
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define FRAMES_MAX 32

/* ------------------------------------------------------------------------
 * Grouping identical stacks
 * ---------------------------------------------------------------------- */

static int cmp_labels(const struct labels *a, const struct labels *b)
{
	size_t an = a ? a->n : 0, bn = b ? b->n : 0;
	int c;

	if (a == b)
		return 0;
	if ((a == NULL) != (b == NULL))
		return a ? 1 : -1;
	if (an != bn)
		return an < bn ? -1 : 1;
	for (size_t i = 0; i < an; i++) {
		if ((c = strcmp(a->pairs[i].key, b->pairs[i].key)) != 0 ||
		    (c = strcmp(a->pairs[i].value, b->pairs[i].value)) != 0)
			return c;
	}
	return 0;
}

static int cmp_stack(const void *pa, const void *pb)
{
	const struct prof_task *a = *(const struct prof_task *const *)pa;
	const struct prof_task *b = *(const struct prof_task *const *)pb;

	if (a->npcs != b->npcs)
		return a->npcs < b->npcs ? -1 : 1;
	if (a->leaf_is_pc != b->leaf_is_pc)
		return a->leaf_is_pc ? 1 : -1;
	int c = memcmp(a->pcs, b->pcs, a->npcs * sizeof(uintptr_t));
	return c ? c : cmp_labels(a->labels, b->labels);
}

struct group {
	const struct prof_task *t; /* a representative */
	int64_t count;             /* tasks with its stack and labels */
	char *key;                 /* debug=1 sort key */
};

/*
 * Groups the snapshot's tasks by (stack, labels).  Returns the number of
 * groups, or -ENOMEM.  It sorts the snapshot's own array in place (so
 * print a snapshot's debug=2 form, which wants id order, before grouping
 * it) and allocates one entry per distinct stack: with a million tasks, a
 * copy of the array and an entry per task would be tens of megabytes to
 * map and unmap for a handful of groups.
 */
static long group_tasks(const struct snapshot *s, struct group **out)
{
	const struct prof_task **v = (const struct prof_task **)s->tasks;
	struct group *g;
	long n = 0;

	qsort(v, s->n, sizeof(*v), cmp_stack);
	for (size_t i = 0; i < s->n; i++)
		if (i == 0 || cmp_stack(&v[i - 1], &v[i]) != 0)
			n++;
	if (!(g = calloc((size_t)n + 1, sizeof(*g))))
		return CO_ENOMEM;
	n = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (n && cmp_stack(&g[n - 1].t, &v[i]) == 0) {
			g[n - 1].count++;
			continue;
		}
		g[n].t = v[i];
		g[n].count = 1;
		n++;
	}
	*out = g;
	return n;
}

static void groups_free(struct group *g, long n)
{
	for (long i = 0; i < n; i++)
		free(g[i].key);
	free(g);
}

/* The entries of t's stack a profile shows: everything but task entries. */
static int visible_pcs(const struct snapshot *s, const struct prof_task *t,
		       uintptr_t *out)
{
	int n = 0;

	for (int i = 0; i < t->npcs; i++) {
		bool exact = i == 0 && t->leaf_is_pc;
		if (!prof_pc_is_entry(s, t->pcs[i], exact))
			out[n++] = t->pcs[i];
	}
	return n;
}

/* How many frames at the top of an inline chain are Copper's internals
 * (static helpers inlined into a public function), to skip while the
 * stack's leading internal frames are being hidden. */
static int leading_internal_inlined(const struct prof_frame *fr, int nf,
				    bool leading)
{
	int k = 0;

	while (leading && k < nf - 1 && prof_frame_is_internal(&fr[k]))
		k++;
	return k;
}

/* Called for each frame a printer shows: stack entry i of t, frame k of
 * its inline chain fr[0..nf). */
typedef void (*frame_fn)(const struct prof_task *t, int i,
			 const struct prof_frame *fr, int k, void *arg);

/*
 * Walks the frames of t that a printer shows, innermost first: task
 * entries never; with hide_internal, the leading frames of Copper's
 * runtime too (physical ones, and internal helpers inlined at the top of
 * the first shown chain).  Returns how many frames it passed to fn.
 */
static int each_shown_frame(const struct snapshot *s, const struct prof_task *t,
			    bool hide_internal, frame_fn fn, void *arg)
{
	bool leading = hide_internal;
	int shown = 0;

	for (int i = 0; i < t->npcs; i++) {
		bool exact = i == 0 && t->leaf_is_pc;
		struct prof_frame fr[FRAMES_MAX];
		int nf;

		if (prof_pc_is_entry(s, t->pcs[i], exact))
			continue;
		nf = prof_symbolize(t->pcs[i], exact, fr, FRAMES_MAX);
		if (leading && prof_frame_is_internal(&fr[nf - 1]))
			continue;
		int k0 = leading_internal_inlined(fr, nf, leading);
		leading = false;
		for (int k = k0; k < nf; k++, shown++)
			fn(t, i, fr, k, arg);
	}
	return shown;
}

/* ------------------------------------------------------------------------
 * debug=0: pprof protobuf
 * ---------------------------------------------------------------------- */

static int write_proto(const struct snapshot *s, int fd)
{
	struct group *g = NULL;
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
		const struct prof_task *t = g[i].t;
		uintptr_t pcs[PROF_MAX_FRAMES];
		struct pprof_label lb[64];
		size_t nl = 0;
		int n = visible_pcs(s, t, pcs);

		for (size_t k = 0; t->labels && k < t->labels->n && nl < 64; k++)
			lb[nl++] = (struct pprof_label){
				t->labels->pairs[k].key,
				t->labels->pairs[k].value, 0, NULL};
		err = pprof_sample_add(b, pcs, (size_t)n,
				       t->leaf_is_pc && n && pcs[0] == t->pcs[0],
				       &g[i].count, lb, nl);
		if (err < 0)
			goto out;
	}
	err = pprof_builder_write(b, fd);
out:
	groups_free(g, ng);
	pprof_builder_free(b);
	return err;
}

/* ------------------------------------------------------------------------
 * debug=1: the count profile
 * ---------------------------------------------------------------------- */

/* The pc a stack entry prints as: a return address R prints R - 1; an
 * exact leaf is stored as pc + 1 in the @ list, as Go stores CPU leaves,
 * so the same "- 1" recovers it. */
static uintptr_t at_pc(const struct prof_task *t, int i)
{
	return (i == 0 && t->leaf_is_pc) ? t->pcs[0] + 1 : t->pcs[i];
}

static char *group_key(const struct prof_task *t)
{
	size_t len = 2 + (size_t)t->npcs * 19 + 1, n;
	char lbuf[2048];
	char *key;

	if (t->labels)
		labels_format_debug1(t->labels, lbuf, sizeof(lbuf));
	len += t->labels ? strlen(lbuf) + 12 : 0;
	if (!(key = malloc(len)))
		return NULL;
	n = (size_t)snprintf(key, len, "@");
	for (int i = 0; i < t->npcs; i++)
		n += (size_t)snprintf(key + n, len - n, " %#" PRIxPTR, at_pc(t, i));
	if (t->labels)
		snprintf(key + n, len - n, "\n# labels: %s", lbuf);
	return key;
}

static int cmp_group(const void *pa, const void *pb)
{
	const struct group *a = pa, *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return strcmp(a->key, b->key);
}

struct tab_line {
	char pc[24];
	char fn[512];
	char pos[1024];
};

/* Go's text/tabwriter (minwidth 1, tabwidth 8, padding 1, padchar TAB)
 * over one record's frame lines: each column is as wide as its widest
 * cell plus one, rounded up to a multiple of 8, and filled with TABs. */
static void print_tab_block(FILE *f, const struct tab_line *l, int n)
{
	size_t w_pc = 0, w_fn = 0;

	for (int i = 0; i < n; i++) {
		size_t pc_len = strnlen(l[i].pc, sizeof(l[i].pc));
		size_t fn_len = strnlen(l[i].fn, sizeof(l[i].fn));
		if (pc_len > w_pc)
			w_pc = pc_len;
		if (fn_len > w_fn)
			w_fn = fn_len;
	}
	size_t c0 = 8, c1 = (w_pc + 1 + 7) / 8 * 8, c2 = (w_fn + 1 + 7) / 8 * 8;
	for (int i = 0; i < n; i++) {
		size_t t1 = (c1 - strnlen(l[i].pc, sizeof(l[i].pc)) + 7) / 8;
		size_t t2 = (c2 - strnlen(l[i].fn, sizeof(l[i].fn)) + 7) / 8;
		fputc('#', f);
		for (size_t k = 0; k < (c0 - 1 + 7) / 8; k++)
			fputc('\t', f);
		fputs(l[i].pc, f);
		for (size_t k = 0; k < t1; k++)
			fputc('\t', f);
		fputs(l[i].fn, f);
		for (size_t k = 0; k < t2; k++)
			fputc('\t', f);
		fprintf(f, "%s\n", l[i].pos);
	}
}

struct tab_block {
	struct tab_line *lines;
	int n, cap;
};

static void add_tab_line(const struct prof_task *t, int i,
			 const struct prof_frame *fr, int k, void *arg)
{
	struct tab_block *b = arg;
	uintptr_t pc = at_pc(t, i) - 1;

	if (b->n == b->cap)
		return;
	snprintf(b->lines[b->n].pc, sizeof(b->lines[b->n].pc), "%#" PRIxPTR, pc);
	/* Go's %#x: "0x0" for zero too (C's %#x prints a bare "0"). */
	snprintf(b->lines[b->n].fn, sizeof(b->lines[b->n].fn), "%s+0x%" PRIxPTR,
		 fr[k].function,
		 fr[k].entry && pc >= fr[k].entry ? pc - fr[k].entry : 0);
	snprintf(b->lines[b->n].pos, sizeof(b->lines[b->n].pos), "%s:%d",
		 fr[k].file, fr[k].line);
	b->n++;
}

/* The frame lines of one record (allFrames=false: leading runtime frames
 * and task entries hidden; everything again if that hides all). */
static void print_debug1_frames(FILE *f, const struct snapshot *s,
				const struct prof_task *t)
{
	struct tab_block b = {calloc(PROF_MAX_FRAMES * 4, sizeof(*b.lines)), 0,
			      PROF_MAX_FRAMES * 4};

	if (!b.lines)
		return;
	if (each_shown_frame(s, t, true, add_tab_line, &b) == 0)
		each_shown_frame(s, t, false, add_tab_line, &b);
	if (b.n == 0)
		fputs("#\t0x0\n", f);
	else
		print_tab_block(f, b.lines, b.n);
	free(b.lines);
}

static int write_debug1(const struct snapshot *s, FILE *f)
{
	struct group *g = NULL;
	long ng = group_tasks(s, &g);

	if (ng < 0)
		return (int)ng;
	for (long i = 0; i < ng; i++) {
		if (!(g[i].key = group_key(g[i].t))) {
			groups_free(g, ng);
			return CO_ENOMEM;
		}
	}
	qsort(g, (size_t)ng, sizeof(*g), cmp_group);
	fprintf(f, "goroutine profile: total %zu\n", s->n);
	for (long i = 0; i < ng; i++) {
		fprintf(f, "%" PRId64 " %s\n", g[i].count, g[i].key);
		print_debug1_frames(f, s, g[i].t);
		fputc('\n', f);
	}
	groups_free(g, ng);
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

static void print_frame(const struct prof_task *t, int i,
			const struct prof_frame *fr, int k, void *arg)
{
	FILE *f = arg;

	fprintf(f, "%s(...)\n\t%s:%d", fr[k].function, fr[k].file, fr[k].line);
	if (!fr[k].inlined && fr[k].entry && t->pcs[i] > fr[k].entry)
		fprintf(f, " +%#" PRIxPTR, t->pcs[i] - fr[k].entry);
	fputc('\n', f);
}

static void print_created_by(FILE *f, const struct prof_task *t)
{
	struct prof_frame fr[FRAMES_MAX];
	int nf;

	if (t->creator_id == 0 || t->creator_pc == 0)
		return; /* task 1, like goroutine 1 */
	nf = prof_symbolize(t->creator_pc, false, fr, FRAMES_MAX);
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
	print_header(f, s, t);
	if (t->npcs == 0)
		fputs("\tgoroutine running on other thread; stack unavailable\n", f);
	else if (each_shown_frame(s, t, true, print_frame, f) == 0)
		each_shown_frame(s, t, false, print_frame, f);
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

static void json_frame(const struct prof_task *t, int i,
		       const struct prof_frame *fr, int k, void *arg)
{
	struct json_frames *jf = arg;
	(void)t;
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
	each_shown_frame(s, t, false, json_frame, &jf);
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

int goroutine_write(const struct snapshot *s, int fd, int debug)
{
	int dfd, err;
	FILE *f;

	if (debug <= 0)
		return write_proto(s, fd);
	if ((dfd = dup(fd)) < 0)
		return -errno;
	if (!(f = fdopen(dfd, "w"))) {
		err = -errno;
		close(dfd);
		return err;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 16);
	if (s->truncated)
		fprintf(stderr, "copper: goroutine profile: snapshot truncated, "
				"some tasks are missing\n");
	err = debug == 1 ? write_debug1(s, f) : write_debug2(s, f);
	if (fflush(f) != 0 && err == 0)
		err = -errno;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}
