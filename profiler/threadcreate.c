/* SPDX-License-Identifier: MIT */
/*
 * threadcreate.c - the threadcreate profile: the stack that created each
 * OS thread Copper started, as Go's threadcreate lists its Ms.
 *
 * How it works.  The runtime emits INTROSPECT_EV_THREAD_CREATE on the
 * creating thread right after each pthread_create that succeeded (the
 * workers co_run starts, the workers the monitor adds, the monitor
 * itself); the profiler's own service thread (dumps, watchdog, admin
 * port) is noted by service.c through threadcreate_note_self.  The hook walks the creating thread's stack
 * (introspect_self_stack) and counts it in a small table of distinct
 * stacks under a mutex: threads are created a few times per run, so a
 * lock costs nothing that matters, and the hook is subscribed for the
 * whole process (from a constructor), so that the first run's threads are
 * counted too.  The profile is cumulative over the process, like Go's
 * (whose Ms live as long as the process): a program that calls co_run
 * twice sees both runs' threads.
 *
 * Not counted: libuv's thread-pool threads (libuv starts them inside a
 * request, out of Copper's sight) and the thread that calls co_run (the
 * user's, not Copper's; Go lists m0 with an empty stack).
 *
 * Rejected: recording the stack in the new thread (it has no creator's
 * frames); keeping a record per thread (a process that runs co_run in a
 * loop would grow without bound; equal stacks are merged at once, as the
 * text merges them anyway).
 *
 * Invariant: the sum of the records' counts is the number of threads
 * noted; a stack that finds the table full is counted in a stackless
 * record, so the total stays right.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define TC_RECORDS 128    /* distinct creating stacks kept */
#define TC_FRAMES 32      /* frames kept per stack */
/* The hook's own frame and hooks_emit's, above the event site. */
#define TC_SKIP 2

struct tc_record {
	int64_t count;             /* threads created from this stack */
	int npcs;                  /* entries in pcs */
	uintptr_t pcs[TC_FRAMES];  /* leaf first, return addresses */
};

static struct {
	pthread_mutex_t lock;               /* guards everything below */
	struct tc_record rec[TC_RECORDS];   /* rec[0]: stackless threads */
	int n;                              /* records in use, from 1 */
	int64_t total;                      /* threads noted */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .n = 1};

/* ------------------------------------------------------------------------
 * Recording
 * ---------------------------------------------------------------------- */

static void tc_add(const uintptr_t *pcs, int n)
{
	struct tc_record *r = &T.rec[0];

	if (n > TC_FRAMES)
		n = TC_FRAMES;
	pthread_mutex_lock(&T.lock);
	for (int i = 1; n > 0 && i < T.n; i++) {
		if (T.rec[i].npcs == n &&
		    memcmp(T.rec[i].pcs, pcs, (size_t)n * sizeof(*pcs)) == 0) {
			r = &T.rec[i];
			break;
		}
	}
	if (r == &T.rec[0] && n > 0 && T.n < TC_RECORDS) {
		r = &T.rec[T.n++];
		r->npcs = n;
		memcpy(r->pcs, pcs, (size_t)n * sizeof(*pcs));
	}
	r->count++;
	T.total++;
	pthread_mutex_unlock(&T.lock);
}

static __attribute__((noinline)) void
tc_hook(const struct introspect_event_info *ev, void *arg)
{
	uintptr_t pcs[TC_FRAMES + TC_SKIP];
	int n = introspect_self_stack(pcs, TC_FRAMES + TC_SKIP, NULL, NULL);

	(void)ev;
	(void)arg;
	n = n > TC_SKIP ? n - TC_SKIP : 0;
	tc_add(pcs + TC_SKIP, n);
}

void threadcreate_note_self(void)
{
	uintptr_t pcs[TC_FRAMES + 1];
	int n;

	/* The calling thread may not have told the walker its bounds yet
	 * (co_run's thread, before its workers start). */
	introspect_thread_register();
	n = introspect_self_stack(pcs, TC_FRAMES + 1, NULL, NULL);
	/* pcs[0] is this function's return into its caller: keep it, the
	 * caller created the thread. */
	tc_add(pcs, n);
}

__attribute__((constructor)) static void threadcreate_register(void)
{
	if (introspect_subscribe(INTROSPECT_EV(INTROSPECT_EV_THREAD_CREATE),
				 tc_hook, NULL) < 0)
		fprintf(stderr, "copper: threadcreate profile unavailable: no "
				"hook slot\n");
}

/* ------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

static struct textfmt_stack tc_view(const struct tc_record *r)
{
	return (struct textfmt_stack){r->pcs, NULL, r->npcs, false};
}

static void tc_stack(const void *elem, struct textfmt_stack *st)
{
	*st = tc_view(elem);
}

static int cmp_tc(const void *pa, const void *pb)
{
	struct textfmt_stack a = tc_view(pa), b = tc_view(pb);

	return textfmt_stack_cmp(&a, &b);
}

/* A copy of the records with threads in them, grouped and sorted by
 * count as Go's keysByCount; *recs and *g are the caller's to free. */
static long tc_collect(struct tc_record **recs, struct textfmt_group **g,
		       int64_t *total)
{
	size_t n = 0;
	long ng;

	*g = NULL;
	if (!(*recs = calloc(TC_RECORDS, sizeof(**recs))))
		return CO_ENOMEM;
	pthread_mutex_lock(&T.lock);
	for (int i = 0; i < T.n; i++)
		if (T.rec[i].count)
			(*recs)[n++] = T.rec[i];
	*total = T.total;
	pthread_mutex_unlock(&T.lock);
	/* From the public call that made the thread (co_run, ...). */
	for (size_t i = 0; i < n; i++) {
		struct tc_record *r = &(*recs)[i];
		int k = contention_pcs_trim(r->pcs, r->npcs);
		memmove(r->pcs, r->pcs + k, (size_t)(r->npcs - k) * sizeof(*r->pcs));
		r->npcs -= k;
	}
	if ((ng = textfmt_records_group(*recs, n, sizeof(**recs), cmp_tc,
					tc_stack, g)) < 0)
		return ng;
	for (long i = 0; i < ng; i++) {
		/* Stacks equal once trimmed: their threads add up. */
		int64_t sum = 0;
		for (int64_t k = 0; k < (*g)[i].count; k++)
			sum += (*recs)[(*g)[i].first + (size_t)k].count;
		(*g)[i].order = (*g)[i].count = sum;
	}
	if (textfmt_groups_sort(*g, ng) < 0) {
		textfmt_groups_free(*g, ng);
		*g = NULL;
		return CO_ENOMEM;
	}
	return ng;
}

static int tc_write_proto(int fd)
{
	struct snapshot s = {0};
	struct textfmt_group *g = NULL;
	struct tc_record *recs = NULL;
	struct pprof_builder *b;
	int64_t total;
	long ng = 0;
	int err = 0;

	if (!(b = pprof_builder_new(&err)))
		return err;
	if ((ng = tc_collect(&recs, &g, &total)) < 0) {
		err = (int)ng;
		ng = 0;
		goto out;
	}
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	pprof_symbolizer_set(b, prof_pprof_symbolize, NULL);
	if ((err = pprof_sample_type_add(b, "threadcreate", "count")) < 0 ||
	    (err = pprof_period_set(b, "threadcreate", "count", 1)) < 0 ||
	    (err = prof_pprof_add_mappings(b)) < 0)
		goto out;
	for (long i = 0; i < ng; i++) {
		uintptr_t pcs[TC_FRAMES];
		int n = textfmt_pcs_shown(&s, &g[i].stack, pcs);

		if ((err = pprof_sample_add(b, pcs, (size_t)n, false,
					    &g[i].count, NULL, 0)) < 0)
			goto out;
	}
	err = pprof_builder_write(b, fd);
out:
	textfmt_groups_free(g, ng);
	free(recs);
	pprof_builder_free(b);
	return err;
}

static int tc_write_debug1(FILE *f)
{
	struct snapshot s = {0};
	struct textfmt_group *g;
	struct tc_record *recs;
	int64_t total;
	long ng = tc_collect(&recs, &g, &total);

	if (ng < 0) {
		free(recs);
		return (int)ng;
	}
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	fprintf(f, "threadcreate profile: total %" PRId64 "\n", total);
	for (long i = 0; i < ng; i++) {
		fprintf(f, "%" PRId64 " %s\n", g[i].count, g[i].key);
		textfmt_frames_write(f, &s, &g[i].stack, false);
	}
	textfmt_groups_free(g, ng);
	free(recs);
	return 0;
}

static int tc_text(FILE *f, void *arg)
{
	(void)arg;
	return tc_write_debug1(f);
}

int threadcreate_write(int fd, int debug)
{
	if (debug <= 0)
		return tc_write_proto(fd);
	return textfmt_to_fd(fd, tc_text, NULL);
}

int threadcreate_count(void)
{
	pthread_mutex_lock(&T.lock);
	int64_t n = T.total;
	pthread_mutex_unlock(&T.lock);
	return n > INT_MAX ? INT_MAX : (int)n;
}
