/* SPDX-License-Identifier: MIT */
/*
 * test_trace.c - the execution trace (profiler/trace.c), read back the way
 * a user's viewer reads it: the file goes through Python's json parser
 * (a real JSON parser, as Perfetto's importer is), and a checker walks
 * the events.
 *
 *   1. Ping-pong, a sleeper and a blocking call traced: well-formed JSON;
 *      events in time order; every slice with a duration >= 0; every
 *      flow start with its end and no end without a start, none ending
 *      before it starts; no two slices overlapping on a track, no task
 *      running on two workers at once; a track per
 *      worker and per task; the states the tasks were in ("chan
 *      receive", "sleep", "syscall", "running", "runnable"); wake-up
 *      flows; creations and exits.
 *   2. Bounded memory: more events than a ring holds; the file says how
 *      many were dropped and is still well formed.
 *   3. Bad input: a descriptor that is not open for writing (-EBADF), a
 *      second start (-EBUSY), a stop with nothing running (-EINVAL), a
 *      write that fails (/dev/full: -ENOSPC); start/stop cycles.
 */
#include "test_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#define ROUNDS 2000

/* The checker: prints "ok <n events> <dropped> <states,...> <flows>" or
 * "bad: <why>". */
static const char checker[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1]))\n"
	"ev = d['traceEvents']\n"
	"last = -1.0; starts = {}; ends = {}; states = set(); flows = 0\n"
	"workers = set(); tasks = set(); created = exits = 0; busy = {}; ran = {}\n"
	"for e in ev:\n"
	"  ph = e['ph']\n"
	"  if ph == 'M':\n"
	"    if e['name'] == 'thread_name':\n"
	"      (workers if e['pid'] == 1 else tasks).add(e['tid'])\n"
	"    continue\n"
	"  ts = float(e['ts'])\n"
	"  if ts < last: print('bad: time goes back at', e); sys.exit()\n"
	"  last = ts\n"
	"  if ph == 'X':\n"
	"    if float(e['dur']) < 0: print('bad: dur', e); sys.exit()\n"
	"    if e['pid'] == 2: states.add(e['name'])\n"
	"    k = (e['pid'], e['tid'])\n"
	"    if ts < busy.get(k, -1.0) - 0.0015: print('bad: overlap on a track', e); sys.exit()\n"
	"    busy[k] = ts + float(e['dur'])\n"
	"    if e['pid'] == 1 and e['name'].startswith('task '): ran.setdefault(e['name'], []).append((ts, ts + float(e['dur'])))\n"
	"    if e['pid'] == 1 and e['tid'] not in workers: print('bad: no worker track', e); sys.exit()\n"
	"  elif ph == 's': starts[e['id']] = e\n"
	"  elif ph == 'f':\n"
	"    if e['id'] not in starts: print('bad: flow end before start', e); sys.exit()\n"
	"    if float(starts[e['id']]['ts']) > ts: print('bad: flow goes back', e); sys.exit()\n"
	"    ends[e['id']] = e; flows += 1\n"
	"  elif ph == 'i':\n"
	"    created += e['name'] == 'created'; exits += e['name'] == 'exit'\n"
	"  else: print('bad: phase', e); sys.exit()\n"
	"if set(starts) != set(ends): print('bad: unbalanced flows'); sys.exit()\n"
	"for name, spans in ran.items():\n"
	"  spans.sort()\n"
	"  for a, b in zip(spans, spans[1:]):\n"
	"    if b[0] < a[1] - 0.0015: print('bad: two workers run', name, a, b); sys.exit()\n"
	"if not workers or not tasks: print('bad: tracks'); sys.exit()\n"
	"print('ok', len(ev), d['otherData']['dropped_events'], '|'.join(sorted(states)).replace(' ', '_'), flows, created, exits)\n";

static char result[4096];

/* Runs the checker on path into result. */
static void check_file(const char *path)
{
	char script[] = "/tmp/copper-trace-check-XXXXXX";
	char cmd[512];
	int fd = mkstemp(script);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, checker, sizeof(checker) - 1),
			 (ssize_t)(sizeof(checker) - 1));
	close(fd);
	snprintf(cmd, sizeof(cmd), "python3 %s %s 2>&1", script, path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(result, 1, sizeof(result) - 1, p);
	result[n] = 0;
	pclose(p);
	unlink(script);
}

static co_chan *ping, *pong, *late;
static co_wg helpers;    /* the four tasks below: all exit before stop */

static void task_late_recv(void *arg)
{
	int v;
	(void)arg;
	co_chan_recv(late, &v); /* parks in "chan receive" for 1 ms */
	co_wg_done(&helpers);
}

static void task_partner(void *arg)
{
	int v;
	(void)arg;
	while (co_chan_recv(ping, &v) == 0)
		co_chan_send(pong, &v);
	co_wg_done(&helpers);
}

static void task_sleeper(void *arg)
{
	(void)arg;
	co_sleep(2 * CO_MILLISECOND);
	co_wg_done(&helpers);
}

static void blocking_fn(void *arg)
{
	(void)arg;
	usleep(2000);
}

static void task_blocker(void *arg)
{
	(void)arg;
	co_blocking(blocking_fn, NULL);
	co_wg_done(&helpers);
}

struct trace_run {
	const char *path;
	int rounds;
	int start, stop;
};

static void main_traced(void *arg)
{
	struct trace_run *r = arg;
	int fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	r->start = co_trace_start(fd);
	co_wg_init(&helpers);
	co_wg_add(&helpers, 4);
	ping = co_chan_new(sizeof(int), 0);
	pong = co_chan_new(sizeof(int), 0);
	co_go(task_partner, NULL);
	co_go(task_sleeper, NULL);
	co_go(task_blocker, NULL);
	late = co_chan_new(sizeof(int), 0);
	co_go(task_late_recv, NULL);
	co_sleep(CO_MILLISECOND);
	int one = 1;
	co_chan_send(late, &one);
	for (int i = 0; i < r->rounds; i++) {
		int v = i;
		co_chan_send(ping, &v);
		co_chan_recv(pong, &v);
	}
	co_chan_close(ping);
	co_wg_wait(&helpers);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC)); /* their exits recorded */
	r->stop = co_trace_stop();
	close(fd);
	co_chan_free(ping);
	co_chan_free(pong);
	co_chan_free(late);
}

static void test_trace_pingpong(void **state)
{
	char path[] = "/tmp/copper-trace-XXXXXX";
	struct trace_run r = {.path = path, .rounds = ROUNDS};
	unsigned long n, dropped, flows, created, exits;
	char states[1024];
	(void)state;

	close(mkstemp(path));
	tu_run(main_traced, &r);
	assert_int_equal(r.start, 0);
	assert_int_equal(r.stop, 0);
	check_file(path);
	print_message("# %s", result);
	assert_int_equal(sscanf(result, "ok %lu %lu %1023s %lu %lu %lu", &n,
				&dropped, states, &flows, &created, &exits),
			 6);
	assert_int_equal(dropped, 0);
	assert_true(n > (unsigned long)ROUNDS * 4);
	assert_non_null(strstr(states, "chan_receive"));
	assert_non_null(strstr(states, "sleep"));
	assert_non_null(strstr(states, "syscall"));
	assert_non_null(strstr(states, "running"));
	assert_non_null(strstr(states, "runnable"));
	assert_true(flows >= (unsigned long)ROUNDS); /* each wake-up */
	assert_true(created >= 4 && exits >= 4);
	unlink(path);
}

static void test_trace_ring_bounded(void **state)
{
	char path[] = "/tmp/copper-trace-XXXXXX";
	struct trace_run r = {.path = path, .rounds = 100000};
	unsigned long n, dropped, flows, created, exits;
	char states[1024];
	struct stat st;
	(void)state;

	close(mkstemp(path));
	tu_run(main_traced, &r);
	assert_int_equal(r.stop, 0);
	check_file(path);
	print_message("# %s", result);
	assert_int_equal(sscanf(result, "ok %lu %lu %1023s %lu %lu %lu", &n,
				&dropped, states, &flows, &created, &exits),
			 6);
	assert_true(dropped > 0);
	assert_int_equal(stat(path, &st), 0);
	/* Bounded: 100,000 round trips would be far more. */
	assert_true(st.st_size < 200L * 1024 * 1024);
	unlink(path);
}

struct errs {
	int bad_fd, rdonly, second, stop_twice, full_stop;
};

static void main_errors(void *arg)
{
	struct errs *e = arg;
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	e->bad_fd = co_trace_start(-1);
	e->rdonly = co_trace_start(ro);
	CHECK_EQ(co_trace_start(null), 0);
	e->second = co_trace_start(null);
	CHECK_EQ(co_trace_stop(), 0);
	e->stop_twice = co_trace_stop();
	/* Cycles. */
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(co_trace_start(null), 0);
		co_yield();
		CHECK_EQ(co_trace_stop(), 0);
	}
	CHECK_EQ(co_trace_start(full), 0);
	co_yield();
	e->full_stop = co_trace_stop();
	close(ro);
	close(full);
	close(null);
}

static void test_trace_errors(void **state)
{
	struct errs e;
	(void)state;

	assert_int_equal(co_trace_stop(), CO_EINVAL);
	tu_run(main_errors, &e);
	assert_int_equal(e.bad_fd, CO_EBADF);
	assert_int_equal(e.rdonly, CO_EBADF);
	assert_int_equal(e.second, CO_EBUSY);
	assert_int_equal(e.stop_twice, CO_EINVAL);
	assert_int_equal(e.full_stop, -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_pingpong),
		cmocka_unit_test(test_trace_ring_bounded),
		cmocka_unit_test(test_trace_errors),
	};
	return cmocka_run_group_tests_name("profiler.trace", tests, NULL, NULL);
}
