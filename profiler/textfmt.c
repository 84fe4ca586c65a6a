/* SPDX-License-Identifier: MIT */
/*
 * textfmt.c - the debug=1 text layout that every pprof text profile
 * shares: records with equal stacks grouped under one key, the frame
 * lines, aligned as Go's tabwriter aligns them, and the filter that
 * decides which frames those lines show.
 *
 * Go prints the goroutine, heap, block and mutex texts through one
 * tabwriter and one printStackRecord (pprof-formats.md 2.0); only the
 * numbers before each record's "@" differ.  So this file knows nothing of
 * any profile: a profile hands it views of its records' stacks
 * (struct textfmt_stack, filled by a callback from whatever record type
 * the profile keeps) and prints its own numbers before each key.
 *
 * Grouping sorts the caller's array in place with the caller's
 * comparator (it builds the two views and calls textfmt_stack_cmp, inline
 * in profiler.h: stacks by length, leaf kind and addresses, then labels)
 * and makes one group per run of equal records: with a million tasks, a
 * copy of the array or an entry per record would be tens of megabytes to
 * map and unmap for a handful of groups.  The key ("@ 0x.. 0x.." and the
 * labels line) is built only for the text, and groups sort by a number
 * the profile chooses, then by key, as Go's keysByCount.
 *
 * The frame lines.  Go's tabwriter (minwidth 1, tabwidth 8, padding 1,
 * padchar TAB) pads each column to its widest cell plus one, rounded up
 * to a multiple of 8, with TABs only.  A column lasts while consecutive
 * lines have a cell in it, and the header, labels and empty lines have
 * none, so each record's frame lines are a block of their own: they are
 * collected, measured and written one record at a time.
 *
 * Which frames show: task entries (task_main, the trampoline) never, as
 * Go never shows runtime.goexit; at allFrames=false, not the leading
 * frames of Copper's runtime either (symbolize.c says which), including
 * internal helpers inlined at the top of the first shown chain, unless
 * that leaves nothing, when the stack is shown again with them.
 *
 * Rejected: a general tabwriter buffering the whole text (the blocks are
 * known, and a million-task text would sit in memory twice); a hash table
 * for grouping (an entry per record, when sorting the caller's own array
 * needs none); reading struct prof_task here (heap, block and mutex
 * records are not tasks); sorting with qsort_r and the view callback
 * alone (it spares the caller a comparator, but two indirect calls per
 * comparison made grouping a million tasks 1.5 to 2 times as slow); an
 * out-of-line textfmt_stack_cmp (a third more instructions than the
 * comparator goroutine.c had before; inline, 3% more); sorting by the
 * full header line (each profile orders by a different number, and Go
 * sorts heap records by bytes, not by text).
 *
 * Invariants, which the texts' readers rely on:
 *   - every "#" line's pc + 1 is an entry of its record's "@" list, in
 *     order (at_pc), and the "@" list holds hidden entries too;
 *   - frame columns are separated by TABs only, never spaces;
 *   - two records share a group iff their stacks and label sets are
 *     equal, and every record ends with exactly one empty line.
 *
 * Keep in sync with ../shared/reference/pprof-formats.md 2.0 and with the
 * strict debug=1 reader in test/profiler/profile_test.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "profiler.h"

/* Frame lines collected per record: every entry with its inline chain. */
#define TAB_LINES_MAX (PROF_MAX_FRAMES * 4)

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

/* One frame line's three cells after the "#". */
struct tab_line {
	char pc[24];                 /* "0x..." */
	char fn[512];                /* "func+0x..." */
	char pos[1024];              /* "file:line" */
};

/* The frame lines of one record, collected before they are measured. */
struct tab_block {
	struct tab_line *lines;      /* TAB_LINES_MAX of them */
	int n;                       /* lines in use */
	int cap;                     /* extra frames are dropped */
};

/* ------------------------------------------------------------------------
 * Grouping equal stacks
 * ---------------------------------------------------------------------- */

int textfmt_labels_cmp(const struct labels *a, const struct labels *b)
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

long textfmt_records_group(void *recs, size_t n, size_t size,
			   int (*cmp)(const void *, const void *),
			   textfmt_stack_fn stack_of,
			   struct textfmt_group **out)
{
	const char *r = recs;
	struct textfmt_group *g;
	long ng = 0;

	qsort(recs, n, size, cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || cmp(r + (i - 1) * size, r + i * size) != 0)
			ng++;
	if (!(g = calloc((size_t)ng + 1, sizeof(*g))))
		return CO_ENOMEM;
	ng = 0;
	for (size_t i = 0; i < n; i++) {
		if (ng && cmp(r + g[ng - 1].first * size, r + i * size) == 0) {
			g[ng - 1].count++;
			g[ng - 1].order++;
			continue;
		}
		g[ng] = (struct textfmt_group){.first = i, .count = 1,
					       .order = 1};
		stack_of(r + i * size, &g[ng].stack);
		ng++;
	}
	*out = g;
	return ng;
}

void textfmt_groups_free(struct textfmt_group *g, long n)
{
	for (long i = 0; i < n; i++)
		free(g[i].key);
	free(g);
}

/* The pc a stack entry prints as: a return address R prints R - 1; an
 * exact leaf is stored as pc + 1 in the @ list, as Go stores CPU leaves,
 * so the same "- 1" recovers it. */
static uintptr_t at_pc(const struct textfmt_stack *st, int i)
{
	return (i == 0 && st->leaf_is_pc) ? st->pcs[0] + 1 : st->pcs[i];
}

/* "@ 0x.. 0x..", and "\n# labels: {...}" when the record has labels. */
static char *group_key(const struct textfmt_stack *st)
{
	size_t len = 2 + (size_t)st->npcs * 19 + 1, n;
	char lbuf[2048];
	char *key;

	if (st->labels)
		labels_format_debug1(st->labels, lbuf, sizeof(lbuf));
	len += st->labels ? strlen(lbuf) + 12 : 0;
	if (!(key = malloc(len)))
		return NULL;
	n = (size_t)snprintf(key, len, "@");
	for (int i = 0; i < st->npcs; i++)
		n += (size_t)snprintf(key + n, len - n, " 0x%" PRIxPTR,
				      at_pc(st, i));
	if (st->labels)
		snprintf(key + n, len - n, "\n# labels: %s", lbuf);
	return key;
}

static int cmp_group(const void *pa, const void *pb)
{
	const struct textfmt_group *a = pa, *b = pb;

	if (a->order != b->order)
		return a->order > b->order ? -1 : 1;
	return strcmp(a->key, b->key);
}

int textfmt_groups_sort(struct textfmt_group *g, long n)
{
	for (long i = 0; i < n; i++)
		if (!g[i].key && !(g[i].key = group_key(&g[i].stack)))
			return CO_ENOMEM;
	qsort(g, (size_t)n, sizeof(*g), cmp_group);
	return 0;
}

/* ------------------------------------------------------------------------
 * Which frames show
 * ---------------------------------------------------------------------- */

int textfmt_pcs_shown(const struct snapshot *s, const struct textfmt_stack *st,
		      uintptr_t *out)
{
	int n = 0;

	for (int i = 0; i < st->npcs; i++) {
		bool exact = i == 0 && st->leaf_is_pc;
		if (!prof_pc_is_entry(s, st->pcs[i], exact))
			out[n++] = st->pcs[i];
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

int textfmt_frames_each(const struct snapshot *s,
			const struct textfmt_stack *st, bool hide_internal,
			textfmt_frame_fn fn, void *arg)
{
	bool leading = hide_internal;
	int shown = 0;

	for (int i = 0; i < st->npcs; i++) {
		bool exact = i == 0 && st->leaf_is_pc;
		struct prof_frame fr[PROF_INLINE_MAX];
		int nf;

		if (prof_pc_is_entry(s, st->pcs[i], exact))
			continue;
		nf = prof_symbolize(st->pcs[i], exact, fr, PROF_INLINE_MAX);
		if (leading && prof_frame_is_internal(&fr[nf - 1]))
			continue;
		int k0 = leading_internal_inlined(fr, nf, leading);
		leading = false;
		for (int k = k0; k < nf; k++, shown++)
			fn(st, i, fr, k, arg);
	}
	return shown;
}

/* ------------------------------------------------------------------------
 * The frame lines
 * ---------------------------------------------------------------------- */

/* The tabwriter over one record's frame lines: each column is as wide as
 * its widest cell plus one, rounded up to a multiple of 8, and filled
 * with TABs. */
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

static void add_tab_line(const struct textfmt_stack *st, int i,
			 const struct prof_frame *fr, int k, void *arg)
{
	struct tab_block *b = arg;
	uintptr_t pc = at_pc(st, i) - 1;

	if (b->n == b->cap)
		return;
	struct tab_line *l = &b->lines[b->n];
	/* Go's %#x: "0x0" for zero too (C's %#x prints a bare "0"). */
	snprintf(l->pc, sizeof(l->pc), "0x%" PRIxPTR, pc);
	snprintf(l->fn, sizeof(l->fn), "%s+0x%" PRIxPTR, fr[k].function,
		 fr[k].entry && pc >= fr[k].entry ? pc - fr[k].entry : 0);
	snprintf(l->pos, sizeof(l->pos), "%s:%d", fr[k].file, fr[k].line);
	b->n++;
}

void textfmt_frames_write(FILE *f, const struct snapshot *s,
			  const struct textfmt_stack *st, bool all_frames)
{
	struct tab_block b = {calloc(TAB_LINES_MAX, sizeof(*b.lines)), 0,
			      TAB_LINES_MAX};

	if (b.lines) {
		if (textfmt_frames_each(s, st, !all_frames, add_tab_line,
					&b) == 0 && !all_frames)
			textfmt_frames_each(s, st, false, add_tab_line, &b);
		if (b.n == 0)
			fputs("#\t0x0\n", f);
		else
			print_tab_block(f, b.lines, b.n);
		free(b.lines);
	}
	fputc('\n', f);
}

int textfmt_to_fd(int fd, int (*fn)(FILE *f, void *arg), void *arg)
{
	int dfd, err;
	FILE *f;

	if ((dfd = dup(fd)) < 0)
		return -errno;
	if (!(f = fdopen(dfd, "w"))) {
		err = -errno;
		close(dfd);
		return err;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 16);
	err = fn(f, arg);
	if (fflush(f) != 0 && err == 0)
		err = -errno;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}
