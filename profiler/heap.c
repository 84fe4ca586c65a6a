/* SPDX-License-Identifier: MIT */
/*
 * heap.c - the heap and allocs profiles: what memprof.c sampled, in Go's
 * protobuf and debug=1 text forms.
 *
 *   debug=0  pprof protobuf, gzipped: sample types alloc_objects/count,
 *            alloc_space/bytes, inuse_objects/count, inuse_space/bytes;
 *            period space/bytes = the sampling rate; one sample per
 *            (stack, size) bucket with the numeric label bytes = the
 *            average size, every value scaled up as Go's scaleHeapSample
 *            (1/(1-exp(-avg/rate))).  heap leaves default_sample_type
 *            unset (pprof shows the last type, inuse_space); allocs sets
 *            it to alloc_space.
 *   debug=1  Go's heap text, for both: "heap profile: <inuse objs>:
 *            <inuse bytes> [<alloc objs>: <alloc bytes>] @ heap/<2*rate>",
 *            then one record per bucket with the raw (unscaled) sampled
 *            counts, sorted by in-use bytes, frames through textfmt.c, and
 *            a trailer.  Go's trailer is "# runtime.MemStats" with its
 *            collector's numbers; ours keeps that heading so that readers
 *            find it, then only the fields glibc can answer honestly
 *            (mallinfo2, getrusage), named as Go names their analogues,
 *            and the raw mallinfo2 fields (docs/profiles.md maps them).
 *            Go's fields with no glibc counterpart (TotalAlloc, Mallocs,
 *            Frees, the GC's) are left out rather than printed as zeros.
 *
 * Under AddressSanitizer (memprof_available() false) both forms say that
 * heap profiling is unavailable: the text in a "#" line after an empty
 * header, the protobuf in a comment on an empty profile.
 *
 * Stacks are cut at their first address outside every executable mapping
 * (a frame chain that ran through code without frame pointers), and
 * buckets that become equal are merged, before either form is written.
 *
 * Rejected: one record per stack (Go keys its buckets by stack and size,
 * and the scaling is only right for the size the blocks had); scaling the
 * text's numbers (Go prints them raw and pprof scales them, with the rate
 * from the header); libm for exp (static users would need -lm in
 * copper.pc for one function; a 16-term series is exact to 1e-12 here).
 *
 * Invariants: the header's totals are the sums of the records printed;
 * every record has in-use <= allocated; the proto's values are the text's
 * numbers scaled by one factor per record.
 *
 * Keep in sync with ../shared/reference/pprof-formats.md 1.3, 1.4, 2.4
 * and docs/profiles.md ("Heap and allocs").
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

static const char heap_unavailable[] =
	"heap profiling is unavailable: this build uses AddressSanitizer, "
	"which owns malloc";

/* ------------------------------------------------------------------------
 * Scaling (Go's scaleHeapSample), without libm
 * ---------------------------------------------------------------------- */

/* 1 - exp(-x) for x >= 0: the series for small x (no cancellation),
 * exp(-x) by halving and squaring otherwise. */
static double one_minus_exp_neg(double x)
{
	if (x > 40.0)
		return 1.0;
	if (x < 0.5) {
		double term = x, sum = 0.0;
		for (int k = 1; k < 16; k++) {
			sum += term;
			term *= -x / (k + 1);
		}
		return sum;
	}
	int halvings = 0;
	double y = x, e = 0.0, term = 1.0;
	while (y > 0.5) {
		y /= 2.0;
		halvings++;
	}
	for (int k = 0; k < 16; k++) { /* exp(-y) */
		e += term;
		term *= -y / (k + 1);
	}
	while (halvings--)
		e *= e;
	return 1.0 - e;
}

static void scale_sample(int64_t count, int64_t size, long rate,
			 int64_t *out_count, int64_t *out_size)
{
	if (count == 0 || size == 0) {
		*out_count = *out_size = 0;
		return;
	}
	if (rate <= 1) {
		*out_count = count;
		*out_size = size;
		return;
	}
	double avg = (double)size / (double)count;
	double scale = 1.0 / one_minus_exp_neg(avg / (double)rate);
	*out_count = (int64_t)((double)count * scale);
	*out_size = (int64_t)((double)size * scale);
}

/* ------------------------------------------------------------------------
 * Stacks: junk cut off, equal buckets merged
 * ---------------------------------------------------------------------- */

static int cmp_record(const void *pa, const void *pb)
{
	const struct memprof_record *a = pa, *b = pb;

	if (a->npcs != b->npcs)
		return a->npcs < b->npcs ? -1 : 1;
	int c = memcmp(a->pcs, b->pcs, (size_t)a->npcs * sizeof(uintptr_t));
	if (c)
		return c;
	return a->size < b->size ? -1 : a->size > b->size;
}

/*
 * A frame chain that runs through code built without frame pointers
 * (glibc's strdup or fopen calling malloc) may go on through words that
 * only look like frame records: the walk is bounded, so they never fault,
 * but their "return addresses" are junk.  Each stack is cut at its first
 * address outside every executable mapping, as snapshots cut theirs, and
 * buckets that become equal are merged.  Returns the new count.
 */
static long records_tidy(struct memprof_record *r, long n)
{
	struct prof_maps pm;
	long out = 0;

	if (n == 0)
		return 0;
	prof_maps_get(&pm);
	for (long i = 0; i < n; i++)
		for (int k = 0; k < r[i].npcs; k++)
			if (!prof_pc_mapped(&pm, r[i].pcs[k])) {
				r[i].npcs = k;
				break;
			}
	qsort(r, (size_t)n, sizeof(*r), cmp_record);
	for (long i = 0; i < n; i++) {
		if (out && cmp_record(&r[out - 1], &r[i]) == 0) {
			r[out - 1].alloc_objects += r[i].alloc_objects;
			r[out - 1].alloc_bytes += r[i].alloc_bytes;
			r[out - 1].free_objects += r[i].free_objects;
			r[out - 1].free_bytes += r[i].free_bytes;
			continue;
		}
		r[out++] = r[i];
	}
	return out;
}

/* ------------------------------------------------------------------------
 * debug=0
 * ---------------------------------------------------------------------- */

static void hide_entries(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	introspect_task_entries(&s->hide_entry[0], &s->hide_entry[1]);
}

static int write_proto(const struct memprof_record *r, long n, bool allocs,
		       int fd)
{
	static const char *const types[4][2] = {
		{"alloc_objects", "count"}, {"alloc_space", "bytes"},
		{"inuse_objects", "count"}, {"inuse_space", "bytes"}};
	long rate = memprof_rate();
	struct pprof_builder *b;
	struct snapshot s;
	int err = 0;

	hide_entries(&s);
	if (!(b = pprof_builder_new(&err)))
		return err;
	pprof_symbolizer_set(b, prof_pprof_symbolize, NULL);
	for (int i = 0; i < 4 && err == 0; i++)
		err = pprof_sample_type_add(b, types[i][0], types[i][1]);
	if (err == 0)
		err = pprof_period_set(b, "space", "bytes", rate);
	if (err == 0 && allocs)
		err = pprof_default_sample_type_set(b, "alloc_space");
	if (err == 0 && !memprof_available())
		err = pprof_comment_add(b, heap_unavailable);
	if (err == 0)
		err = prof_pprof_add_mappings(b);
	for (long i = 0; i < n && err == 0; i++) {
		int64_t v[4];
		uintptr_t pcs[PROF_MAX_FRAMES];
		struct textfmt_stack st = {r[i].pcs, NULL, r[i].npcs, false};
		int np = textfmt_pcs_shown(&s, &st, pcs);
		struct pprof_label lb = {"bytes", NULL, 0, NULL};

		scale_sample(r[i].alloc_objects, r[i].alloc_bytes, rate, &v[0],
			     &v[1]);
		scale_sample(r[i].alloc_objects - r[i].free_objects,
			     r[i].alloc_bytes - r[i].free_bytes, rate, &v[2],
			     &v[3]);
		if (r[i].alloc_objects > 0)
			lb.num = r[i].alloc_bytes / r[i].alloc_objects;
		err = pprof_sample_add(b, pcs, (size_t)np, false, v, &lb,
				       r[i].alloc_objects > 0 ? 1 : 0);
	}
	if (err == 0)
		err = pprof_builder_write(b, fd);
	pprof_builder_free(b);
	return err;
}

/* ------------------------------------------------------------------------
 * debug=1
 * ---------------------------------------------------------------------- */

static void write_trailer(FILE *f)
{
	struct mallinfo2 mi = mallinfo2();
	struct rusage ru;

	/* Go's heading and names, glibc's numbers (docs/profiles.md). */
	fprintf(f, "\n# runtime.MemStats\n");
	fprintf(f, "# Alloc = %zu\n", mi.uordblks + mi.hblkhd);
	fprintf(f, "# Sys = %zu\n", mi.arena + mi.hblkhd);
	fprintf(f, "# HeapAlloc = %zu\n", mi.uordblks + mi.hblkhd);
	fprintf(f, "# HeapSys = %zu\n", mi.arena + mi.hblkhd);
	fprintf(f, "# HeapIdle = %zu\n", mi.fordblks);
	fprintf(f, "# HeapInuse = %zu\n", mi.uordblks + mi.hblkhd);
	fprintf(f, "# glibc mallinfo2\n");
	fprintf(f, "# arena = %zu\n# ordblks = %zu\n# smblks = %zu\n"
		   "# hblks = %zu\n# hblkhd = %zu\n# fsmblks = %zu\n"
		   "# uordblks = %zu\n# fordblks = %zu\n# keepcost = %zu\n",
		mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd,
		mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		fprintf(f, "# MaxRSS = %ld\n", ru.ru_maxrss * 1024);
}

static int write_debug1(const struct memprof_record *r, long n, FILE *f)
{
	struct textfmt_group *g = calloc((size_t)n + 1, sizeof(*g));
	int64_t tot[4] = {0, 0, 0, 0};
	struct snapshot s;
	int err;

	if (!g)
		return CO_ENOMEM;
	hide_entries(&s);
	for (long i = 0; i < n; i++) {
		g[i].stack = (struct textfmt_stack){r[i].pcs, NULL, r[i].npcs,
						    false};
		g[i].first = (size_t)i;
		g[i].count = 1;
		g[i].order = r[i].alloc_bytes - r[i].free_bytes;
		tot[0] += r[i].alloc_objects - r[i].free_objects;
		tot[1] += r[i].alloc_bytes - r[i].free_bytes;
		tot[2] += r[i].alloc_objects;
		tot[3] += r[i].alloc_bytes;
	}
	if ((err = textfmt_groups_sort(g, n)) < 0) {
		textfmt_groups_free(g, n);
		return err;
	}
	fprintf(f, "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64
		   ": %" PRId64 "] @ heap/%ld\n",
		tot[0], tot[1], tot[2], tot[3], 2 * memprof_rate());
	if (!memprof_available())
		fprintf(f, "# %s\n", heap_unavailable);
	for (long i = 0; i < n; i++) {
		const struct memprof_record *ri = &r[g[i].first];
		fprintf(f, "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64
			   "] %s\n",
			ri->alloc_objects - ri->free_objects,
			ri->alloc_bytes - ri->free_bytes, ri->alloc_objects,
			ri->alloc_bytes, g[i].key);
		textfmt_frames_write(f, &s, &g[i].stack, false);
	}
	textfmt_groups_free(g, n);
	write_trailer(f);
	return 0;
}

/* ------------------------------------------------------------------------
 * Entry
 * ---------------------------------------------------------------------- */

struct heap_text {
	struct memprof_record *r;
	long n;
};

static int heap_text(FILE *f, void *arg)
{
	struct heap_text *ht = arg;
	return write_debug1(ht->r, ht->n, f);
}

int heap_write(int fd, int debug, bool allocs)
{
	struct memprof_record *r;
	long n = memprof_records(&r);
	int err;

	if (n < 0)
		return (int)n;
	n = records_tidy(r, n);
	if (debug == 0) {
		err = write_proto(r, n, allocs, fd);
	} else {
		struct heap_text ht = {r, n};
		err = textfmt_to_fd(fd, heap_text, &ht);
	}
	free(r);
	return err;
}

int heap_count(void)
{
	long n = memprof_count();

	return n > INT32_MAX ? INT32_MAX : (int)n;
}
