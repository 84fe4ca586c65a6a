/* SPDX-License-Identifier: MIT */
/*
 * contention.c - the block and mutex profiles: where tasks waited, and
 * which unlocks made them wait, with Go's rates, formats and scaling.
 *
 * How it works.  Both profiles are off by default and then cost nothing:
 * no hook is subscribed, so the runtime's event sites see hook_on() false.
 * co_set_block_profile_rate / co_set_mutex_profile_fraction (or
 * $COPPER_BLOCKPROFILERATE / $COPPER_MUTEXPROFILEFRACTION at co_run)
 * subscribe a hook to INTROSPECT_EV_BLOCK (emitted in the task that
 * waited, once it runs again) or INTROSPECT_EV_CONTENDED (emitted in the
 * task that unlocked, after it handed the lock on).  The hook samples the
 * event as Go does, walks its own task's stack (introspect_self_stack:
 * the hook runs on that very stack), and adds the event to a bucket keyed
 * by (stack, label set) in a table of its own (block and mutex have one
 * each).  Profiles are cumulative from the first event, as Go's.
 *
 * Sampling, as Go's runtime (mprof.go):
 *   block: a wait of d ns at rate r is kept if d >= r, else with
 *          probability d/r; a kept short wait counts r/d events and r ns
 *          (Go's de-biasing in saveblockevent, go1.17+; the
 *          "scaleBlockProfile" of runtime/pprof does nothing), so sums
 *          estimate every wait.  r = 1 keeps all.
 *   mutex: one contended unlock in f is kept, with count 1 and its delay;
 *          the proto multiplies both by f, the text does not (pprof.go
 *          scaleMutexProfile).  The delay is every admitted waiter's wait
 *          summed (sync.c): a writer that admits 10 readers is charged 10
 *          waits, as Go 1.22+ charges an unlock for the waiters it held up.
 * "Cycles" are nanoseconds: Copper has no cycle counter it trusts across
 * cores, so the texts say cycles/second=1000000000 and every "cycles"
 * value is a duration in ns (pprof divides by cycles/second, so its
 * reading is right).
 *
 * The table.  A fixed array of CONT_BUCKETS buckets, allocated (untouched,
 * so uncommitted) when a profile is first turned on, never freed.  A hook
 * hashes its stack and label set, probes linearly, and claims an empty
 * bucket with one CAS of its key (0 -> CONT_FILLING), fills it, then
 * publishes the hash with a release store; a prober that finds
 * CONT_FILLING waits the few nanoseconds the fill takes.  Adding to a
 * bucket is two plain stores to the calling thread's own shard of its
 * sums (see "Shards" below).  No lock and no malloc on the hook path.  The writer reads published buckets only; a bucket never moves
 * or goes away, so it needs no lock either.  A full table (CONT_PROBES
 * probes found no room) counts the event as dropped; the proto carries a
 * comment saying how many.
 *
 * Rejected: a global lock around the table (Go's profBlockLock: every
 * event of every worker would serialise on it); per-worker tables merged
 * by the writer (hooks also run off workers, and the memory is per worker
 * times the profile's size); malloc'd buckets in a chained hash (malloc in
 * a hook on the hot path, and the heap profiler hooks malloc); keying by
 * label content (a compare of strings per event, when label sets are
 * immutable and shared: the pointer is the key, and the writer merges
 * equal contents as textfmt.c groups them).
 *
 * Invariants: a bucket's pcs, npcs and labels are written once, before
 * its key is published, and never change; a bucket holds one reference to
 * its label set for the life of the process; count is in units of
 * 1/CONT_ONE event.
 *
 * Keep in sync with ../shared/reference/pprof-formats.md (1.4, 2.5, 5)
 * and docs/profiles.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copper.h"
#include "pprof.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define CONT_BUCKETS 8192u            /* per profile; a power of two */
#define CONT_PROBES 64                /* then the event is dropped */
#define CONT_FILLING 1u               /* key of a bucket being filled */
#define CONT_ONE ((uint64_t)1 << 16)  /* count's fixed point: one event */
/* The hook's own frame and hooks_emit's, above the event site. */
#define CONT_SKIP 2
#define CONT_SHARDS 16                /* threads adding without a lock op */

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

/* A bucket's sums, one pair per shard (see "Shards"). */
struct cont_sums {
	_Atomic uint64_t count;           /* events, 1/CONT_ONE units */
	_Atomic int64_t delay;            /* ns waited (the "cycles") */
};

struct cont_bucket {
	_Atomic uint64_t key;             /* 0 free, CONT_FILLING, or the
					     hash (published last) */
	struct labels *labels;            /* referenced; set before key */
	int npcs;                         /* entries in pcs; before key */
	uintptr_t pcs[PROF_MAX_FRAMES];   /* leaf first; before key */
	struct cont_sums sum[CONT_SHARDS + 1]; /* [shard]; the last is
					     shared, added to atomically */
};

struct cont_table {
	_Atomic(struct cont_bucket *) b;  /* CONT_BUCKETS; set on first use
					     under C.lock, never freed */
	_Atomic size_t used;              /* buckets claimed */
	_Atomic uint64_t dropped;         /* events the full table lost */
};

/* One bucket as the writer copies it out. */
struct cont_rec {
	const uintptr_t *pcs;
	struct labels *labels;
	int npcs;
	uint64_t count;
	int64_t delay;
};

static struct {
	pthread_mutex_t lock;        /* guards the subscriptions, tables'
					allocation and rate changes */
	int block_sub, mutex_sub;    /* hook ids, -1 when off */
	_Atomic int64_t block_rate;  /* ns; 0 off */
	_Atomic int mutex_frac;      /* 0 off */
	struct cont_table block, mutex;
} C = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.block_sub = -1,
	.mutex_sub = -1,
};

static _Thread_local uint64_t cont_rng
	__attribute__((tls_model("initial-exec")));
static _Atomic uint64_t cont_seed;

/*
 * Shards.  Two locked adds per event on a bucket that every worker's
 * tasks hit (a channel both sides use) cost a third of the profiler's
 * price on a ping-pong, and bounce the line between cores.  So each
 * thread that records takes one of CONT_SHARDS shard numbers for its
 * life and adds to its own pair of sums in each bucket with plain
 * (relaxed load, relaxed store) updates: it is their only writer.
 * Threads past CONT_SHARDS share the last pair, with atomic adds.  A
 * thread's number comes back when it exits (a key destructor), so runs
 * that start new workers reuse them.  The writer sums every pair.
 */
static _Thread_local int cont_shard_tls
	__attribute__((tls_model("initial-exec"))); /* shard + 1, 0: none */
static _Atomic uint32_t cont_shard_used;        /* bit per shard taken */
static pthread_key_t cont_shard_key;
static pthread_once_t cont_shard_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------
 * The table
 * ---------------------------------------------------------------------- */

/* A per-thread xorshift64*: Go's cheaprand; a thread seeds itself once. */
static uint64_t cont_rand(void)
{
	uint64_t x = cont_rng;

	if (x == 0)
		x = (atomic_fetch_add_explicit(&cont_seed, 0x9e3779b97f4a7c15u,
					       memory_order_relaxed) ^
		     (uintptr_t)&cont_rng) | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	cont_rng = x;
	return x * 0x2545f4914f6cdd1du;
}

static uint64_t cont_hash(const uintptr_t *pcs, int n, const void *labels)
{
	uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)(uintptr_t)labels;

	for (int i = 0; i < n; i++) {
		h ^= pcs[i];
		h *= 0x100000001b3u;
		h ^= h >> 29;
	}
	return h > CONT_FILLING ? h : h + 2;
}

static bool cont_match(const struct cont_bucket *e, const uintptr_t *pcs,
		       int n, const struct labels *l)
{
	return e->npcs == n && e->labels == l &&
	       memcmp(e->pcs, pcs, (size_t)n * sizeof(*pcs)) == 0;
}

static void cont_shard_put(void *v)
{
	unsigned shard = (unsigned)(uintptr_t)v - 1;

	atomic_fetch_and(&cont_shard_used, ~(1u << shard));
}

static void cont_shard_key_init(void)
{
	if (pthread_key_create(&cont_shard_key, cont_shard_put) != 0)
		atomic_store(&cont_shard_used, ~0u); /* all shared */
}

/* The calling thread's shard, CONT_SHARDS for the shared one. */
static int cont_shard(void)
{
	int s = cont_shard_tls;

	if (__builtin_expect(s > 0, 1))
		return s - 1;
	pthread_once(&cont_shard_once, cont_shard_key_init);
	uint32_t used = atomic_load(&cont_shard_used);
	for (int i = 0; i < CONT_SHARDS; i++) {
		if (used & (1u << i))
			continue;
		if (!(atomic_fetch_or(&cont_shard_used, 1u << i) & (1u << i))) {
			if (pthread_setspecific(cont_shard_key,
						(void *)(uintptr_t)(i + 1)) != 0) {
				atomic_fetch_and(&cont_shard_used, ~(1u << i));
				break;
			}
			cont_shard_tls = i + 1;
			return i;
		}
		used = atomic_load(&cont_shard_used);
	}
	cont_shard_tls = CONT_SHARDS + 1; /* shared for this thread's life */
	return CONT_SHARDS;
}

static void cont_bucket_add(struct cont_bucket *e, uint64_t count, int64_t ns)
{
	int s = cont_shard();
	struct cont_sums *p = &e->sum[s];

	if (s == CONT_SHARDS) {
		atomic_fetch_add_explicit(&p->count, count, memory_order_relaxed);
		atomic_fetch_add_explicit(&p->delay, ns, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&p->count, atomic_load_explicit(
			&p->count, memory_order_relaxed) + count,
			      memory_order_relaxed);
	atomic_store_explicit(&p->delay, atomic_load_explicit(
			&p->delay, memory_order_relaxed) + ns,
			      memory_order_relaxed);
}

/* Adds one sampled event to t's bucket for (pcs, labels). */
static void cont_add(struct cont_table *t, const uintptr_t *pcs, int n,
		     struct labels *l, uint64_t count, int64_t ns)
{
	struct cont_bucket *b = atomic_load_explicit(&t->b,
						     memory_order_acquire);
	uint64_t h = cont_hash(pcs, n, l);

	for (unsigned i = 0; b && i < CONT_PROBES; i++) {
		struct cont_bucket *e = &b[(h + i) & (CONT_BUCKETS - 1)];
		uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);

		if (k == 0 && atomic_compare_exchange_strong_explicit(
				      &e->key, &k, CONT_FILLING,
				      memory_order_acquire,
				      memory_order_acquire)) {
			memcpy(e->pcs, pcs, (size_t)n * sizeof(*pcs));
			e->npcs = n;
			labels_ref(l);
			e->labels = l;
			cont_bucket_add(e, count, ns);
			atomic_fetch_add_explicit(&t->used, 1,
						  memory_order_relaxed);
			atomic_store_explicit(&e->key, h, memory_order_release);
			return;
		}
		while (k == CONT_FILLING)
			k = atomic_load_explicit(&e->key, memory_order_acquire);
		if (k == h && cont_match(e, pcs, n, l)) {
			cont_bucket_add(e, count, ns);
			return;
		}
	}
	atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
}

/* Allocates t's buckets on first use; under C.lock.  0 or -ENOMEM. */
static int cont_table_ensure_locked(struct cont_table *t)
{
	struct cont_bucket *b;

	if (atomic_load_explicit(&t->b, memory_order_relaxed))
		return 0;
	if (!(b = calloc(CONT_BUCKETS, sizeof(*b))))
		return CO_ENOMEM;
	atomic_store_explicit(&t->b, b, memory_order_release);
	return 0;
}

/* ------------------------------------------------------------------------
 * The hooks
 * ---------------------------------------------------------------------- */

/* The calling task's stack above the event site, and its label set.
 * Always inlined into the hooks, so that CONT_SKIP frames are the hook's
 * and hooks_emit's. */
static inline __attribute__((always_inline)) void
cont_record(struct cont_table *t, uint64_t count, int64_t ns)
{
	uintptr_t pcs[PROF_MAX_FRAMES + CONT_SKIP];
	int n = introspect_self_stack(pcs, PROF_MAX_FRAMES + CONT_SKIP, NULL,
				      NULL);

	n = n > CONT_SKIP ? n - CONT_SKIP : 0;
	cont_add(t, pcs + CONT_SKIP, n, introspect_self_labels(), count, ns);
}

static __attribute__((noinline)) void
block_hook(const struct introspect_event_info *ev, void *arg)
{
	int64_t rate = atomic_load_explicit(&C.block_rate,
					    memory_order_relaxed);
	int64_t d = ev->ns > 0 ? ev->ns : 1;
	uint64_t count = CONT_ONE;

	(void)arg;
	if (rate <= 0)
		return;
	if (rate > d) {
		/* Go's blocksampled, then saveblockevent's de-biasing. */
		if (cont_rand() % (uint64_t)rate > (uint64_t)d)
			return;
		double c = (double)CONT_ONE * (double)rate / (double)d;
		count = c < 0x1p62 ? (uint64_t)c : (uint64_t)1 << 62;
		d = rate;
	}
	cont_record(&C.block, count, d);
}

static __attribute__((noinline)) void
mutex_hook(const struct introspect_event_info *ev, void *arg)
{
	int frac = atomic_load_explicit(&C.mutex_frac, memory_order_relaxed);

	(void)arg;
	if (frac <= 0 || (frac > 1 && cont_rand() % (uint64_t)frac != 0))
		return;
	cont_record(&C.mutex, CONT_ONE, ev->ns > 0 ? ev->ns : 0);
}

/* Subscribes (on) or unsubscribes a hook; under C.lock. */
static int cont_switch_locked(int *sub, bool on, struct cont_table *t,
			      enum introspect_event e, introspect_hook fn)
{
	int err;

	if (on && *sub < 0) {
		if ((err = cont_table_ensure_locked(t)) < 0)
			return err;
		if ((err = introspect_subscribe(INTROSPECT_EV(e), fn, NULL)) < 0)
			return err;
		*sub = err;
	} else if (!on && *sub >= 0) {
		introspect_unsubscribe(*sub);
		*sub = -1;
	}
	return 0;
}

/* The rate setters, with an error for co_run's start-up. */
static int block_rate_set(int64_t ns)
{
	int err;

	if (ns < 0)
		ns = 0;
	pthread_mutex_lock(&C.lock);
	atomic_store(&C.block_rate, ns);
	err = cont_switch_locked(&C.block_sub, ns > 0, &C.block,
				 INTROSPECT_EV_BLOCK, block_hook);
	if (err < 0)
		atomic_store(&C.block_rate, 0);
	pthread_mutex_unlock(&C.lock);
	return err;
}

static int mutex_frac_set(int rate, int *prev)
{
	int err;

	pthread_mutex_lock(&C.lock);
	*prev = atomic_exchange(&C.mutex_frac, rate);
	err = cont_switch_locked(&C.mutex_sub, rate > 0, &C.mutex,
				 INTROSPECT_EV_CONTENDED, mutex_hook);
	if (err < 0)
		atomic_store(&C.mutex_frac, 0);
	pthread_mutex_unlock(&C.lock);
	return err;
}

CO_EXTERN void co_set_block_profile_rate(int64_t ns)
{
	int err = block_rate_set(ns);

	if (err < 0)
		fprintf(stderr, "copper: block profile stays off: %s\n",
			co_strerror(err));
}

CO_EXTERN int co_set_mutex_profile_fraction(int rate)
{
	int prev, err;

	if (rate < 0)
		return CO_EINVAL;
	err = mutex_frac_set(rate, &prev);
	return err < 0 ? err : prev;
}

/* ------------------------------------------------------------------------
 * The environment (co_run's start-up: a life-cycle part of its own)
 * ---------------------------------------------------------------------- */

/* A whole non-negative decimal number no larger than max; false on a
 * sign, junk, an empty string or overflow. */
static bool parse_nonneg(const char *s, long long max, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

int contention_env_load(void)
{
	const char *s;
	long long v;
	int err, prev;

	if ((s = getenv("COPPER_BLOCKPROFILERATE")) != NULL) {
		if (!parse_nonneg(s, INT64_MAX, &v)) {
			fprintf(stderr, "copper: invalid COPPER_BLOCKPROFILERATE"
					"=\"%s\": want nanoseconds from 0 (off) "
					"to %" PRId64 "\n", s, INT64_MAX);
			return CO_EINVAL;
		}
		if ((err = block_rate_set(v)) < 0)
			return err;
	}
	if ((s = getenv("COPPER_MUTEXPROFILEFRACTION")) != NULL) {
		if (!parse_nonneg(s, INT_MAX, &v)) {
			fprintf(stderr, "copper: invalid "
					"COPPER_MUTEXPROFILEFRACTION=\"%s\": want "
					"a whole number from 0 (off) to %d\n",
				s, INT_MAX);
			return CO_EINVAL;
		}
		if ((err = mutex_frac_set((int)v, &prev)) < 0)
			return err;
	}
	return 0;
}

/* co_run's start-up: a bad variable stops it. */
__attribute__((constructor)) static void contention_register(void)
{
	introspect_add_lifecycle(contention_env_load, NULL);
}

/* ------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

static struct textfmt_stack rec_view(const struct cont_rec *r)
{
	return (struct textfmt_stack){r->pcs, r->labels, r->npcs, false};
}

static void rec_stack(const void *elem, struct textfmt_stack *st)
{
	*st = rec_view(elem);
}

static int cmp_rec(const void *pa, const void *pb)
{
	struct textfmt_stack a = rec_view(pa), b = rec_view(pb);

	return textfmt_stack_cmp(&a, &b);
}

/* A frame of Copper's runtime or profiler that is not public API. */
static bool frame_is_ours(const struct prof_frame *f)
{
	return prof_frame_is_internal(f) ||
	       (strncmp(f->function, "co_", 3) != 0 &&
		strstr(f->file, "profiler/") != NULL);
}

int contention_pcs_trim(const uintptr_t *pcs, int n)
{
	struct prof_frame fr[PROF_INLINE_MAX];
	int k = 0;

	for (; k < n - 1; k++) {
		int nf = prof_symbolize(pcs[k], false, fr, PROF_INLINE_MAX);
		for (int i = 0; i < nf; i++)
			if (!frame_is_ours(&fr[i]))
				return k;
	}
	return k;
}

/* The table's published buckets, grouped by (stack, label contents) and
 * sorted by delay, then key, as Go sorts by cycles.  Each stack starts at
 * the public call (co_chan_recv, co_mutex_unlock): the runtime's frames
 * above it are left out, as Go's skip count leaves out blockevent and
 * semrelease, but only whole addresses: an internal helper inlined into
 * the public function stays in the proto (the text hides it).  *recs and *g are
 * the caller's to free; returns the number of groups or -ENOMEM. */
static long cont_collect(struct cont_table *t, struct cont_rec **recs,
			 struct textfmt_group **g)
{
	struct cont_bucket *b = atomic_load_explicit(&t->b,
						     memory_order_acquire);
	size_t cap = atomic_load(&t->used), n = 0;
	long ng;

	*recs = calloc(cap + 1, sizeof(**recs));
	*g = NULL;
	if (!*recs)
		return CO_ENOMEM;
	for (size_t i = 0; b && i < CONT_BUCKETS && n < cap; i++) {
		struct cont_bucket *e = &b[i];
		if (atomic_load_explicit(&e->key, memory_order_acquire) <=
		    CONT_FILLING)
			continue;
		int k = contention_pcs_trim(e->pcs, e->npcs);
		uint64_t count = 0;
		int64_t delay = 0;
		for (int sh = 0; sh <= CONT_SHARDS; sh++) {
			count += atomic_load_explicit(&e->sum[sh].count,
						      memory_order_relaxed);
			delay += atomic_load_explicit(&e->sum[sh].delay,
						      memory_order_relaxed);
		}
		(*recs)[n++] = (struct cont_rec){e->pcs + k, e->labels,
						 e->npcs - k, count, delay};
	}
	if ((ng = textfmt_records_group(*recs, n, sizeof(**recs), cmp_rec,
					rec_stack, g)) < 0)
		return ng;
	for (long i = 0; i < ng; i++) {
		int64_t delay = 0;
		uint64_t count = 0;
		for (int64_t k = 0; k < (*g)[i].count; k++) {
			delay += (*recs)[(*g)[i].first + (size_t)k].delay;
			count += (*recs)[(*g)[i].first + (size_t)k].count;
		}
		(*g)[i].order = delay;
		/* The group's summed count replaces its record count (the
		 * records are no longer needed one by one). */
		(*recs)[(*g)[i].first].count = count;
		(*recs)[(*g)[i].first].delay = delay;
	}
	if (textfmt_groups_sort(*g, ng) < 0) {
		textfmt_groups_free(*g, ng);
		*g = NULL;
		return CO_ENOMEM;
	}
	return ng;
}

/* Events in a group's summed count: at least 1, as Go prints. */
static int64_t rec_events(const struct cont_rec *r)
{
	int64_t c = (int64_t)(r->count / CONT_ONE);
	return c > 0 ? c : 1;
}

static int write_debug1(struct cont_table *t, bool mutex, FILE *f)
{
	struct snapshot s = {0};
	struct textfmt_group *g;
	struct cont_rec *recs;
	long ng = cont_collect(t, &recs, &g);

	if (ng < 0) {
		free(recs);
		return (int)ng;
	}
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	fprintf(f, "--- %s:\ncycles/second=1000000000\n",
		mutex ? "mutex" : "contention");
	if (mutex)
		fprintf(f, "sampling period=%d\n", atomic_load(&C.mutex_frac));
	for (long i = 0; i < ng; i++) {
		const struct cont_rec *r = &recs[g[i].first];
		fprintf(f, "%" PRId64 " %" PRId64 " %s\n", r->delay,
			rec_events(r), g[i].key);
		textfmt_frames_write(f, &s, &g[i].stack, false);
	}
	textfmt_groups_free(g, ng);
	free(recs);
	return 0;
}

static int write_proto(struct cont_table *t, bool mutex, int fd)
{
	struct snapshot s = {0};
	struct textfmt_group *g = NULL;
	struct cont_rec *recs = NULL;
	struct pprof_builder *b;
	int64_t scale = 1;
	long ng = 0;
	int err = 0;
	char note[96];

	if (!(b = pprof_builder_new(&err)))
		return err;
	if ((ng = cont_collect(t, &recs, &g)) < 0) {
		err = (int)ng;
		ng = 0;
		goto out;
	}
	introspect_task_entries(&s.hide_entry[0], &s.hide_entry[1]);
	if (mutex && atomic_load(&C.mutex_frac) > 1)
		scale = atomic_load(&C.mutex_frac);
	pprof_symbolizer_set(b, prof_pprof_symbolize, NULL);
	snprintf(note, sizeof(note), "copper: %" PRIu64 " events dropped "
		 "(profile table full)", atomic_load(&t->dropped));
	if ((atomic_load(&t->dropped) && (err = pprof_comment_add(b, note)) < 0) ||
	    (err = pprof_sample_type_add(b, "contentions", "count")) < 0 ||
	    (err = pprof_sample_type_add(b, "delay", "nanoseconds")) < 0 ||
	    (err = pprof_period_set(b, "contentions", "count", 1)) < 0 ||
	    (err = prof_pprof_add_mappings(b)) < 0)
		goto out;
	for (long i = 0; i < ng; i++) {
		const struct cont_rec *r = &recs[g[i].first];
		const struct textfmt_stack *st = &g[i].stack;
		int64_t v[2] = {rec_events(r) * scale, r->delay * scale};
		uintptr_t pcs[PROF_MAX_FRAMES];
		struct pprof_label lb[64];
		size_t nl = 0;
		int n = textfmt_pcs_shown(&s, st, pcs);

		for (size_t k = 0; st->labels && k < st->labels->n && nl < 64;
		     k++)
			lb[nl++] = (struct pprof_label){
				st->labels->pairs[k].key,
				st->labels->pairs[k].value, 0, NULL};
		if ((err = pprof_sample_add(b, pcs, (size_t)n, false, v, lb,
					    nl)) < 0)
			goto out;
	}
	err = pprof_builder_write(b, fd);
out:
	textfmt_groups_free(g, ng);
	free(recs);
	pprof_builder_free(b);
	return err;
}

struct cont_text {
	struct cont_table *t;
	bool mutex;
};

static int cont_text(FILE *f, void *arg)
{
	struct cont_text *ct = arg;
	return write_debug1(ct->t, ct->mutex, f);
}

static int cont_write(struct cont_table *t, bool mutex, int fd, int debug)
{
	struct cont_text ct = {t, mutex};

	if (debug <= 0)
		return write_proto(t, mutex, fd);
	return textfmt_to_fd(fd, cont_text, &ct);
}

int contention_block_write(int fd, int debug)
{
	return cont_write(&C.block, false, fd, debug);
}

int contention_mutex_write(int fd, int debug)
{
	return cont_write(&C.mutex, true, fd, debug);
}

int contention_block_count(void)
{
	size_t n = atomic_load(&C.block.used);
	return n > INT_MAX ? INT_MAX : (int)n;
}

int contention_mutex_count(void)
{
	size_t n = atomic_load(&C.mutex.used);
	return n > INT_MAX ? INT_MAX : (int)n;
}
