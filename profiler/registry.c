/* SPDX-License-Identifier: MIT */
/*
 * registry.c - co_profile_lookup, co_profile_write, co_profile_count: the
 * table of profiles by name, as Go's pprof.Lookup.
 *
 * Each profile knows the debug levels it has (Go: goroutine 0-2; the
 * others 0-1) and writes itself to a descriptor.  A name Copper does not
 * produce yet returns NULL rather than an empty or fake profile, so a
 * caller can tell "not available" from "nothing to report".
 */
#include <errno.h>
#include <string.h>

#include "copper.h"
#include "profiler.h"

struct co_profile {
	const char *name;                       /* Go's name */
	int max_debug;                          /* highest debug level */
	int (*write)(int fd, int debug);        /* the writer */
	int (*count)(void);                     /* entries now */
};

static int goroutine_profile_write(int fd, int debug)
{
	struct snapshot s;
	int err = snapshot_take(&s);

	if (err < 0)
		return err;
	err = goroutine_write(&s, fd, debug);
	snapshot_free(&s);
	return err;
}

static int goroutine_count(void)
{
	size_t n = co_num_tasks();
	return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

static int heap_profile_write(int fd, int debug)
{
	return heap_write(fd, debug, false);
}

static int allocs_profile_write(int fd, int debug)
{
	return heap_write(fd, debug, true);
}

static co_profile profiles[] = {
	{"goroutine", 2, goroutine_profile_write, goroutine_count},
	{"block", 1, contention_block_write, contention_block_count},
	{"mutex", 1, contention_mutex_write, contention_mutex_count},
	{"threadcreate", 1, threadcreate_write, threadcreate_count},
	/* Go: debug >= 2 writes the same text as 1. */
	{"heap", 2, heap_profile_write, heap_count},
	{"allocs", 2, allocs_profile_write, heap_count},
};

CO_EXTERN co_profile *co_profile_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

CO_EXTERN int co_profile_write(co_profile *p, int fd, int debug)
{
	if (!p || fd < 0 || debug < 0 || debug > p->max_debug)
		return CO_EINVAL;
	return p->write(fd, debug);
}

CO_EXTERN int co_profile_count(co_profile *p)
{
	return p ? p->count() : CO_EINVAL;
}

CO_EXTERN const char *co_profile_name(co_profile *p)
{
	return p ? p->name : NULL;
}
