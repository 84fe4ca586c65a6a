/* SPDX-License-Identifier: MIT */
/*
 * test_textfmt.c - tests of profiler/textfmt.c, the debug=1 text layout
 * that the goroutine profile prints through now and heap, block and mutex
 * will: grouping, the group key and order, the TAB-aligned frame lines
 * and which frames they show.  test_goroutine.c checks the same text end
 * to end; this suite calls the shared writer directly, with records that
 * are not tasks, as the other profiles will.
 *
 * Formats are checked against ../shared/reference/pprof-formats.md 2.0
 * (frame lines, tabwriter, hidden frames) and 2.2 (key, order).
 *
 * Scenario groups:
 *   1. Grouping         records with equal stacks and equal label sets
 *                       (two allocations with the same pairs) share a
 *                       group and sit side by side from `first`; another
 *                       label set, no labels, or an exact leaf at the same
 *                       address each make a group of their own; no records
 *                       give no groups.
 *   2. Key and order    "@ 0x.. 0x.." with the labels line after it; an
 *                       exact leaf prints as pc + 1; groups sorted by count
 *                       descending, then key; by the caller's order when
 *                       it sets one (heap bytes, block cycles).
 *   3. Tab alignment    Go's example shape (cells of 23 and 15 characters
 *                       get one TAB and two); a widest cell of 16 still
 *                       gets one TAB of padding; a narrow pc cell pads to
 *                       the widest, and pc 0 prints as Go's "0x0"; TABs
 *                       only, one empty line after the block; every "#"
 *                       pc + 1 is in the "@" list, the exact leaf's too.
 *   4. Hidden frames    the snapshot's task entries (the C entry and
 *                       anything within 16 bytes of the trampoline) never
 *                       show and are not in the proto's pcs; a stack of
 *                       nothing else, or an empty one, prints "#\t0x0".
 *                       A real parked task: Copper's leading runtime
 *                       frames are hidden unless all_frames, the entry
 *                       always.
 *
 * The frame functions below stand for a profile's stack: they are never
 * called, only symbolized at their entry (a return address of entry + 1
 * looks up entry itself, and prints as "<name>+0x0").
 */
#include "test_util.h"

#include <inttypes.h>

#include "profiler/profiler.h"

/* Keeps a function as written, and apart from its twins (no identical
 * code folding); clang has no noipa. */
#if __has_attribute(noipa)
#define NOIPA __attribute__((noipa))
#else
#define NOIPA __attribute__((noinline, optnone))
#endif

/* ------------------------------------------------------------------------
 * Frame functions and records
 * ---------------------------------------------------------------------- */

/* Names of 19 and 11 characters, for Go's example (group 3). */
static NOIPA int frame_retained_blob(void) { return 1; }
static NOIPA int frame_outer(void) { return 2; }
static NOIPA int frame_leaf(void) { return 3; }
static NOIPA int frame_middle(void) { return 6; }  /* 12 characters */
/* Stand for task_main and the assembly trampoline. */
static NOIPA int frame_entry(void) { return 4; }
static NOIPA int frame_trampoline(void) { return 5; }

/* The return address of a call at fn's entry. */
#define RET(fn) ((uintptr_t)(fn) + 1)

/* A record as another profile might keep one: not a task. */
struct rec {
	int id;                      /* its place in the test's table */
	int npcs;
	bool leaf_is_pc;
	const struct labels *labels;
	uintptr_t pcs[4];
};

static void rec_stack(const void *elem, struct textfmt_stack *st)
{
	const struct rec *r = elem;

	*st = (struct textfmt_stack){r->pcs, r->labels, r->npcs, r->leaf_is_pc};
}

static int cmp_rec(const void *pa, const void *pb)
{
	struct textfmt_stack a, b;

	rec_stack(pa, &a);
	rec_stack(pb, &b);
	return textfmt_stack_cmp(&a, &b);
}

/* A label set of the given pairs (keys sorted), as labels.c lays it out
 * but with the strings left where they are. */
static struct labels *labels_of(size_t n, const char *const *kv)
{
	struct labels *l = calloc(1, sizeof(*l) + n * sizeof(l->pairs[0]));

	assert_non_null(l);
	l->n = n;
	for (size_t i = 0; i < n; i++)
		l->pairs[i] = (struct label_pair){kv[2 * i], kv[2 * i + 1]};
	return l;
}

/* A snapshot that only names the task entries, as stall.c makes one. */
static struct snapshot entries_snapshot(void)
{
	return (struct snapshot){.hide_entry = {(uintptr_t)frame_entry,
						(uintptr_t)frame_trampoline}};
}

/* textfmt_frames_write into a string (free it). */
static char *frames_text(const struct snapshot *s,
			 const struct textfmt_stack *st, bool all_frames)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	textfmt_frames_write(f, s, st, all_frames);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* The frame line a return address at fn's entry gives, with `tabs1` TABs
 * after the pc and `tabs2` after the function, as a string (free it). */
static char *frame_line(uintptr_t ret, int tabs1, int tabs2)
{
	struct prof_frame fr[PROF_INLINE_MAX];
	char *line = NULL;
	int nf = prof_symbolize(ret, false, fr, PROF_INLINE_MAX);

	assert_true(nf >= 1);
	assert_true(asprintf(&line, "#\t%#" PRIxPTR "%.*s%s+0x0%.*s%s:%d\n",
			     ret - 1, tabs1, "\t\t\t\t\t\t\t\t",
			     fr[nf - 1].function, tabs2, "\t\t\t\t\t\t\t\t",
			     fr[nf - 1].file, fr[nf - 1].line) > 0);
	return line;
}

/* Asserts that the n entries at pcs print (with the entries snapshot) as
 * the frame lines of return addresses r1 and r2, with tabs1 and tabs2
 * TABs after their function cells, then the empty line; no spaces. */
static void assert_two_frames(const uintptr_t *pcs, int n, bool all_frames,
			      uintptr_t r1, int tabs1, uintptr_t r2, int tabs2)
{
	struct snapshot s = entries_snapshot();
	struct textfmt_stack st = {pcs, NULL, n, false};
	char *l1 = frame_line(r1, 1, tabs1), *l2 = frame_line(r2, 1, tabs2);
	char *want = NULL, *got = frames_text(&s, &st, all_frames);

	assert_true(asprintf(&want, "%s%s\n", l1, l2) > 0);
	assert_string_equal(got, want);
	assert_null(strchr(got, ' '));
	free(want);
	free(got);
	free(l1);
	free(l2);
}

/* ------------------------------------------------------------------------
 * 1. Grouping
 * ---------------------------------------------------------------------- */

static const char *const kv_a[] = {"tier", "a", "worker", "ingest"};
static const char *const kv_b[] = {"tier", "b", "worker", "ingest"};

/* Twelve records, grouped (the fixture of groups 1 and 2): 0-4 stack A,
 * 5-7 stack B, 8-9 A with labels (two sets of equal pairs), 10 A with
 * other labels, 11 A with an exact leaf; in shuffled order. */
struct table {
	struct rec r[12];
	struct labels *la1, *la2, *lb;
	struct textfmt_group *g;
	long ng;                     /* textfmt_records_group's answer */
};

static int table_setup(void **state)
{
	static const int order[12] = {7, 0, 10, 3, 8, 5, 1, 11, 9, 4, 6, 2};
	const uintptr_t a[3] = {RET(frame_leaf), RET(frame_outer),
				RET(frame_entry)};
	const uintptr_t b[2] = {RET(frame_retained_blob), RET(frame_entry)};
	struct table *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->la1 = labels_of(2, kv_a);
	t->la2 = labels_of(2, kv_a);
	t->lb = labels_of(2, kv_b);
	for (int k = 0; k < 12; k++) {
		int id = order[k];
		struct rec *x = &t->r[k];

		*x = (struct rec){.id = id, .npcs = 3};
		memcpy(x->pcs, a, sizeof(a));
		if (id >= 5 && id <= 7) {
			x->npcs = 2;
			memcpy(x->pcs, b, sizeof(b));
		}
		x->labels = id == 8    ? t->la1
			    : id == 9  ? t->la2
			    : id == 10 ? t->lb
				       : NULL;
		x->leaf_is_pc = id == 11;
	}
	t->ng = textfmt_records_group(t->r, 12, sizeof(t->r[0]), cmp_rec,
				      rec_stack, &t->g);
	*state = t;
	return 0;
}

static int table_teardown(void **state)
{
	struct table *t = *state;

	if (t->ng >= 0)
		textfmt_groups_free(t->g, t->ng);
	free(t->la1);
	free(t->la2);
	free(t->lb);
	free(t);
	return 0;
}

/* The group whose records include id, or NULL. */
static const struct textfmt_group *group_of(const struct table *t, int id)
{
	for (long i = 0; i < t->ng; i++)
		for (int64_t k = 0; k < t->g[i].count; k++)
			if (t->r[t->g[i].first + (size_t)k].id == id)
				return &t->g[i];
	return NULL;
}

static void test_textfmt_group_equal_stacks_share_group(void **state)
{
	const struct table *t = *state;

	assert_int_equal(t->ng, 5);
	const struct textfmt_group *ga = group_of(t, 0);
	const struct textfmt_group *gb = group_of(t, 5);
	const struct textfmt_group *gl = group_of(t, 8);
	assert_non_null(ga);
	assert_non_null(gb);
	assert_non_null(gl);
	assert_int_equal(ga->count, 5);
	assert_int_equal(ga->order, 5);
	assert_int_equal(gb->count, 3);
	assert_int_equal(gl->count, 2);
	assert_ptr_equal(group_of(t, 9), gl);  /* equal pairs */
	for (int id = 1; id < 5; id++)
		assert_ptr_equal(group_of(t, id), ga);
	/* Members side by side from first; the view is theirs. */
	for (int64_t k = 0; k < ga->count; k++)
		assert_true(t->r[ga->first + (size_t)k].id < 5);
	assert_int_equal(gb->stack.npcs, 2);
	assert_true(gb->stack.pcs[0] == RET(frame_retained_blob));
	assert_null(ga->stack.labels);
	assert_null(ga->key);
}

static void test_textfmt_group_labels_or_exact_leaf_split(void **state)
{
	const struct table *t = *state;
	/* No labels, labels, other labels, an exact leaf: one stack. */
	const int ids[4] = {0, 8, 10, 11};
	const struct textfmt_group *g[4];

	for (int i = 0; i < 4; i++) {
		assert_non_null(g[i] = group_of(t, ids[i]));
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(g[i], g[j]);
	}
	assert_int_equal(g[2]->count, 1);
	assert_int_equal(g[3]->count, 1);
	assert_true(g[3]->stack.leaf_is_pc);
}

static void test_textfmt_group_no_records_no_groups(void **state)
{
	struct textfmt_group *g = NULL;
	struct rec r[1];
	(void)state;

	assert_int_equal(textfmt_records_group(r, 0, sizeof(r[0]), cmp_rec,
					       rec_stack, &g), 0);
	assert_non_null(g);
	assert_int_equal(textfmt_groups_sort(g, 0), 0);
	textfmt_groups_free(g, 0);
}

/* ------------------------------------------------------------------------
 * 2. Key and order
 * ---------------------------------------------------------------------- */

static void test_textfmt_key_pcs_then_labels_line(void **state)
{
	const struct table *t = *state;
	char want[256];

	assert_int_equal(textfmt_groups_sort(t->g, t->ng), 0);
	snprintf(want, sizeof(want), "@ %#" PRIxPTR " %#" PRIxPTR " %#" PRIxPTR
		 "\n# labels: {\"tier\":\"a\", \"worker\":\"ingest\"}",
		 RET(frame_leaf), RET(frame_outer), RET(frame_entry));
	assert_string_equal(group_of(t, 8)->key, want);
	snprintf(want, sizeof(want), "@ %#" PRIxPTR " %#" PRIxPTR,
		 RET(frame_retained_blob), RET(frame_entry));
	assert_string_equal(group_of(t, 5)->key, want);
	/* An exact leaf is stored as pc + 1, as Go stores CPU leaves. */
	snprintf(want, sizeof(want), "@ %#" PRIxPTR " %#" PRIxPTR " %#" PRIxPTR,
		 RET(frame_leaf) + 1, RET(frame_outer), RET(frame_entry));
	assert_string_equal(group_of(t, 11)->key, want);
}

static void test_textfmt_sort_count_then_key(void **state)
{
	const struct table *t = *state;
	const struct textfmt_group *g = t->g;

	assert_int_equal(textfmt_groups_sort(t->g, t->ng), 0);
	assert_int_equal(g[0].count, 5);
	assert_int_equal(g[1].count, 3);
	assert_int_equal(g[2].count, 2);
	assert_int_equal(g[3].count, 1);
	assert_int_equal(g[4].count, 1);
	assert_true(strcmp(g[3].key, g[4].key) < 0);
	/* The two of count 1: the exact leaf's key, "@ <leaf + 2> ...",
	 * sorts after the labelled one's "@ <leaf + 1> ...". */
	assert_non_null(strstr(g[3].key, "# labels: {\"tier\":\"b\""));
	assert_true(g[4].stack.leaf_is_pc);
}

static void test_textfmt_sort_by_caller_order(void **state)
{
	const struct table *t = *state;
	struct textfmt_group *g = t->g;

	/* As heap would: in-use bytes, here 100 per record of stack B. */
	for (long i = 0; i < t->ng; i++)
		g[i].order = g[i].stack.npcs == 2 ? 100 * g[i].count : 0;
	assert_int_equal(textfmt_groups_sort(g, t->ng), 0);
	assert_int_equal(g[0].order, 300);
	assert_int_equal(g[0].stack.npcs, 2);
	for (long i = 2; i < t->ng; i++)
		assert_true(strcmp(g[i - 1].key, g[i].key) < 0);
}

/* ------------------------------------------------------------------------
 * 3. Tab alignment
 * ---------------------------------------------------------------------- */

/* pprof-formats.md 2.0's example: "main.allocRetained+0x5c" (23) and
 * "main.main+0x8e4" (15) make a column 24 wide, so one TAB after the
 * first and two after the second. */
static void test_textfmt_tabs_go_example_shape(void **state)
{
	const uintptr_t pcs[] = {RET(frame_retained_blob), RET(frame_outer)};
	(void)state;

	assert_int_equal(strlen("frame_retained_blob+0x0"), 23);
	assert_int_equal(strlen("frame_outer+0x0"), 15);
	assert_two_frames(pcs, 2, false, pcs[0], 1, pcs[1], 2);
}

/* A widest cell of 16 ("frame_middle+0x0") still gets its padding of
 * one: the column is 24 wide, so one TAB after it and two after a cell
 * of 15. */
static void test_textfmt_tabs_widest_multiple_of_8_padded(void **state)
{
	const uintptr_t pcs[] = {RET(frame_middle), RET(frame_outer)};
	(void)state;

	assert_int_equal(strlen("frame_middle+0x0"), 16);
	assert_two_frames(pcs, 2, false, pcs[0], 1, pcs[1], 2);
}

/* An address no module holds prints as "?": its "0x0" pads to the
 * widest pc cell, and "?+0x0" to the widest function cell. */
static void test_textfmt_tabs_narrow_pc_padded(void **state)
{
	struct snapshot s = entries_snapshot();
	const uintptr_t pcs[] = {RET(frame_leaf), 1};
	struct textfmt_stack st = {pcs, NULL, 2, false};
	char *l1 = frame_line(pcs[0], 1, 1), *want = NULL;
	char *got = frames_text(&s, &st, false), pc[24];
	size_t col;
	(void)state;

	/* The pc column: the widest pc cell plus one, rounded up to 8
	 * (16 for "0x" and 12 digits); "0x0" fills it with TABs. */
	snprintf(pc, sizeof(pc), "%#" PRIxPTR, pcs[0] - 1);
	col = (strlen(pc) + 1 + 7) / 8 * 8;
	assert_int_equal(strlen("frame_leaf+0x0"), 14);
	/* "?+0x0" is 5 wide in a column of 16: two TABs. */
	assert_true(asprintf(&want, "%s#\t0x0%.*s?+0x0\t\t?:0\n\n", l1,
			     (int)((col - 3 + 7) / 8), "\t\t\t\t") > 0);
	assert_string_equal(got, want);
	free(want);
	free(got);
	free(l1);
}

/* Every "#" line's pc + 1 is an entry of the "@" list, in order, the
 * exact leaf's too. */
static void test_textfmt_tabs_frame_pcs_in_key(void **state)
{
	struct snapshot s = entries_snapshot();
	struct rec r = {0, 4, true, NULL,
			{(uintptr_t)frame_leaf, RET(frame_outer),
			 RET(frame_retained_blob), RET(frame_entry)}};
	struct textfmt_group *g = NULL;
	long ng = textfmt_records_group(&r, 1, sizeof(r), cmp_rec, rec_stack,
					&g);
	(void)state;

	assert_int_equal(ng, 1);
	assert_int_equal(textfmt_groups_sort(g, ng), 0);
	char *got = frames_text(&s, &g[0].stack, false), *at = g[0].key;
	int lines = 0;
	for (char *p = got; (p = strstr(p, "#\t0x")); p++, lines++) {
		uintptr_t pc = (uintptr_t)strtoull(p + 2, NULL, 16);
		char want[32];
		snprintf(want, sizeof(want), " %#" PRIxPTR, pc + 1);
		assert_non_null(at = strstr(at, want));
		at += strlen(want);
	}
	assert_int_equal(lines, 3);
	assert_int_equal(strncmp(got, "#\t", 2), 0);
	assert_true(strtoull(got + 2, NULL, 16) == (uintptr_t)frame_leaf);
	free(got);
	textfmt_groups_free(g, ng);
}

/* ------------------------------------------------------------------------
 * 4. Hidden frames
 * ---------------------------------------------------------------------- */

static void test_textfmt_hide_task_entries(void **state)
{
	struct snapshot s = entries_snapshot(), none = {0};
	const uintptr_t pcs[] = {RET(frame_leaf), RET(frame_outer),
				 (uintptr_t)frame_trampoline + 12,
				 RET(frame_entry)};
	struct textfmt_stack st = {pcs, NULL, 4, false};
	uintptr_t shown[4];
	(void)state;

	assert_two_frames(pcs, 4, false, pcs[0], 1, pcs[1], 1);
	/* Hidden at allFrames too. */
	assert_two_frames(pcs, 4, true, pcs[0], 1, pcs[1], 1);
	assert_int_equal(textfmt_pcs_shown(&s, &st, shown), 2);
	assert_true(shown[0] == pcs[0] && shown[1] == pcs[1]);
	/* What hides them is the snapshot's hide_entry: with none named
	 * (zeros), all four are kept. */
	assert_int_equal(textfmt_pcs_shown(&none, &st, shown), 4);
}

static void test_textfmt_hide_only_entries_prints_zero_pc(void **state)
{
	struct snapshot s = entries_snapshot();
	const uintptr_t pcs[] = {RET(frame_entry)};
	struct textfmt_stack only = {pcs, NULL, 1, false};
	struct textfmt_stack empty = {pcs, NULL, 0, false};
	char *a = frames_text(&s, &only, false);
	char *b = frames_text(&s, &empty, false);
	(void)state;

	assert_string_equal(a, "#\t0x0\n\n");
	assert_string_equal(b, "#\t0x0\n\n");
	free(a);
	free(b);
}

/* A real task parked in co_chan_recv, through a real snapshot. */
static struct {
	char *hidden, *all;           /* textfmt_frames_write, both ways */
	char *key;                    /* its group's key */
	uintptr_t entry_pc;           /* the outermost entry of its stack */
} parked;

static co_chan *parked_chan;

static void task_parker(void *arg)
{
	(void)arg;
	co_chan_recv(parked_chan, NULL);
	__asm__ volatile("");  /* keeps the call out of tail position */
}

/* Records that are stack views already. */
static void view_stack(const void *elem, struct textfmt_stack *st)
{
	*st = *(const struct textfmt_stack *)elem;
}

static int cmp_view(const void *pa, const void *pb)
{
	return textfmt_stack_cmp(pa, pb);
}

/* textfmt_frames_write into *out (free it); CHECKs, for a task. */
static void frames_into(char **out, const struct snapshot *s,
			const struct textfmt_stack *st, bool all_frames)
{
	size_t len;
	FILE *f = open_memstream(out, &len);

	CHECK(f != NULL);
	if (!f)
		return;
	textfmt_frames_write(f, s, st, all_frames);
	CHECK_EQ(fclose(f), 0);
}

/* Fills `parked` from a snapshot: task id's frames and key. */
static void take_parked(uint64_t id)
{
	struct textfmt_group *g = NULL;
	struct snapshot s;

	CHECK_EQ(snapshot_take(&s), 0);
	for (size_t i = 0; i < s.n; i++) {
		const struct prof_task *t = s.tasks[i];
		struct textfmt_stack st = {t->pcs, t->labels, t->npcs,
					   t->leaf_is_pc};

		if (t->id != id || t->npcs == 0)
			continue;
		parked.entry_pc = t->pcs[t->npcs - 1];
		frames_into(&parked.hidden, &s, &st, false);
		frames_into(&parked.all, &s, &st, true);
		CHECK_EQ(textfmt_records_group(&st, 1, sizeof(st), cmp_view,
					       view_stack,
					       &g), 1);
		CHECK_EQ(textfmt_groups_sort(g, 1), 0);
		parked.key = strdup(g[0].key);
		textfmt_groups_free(g, 1);
	}
	snapshot_free(&s);
}

static void task_main_parked(void *arg)
{
	uint64_t id;
	(void)arg;

	parked_chan = co_chan_new(1, 0);
	id = co_go(task_parker, NULL);
	WAIT_STATUS(id, "chan receive");
	take_parked(id);
	co_chan_close(parked_chan);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(parked_chan);
}

/* True if the first line of text shows function fn. */
static bool first_line_is(const char *text, const char *fn)
{
	char want[128];
	const char *at;

	snprintf(want, sizeof(want), "\t%s+0x", fn);
	at = strstr(text, want);
	return at && at < strchr(text, '\n');
}

static void test_textfmt_hide_runtime_frames_real_task(void **state)
{
	char entry[32];
	(void)state;

	tu_run(task_main_parked, NULL);
	assert_non_null(parked.hidden);
	assert_non_null(parked.all);
	assert_non_null(parked.key);
	/* Hidden: the first line is the call the user wrote; all_frames:
	 * the runtime frames under it come first. */
	assert_true(first_line_is(parked.hidden, "co_chan_recv"));
	assert_non_null(strstr(parked.hidden, "\ttask_parker+0x"));
	assert_false(first_line_is(parked.all, "co_chan_recv"));
	assert_non_null(strstr(parked.all, "\tco_chan_recv+0x"));
	assert_non_null(strstr(parked.all, "\ttask_parker+0x"));
	/* The entry never shows, yet stays in the @ list. */
	snprintf(entry, sizeof(entry), "#\t%#" PRIxPTR "\t",
		 parked.entry_pc - 1);
	assert_null(strstr(parked.hidden, entry));
	assert_null(strstr(parked.all, entry));
	snprintf(entry, sizeof(entry), " %#" PRIxPTR, parked.entry_pc);
	assert_non_null(strstr(parked.key, entry));
	free(parked.hidden);
	free(parked.all);
	free(parked.key);
}

#define TABLE(f) cmocka_unit_test_setup_teardown(f, table_setup, table_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Grouping */
		TABLE(test_textfmt_group_equal_stacks_share_group),
		TABLE(test_textfmt_group_labels_or_exact_leaf_split),
		cmocka_unit_test(test_textfmt_group_no_records_no_groups),
		/* 2. Key and order */
		TABLE(test_textfmt_key_pcs_then_labels_line),
		TABLE(test_textfmt_sort_count_then_key),
		TABLE(test_textfmt_sort_by_caller_order),
		/* 3. Tab alignment */
		cmocka_unit_test(test_textfmt_tabs_go_example_shape),
		cmocka_unit_test(test_textfmt_tabs_widest_multiple_of_8_padded),
		cmocka_unit_test(test_textfmt_tabs_narrow_pc_padded),
		cmocka_unit_test(test_textfmt_tabs_frame_pcs_in_key),
		/* 4. Hidden frames */
		cmocka_unit_test(test_textfmt_hide_task_entries),
		cmocka_unit_test(test_textfmt_hide_only_entries_prints_zero_pc),
		cmocka_unit_test(test_textfmt_hide_runtime_frames_real_task),
	};
	return cmocka_run_group_tests_name("profiler.textfmt", tests, NULL,
					   NULL);
}
