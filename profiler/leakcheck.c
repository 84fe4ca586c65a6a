/* SPDX-License-Identifier: MIT */
/*
 * leakcheck.c - co_leakcheck_begin/end: find tasks a test leaked, like
 * uber-go/goleak but built in.
 *
 * begin records the ids of every live task.  end polls, until grace_ns
 * has passed, for live tasks that were not in that set (and are not the
 * caller); each poll is a cheap walk of the task table.  If some remain,
 * it takes one consistent snapshot and reports each leaked task as
 * debug=2 prints it, so the report shows where the task is stuck and who
 * started it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

struct co_leakcheck {
	uint64_t *ids;   /* live at begin, sorted */
	size_t n;
	uint64_t self;   /* the task that called begin */
};

struct collect {
	uint64_t *ids;
	size_t n, cap;
};

static void collect_id(const struct task_info *ti, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		uint64_t *ids = realloc(c->ids, cap * sizeof(*ids));
		if (!ids)
			return; /* counted as missing: begin fails below */
		c->ids = ids;
		c->cap = cap;
	}
	c->ids[c->n++] = ti->id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

CO_EXTERN co_leakcheck *co_leakcheck_begin(void)
{
	struct collect c = {0};
	co_leakcheck *lc;
	size_t seen;

	if (!co_self() || !(lc = calloc(1, sizeof(*lc))))
		return NULL;
	seen = introspect_each_task(collect_id, &c);
	if (c.n != seen) {
		free(c.ids);
		free(lc);
		return NULL;
	}
	qsort(c.ids, c.n, sizeof(*c.ids), cmp_u64);
	lc->ids = c.ids;
	lc->n = c.n;
	lc->self = co_self();
	return lc;
}

static bool is_new(const co_leakcheck *lc, uint64_t id)
{
	return id != lc->self &&
	       !bsearch(&id, lc->ids, lc->n, sizeof(id), cmp_u64);
}

struct count_new {
	const co_leakcheck *lc;
	size_t n;
};

static void count_one(const struct task_info *ti, void *arg)
{
	struct count_new *c = arg;
	if (is_new(c->lc, ti->id))
		c->n++;
}

static void report(const co_leakcheck *lc, FILE *f)
{
	struct snapshot s;
	size_t leaked = 0;

	if (snapshot_take(&s) < 0) {
		fprintf(f, "copper: leaked tasks found; no memory to list them\n");
		return;
	}
	for (size_t i = 0; i < s.n; i++)
		leaked += is_new(lc, s.tasks[i]->id);
	fprintf(f, "copper: found %zu leaked task%s\n", leaked,
		leaked == 1 ? "" : "s");
	for (size_t i = 0; i < s.n; i++) {
		if (!is_new(lc, s.tasks[i]->id))
			continue;
		fputc('\n', f);
		goroutine_print_task(f, &s, s.tasks[i]);
	}
	fflush(f);
	snapshot_free(&s);
}

CO_EXTERN int co_leakcheck_end(co_leakcheck *lc, int64_t grace_ns,
			       FILE *f)
{
	int64_t deadline;
	struct count_new c;
	int64_t pause = 100000; /* 100 us, doubling up to 10 ms */

	if (!lc)
		return CO_EINVAL;
	deadline = co_now() + (grace_ns > 0 ? grace_ns : 0);
	for (;;) {
		c = (struct count_new){lc, 0};
		introspect_each_task(count_one, &c);
		if (c.n == 0 || co_now() >= deadline)
			break;
		co_sleep(pause);
		if (pause < 10000000)
			pause *= 2;
	}
	if (c.n && f)
		report(lc, f);
	free(lc->ids);
	free(lc);
	return c.n ? CO_EBUSY : 0;
}
