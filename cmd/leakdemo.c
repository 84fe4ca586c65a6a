/* SPDX-License-Identifier: MIT */
/*
 * leakdemo.c - a task leak, found with the goroutine profile.
 *
 * A request handler starts a lookup task and waits for its answer with a
 * deadline (co_select with a timeout).  When the lookup is slow the
 * handler gives up and returns — and the lookup task, which sends its
 * answer on an unbuffered channel nobody reads any more, blocks forever.
 * This is the most common goroutine leak in Go, written in C.
 *
 * The demo serves requests for a while, watches the task count climb,
 * then asks Copper where the tasks are: the debug=1 goroutine profile
 * groups 50,000 identical stacks into one record that points at the
 * co_chan_send line below.  It also writes the profile as a pprof file
 * for `go tool pprof`, and tells how to get the same from a live process
 * with `kill -USR1`.
 */
#include <copper.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQUESTS 60000
#define CONCURRENT 200

struct lookup {
	co_chan *answer; /* unbuffered: the send waits for a receiver */
	int key;
};

static co_wg inflight;

static void task_lookup(void *arg)
{
	struct lookup *l = arg;
	int value = l->key * 2;

	if (l->key % 6 != 0)
		co_sleep(2 * CO_MILLISECOND); /* most lookups are slow */
	co_chan_send(l->answer, &value); /* LEAK: nobody receives after a timeout */
}

static void task_handle_request(void *arg)
{
	struct lookup *l = malloc(sizeof(*l));
	int value;
	co_case c;

	l->answer = co_chan_new(sizeof(int), 0);
	l->key = (int)(intptr_t)arg;
	co_go(task_lookup, l);
	c = (co_case){.op = CO_RECV, .chan = l->answer, .elem = &value};
	if (co_select(&c, 1, CO_MILLISECOND) == CO_ETIMEDOUT) {
		/* Give up after 1 ms.  The lookup still holds l and its channel:
		 * both leak with it, as they would in Go. */
		co_wg_done(&inflight);
		return;
	}
	co_chan_free(l->answer);
	free(l);
	co_wg_done(&inflight);
}

static void print_profile_head(int records)
{
	char path[] = "/tmp/copper-leakdemo-XXXXXX";
	int fd = mkstemp(path);
	char line[512];
	FILE *f;

	if (fd < 0 || co_profile_write(co_profile_lookup("goroutine"), fd, 1)) {
		perror("leakdemo: profile");
		return;
	}
	f = fdopen(fd, "r");
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '\n' && --records == 0)
			break;
		fputs(line, stdout);
	}
	fclose(f);
	unlink(path);
}

static void main_task(void *arg)
{
	const char *pb = "/tmp/copper-leakdemo.goroutine.pb.gz";
	int64_t start = co_now();
	(void)arg;

	co_wg_init(&inflight);
	printf("leakdemo: serving %d requests, %d at a time...\n", REQUESTS,
	       CONCURRENT);
	for (int i = 1; i <= REQUESTS; i++) {
		co_wg_add(&inflight, 1);
		co_go_named("handler", task_handle_request, (void *)(intptr_t)i);
		if (i % CONCURRENT == 0)
			co_wg_wait(&inflight);
		if (i % 20000 == 0)
			printf("leakdemo: %6d requests served, %zu tasks alive\n",
			       i, co_num_tasks());
	}
	co_sleep(5 * CO_MILLISECOND); /* let the fast lookups finish */
	printf("leakdemo: done in %.1f s; %zu tasks are still alive. Where are "
	       "they?\n\n",
	       (double)(co_now() - start) / 1e9, co_num_tasks());
	printf("$ goroutine profile, debug=1 (the two largest records)\n");
	print_profile_head(2);

	int fd = open(pb, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0 && co_profile_write(co_profile_lookup("goroutine"), fd, 0) == 0)
		printf("The same profile for pprof: go tool pprof -top %s\n", pb);
	if (fd >= 0)
		close(fd);
	printf("In a live process: kill -USR1 <pid> writes "
	       "copper-<pid>-<time>.goroutine.txt and .pb.gz to $COPPER_DUMP_DIR.\n");
}

int main(void)
{
	int err = co_run(main_task, NULL);

	if (err) {
		fprintf(stderr, "leakdemo: co_run: %s\n", co_strerror(err));
		return 1;
	}
	return 0;
}
