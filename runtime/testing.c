/* SPDX-License-Identifier: MIT */
/*
 * testing.c - the internals tests may read (testing.h).  It is its own
 * static library, linked by the test programs only: nothing here is in
 * what meson installs, and the installed library reads no test-only
 * environment variable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "runtime.h"
#include "testing.h"

static void count_one(const struct task_info *ti, void *arg)
{
	(void)ti;
	(*(size_t *)arg)++;
}

size_t testing_table_count(void)
{
	size_t n = 0;
	introspect_each_task(count_one, &n);
	return n;
}

struct find {
	uint64_t id;
	char *status, *name;
	size_t len, name_len;
	uint64_t *creator;
	int found;
};

static void find_one(const struct task_info *ti, void *arg)
{
	struct find *f = arg;

	if (ti->id != f->id)
		return;
	f->found = 1;
	if (f->status && f->len) {
		strncpy(f->status, ti->status, f->len - 1);
		f->status[f->len - 1] = '\0';
	}
	if (f->creator)
		*f->creator = ti->creator_id;
	if (f->name && f->name_len) {
		strncpy(f->name, ti->name ? ti->name : "", f->name_len - 1);
		f->name[f->name_len - 1] = '\0';
	}
}

int testing_task_status(uint64_t id, char *status, size_t len,
			uint64_t *creator, char *name, size_t name_len)
{
	struct find f = {id, status, name, len, name_len, creator, 0};
	introspect_each_task(find_one, &f);
	return f.found ? 0 : -ENOENT;
}

const char *testing_guard_mode(void)
{
	return introspect_guard_mode();
}

void testing_stack_counts(size_t *carved, size_t *pooled)
{
	stack_counts(carved, pooled);
}

int testing_nprocs(void)
{
	return sched_nprocs();
}

int testing_worker_id(void)
{
	struct worker *w = sched_worker();
	return w && w->current ? w->id : -1;
}

int testing_self_stack(uintptr_t *pcs, int max)
{
	return introspect_self_stack(pcs, max, NULL, NULL);
}

void testing_thread_register(void)
{
	introspect_thread_register();
}

/* COPPER_TEST_GUARD_MODE=mprotect|canary forces a stack-guard fallback
 * (docs/environment.md), read at every co_run. */
static int testing_guard_mode_env(void)
{
	const char *m = getenv("COPPER_TEST_GUARD_MODE");

	if (m && strcmp(m, "mprotect") == 0)
		return GUARD_MPROTECT;
	if (m && strcmp(m, "canary") == 0)
		return GUARD_CANARY;
	return -1;
}

__attribute__((constructor)) static void testing_install(void)
{
	stack_forced_mode = testing_guard_mode_env;
}
