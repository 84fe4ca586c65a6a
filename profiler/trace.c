/* SPDX-License-Identifier: MIT */
/*
 * trace.c - the execution trace: co_trace_start(fd) records what every
 * task and worker does (create, run, park with its reason, unpark with
 * its waker, exit, worker idle, blocking calls and I/O waits, which are
 * parks with their own reasons) until co_trace_stop(), which writes it as
 * Chrome Trace Event JSON: Perfetto (ui.perfetto.dev) and
 * chrome://tracing open it.  Go's `go tool trace` format is Go's own
 * binary; a C program's users have Perfetto at hand, and the JSON needs
 * no tool to read.
 *
 * What the file shows: process "workers" with one track per worker,
 * whose slices are the tasks it ran (named "task N") and its idle spans;
 * process "tasks" with one track per task, whose slices are its states
 * ("running", "runnable", or the wait reason: "chan receive", "sleep",
 * "IO wait", "syscall", ...); a flow arrow from the task that readied a
 * task to that task's next run; an instant at each creation and exit.
 * Timestamps are read with the runtime's event clock (the CPU's counter
 * where the kernel trusts it: a few ns, where clock_gettime costs 40) and
 * written as microseconds since the start, with nanosecond decimals.
 *
 * How it works.  The runtime records (runtime/tracebuf.c, protocol in
 * introspect.h): SPAWN, EXIT, PARK, UNPARK, RUN, IDLE, WORKER_START and
 * WORKER_STOP go as 32-byte records into a ring of the worker where they
 * happen, one writer per ring, no lock; threads that are not workers
 * share one more ring.  Memory is bounded: each ring keeps its last
 * TRACE_RING events; older ones are overwritten and counted, and the
 * file says how many were dropped (a "dropped events" instant and
 * otherData).  At stop the recorder hands the rings over; this file
 * merges them by time and replays the events into slices, which it
 * writes in time order, as JSON that any parser accepts (strings
 * escaped).
 *
 * An earlier version subscribed to the runtime's events like the other
 * profilers; the generic hook cost a ping-pong 2.3x.
 *
 * Rejected: writing JSON from the hooks (formatting and a write per
 * event on the hot path); one shared ring with an atomic index (every
 * worker would write the same cache line on every event); B/E pairs
 * (a ring that dropped a B leaves an E unmatched, which viewers reject;
 * complete "X" slices are balanced by construction).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define TRACE_RING 65536          /* events kept per worker */
#define TRACE_RINGS_MAX INTROSPECT_WORKERS_MAX /* worker indexes traced */

/* A recorder's event (ts made ns since the start) and its place in the
 * rings, which breaks ties in time: a run takes its park's time, an
 * unpark the next event's, and their order must stay. */
struct trace_ev {
	struct introspect_trace_ev e;
	size_t seq;
};

static struct {
	pthread_mutex_t lock;      /* start/stop */
	bool running;
	int fd;
	uint64_t start_ticks;      /* introspect_clock_now() at start */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

CO_EXTERN int co_trace_start(int fd)
{
	int fl, err;

	if (fd < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
		return CO_EBADF;
	if ((fl & O_ACCMODE) == O_RDONLY)
		return CO_EBADF;
	pthread_mutex_lock(&T.lock);
	if (T.running) {
		err = CO_EBUSY;
	} else {
		T.fd = fd;
		T.start_ticks = introspect_clock_now();
		err = introspect_trace_begin(TRACE_RING);
		T.running = err == 0;
	}
	pthread_mutex_unlock(&T.lock);
	return err; /* CO_EBUSY, CO_ENOMEM: the same codes */
}

bool trace_running(void)
{
	pthread_mutex_lock(&T.lock);
	bool r = T.running;
	pthread_mutex_unlock(&T.lock);
	return r;
}

/* ------------------------------------------------------------------------
 * Writing: replay the events into slices
 * ---------------------------------------------------------------------- */

/* A buffered writer that remembers its first error. */
struct out {
	int fd;
	int err;
	size_t len;
	bool first;                /* no event written yet */
	char buf[65536];
};

static void out_flush(struct out *o)
{
	size_t off = 0;

	while (off < o->len && !o->err) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			o->err = n < 0 ? -errno : CO_EIO;
		else
			off += (size_t)n;
	}
	o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o,
							     const char *fmt,
							     ...)
{
	va_list ap;
	int n;

	if (o->len + 1024 > sizeof(o->buf))
		out_flush(o);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(o->buf) - o->len)
		o->len += (size_t)n;
}

/* A JSON string's content: quotes, backslashes, controls escaped. */
static void out_json_str(struct out *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			out_printf(o, "\\%c", c);
		else if (c < 0x20)
			out_printf(o, "\\u%04x", c);
		else
			out_printf(o, "%c", c);
	}
}

static void ts_us(char *buf, size_t len, int64_t ns)
{
	snprintf(buf, len, "%lld.%03lld", (long long)(ns / 1000),
		 (long long)(ns % 1000));
}

/* One output event, kept to be sorted by time before writing. */
struct slice {
	int64_t ts, dur;           /* dur < 0: an instant or a flow end */
	uint64_t tid;              /* worker + 1 (pid 1) or task id (pid 2) */
	uint64_t flow;             /* flow id, 0: none */
	int pid;                   /* 1 workers, 2 tasks */
	char ph;                   /* 'X', 'i', 's', 'f' */
	const char *name;          /* static */
	uint64_t name_id;          /* "task N" when name is NULL */
};

struct slices {
	struct slice *v;
	size_t n, cap;
};

static void add(struct slices *s, struct slice x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		struct slice *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
}

/* A task's open state on its track. */
struct task_state {
	uint64_t id;
	int64_t since;
	const char *state;         /* NULL: none open */
	uint64_t flow;             /* a wake-up to end at its next run */
	size_t flow_start;         /* ... the index of its start slice */
	bool parked;               /* parked, not run since, */
	int64_t parked_at;         /* ... at this time */
	bool woken;                /* ... and its wake-up was seen */
	bool owed;                 /* ran before its wake-up's time */
	int64_t owed_ts;           /* ... at this time */
	bool used;
};

struct tasks {
	struct task_state *v;
	size_t cap;                /* power of two */
	size_t n;
};

/* The slot of id's task: a pointer stays good until a task_get of an id
 * not yet seen (which may grow the table). */
static struct task_state *task_find(struct tasks *t, uint64_t id)
{
	size_t h = (id * 0x9e3779b97f4a7c15ull) & (t->cap - 1);

	while (t->v[h].used && t->v[h].id != id)
		h = (h + 1) & (t->cap - 1);
	return &t->v[h];
}

static struct task_state *task_get(struct tasks *t, uint64_t id)
{
	struct task_state *ts;

	if (t->cap && (ts = task_find(t, id))->used)
		return ts;
	if ((t->n + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct task_state *v = calloc(cap, sizeof(*v));
		if (!v)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			if (!t->v[i].used)
				continue;
			size_t h = (t->v[i].id * 0x9e3779b97f4a7c15ull) & (cap - 1);
			while (v[h].used)
				h = (h + 1) & (cap - 1);
			v[h] = t->v[i];
		}
		free(t->v);
		t->v = v;
		t->cap = cap;
	}
	ts = task_find(t, id);
	*ts = (struct task_state){.id = id, .used = true};
	t->n++;
	return ts;
}

/* Closes the task's open state at ts and opens state (NULL: none). */
static void task_to(struct slices *s, struct task_state *ts, int64_t at,
		    const char *state)
{
	if (ts->state && at >= ts->since)
		add(s, (struct slice){.ts = ts->since, .dur = at - ts->since,
				      .pid = 2, .tid = ts->id, .ph = 'X',
				      .name = ts->state});
	ts->state = state;
	ts->since = at;
}

struct worker_state {
	uint64_t task;             /* running, 0: none */
	int64_t since;
	bool idle;
	bool seen;
};

static int cmp_ev(const void *a, const void *b)
{
	const struct trace_ev *x = a, *y = b;
	if (x->e.ts != y->e.ts)
		return x->e.ts < y->e.ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_slice(const void *a, const void *b)
{
	const struct slice *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	/* A flow's start before its end at one instant. */
	return (x->ph == 'f') - (y->ph == 'f');
}

/* Ends the worker's current slice at ts. */
static void worker_close(struct slices *s, struct worker_state *ws, int w,
			 int64_t ts)
{
	if (ws->task || ws->idle)
		add(s, (struct slice){.ts = ws->since, .dur = ts - ws->since,
				      .pid = 1, .tid = (uint64_t)w + 1,
				      .ph = 'X',
				      .name = ws->idle ? "idle" : NULL,
				      .name_id = ws->task});
	ws->task = 0;
	ws->idle = false;
	ws->since = ts;
}

static int trace_write(struct trace_ev *ev, size_t n, uint64_t dropped,
		       int fd, int64_t start, int64_t end)
{
	struct worker_state *ws = calloc(TRACE_RINGS_MAX, sizeof(*ws));
	struct slices s = {0};
	struct tasks tasks = {0};
	struct out *o = malloc(sizeof(*o));
	uint64_t flows = 0;
	int nworkers = 0;
	char t1[32], t2[32];

	if (!ws || !o) {
		free(ws);
		free(o);
		return CO_ENOMEM;
	}
	o->fd = fd;
	o->err = 0;
	o->len = 0;
	/* Where rings dropped events, a wake-up before the newest first
	 * kept event may be gone: a run seen without its wake-up is owed one
	 * (below) only after that. */
	int64_t complete_from = INT64_MIN;
	for (size_t i = 0; dropped && i < n; i++)
		if ((i == 0 || ev[i].e.worker != ev[i - 1].e.worker) &&
		    ev[i].e.ts > complete_from)
			complete_from = ev[i].e.ts;
	if (n)
		qsort(ev, n, sizeof(*ev), cmp_ev);
	for (size_t i = 0; i < n; i++) {
		const struct introspect_trace_ev *e = &ev[i].e;
		int w = e->worker;
		struct worker_state *wk =
			w >= 0 && w < TRACE_RINGS_MAX ? &ws[w] : NULL;
		struct task_state *ts = e->id ? task_get(&tasks, e->id) : NULL;

		if (wk && !wk->seen) {
			wk->seen = true;
			wk->since = e->ts;
			if (w + 1 > nworkers)
				nworkers = w + 1;
		}
		switch (e->type) {
		case INTROSPECT_EV_SPAWN:
			if (ts) {
				add(&s, (struct slice){.ts = e->ts, .dur = -1,
					.pid = 2, .tid = e->id, .ph = 'i',
					.name = "created"});
				task_to(&s, ts, e->ts, "runnable");
			}
			break;
		case INTROSPECT_EV_RUN:
			if (!wk || !ts)
				break;
			/* The task this worker ran before is runnable now,
			 * unless it parked or exited (then it says so). */
			if (wk->task && wk->task != e->id) {
				struct task_state *prev =
					task_get(&tasks, wk->task);
				if (prev && prev->state &&
				    strcmp(prev->state, "running") == 0)
					task_to(&s, prev, e->ts, "runnable");
			}
			worker_close(&s, wk, w, e->ts);
			wk->task = e->id;
			task_to(&s, ts, e->ts, "running");
			/* Woken on another worker, whose unpark is stamped
			 * at the waker's next switch, after this. */
			if (ts->parked && !ts->woken &&
			    ts->parked_at >= complete_from) {
				ts->owed = true;
				ts->owed_ts = e->ts;
			}
			ts->parked = false;
			if (ts->flow) {
				add(&s, (struct slice){.ts = e->ts, .dur = -1,
					.pid = 2, .tid = e->id, .ph = 'f',
					.flow = ts->flow, .name = "wake"});
				ts->flow = 0;
			}
			break;
		case INTROSPECT_EV_PARK:
			if (ts) {
				task_to(&s, ts, e->ts,
					introspect_reason_name(e->reason));
				ts->parked = true;
				ts->parked_at = e->ts;
				ts->woken = false;
			}
			if (wk && wk->task == e->id)
				worker_close(&s, wk, w, e->ts);
			break;
		case INTROSPECT_EV_UNPARK:
			if (!ts)
				break;
			/* The wake-up of a run seen already (above): the
			 * waker ran at that time too, as its next switch
			 * came later; the arrow goes there.  Or the wakee
			 * runs, its park not stamped yet: the arrow points
			 * at its run. */
			if (ts->owed ||
			    (ts->state && strcmp(ts->state, "running") == 0)) {
				int64_t at = ts->owed ? ts->owed_ts : e->ts;
				ts->owed = false;
				if (e->other) {
					add(&s, (struct slice){.ts = at,
						.dur = -1, .pid = 2,
						.tid = e->other, .ph = 's',
						.flow = ++flows, .name = "wake"});
					add(&s, (struct slice){.ts = at,
						.dur = -1, .pid = 2,
						.tid = e->id, .ph = 'f',
						.flow = flows, .name = "wake"});
				}
				break;
			}
			ts->woken = true;
			task_to(&s, ts, e->ts, "runnable");
			/* A second wake-up before a run (its run event was
			 * dropped with a full ring): the first arrow has no
			 * end, so it goes. */
			if (ts->flow && ts->flow_start < s.n &&
			    s.v[ts->flow_start].flow == ts->flow)
				s.v[ts->flow_start].ph = 0;
			ts->flow = 0;
			if (e->other) {
				size_t at = s.n;
				add(&s, (struct slice){.ts = e->ts, .dur = -1,
					.pid = 2, .tid = e->other, .ph = 's',
					.flow = flows + 1, .name = "wake"});
				if (s.n > at) {
					ts->flow = ++flows;
					ts->flow_start = at;
				}
			}
			break;
		case INTROSPECT_EV_EXIT:
			if (ts) {
				task_to(&s, ts, e->ts, NULL);
				add(&s, (struct slice){.ts = e->ts, .dur = -1,
					.pid = 2, .tid = e->id, .ph = 'i',
					.name = "exit"});
			}
			if (wk && wk->task == e->id)
				worker_close(&s, wk, w, e->ts);
			break;
		case INTROSPECT_EV_IDLE:
			if (!wk)
				break;
			worker_close(&s, wk, w, e->ts);
			wk->idle = true;
			break;
		case INTROSPECT_EV_WORKER_STOP:
			if (wk)
				worker_close(&s, wk, w, e->ts);
			break;
		default:
			break;
		}
	}
	/* What is still open ends with the trace; a flow whose wakee never
	 * ran again has no end, so its start goes. */
	for (int w = 0; w < nworkers; w++)
		worker_close(&s, &ws[w], w, end);
	for (size_t i = 0; i < tasks.cap; i++)
		if (tasks.v[i].used)
			task_to(&s, &tasks.v[i], end, NULL);
	uint64_t *open_flows = malloc((tasks.n + 1) * sizeof(*open_flows));
	size_t nopen = 0;
	for (size_t i = 0; open_flows && i < tasks.cap; i++)
		if (tasks.v[i].used && tasks.v[i].flow)
			open_flows[nopen++] = tasks.v[i].flow;
	if (nopen) {
		qsort(open_flows, nopen, sizeof(*open_flows), cmp_u64);
		for (size_t j = 0; j < s.n; j++)
			if (s.v[j].ph == 's' &&
			    bsearch(&s.v[j].flow, open_flows, nopen,
				    sizeof(*open_flows), cmp_u64))
				s.v[j].ph = 0; /* dropped below */
	}
	free(open_flows);
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), cmp_slice);

	out_printf(o, "{\"traceEvents\":[\n");
	out_printf(o, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,"
		      "\"tid\":0,\"args\":{\"name\":\"workers\"}},\n");
	out_printf(o, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":2,"
		      "\"tid\":0,\"args\":{\"name\":\"tasks\"}}");
	for (int w = 0; w < nworkers; w++)
		if (ws[w].seen)
			out_printf(o, ",\n{\"name\":\"thread_name\",\"ph\":\"M\","
				      "\"pid\":1,\"tid\":%d,\"args\":{\"name\":"
				      "\"worker %d\"}}", w + 1, w);
	for (size_t i = 0; i < tasks.cap; i++)
		if (tasks.v[i].used)
			out_printf(o, ",\n{\"name\":\"thread_name\",\"ph\":\"M\","
				      "\"pid\":2,\"tid\":%llu,\"args\":{\"name\":"
				      "\"task %llu\"}}",
				   (unsigned long long)tasks.v[i].id,
				   (unsigned long long)tasks.v[i].id);
	if (dropped) {
		ts_us(t1, sizeof(t1), start - start);
		out_printf(o, ",\n{\"name\":\"copper: %llu events dropped (the "
			      "ring of a worker filled; the oldest went)\","
			      "\"ph\":\"i\",\"s\":\"g\",\"pid\":1,\"tid\":0,"
			      "\"ts\":%s}",
			   (unsigned long long)dropped, t1);
	}
	for (size_t i = 0; i < s.n; i++) {
		const struct slice *x = &s.v[i];
		if (!x->ph)
			continue;
		ts_us(t1, sizeof(t1), x->ts - start);
		out_printf(o, ",\n{\"name\":\"");
		if (x->name)
			out_json_str(o, x->name);
		else
			out_printf(o, "task %llu", (unsigned long long)x->name_id);
		out_printf(o, "\",\"ph\":\"%c\",\"pid\":%d,\"tid\":%llu,\"ts\":%s",
			   x->ph, x->pid, (unsigned long long)x->tid, t1);
		if (x->ph == 'X') {
			ts_us(t2, sizeof(t2), x->dur);
			out_printf(o, ",\"dur\":%s", t2);
		} else if (x->ph == 'i') {
			out_printf(o, ",\"s\":\"t\"");
		} else {
			out_printf(o, ",\"cat\":\"wake\",\"id\":%llu%s",
				   (unsigned long long)x->flow,
				   x->ph == 'f' ? ",\"bp\":\"e\"" : "");
		}
		out_printf(o, "}");
	}
	ts_us(t1, sizeof(t1), end - start);
	out_printf(o, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{"
		      "\"producer\":\"copper\",\"duration_us\":\"%s\","
		      "\"dropped_events\":\"%llu\"}}\n",
		   t1, (unsigned long long)dropped);
	out_flush(o);
	int err = o->err;
	free(o);
	free(ws);
	free(s.v);
	free(tasks.v);
	return err;
}

struct stop_job {
	struct trace_ev *ev;
	size_t n;
	uint64_t dropped;
	int fd;
	int64_t start, end;
	int err;
};

static void stop_write(void *arg)
{
	struct stop_job *j = arg;
	j->err = trace_write(j->ev, j->n, j->dropped, j->fd, j->start, j->end);
}

CO_EXTERN int co_trace_stop(void)
{
	struct stop_job j = {0};
	int err;

	pthread_mutex_lock(&T.lock);
	if (!T.running) {
		pthread_mutex_unlock(&T.lock);
		return CO_EINVAL;
	}
	T.running = false;
	j.fd = T.fd;
	uint64_t start_ticks = T.start_ticks;
	struct introspect_trace_ev *raw;
	err = introspect_trace_end(&raw, &j.n, &j.dropped);
	j.start = 0;
	j.end = introspect_clock_ns(start_ticks, introspect_clock_now());
	pthread_mutex_unlock(&T.lock);
	if (err < 0)
		return CO_ENOMEM;
	j.ev = malloc((j.n + 1) * sizeof(*j.ev));
	/* Ticks to ns since the start (an event read just before the
	 * start, on another CPU, counts as 0). */
	for (size_t i = 0; i < j.n && j.ev; i++) {
		j.ev[i].e = raw[i];
		j.ev[i].e.ts = introspect_clock_ns(start_ticks,
						   (uint64_t)raw[i].ts);
		j.ev[i].seq = i;
	}
	free(raw);
	if (!j.ev)
		return CO_ENOMEM;
	/* In a task, the writing goes to the blocking pool: the worker
	 * stays free for other tasks meanwhile. */
	if (co_self() != 0)
		co_blocking(stop_write, &j);
	else
		stop_write(&j);
	free(j.ev);
	return j.err;
}
