/* SPDX-License-Identifier: MIT */
/*
 * config.c - the COPPER_* environment variables the runtime reads at
 * co_run (docs/environment.md lists them all).
 *
 * A bad value is a start-up error that names the variable and the value:
 * silently falling back to a default would hide a typo in production until
 * the day it matters.  Parsing is strict: whole string, no sign surprises,
 * range-checked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"

#define STACK_MIN (16u << 10)
#define STACK_MAX (1u << 30)
#define STACK_DEFAULT (256u << 10)
#define STALL_MS_MAX 3600000ull /* an hour */

/* Parses a non-negative decimal integer with an optional k/K/m/M/g/G
 * suffix (binary units) when allow_units; false on any junk. */
static bool parse_size(const char *s, bool allow_units, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (allow_units && *end) {
		unsigned shift = 0;
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return false;
		}
		end++;
		if (v > (~0ull >> shift))
			return false;
		v <<= shift;
	}
	if (*end)
		return false;
	*out = v;
	return true;
}

static int bad_env(const char *name, const char *value, const char *want)
{
	fprintf(stderr, "copper: invalid %s=\"%s\": %s\n", name, value, want);
	return -EINVAL;
}

int config_load(struct config *cfg)
{
	const char *s;
	unsigned long long v;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->procs = ncpu > 0 ? (int)(ncpu < PROCS_MAX ? ncpu : PROCS_MAX) : 1;
	cfg->stack_size = STACK_DEFAULT;
	cfg->stall_ns = 0;
	cfg->misuse = MISUSE_REPORT;
	cfg->sigquit = true;

	if ((s = getenv("COPPER_PROCS")) != NULL) {
		if (!parse_size(s, false, &v) || v < 1 || v > PROCS_MAX)
			return bad_env("COPPER_PROCS", s,
				       "want a whole number from 1 to 1024");
		cfg->procs = (int)v;
	}
	if ((s = getenv("COPPER_STACK_SIZE")) != NULL) {
		if (!parse_size(s, true, &v) || v < STACK_MIN || v > STACK_MAX)
			return bad_env("COPPER_STACK_SIZE", s,
				       "want bytes from 16k to 1g (suffix k, m "
				       "or g allowed)");
		long page = sysconf(_SC_PAGESIZE);
		cfg->stack_size = (size_t)((v + page - 1) & ~(unsigned long long)(page - 1));
	}
	if ((s = getenv("COPPER_STALL_MS")) != NULL) {
		if (!parse_size(s, false, &v) || v > STALL_MS_MAX)
			return bad_env("COPPER_STALL_MS", s,
				       "want milliseconds from 0 (off) to "
				       "3600000");
		cfg->stall_ns = (int64_t)v * 1000000;
	}
	if ((s = getenv("COPPER_SIGQUIT")) != NULL) {
		if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
			return bad_env("COPPER_SIGQUIT", s, "want 0 or 1");
		cfg->sigquit = s[0] == '1';
	}
	if ((s = getenv("COPPER_MISUSE")) != NULL) {
		if (strcmp(s, "report") == 0)
			cfg->misuse = MISUSE_REPORT;
		else if (strcmp(s, "fatal") == 0)
			cfg->misuse = MISUSE_FATAL;
		else if (strcmp(s, "silent") == 0)
			cfg->misuse = MISUSE_SILENT;
		else
			return bad_env("COPPER_MISUSE", s,
				       "want report, fatal or silent");
	}
	return 0;
}
