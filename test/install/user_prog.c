/* SPDX-License-Identifier: MIT */
/*
 * user_prog.c - a program written and built as a user would: only
 * <copper.h>, compiled at -O2 with the flags `pkg-config --cflags copper`
 * gives, linked against the installed library (shared or static).
 * test/install/user_build.sh builds and runs it.
 *
 * It starts tasks that meet on a channel, a mutex and a wait group, and
 * leaves three tasks parked at the end of a call chain whose middle link
 * GCC would turn into a sibling call at -O2 (outer_x returns inner_x() +
 * 1, the result unused), then prints the goroutine profile at debug=1:
 * the script checks that every link of the chain is in it, with no clone
 * suffix (.isra, .constprop, .part) in any name.
 *
 * Output: "sum=<n>" and the profile; exit 0.  With an argument, it also
 * writes the profile as pprof protobuf (debug=0) to that path, for
 * `go tool pprof -traces`.
 */
#include <copper.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static const char *pprof_path;

static co_mutex mu;
static co_wg wg;
static long total;
static co_chan *never; /* nobody sends: the chain's tasks park on it */

static void task_adder(void *arg)
{
	co_chan *c = arg;
	int v;

	while (co_chan_recv(c, &v) == 0) {
		co_mutex_lock(&mu);
		total += v;
		co_mutex_unlock(&mu);
	}
	co_wg_done(&wg);
}

__attribute__((noinline)) static int wait_here(void)
{
	co_chan_recv(never, NULL);
	return 1;
}

__attribute__((noinline)) static int inner_x(void)
{
	return wait_here() + 1;
}

__attribute__((noinline)) static int outer_x(void)
{
	return inner_x() + 1;
}

static void start_x(void *arg)
{
	(void)arg;
	outer_x();
}

static void main_task(void *arg)
{
	co_chan *c = co_chan_new(sizeof(int), 4);

	(void)arg;
	never = co_chan_new(sizeof(int), 0);
	co_mutex_init(&mu);
	co_wg_init(&wg);
	co_wg_add(&wg, 3);
	for (int i = 0; i < 3; i++)
		co_go(task_adder, c);
	for (int i = 1; i <= 100; i++)
		co_chan_send(c, &i);
	co_chan_close(c);
	co_wg_wait(&wg);
	printf("sum=%ld\n", total);
	for (int i = 0; i < 3; i++)
		co_go(start_x, NULL);
	co_sleep(10 * CO_MILLISECOND);
	fflush(stdout);
	co_profile_write(co_profile_lookup("goroutine"), STDOUT_FILENO, 1);
	if (pprof_path) {
		int fd = open(pprof_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || co_profile_write(co_profile_lookup("goroutine"),
					       fd, 0) != 0)
			fprintf(stderr, "cannot write %s\n", pprof_path);
		if (fd >= 0)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	pprof_path = argc > 1 ? argv[1] : NULL;
	int rc = co_run(main_task, NULL);

	if (rc != 0)
		fprintf(stderr, "co_run: %s\n", co_strerror(rc));
	return rc != 0;
}
