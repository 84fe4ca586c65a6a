/* SPDX-License-Identifier: MIT */
/*
 * test_heap.c - tests of profiler/memprof.c (the interposed allocator and
 * its sampler) and profiler/heap.c (the heap and allocs profiles), read
 * as a user reads them: the debug=1 text parsed line by line and scaled
 * as pprof scales it, the debug=0 protobuf decoded, and `go tool pprof`
 * when go is installed.
 *
 * Every scenario allocates from call-site functions of its own
 * (site_<scenario>_<n>), so the buckets of one case never count in
 * another, whatever ran before in the process.
 *
 * Scenario groups:
 *   1. Ground truth     30 MiB and 10 MiB retained at two sites in blocks
 *                       of 4..64 KiB: at the default rate inside a task
 *                       (bounded by the sampling error, which at 512 KiB
 *                       is 13% and 23% for one standard deviation: 10%
 *                       cannot hold there, see below), and at 4 KiB on the
 *                       main thread before co_run, within 10%, through the
 *                       debug=1 text and `go tool pprof -top`; freeing a
 *                       site drops its in-use figures to 0.
 *   2. Exact at rate 1  on a plain pthread: counts and bytes per site equal
 *                       what was allocated, for malloc, calloc, realloc,
 *                       reallocarray, posix_memalign, aligned_alloc,
 *                       memalign, valloc, pvalloc and strdup; frees,
 *                       realloc(NULL, n), realloc(p, 0), free(NULL);
 *                       a realloc that moves; libuv's pool thread
 *                       (co_blocking), walked past the site.
 *   3. Rate 0           records nothing; a negative rate is ignored.
 *   4. Formats          debug=1 header, records sorted by in-use bytes,
 *                       TAB-only frame lines, the trailer; debug=2 is
 *                       debug=1; debug=0 sample and period types, period,
 *                       default_sample_type (allocs only), "bytes" labels.
 *   5. Processes        fork(): the child allocates, frees and writes a
 *                       profile while the parent's threads sample; bad
 *                       COPPER_MEMPROFILERATE makes co_run fail naming it;
 *                       a good one applies from the first allocation.
 *   6. Stress           8 threads allocating and freeing at rate 1 and at
 *                       64 bytes: exact in-use at the end.
 *   Under AddressSanitizer the allocator is the sanitizer's: the profiles
 *   exist and say heap profiling is unavailable, which the cases that need
 *   samples check instead.
 *
 * Why the default-rate bound is wide: the estimate of S bytes sampled every
 * R bytes on average has a standard deviation of about sqrt(S*R), i.e.
 * 13% of 30 MiB and 23% of 10 MiB at R = 512 KiB (Go's estimate has the
 * same), so that case checks 5 deviations and prints the error it saw; the
 * 10% check runs at R = 4 KiB, where 10% is more than 5 deviations.
 */
#include "test_util.h"

#include <malloc.h>
#include <pthread.h>
#include <regex.h>

#include "profile_test.h"

#define KIB 1024L
#define MIB (1024L * 1024L)
#define RATE_DEFAULT (512 * KIB)

/* ------------------------------------------------------------------------
 * Reading the debug=1 text as pprof does
 * ---------------------------------------------------------------------- */

struct heap_rec {
	long long inuse_n, inuse_b, alloc_n, alloc_b;
	char funcs[8][96];       /* the first frames' function names */
	int nfuncs;
};

struct heap_text {
	long long tot[4];        /* header: inuse n, b, alloc n, b */
	long rate;               /* header's heap/<2*rate>, halved */
	struct heap_rec *recs;
	int n;
	bool memstats;           /* "# runtime.MemStats" trailer seen */
	char err[256];
};

/* 1 - exp(-x), as memprof's reader must compute it (no libm here). */
static double t_one_minus_exp_neg(double x)
{
	if (x > 40.0)
		return 1.0;
	double y = x, e = 0.0, term = 1.0;
	int h = 0;
	if (x < 0.5) {
		double sum = 0.0;
		term = x;
		for (int k = 1; k < 16; k++) {
			sum += term;
			term *= -x / (k + 1);
		}
		return sum;
	}
	while (y > 0.5) {
		y /= 2.0;
		h++;
	}
	for (int k = 0; k < 16; k++) {
		e += term;
		term *= -y / (k + 1);
	}
	while (h--)
		e *= e;
	return 1.0 - e;
}

/* pprof's scaling of a raw (count, bytes) pair (scaleHeapSample). */
static double t_scaled_bytes(long long n, long long b, long rate)
{
	if (n == 0 || b == 0)
		return 0;
	if (rate <= 1)
		return (double)b;
	return (double)b / t_one_minus_exp_neg((double)b / (double)n /
					       (double)rate);
}

/* Strict reader of heap debug=1 (pprof-formats.md 2.4). */
static bool heap_parse(const char *text, struct heap_text *h)
{
	regex_t hdr, rec;
	regmatch_t m[6];
	char *copy = strdup(text), *save = NULL, *line;
	int state = 0; /* 0 header, 1 record line, 2 frames, 3 trailer */
	int cap = 0;
	bool ok = false;

	memset(h, 0, sizeof(*h));
	pt_regex(&hdr, "^heap profile: ([0-9]+): ([0-9]+) \\[([0-9]+): "
		       "([0-9]+)\\] @ heap/([0-9]+)$");
	pt_regex(&rec, "^([0-9]+): ([0-9]+) \\[([0-9]+): ([0-9]+)\\] @"
		       "( 0x[0-9a-f]+)*$");
	/* strtok_r would merge empty lines: split by hand. */
	for (line = copy; line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		else if (!*line)
			break;
		if (state == 0) {
			if (regexec(&hdr, line, 6, m, 0) != 0) {
				snprintf(h->err, sizeof(h->err),
					 "bad header: %s", line);
				goto out;
			}
			for (int i = 0; i < 4; i++)
				h->tot[i] = atoll(line + m[i + 1].rm_so);
			h->rate = atol(line + m[5].rm_so) / 2;
			state = 1;
		} else if (state == 1 && line[0] == '#' &&
			   strstr(line, "unavailable")) {
			continue; /* the ASan note */
		} else if (state == 1 && !*line) {
			state = 3; /* the empty line before the trailer */
		} else if (state == 1) {
			if (regexec(&rec, line, 6, m, 0) != 0) {
				snprintf(h->err, sizeof(h->err),
					 "bad record: %s", line);
				goto out;
			}
			if (h->n == cap) {
				cap = cap ? cap * 2 : 64;
				h->recs = realloc(h->recs, (size_t)cap *
							   sizeof(*h->recs));
			}
			struct heap_rec *r = &h->recs[h->n++];
			memset(r, 0, sizeof(*r));
			sscanf(line, "%lld: %lld [%lld: %lld]", &r->inuse_n,
			       &r->inuse_b, &r->alloc_n, &r->alloc_b);
			if ((r->inuse_n == 0) != (r->inuse_b == 0) ||
			    (r->alloc_n == 0) != (r->alloc_b == 0)) {
				snprintf(h->err, sizeof(h->err),
					 "count and bytes disagree: %s", line);
				goto out;
			}
			state = 2;
		} else if (state == 2 && !*line) {
			state = 1;
		} else if (state == 2) {
			/* "#", pc, func+off, file:line: cells split by runs
			 * of TABs, never spaces. */
			const char *cell[4] = {line, NULL, NULL, NULL};
			int nc = 1;
			for (char *q = line; *q && nc <= 4; q++)
				if (*q == '\t' && q[1] != '\t' && q[1]) {
					if (nc < 4)
						cell[nc] = q + 1;
					nc++;
				}
			if (nc == 2 && strcmp(line, "#\t0x0") == 0)
				continue; /* an empty stack */
			if (line[0] != '#' || line[1] != '\t' || nc != 4 ||
			    strchr(line, ' ') != NULL ||
			    strncmp(cell[1], "0x", 2) != 0) {
				snprintf(h->err, sizeof(h->err),
					 "bad frame line: %s", line);
				goto out;
			}
			struct heap_rec *r = &h->recs[h->n - 1];
			const char *fn = cell[2];
			size_t len = strcspn(fn, "+");
			if (r->nfuncs < 8 && len < sizeof(r->funcs[0]))
				memcpy(r->funcs[r->nfuncs++], fn, len);
		} else if (state == 3) {
			if (strcmp(line, "# runtime.MemStats") == 0)
				h->memstats = true;
			else if (!*line || line[0] != '#') {
				snprintf(h->err, sizeof(h->err),
					 "bad trailer line: %s", line);
				goto out;
			}
		}
	}
	ok = state == 3 && h->memstats;
	if (!ok && !h->err[0])
		snprintf(h->err, sizeof(h->err), "text ends in state %d",
			 state);
out:
	regfree(&hdr);
	regfree(&rec);
	free(copy);
	return ok;
}

static void heap_text_free(struct heap_text *h)
{
	free(h->recs);
	h->recs = NULL;
}

static bool rec_has(const struct heap_rec *r, const char *fn, bool leaf)
{
	for (int i = 0; i < (leaf ? 1 : r->nfuncs) && i < r->nfuncs; i++)
		if (strcmp(r->funcs[i], fn) == 0)
			return true;
	return false;
}

/* Sums over the records that name fn (as leaf or anywhere). */
struct site_sum {
	long long inuse_n, inuse_b, alloc_n, alloc_b;
	double inuse_est;        /* scaled as pprof scales */
	int recs;
};

static struct site_sum site_sum_sized(const struct heap_text *h,
				      const char *fn, bool leaf, long long size)
{
	struct site_sum s = {0};

	for (int i = 0; i < h->n; i++) {
		const struct heap_rec *r = &h->recs[i];
		if (!rec_has(r, fn, leaf) ||
		    (size && r->alloc_b != size * r->alloc_n))
			continue;
		s.recs++;
		s.inuse_n += r->inuse_n;
		s.inuse_b += r->inuse_b;
		s.alloc_n += r->alloc_n;
		s.alloc_b += r->alloc_b;
		s.inuse_est += t_scaled_bytes(r->inuse_n, r->inuse_b, h->rate);
	}
	return s;
}

static struct site_sum site_sum(const struct heap_text *h, const char *fn,
				bool leaf)
{
	return site_sum_sized(h, fn, leaf, 0);
}

/* The heap profile's debug=1 text, parsed; fails the case on error.
 * Only on the cmocka thread. */
static void heap_read(struct heap_text *h)
{
	struct pt_buf b;

	assert_int_equal(pt_capture_profile("heap", 1, &b), 0);
	if (!heap_parse(b.data, h))
		fail_msg("heap debug=1: %s\n%s", h->err, b.data);
	pt_buf_free(&b);
}

#ifdef TU_ASAN
/* AddressSanitizer owns malloc: a case that needs samples checks instead
 * that both profiles say why they have none, and ends there (meson's TAP
 * reader counts cmocka's skips as failures). */
static void check_unavailable(void)
{
	static const char *const names[] = {"heap", "allocs"};
	struct pt_buf b;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(pt_capture_profile(names[i], 1, &b), 0);
		assert_non_null(strstr(b.data, "\n# heap profiling is "
						"unavailable: this build uses "
						"AddressSanitizer"));
		pt_buf_free(&b);
	}
	printf("# AddressSanitizer owns malloc: heap profiling is "
	       "unavailable, as the profiles say\n");
}
#define SKIP_UNDER_ASAN()                                                  \
	do {                                                               \
		check_unavailable();                                       \
		return;                                                    \
	} while (0)
#else
#define SKIP_UNDER_ASAN() do {} while (0)
#endif

/* ------------------------------------------------------------------------
 * 1. Ground truth
 * ---------------------------------------------------------------------- */

/* Sites differ in code as well as in name (each adds its own constant to
 * a counter), so that the compiler's identical-code folding keeps them
 * apart. */
static _Atomic long site_calls[2];

#define MALLOC_SITE(name, k)                                               \
	__attribute__((noinline)) static void *name(size_t n)              \
	{                                                                  \
		atomic_fetch_add(&site_calls[0], k);                       \
		return malloc(n);                                          \
	}

__attribute__((noinline)) static void *site_truth_big(size_t n)
{
	atomic_fetch_add(&site_calls[0], 1);
	return malloc(n);
}

__attribute__((noinline)) static void *site_truth_small(size_t n)
{
	atomic_fetch_add(&site_calls[1], 3);
	return malloc(n);
}

__attribute__((noinline)) static void *site_fine_big(size_t n)
{
	atomic_fetch_add(&site_calls[0], 5);
	return malloc(n);
}

__attribute__((noinline)) static void *site_fine_small(size_t n)
{
	atomic_fetch_add(&site_calls[1], 7);
	return malloc(n);
}

struct retained {
	void **p;
	size_t n;
	long long bytes;
};

/* Retains at least total bytes from site in blocks of 4..64 KiB. */
static void retain(struct retained *r, void *(*site)(size_t), long total)
{
	size_t cap = (size_t)(total / (4 * KIB)) + 1;

	r->p = calloc(cap, sizeof(void *));
	r->n = 0;
	r->bytes = 0;
	for (unsigned i = 0; r->bytes < total && r->n < cap; i++) {
		size_t sz = (size_t)(4 * KIB) * (1 + (i * 7) % 16);
		void *p = site(sz);
		if (!p)
			break;
		memset(p, (int)i, 64); /* used, as a program would */
		r->p[r->n++] = p;
		r->bytes += (long long)sz;
	}
}

static void release(struct retained *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->p[i]);
	free(r->p);
	r->p = NULL;
	r->n = 0;
}

struct truth_run {
	struct retained big, small;
};

static void task_truth(void *arg)
{
	struct truth_run *t = arg;

	co_set_mem_profile_rate(RATE_DEFAULT); /* this worker draws now */
	retain(&t->big, site_truth_big, 30 * MIB);
	retain(&t->small, site_truth_small, 10 * MIB);
}

/* |est - truth| within bound; prints what it saw. */
static void check_close(const char *what, double est, long long truth,
			double bound)
{
	double err = (est - (double)truth) / (double)truth;

	printf("# %s: estimate %.0f, truth %lld, error %+.1f%% (bound "
	       "%.0f%%)\n", what, est, truth, 100 * err, 100 * bound);
	if (err > bound || err < -bound)
		fail_msg("%s: estimate %.0f is %.1f%% off the truth %lld "
			 "(bound %.0f%%)", what, est, 100 * err, truth,
			 100 * bound);
}

/* Five standard deviations of the estimate of truth at rate, at least
 * 10%: sd = sqrt(truth * rate). */
static double sampling_bound(long long truth, long rate)
{
	double x = (double)rate / (double)truth, sd = 1.0;

	/* sqrt without libm: Newton from 1. */
	for (int i = 0; i < 40; i++)
		sd = 0.5 * (sd + x / sd);
	return 5 * sd > 0.10 ? 5 * sd : 0.10;
}

static void test_heap_truth_default_rate_task(void **state)
{
	struct truth_run t;
	struct heap_text h;

	(void)state;
	SKIP_UNDER_ASAN();
	memset(&t, 0, sizeof(t));
	assert_int_equal(co_run(task_truth, &t), 0);
	co_set_mem_profile_rate(RATE_DEFAULT);
	heap_read(&h);
	assert_int_equal(h.rate, RATE_DEFAULT);
	struct site_sum big = site_sum(&h, "site_truth_big", true);
	struct site_sum small = site_sum(&h, "site_truth_small", true);
	assert_true(big.recs > 0);
	assert_true(small.recs > 0);
	check_close("default rate, 30 MiB site", big.inuse_est, t.big.bytes,
		    sampling_bound(t.big.bytes, RATE_DEFAULT));
	check_close("default rate, 10 MiB site", small.inuse_est,
		    t.small.bytes, sampling_bound(t.small.bytes, RATE_DEFAULT));
	heap_text_free(&h);

	/* Freeing the small site leaves nothing of it in use. */
	release(&t.small);
	heap_read(&h);
	small = site_sum(&h, "site_truth_small", true);
	assert_int_equal(small.inuse_n, 0);
	assert_int_equal(small.inuse_b, 0);
	assert_true(small.alloc_n > 0);
	assert_true(site_sum(&h, "site_truth_big", true).inuse_n > 0);
	heap_text_free(&h);
	release(&t.big);
}

/* Writes debug=0 to a file and returns `go tool pprof <flags> file`. */
static int go_pprof(const char *name, const char *flags, struct pt_buf *out)
{
	char path[] = "/tmp/test_heap_XXXXXX.pb.gz", cmd[512];
	struct pt_buf pb;
	int st;

	assert_int_equal(pt_capture_profile(name, 0, &pb), 0);
	assert_int_equal(pt_write_temp(path, 6, pb.data, pb.len), 0);
	pt_buf_free(&pb);
	snprintf(cmd, sizeof(cmd), "go tool pprof %s %s", flags, path);
	st = pt_shell(cmd, out);
	unlink(path);
	if (st != 0)
		fail_msg("%s exited with %d:\n%s", cmd, st, out->data);
	return st;
}

/* The flat bytes of fn in `go tool pprof -top -unit=B` output. */
static double top_flat(const char *top, const char *fn)
{
	char want[128];
	const char *p = top;

	snprintf(want, sizeof(want), " %s\n", fn);
	while ((p = strstr(p, want)) != NULL) {
		const char *l = p;
		while (l > top && l[-1] != '\n')
			l--;
		return strtod(l, NULL);
	}
	return -1;
}

static void test_heap_truth_fine_rate_before_run(void **state)
{
	struct retained big, small;
	struct heap_text h;
	const long rate = 4 * KIB;

	(void)state;
	SKIP_UNDER_ASAN();
	/* The main thread, no runtime: its stack is found by the probe. */
	co_set_mem_profile_rate(rate);
	retain(&big, site_fine_big, 30 * MIB);
	retain(&small, site_fine_small, 10 * MIB);
	heap_read(&h);
	assert_int_equal(h.rate, rate);
	struct site_sum b = site_sum(&h, "site_fine_big", true);
	struct site_sum s = site_sum(&h, "site_fine_small", true);
	check_close("4 KiB rate, 30 MiB site (debug=1)", b.inuse_est, big.bytes,
		    0.10);
	check_close("4 KiB rate, 10 MiB site (debug=1)", s.inuse_est,
		    small.bytes, 0.10);
	/* The caller of the site is this test function. */
	bool caller = false;
	for (int i = 0; i < h.n; i++)
		if (rec_has(&h.recs[i], "site_fine_big", true) &&
		    rec_has(&h.recs[i], "test_heap_truth_fine_rate_before_run",
			    false))
			caller = true;
	assert_true(caller);
	heap_text_free(&h);

	if (pt_have("go")) {
		struct pt_buf out;
		go_pprof("heap", "-sample_index=inuse_space -top -unit=B "
				 "-nodecount=1000", &out);
		check_close("4 KiB rate, 30 MiB site (go tool pprof -top)",
			    top_flat(out.data, "site_fine_big"), big.bytes, 0.10);
		check_close("4 KiB rate, 10 MiB site (go tool pprof -top)",
			    top_flat(out.data, "site_fine_small"), small.bytes,
			    0.10);
		pt_buf_free(&out);
		go_pprof("heap", "-raw", &out);
		assert_non_null(strstr(out.data, "PeriodType: space bytes\n"));
		assert_non_null(strstr(out.data, "Period: 4096\n"));
		assert_non_null(strstr(out.data,
				       "alloc_objects/count alloc_space/bytes "
				       "inuse_objects/count inuse_space/bytes"));
		assert_non_null(strstr(out.data, "bytes:["));
		pt_buf_free(&out);
	} else {
		printf("# go is not on PATH: go tool pprof not run\n");
	}
	release(&big);
	release(&small);
	co_set_mem_profile_rate(RATE_DEFAULT);
}

/* ------------------------------------------------------------------------
 * 2. Exact at rate 1, on a plain pthread
 * ---------------------------------------------------------------------- */

#define EXACT_N 200

/* Each returns what it allocated (or NULL) of n bytes at its own site. */
MALLOC_SITE(site_x_malloc, 11)
__attribute__((noinline)) static void *site_x_calloc(size_t n)
{
	return calloc(n / 8, 8);
}
__attribute__((noinline)) static void *site_x_realloc(size_t n)
{
	return realloc(NULL, n);
}
__attribute__((noinline)) static void *site_x_reallocarray(size_t n)
{
	return reallocarray(NULL, n / 4, 4);
}
__attribute__((noinline)) static void *site_x_posix_memalign(size_t n)
{
	void *p = NULL;
	return posix_memalign(&p, 64, n) == 0 ? p : NULL;
}
__attribute__((noinline)) static void *site_x_aligned_alloc(size_t n)
{
	return aligned_alloc(128, n);
}
__attribute__((noinline)) static void *site_x_memalign(size_t n)
{
	return memalign(256, n);
}
__attribute__((noinline)) static void *site_x_valloc(size_t n)
{
	return valloc(n);
}
__attribute__((noinline)) static void *site_x_pvalloc(size_t n)
{
	return pvalloc(n);
}
__attribute__((noinline)) static void *site_x_strdup(size_t n)
{
	char buf[200];
	memset(buf, 'x', sizeof(buf));
	buf[n < sizeof(buf) ? n - 1 : sizeof(buf) - 1] = '\0';
	return strdup(buf);
}

static const struct exact_site {
	const char *name;
	void *(*fn)(size_t);
	size_t size;          /* asked */
	size_t counted;       /* what the profile must say per block */
	bool leaf;            /* the site is the leaf frame */
} exact_sites[] = {
	{"site_x_malloc", site_x_malloc, 96, 96, true},
	{"site_x_calloc", site_x_calloc, 160, 160, true},
	{"site_x_realloc", site_x_realloc, 72, 72, true},
	{"site_x_reallocarray", site_x_reallocarray, 88, 88, true},
	{"site_x_posix_memalign", site_x_posix_memalign, 100, 100, true},
	{"site_x_aligned_alloc", site_x_aligned_alloc, 256, 256, true},
	{"site_x_memalign", site_x_memalign, 300, 300, true},
	{"site_x_valloc", site_x_valloc, 40, 40, true},
	{"site_x_pvalloc", site_x_pvalloc, 50, 50, true},
	/* strdup's malloc is glibc's call: the leaf is glibc's __strdup, and
	 * its callers are lost when glibc (built without frame pointers)
	 * keeps something else in the frame-pointer register; matched by
	 * its size, which nothing else in this program allocates there. */
	{"__strdup", site_x_strdup, 120, 120, true},
};
#define NSITES (sizeof(exact_sites) / sizeof(exact_sites[0]))

struct exact_run {
	void *p[NSITES][EXACT_N];
	int zero_ok;          /* malloc(0), free(NULL), realloc(p, 0) */
};

MALLOC_SITE(site_x_shrink, 13)

static void *thread_exact(void *arg)
{
	struct exact_run *r = arg;

	co_set_mem_profile_rate(1);
	for (size_t s = 0; s < NSITES; s++)
		for (int i = 0; i < EXACT_N; i++)
			r->p[s][i] = exact_sites[s].fn(exact_sites[s].size);
	/* Free the first quarter of each site. */
	for (size_t s = 0; s < NSITES; s++)
		for (int i = 0; i < EXACT_N / 4; i++) {
			free(r->p[s][i]);
			r->p[s][i] = NULL;
		}
	/* free(NULL), malloc(0), realloc(NULL, n), realloc(p, 0). */
	free(NULL);
	void *z = malloc(0);
	free(z);
	void *q = site_x_shrink(500);
	q = realloc(q, 0); /* glibc frees it and returns NULL */
	r->zero_ok = z != NULL && q == NULL;
	co_set_mem_profile_rate(RATE_DEFAULT);
	return NULL;
}

static void test_heap_rate1_exact_pthread(void **state)
{
	static struct exact_run r;
	struct heap_text h;
	pthread_t th;

	(void)state;
	SKIP_UNDER_ASAN();
	assert_int_equal(pthread_create(&th, NULL, thread_exact, &r), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(r.zero_ok);
	heap_read(&h);
	for (size_t s = 0; s < NSITES; s++) {
		const struct exact_site *e = &exact_sites[s];
		struct site_sum ss = site_sum_sized(&h, e->name, e->leaf,
						    (long long)e->counted);
		long long want_in = EXACT_N - EXACT_N / 4;
		if (ss.alloc_n != EXACT_N || ss.inuse_n != want_in ||
		    ss.alloc_b != EXACT_N * (long long)e->counted ||
		    ss.inuse_b != want_in * (long long)e->counted)
			fail_msg("%s: [%lld: %lld] in use %lld: %lld, want "
				 "[%d: %lld] in use %lld: %lld", e->name,
				 ss.alloc_n, ss.alloc_b, ss.inuse_n, ss.inuse_b,
				 EXACT_N, EXACT_N * (long long)e->counted,
				 want_in, want_in * (long long)e->counted);
	}
	/* realloc(p, 0) freed the block. */
	struct site_sum sh = site_sum(&h, "site_x_shrink", true);
	assert_int_equal(sh.alloc_n, 1);
	assert_int_equal(sh.inuse_n, 0);
	heap_text_free(&h);
	for (size_t s = 0; s < NSITES; s++)
		for (int i = 0; i < EXACT_N; i++)
			free(r.p[s][i]);
	heap_read(&h);
	for (size_t s = 0; s < NSITES; s++)
		assert_int_equal(site_sum_sized(&h, exact_sites[s].name,
						exact_sites[s].leaf,
						(long long)exact_sites[s].counted)
					 .inuse_b, 0);
	heap_text_free(&h);
}

/* realloc of a sampled block to a new size: the old one is freed, the
 * new one counted at the site that grew it. */
MALLOC_SITE(site_grow_first, 17)
__attribute__((noinline)) static void *site_grow_again(void *p, size_t n)
{
	return realloc(p, n);
}

static void *thread_grow(void *arg)
{
	void **out = arg;

	co_set_mem_profile_rate(1);
	void *p = site_grow_first(1000);
	*out = site_grow_again(p, 200000); /* moves: a new block */
	co_set_mem_profile_rate(RATE_DEFAULT);
	return NULL;
}

static void test_heap_realloc_moves(void **state)
{
	struct heap_text h;
	pthread_t th;
	void *p = NULL;

	(void)state;
	SKIP_UNDER_ASAN();
	assert_int_equal(pthread_create(&th, NULL, thread_grow, &p), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	heap_read(&h);
	struct site_sum a = site_sum(&h, "site_grow_first", true);
	struct site_sum b = site_sum(&h, "site_grow_again", true);
	assert_int_equal(a.alloc_b, 1000);
	assert_int_equal(a.inuse_b, 0);
	assert_int_equal(b.alloc_b, 200000);
	assert_int_equal(b.inuse_b, 200000);
	heap_text_free(&h);
	free(p);
	heap_read(&h);
	assert_int_equal(site_sum(&h, "site_grow_again", true).inuse_b, 0);
	heap_text_free(&h);
}

/* On libuv's pool (co_blocking): a thread neither the program nor the
 * runtime registered. */
MALLOC_SITE(site_pool, 41)

struct pool_run {
	void *p[10];
};

__attribute__((noinline)) static void blocking_alloc(void *arg)
{
	struct pool_run *r = arg;

	co_set_mem_profile_rate(1); /* this pool thread */
	for (int i = 0; i < 10; i++)
		r->p[i] = site_pool(777);
	co_set_mem_profile_rate(RATE_DEFAULT);
}

static void task_pool(void *arg)
{
	CHECK_EQ(co_blocking(blocking_alloc, arg), 0);
}

static void test_heap_pool_thread_exact(void **state)
{
	struct pool_run r;
	struct heap_text h;

	(void)state;
	SKIP_UNDER_ASAN();
	tu_reset();
	memset(&r, 0, sizeof(r));
	assert_int_equal(co_run(task_pool, &r), 0);
	tu_assert_no_failures();
	heap_read(&h);
	struct site_sum s = site_sum(&h, "site_pool", true);
	assert_int_equal(s.inuse_n, 10);
	assert_int_equal(s.inuse_b, 7770);
	/* The pool thread's stack was walked past the site. */
	assert_int_equal(site_sum(&h, "blocking_alloc", false).inuse_n, 10);
	heap_text_free(&h);
	for (int i = 0; i < 10; i++)
		free(r.p[i]);
}

/* ------------------------------------------------------------------------
 * 3. Rate 0, negative rates
 * ---------------------------------------------------------------------- */

MALLOC_SITE(site_off, 19)

static void *thread_off(void *arg)
{
	struct retained *r = arg;

	co_set_mem_profile_rate(0);
	retain(r, site_off, 20 * MIB);
	co_set_mem_profile_rate(-5); /* ignored: still 0 */
	return NULL;
}

static void test_heap_rate0_records_nothing(void **state)
{
	struct retained r;
	struct heap_text h;
	pthread_t th;

	(void)state;
	SKIP_UNDER_ASAN();
	assert_int_equal(pthread_create(&th, NULL, thread_off, &r), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	heap_read(&h);
	assert_int_equal(h.rate, 0);
	assert_int_equal(site_sum(&h, "site_off", false).recs, 0);
	heap_text_free(&h);
	release(&r);
	co_set_mem_profile_rate(RATE_DEFAULT);
	heap_read(&h);
	assert_int_equal(h.rate, RATE_DEFAULT);
	heap_text_free(&h);
}

/* ------------------------------------------------------------------------
 * 4. Formats
 * ---------------------------------------------------------------------- */

MALLOC_SITE(site_fmt, 23)

static void test_heap_debug1_format(void **state)
{
	struct pt_buf b, b2, a;
	struct heap_text h;
	void *keep[64];

	(void)state;
	assert_non_null(co_profile_lookup("heap"));
	assert_non_null(co_profile_lookup("allocs"));
	assert_string_equal(co_profile_name(co_profile_lookup("allocs")),
			    "allocs");
	assert_true(co_profile_count(co_profile_lookup("heap")) >= 0);
	assert_int_equal(co_profile_write(co_profile_lookup("heap"), 1, 3),
			 -EINVAL);
	co_set_mem_profile_rate(1);
	for (int i = 0; i < 64; i++)
		keep[i] = site_fmt(1000 + (size_t)i);
	co_set_mem_profile_rate(RATE_DEFAULT);
	assert_int_equal(pt_capture_profile("heap", 1, &b), 0);
#ifdef TU_ASAN
	assert_non_null(strstr(b.data, "heap profiling is unavailable"));
#endif
	if (!heap_parse(b.data, &h))
		fail_msg("%s\n%s", h.err, b.data);
	/* Totals are the sums; records sorted by in-use bytes. */
	long long sum[4] = {0, 0, 0, 0};
	for (int i = 0; i < h.n; i++) {
		sum[0] += h.recs[i].inuse_n;
		sum[1] += h.recs[i].inuse_b;
		sum[2] += h.recs[i].alloc_n;
		sum[3] += h.recs[i].alloc_b;
		if (i)
			assert_true(h.recs[i - 1].inuse_b >= h.recs[i].inuse_b);
	}
	for (int k = 0; k < 4; k++)
		assert_int_equal(sum[k], h.tot[k]);
#ifndef TU_ASAN
	assert_int_equal(site_sum(&h, "site_fmt", true).inuse_n, 64);
	assert_int_equal(co_profile_count(co_profile_lookup("heap")) > 0, 1);
#endif
	/* The trailer: Go's heading, glibc's numbers. */
	const char *t = strstr(b.data, "\n\n# runtime.MemStats\n# Alloc = ");
	assert_non_null(t);
	assert_non_null(strstr(t, "\n# HeapInuse = "));
	assert_non_null(strstr(t, "\n# glibc mallinfo2\n# arena = "));
	assert_non_null(strstr(t, "\n# MaxRSS = "));
	assert_int_equal(b.data[b.len - 1], '\n');
	/* debug=2 is debug=1; allocs has the same text. */
	assert_int_equal(pt_capture_profile("heap", 2, &b2), 0);
	assert_int_equal(strncmp(b2.data, "heap profile: ", 14), 0);
	assert_int_equal(pt_capture_profile("allocs", 1, &a), 0);
	assert_int_equal(strncmp(a.data, "heap profile: ", 14), 0);
	pt_buf_free(&b);
	pt_buf_free(&b2);
	pt_buf_free(&a);
	heap_text_free(&h);
	for (int i = 0; i < 64; i++)
		free(keep[i]);
}

static void check_proto(const char *name, bool allocs)
{
	struct pt_buf b;
	char err[256];
	pt_pb_profile *p;
	static const char *const want[4][2] = {
		{"alloc_objects", "count"}, {"alloc_space", "bytes"},
		{"inuse_objects", "count"}, {"inuse_space", "bytes"}};

	assert_int_equal(pt_capture_profile(name, 0, &b), 0);
	p = pt_decode(b.data, b.len, err, sizeof(err));
	if (!p)
		fail_msg("%s: %s", name, err);
	assert_int_equal(p->n_sample_type, 4);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(pt_pb_str(p, p->sample_type[i]->type),
				    want[i][0]);
		assert_string_equal(pt_pb_str(p, p->sample_type[i]->unit),
				    want[i][1]);
	}
	assert_string_equal(pt_pb_str(p, p->period_type->type), "space");
	assert_string_equal(pt_pb_str(p, p->period_type->unit), "bytes");
	assert_int_equal(p->period, RATE_DEFAULT);
	if (allocs)
		assert_string_equal(pt_pb_str(p, p->default_sample_type),
				    "alloc_space");
	else
		assert_int_equal(p->default_sample_type, 0);
#ifdef TU_ASAN
	bool note = false;
	for (size_t i = 0; i < p->n_comment; i++)
		note |= strstr(pt_pb_str(p, p->comment[i]), "unavailable") != NULL;
	assert_true(note);
#else
	assert_true(p->n_sample > 0);
	for (size_t i = 0; i < p->n_sample; i++) {
		Perftools__Profiles__Sample *s = p->sample[i];
		assert_int_equal(s->n_value, 4);
		assert_true(s->value[2] <= s->value[0]);
		assert_int_equal(s->n_label, 1);
		assert_string_equal(pt_pb_str(p, s->label[0]->key), "bytes");
		assert_true(s->label[0]->num > 0);
	}
#endif
	pt_pb_free(p);
	pt_buf_free(&b);
}

static void test_heap_debug0_format(void **state)
{
	void *keep = NULL;

	(void)state;
	co_set_mem_profile_rate(1);
	keep = site_fmt(5000);
	co_set_mem_profile_rate(RATE_DEFAULT);
	check_proto("heap", false);
	check_proto("allocs", true);
	free(keep);
}

/* ------------------------------------------------------------------------
 * 5. Processes: fork, the environment
 * ---------------------------------------------------------------------- */

static _Atomic bool churn_stop;

static void *thread_churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&churn_stop)) {
		void *p = malloc(64);
		free(p);
	}
	return NULL;
}

MALLOC_SITE(site_child, 29)

static void test_heap_fork_child_allocates(void **state)
{
	pthread_t th[2];

	(void)state;
	co_set_mem_profile_rate(1); /* the churners sample every block */
	atomic_store(&churn_stop, false);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_churn,
						NULL), 0);
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			void *p[100];
			for (int i = 0; i < 100; i++)
				p[i] = site_child(100);
			for (int i = 0; i < 50; i++)
				free(p[i]);
			int fd = open("/dev/null", O_WRONLY);
			int err = co_profile_write(co_profile_lookup("heap"),
						   fd, 1);
			_exit(err == 0 ? 0 : 3);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	atomic_store(&churn_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	co_set_mem_profile_rate(RATE_DEFAULT);
}

static const char *self_exe;

static void task_nothing(void *arg)
{
	(void)arg;
}

/* Runs this program as `child <mode>` with env set; its output in out. */
static int run_child(const char *env, const char *mode, struct pt_buf *out)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "env %s '%s' child %s", env, self_exe,
		 mode);
	return pt_shell(cmd, out);
}

static void test_heap_env_rate(void **state)
{
	struct pt_buf out;

	(void)state;
	int st = run_child("COPPER_MEMPROFILERATE=abc", "run", &out);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out.data, "invalid COPPER_MEMPROFILERATE=\"abc\""));
	assert_non_null(strstr(out.data, "co_run=-22"));
	pt_buf_free(&out);
	run_child("COPPER_MEMPROFILERATE=-1", "run", &out);
	assert_non_null(strstr(out.data, "co_run=-22"));
	pt_buf_free(&out);
	/* 2^34 GiB: too big, not wrapped around to 0. */
	run_child("COPPER_MEMPROFILERATE=17179869184g", "run", &out);
	assert_non_null(strstr(out.data, "co_run=-22"));
	pt_buf_free(&out);
	run_child("COPPER_MEMPROFILERATE=64k", "run", &out);
	assert_non_null(strstr(out.data, "co_run=0"));
	assert_non_null(strstr(out.data, "heap profile: "));
	assert_non_null(strstr(out.data, "@ heap/131072\n"));
	pt_buf_free(&out);
#ifndef TU_ASAN
	/* Rate 1 from the environment: the first allocations of main are
	 * in the profile, before co_run. */
	run_child("COPPER_MEMPROFILERATE=1", "run", &out);
	assert_non_null(strstr(out.data, "@ heap/2\n"));
	assert_non_null(strstr(out.data, "site_child_main"));
	pt_buf_free(&out);
#endif
}

MALLOC_SITE(site_child_main, 31)

static int child_main(const char *mode)
{
	void *volatile p = site_child_main(4242);
	int err = 0;

	if (strcmp(mode, "run") == 0) {
		err = co_run(task_nothing, NULL);
		printf("co_run=%d\n", err);
		fflush(stdout);
		co_profile_write(co_profile_lookup("heap"), 1, 1);
	}
	free(p);
	return 0;
}

/* ------------------------------------------------------------------------
 * 6. Stress
 * ---------------------------------------------------------------------- */

#define STRESS_THREADS 8
#define STRESS_KEEP 500

MALLOC_SITE(site_stress_keep, 37)

struct stress_arg {
	long rate;
	long ops;
	void *keep[STRESS_KEEP];
};

static void *thread_stress(void *arg)
{
	struct stress_arg *a = arg;
	void *ring[32] = {0};
	uint32_t x = (uint32_t)(uintptr_t)a | 1;

	co_set_mem_profile_rate(a->rate);
	for (long i = 0; i < a->ops; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		unsigned k = x % 32;
		switch (x % 4) {
		case 0: free(ring[k]); ring[k] = malloc(16 + x % 300); break;
		case 1: ring[k] = realloc(ring[k], 8 + x % 900); break;
		case 2: free(ring[k]); ring[k] = calloc(1 + x % 20, 24); break;
		default: free(ring[k]); ring[k] = NULL; break;
		}
	}
	for (int k = 0; k < 32; k++)
		free(ring[k]);
	co_set_mem_profile_rate(1);
	for (int i = 0; i < STRESS_KEEP; i++)
		a->keep[i] = site_stress_keep(48);
	return NULL;
}

static void test_heap_stress_threads(void **state)
{
	static struct stress_arg a[STRESS_THREADS];
	pthread_t th[STRESS_THREADS];
	struct heap_text h;

	(void)state;
	SKIP_UNDER_ASAN();
	for (int i = 0; i < STRESS_THREADS; i++) {
		a[i].rate = i % 2 ? 1 : 64;
		a[i].ops = tu_scale(60000);
		assert_int_equal(pthread_create(&th[i], NULL, thread_stress,
						&a[i]), 0);
	}
	for (int i = 0; i < STRESS_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	heap_read(&h);
	struct site_sum s = site_sum(&h, "site_stress_keep", true);
	assert_int_equal(s.inuse_n, STRESS_THREADS * STRESS_KEEP);
	assert_int_equal(s.inuse_b, STRESS_THREADS * STRESS_KEEP * 48);
	heap_text_free(&h);
	for (int i = 0; i < STRESS_THREADS; i++)
		for (int k = 0; k < STRESS_KEEP; k++)
			free(a[i].keep[k]);
	heap_read(&h);
	assert_int_equal(site_sum(&h, "site_stress_keep", true).inuse_n, 0);
	heap_text_free(&h);
	co_set_mem_profile_rate(RATE_DEFAULT);
}

#define T(f) cmocka_unit_test(f)

int main(int argc, char **argv)
{
	self_exe = argv[0];
	if (argc == 3 && strcmp(argv[1], "child") == 0)
		return child_main(argv[2]);
	const struct CMUnitTest tests[] = {
		T(test_heap_truth_default_rate_task),
		T(test_heap_truth_fine_rate_before_run),
		T(test_heap_rate1_exact_pthread),
		T(test_heap_realloc_moves),
		T(test_heap_pool_thread_exact),
		T(test_heap_rate0_records_nothing),
		T(test_heap_debug1_format),
		T(test_heap_debug0_format),
		T(test_heap_fork_child_allocates),
		T(test_heap_env_rate),
		T(test_heap_stress_threads),
	};
	return cmocka_run_group_tests_name("profiler.heap", tests, NULL, NULL);
}
