/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the few helpers every Copper benchmark shares: a clock, the
 * COPPER_BENCH_SCALE knob, error checks and the one-line report.
 *
 * Each benchmark is a small program that uses only <copper.h> and libc, and
 * has a Go twin in bench/go/<name>/main.go doing the same work with the
 * same parameters (STYLE.md rule 24).  bench/run pairs them by the metric
 * lines they print, so the output format is a contract:
 *
 *   <metric>: <value> <unit>
 *
 * one line per metric on stdout, nothing else on stdout.  Keep in sync with
 * bench/go/<name>/main.go (same names, units and scaling) and with bench/run's
 * parser and target table.
 *
 * Invariants: every Copper call's result is checked; any failure prints a
 * message on stderr and exits with status 1, so a broken run can never be
 * mistaken for a fast one.
 */
#ifndef COPPER_BENCH_H
#define COPPER_BENCH_H

#include <copper.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Prints "bench: <message>" on stderr and exits with status 1. */
__attribute__((format(printf, 1, 2), noreturn, unused)) static void
bench_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Checks a Copper action that returns 0 or a negative code. */
#define BENCH_CHECK(call)                                                  \
	do {                                                               \
		int bench_rc_ = (call);                                    \
		if (bench_rc_ != 0)                                        \
			bench_fail("%s:%d: %s: %s (%s)", __FILE__,         \
				   __LINE__, #call, co_errname(bench_rc_), \
				   co_strerror(bench_rc_));                \
	} while (0)

/* Checks co_go's result (0 means it failed). */
#define BENCH_GO(fn, arg)                                                  \
	do {                                                               \
		if (co_go((fn), (arg)) == 0)                               \
			bench_fail("%s:%d: co_go(%s) failed", __FILE__,    \
				   __LINE__, #fn);                         \
	} while (0)

/* Monotonic wall clock in nanoseconds (Go twins: time.Now/time.Since). */
static inline int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * COPPER_BENCH_SCALE multiplies every iteration count (default 1; bench/run
 * --quick sets 0.05).  A bad value is an error, never a silent default.
 */
__attribute__((unused)) static double bench_scale(void)
{
	const char *s = getenv("COPPER_BENCH_SCALE");
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return 1.0;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || !(v > 0) || v > 1000)
		bench_fail("invalid COPPER_BENCH_SCALE=\"%s\": want a number "
			   "in (0, 1000]", s);
	return v;
}

/* n scaled by COPPER_BENCH_SCALE, at least 1 (Go twins: scaled()). */
__attribute__((unused)) static long bench_scaled(long n)
{
	double v = (double)n * bench_scale() + 0.5;

	return v < 2 ? 1 : (long)v;
}

/* The worker count the runtime will use: COPPER_PROCS, else the CPUs
 * (config.c's default).  Go twins: runtime.GOMAXPROCS(0). */
__attribute__((unused)) static int bench_procs(void)
{
	const char *s = getenv("COPPER_PROCS");
	long n;

	if (s != NULL && *s != '\0')
		return atoi(s);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/*
 * "_prof" when the block or mutex profile is on ($COPPER_BLOCKPROFILERATE
 * or $COPPER_MUTEXPROFILEFRACTION set and not 0; co_run reads them), else
 * "": a metric's name says whether it was profiled.  Go twins:
 * benchutil.ProfSuffix, which turns Go's profiles on from the same
 * variables.
 */
__attribute__((unused)) static const char *bench_prof_suffix(void)
{
	const char *b = getenv("COPPER_BLOCKPROFILERATE");
	const char *m = getenv("COPPER_MUTEXPROFILEFRACTION");

	if ((b && *b && strcmp(b, "0") != 0) || (m && *m && strcmp(m, "0") != 0))
		return "_prof";
	return "";
}

/*
 * Gives the runtime `procs` workers unless COPPER_PROCS is set already, so
 * that a benchmark run by hand measures what its definition says.  Call
 * before co_run.  Go twins: runtime.GOMAXPROCS(procs) unless GOMAXPROCS is
 * set.
 */
__attribute__((unused)) static void bench_default_procs(int procs)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", procs);
	if (setenv("COPPER_PROCS", buf, 0) != 0)
		bench_fail("setenv: %s", strerror(errno));
}

/* Prints one metric line: two decimals, four below 1 (0.0078 KB/task). */
__attribute__((unused)) static void bench_report(const char *metric,
						 double value, const char *unit)
{
	printf("%s: %.*f %s\n", metric, value < 1 && value > -1 ? 4 : 2,
	       value, unit);
	fflush(stdout);
}

/* Runs main_fn as task 1; exits with status 1 if co_run fails. */
__attribute__((unused)) static int bench_main(void (*main_fn)(void *))
{
	int rc = co_run(main_fn, NULL);

	if (rc != 0)
		bench_fail("co_run: %s (%s)", co_errname(rc), co_strerror(rc));
	return 0;
}

#endif /* COPPER_BENCH_H */
