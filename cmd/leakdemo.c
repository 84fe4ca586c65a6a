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
 *
 * Then it stays up as a live process would, with the other ways tasks
 * get stuck (a select nobody answers, a wait group never done, a mutex
 * held across a sleep, long sleeps; some labelled), memory it keeps, and
 * tasks that contend on a lock, and serves the admin port on
 * 127.0.0.1:6060 (or COPPER_ADMIN), printing how to pull each profile.
 * Ctrl-C ends it.  `leakdemo --exit` stops after the first part.
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

/* ------------------------------------------------------------------------
 * The live part: more ways to be stuck, memory, contention
 * ---------------------------------------------------------------------- */

static co_chan *replies, *cancels;  /* nobody sends on either */
static co_wg batch;                 /* never done */
static co_mutex cache_lock;         /* held across a long sleep */
static co_mutex stats_lock;         /* contended */
static long stats;
static void **cache;                /* kept for good */

static void task_wait_for_reply(void *arg)
{
	int v;
	co_case cs[2] = {
		{.op = CO_RECV, .chan = replies, .elem = &v},
		{.op = CO_RECV, .chan = cancels, .elem = &v},
	};
	(void)arg;
	co_labels_set("handler", "checkout", NULL);
	co_select(cs, 2, -1); /* STUCK: neither channel ever sends */
}

static void task_await_batch(void *arg)
{
	(void)arg;
	co_wg_wait(&batch); /* STUCK: the batch was never marked done */
}

static void task_hold_cache_lock(void *arg)
{
	(void)arg;
	co_mutex_lock(&cache_lock);
	co_sleep(24 * 3600 * CO_SECOND); /* BUG: sleeps holding the lock */
	co_mutex_unlock(&cache_lock);
}

static void task_update_cache(void *arg)
{
	(void)arg;
	co_labels_set("handler", "refresh", NULL);
	co_mutex_lock(&cache_lock); /* STUCK behind task_hold_cache_lock */
	co_mutex_unlock(&cache_lock);
}

static void task_retry_later(void *arg)
{
	(void)arg;
	co_sleep(3600 * CO_SECOND);
}

/* 32 MiB in 64 KiB blocks, kept: the heap profile shows this line. */
static void cache_fill(void)
{
	enum { BLOCKS = 512, SIZE = 64 * 1024 };

	cache = calloc(BLOCKS, sizeof(*cache));
	for (int i = 0; cache && i < BLOCKS; i++)
		if ((cache[i] = malloc(SIZE)))
			memset(cache[i], i, SIZE);
}

static void task_count_events(void *arg)
{
	(void)arg;
	for (;;) {
		co_mutex_lock(&stats_lock); /* contended by four tasks */
		for (volatile int i = 0; i < 20000; i++)
			stats++;
		co_mutex_unlock(&stats_lock);
		co_sleep(CO_MILLISECOND);
	}
}

static void start_live_part(void)
{
	/* Every wait and every contended unlock, from now on: the block
	 * and mutex profiles have something to show. */
	co_set_block_profile_rate(1);
	co_set_mutex_profile_fraction(1);
	replies = co_chan_new(sizeof(int), 0);
	cancels = co_chan_new(sizeof(int), 0);
	co_wg_init(&batch);
	co_wg_add(&batch, 1);
	co_mutex_init(&cache_lock);
	co_mutex_init(&stats_lock);
	cache_fill();
	co_go_named("cache holder", task_hold_cache_lock, NULL);
	co_sleep(CO_MILLISECOND);
	for (int i = 0; i < 100; i++)
		co_go(task_wait_for_reply, NULL);
	for (int i = 0; i < 10; i++)
		co_go(task_await_batch, NULL);
	for (int i = 0; i < 5; i++)
		co_go(task_update_cache, NULL);
	for (int i = 0; i < 20; i++)
		co_go(task_retry_later, NULL);
	for (int i = 0; i < 4; i++)
		co_go_named("stats", task_count_events, NULL);
}

/* The admin port, and how to pull each profile from it. */
static void serve_admin(void)
{
	static const char *const kinds[] = {"goroutine", "heap", "allocs",
					    "block", "mutex", "threadcreate"};
	char addr[256];
	int err = 0;

	if (co_admin_addr(addr, sizeof(addr)) != 0 &&
	    (err = co_admin_listen("127.0.0.1:6060", NULL)) != 0 &&
	    (err = co_admin_listen("127.0.0.1:0", NULL)) != 0) {
		fprintf(stderr, "leakdemo: admin port: %s\n", co_strerror(err));
		return;
	}
	co_admin_addr(addr, sizeof(addr));
	printf("\nThe process stays up with more stuck tasks, memory it keeps "
	       "and a contended lock.\nIts admin port serves "
	       "http://%s/debug/pprof/ (Ctrl-C to stop):\n\n", addr);
	printf("  curl -s 'http://%s/debug/pprof/goroutine?debug=1'\n", addr);
	printf("  curl -s 'http://%s/debug/pprof/goroutine?debug=2' | less\n",
	       addr);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (co_profile_lookup(kinds[i]))
			printf("  go tool pprof -top http://%s/debug/pprof/%s\n",
			       addr, kinds[i]);
	printf("  go tool pprof -top 'http://%s/debug/pprof/profile?seconds=5'\n",
	       addr);
	printf("  curl -s http://%s/debug/copper/tasks    # the live task count\n",
	       addr);
	printf("  kill -QUIT %d    # every task on stderr, then exit 2, as Go\n",
	       (int)getpid());
	fflush(stdout);
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
	if (arg)
		return; /* --exit */
	start_live_part();
	serve_admin();
	for (;;)
		co_sleep(3600 * CO_SECOND);
}

int main(int argc, char **argv)
{
	bool exit_early = argc > 1 && strcmp(argv[1], "--exit") == 0;
	int err = co_run(main_task, exit_early ? (void *)1 : NULL);

	if (err) {
		fprintf(stderr, "leakdemo: co_run: %s\n", co_strerror(err));
		return 1;
	}
	return 0;
}
