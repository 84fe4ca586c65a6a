/* SPDX-License-Identifier: MIT */
/*
 * adminspin.c - the admin port answering while every worker is stuck:
 * how long `GET /debug/pprof/goroutine?debug=1` takes while one task per
 * worker spins without ever yielding, with 10,000 parked tasks in the
 * profile.  Issue 21's target: under 100 ms.
 *
 * Task 1 parks TASKS tasks on a channel, opens the admin port on a free
 * loopback port, starts one spinning task per worker and waits for them.
 * A plain thread (not a task: every worker is taken) sends REQUESTS
 * requests, one at a time, each on a new connection, reads each whole
 * answer, and times it; then it stops the spinners.
 *
 * Output: admin_spin_ms: <median> ms
 *         admin_spin_max_ms: <max> ms
 * Go twin: bench/go/adminspin (net/http/pprof, goroutines that spin).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "bench.h"

#define TASKS 10000
#define REQUESTS 20

static co_chan *never;
static co_wg spinners;
static _Atomic bool stop;
static char addr[128];
static double ms[REQUESTS];

static void task_parked(void *arg)
{
	int v;
	(void)arg;
	co_chan_recv(never, &v);
}

static void task_spin(void *arg)
{
	volatile unsigned long n = 0;
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		n++;
	co_wg_done(&spinners);
}

/* One request on a new connection; the whole answer read. */
static double one_request(void)
{
	static const char req[] = "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\n"
				  "Host: x\r\nConnection: close\r\n\r\n";
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64], buf[65536];
	int port, fd;
	size_t total = 0;
	ssize_t n;

	if (sscanf(addr, "%63[^:]:%d", host, &port) != 2)
		bench_fail("admin address %s", addr);
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	int64_t t0 = bench_now();
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		bench_fail("connect %s: %s", addr, strerror(errno));
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		bench_fail("write: %s", strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	close(fd);
	double t = (double)(bench_now() - t0) / 1e6;
	if (total < 200)
		bench_fail("short answer (%zu bytes)", total);
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void *client(void *arg)
{
	(void)arg;
	usleep(50000); /* the spinners hold every worker by now */
	for (int i = 0; i < REQUESTS; i++)
		ms[i] = one_request();
	atomic_store(&stop, true);
	return NULL;
}

static void main_task(void *arg)
{
	int procs = bench_procs();
	pthread_t t;
	(void)arg;

	never = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < TASKS; i++)
		BENCH_GO(task_parked, NULL);
	BENCH_CHECK(co_admin_listen("127.0.0.1:0", NULL));
	BENCH_CHECK(co_admin_addr(addr, sizeof(addr)));
	co_sleep(10 * CO_MILLISECOND);
	co_wg_init(&spinners);
	co_wg_add(&spinners, procs);
	for (int i = 0; i < procs; i++)
		BENCH_GO(task_spin, NULL);
	pthread_create(&t, NULL, client, NULL);
	co_wg_wait(&spinners);
	pthread_join(t, NULL);
}

int main(void)
{
	bench_default_procs(2);
	BENCH_CHECK(co_run(main_task, NULL));
	qsort(ms, REQUESTS, sizeof(ms[0]), cmp_double);
	printf("admin_spin_ms: %.3f ms\n", (ms[REQUESTS / 2 - 1] + ms[REQUESTS / 2]) / 2);
	printf("admin_spin_max_ms: %.3f ms\n", ms[REQUESTS - 1]);
	return 0;
}
