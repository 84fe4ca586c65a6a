/* SPDX-License-Identifier: MIT */
/*
 * memprof.c - the heap sampler: Copper's malloc, free and friends, which
 * interpose on glibc's for the whole process and record a Poisson sample
 * of allocations (with their stacks) and the frees of sampled blocks, for
 * the heap and allocs profiles (heap.c writes them).
 *
 * How it works.  libcopper (shared and static) defines malloc, calloc,
 * realloc, reallocarray, free, posix_memalign, aligned_alloc, memalign,
 * valloc and pvalloc with default visibility, so the dynamic linker binds
 * every caller in the process to them: the program, its libraries, libuv's
 * pool threads, glibc's own strdup/fopen/... (glibc calls malloc through
 * its PLT so that it can be replaced).  Each one calls glibc's allocator
 * directly through the entry points glibc 2.36 exports for this
 * (__libc_malloc, __libc_calloc, __libc_realloc, __libc_memalign,
 * __libc_valloc, __libc_pvalloc, __libc_free): no dlsym(RTLD_NEXT), hence
 * no start-up recursion (dlsym calls calloc) and nothing to initialise
 * before the first call.  Blocks are glibc's own, unchanged: no header,
 * no other address, so malloc_usable_size, mallinfo2, malloc_trim and a
 * free of a block allocated before us work as without the profiler, and
 * need no wrapper.  A bad free (foreign pointer, double free) reaches
 * glibc exactly as it would have: the only thing done before it is a
 * lookup that reads our own tables, never the block.
 *
 * Sampling, as Go's mcache.nextSample: each thread keeps a byte countdown
 * (mp_countdown, initial-exec TLS) drawn from an exponential distribution
 * with mean rate (COPPER_MEMPROFILERATE, co_set_mem_profile_rate; default
 * 512 KiB).  Every allocation of n bytes subtracts n; the one that takes
 * it below zero is sampled and the countdown is drawn again.  So the
 * sampled bytes are a Poisson process over allocated bytes, and a block of
 * size s is sampled with probability 1-exp(-s/rate), which heap.c undoes
 * as Go's scaleHeapSample does.  A fresh thread's countdown is 0: its
 * first allocation takes the slow path, which draws the countdown (and
 * samples the allocation if the draw is below its size).  Rate 1 samples
 * every allocation of at least one byte; rate 0 records nothing, and the
 * countdown is then 4 MiB so that a later rate reaches every thread.
 * A new rate takes effect on the calling thread at once and on other
 * threads at their next sample point (Go: set MemProfileRate early).
 *
 * The fast paths.  malloc: __libc_malloc, a TLS subtract and a
 * not-taken branch.  free: one relaxed load of mp.live (sampled blocks
 * alive; 0 in a program that never sampled) and, when it is not zero, a
 * multiply-shift hash of the address and a one-byte load from a counting
 * filter (mp_filter: how many live sampled blocks hash to each of 64 Ki
 * cells; a zero means "not sampled" for certain), then __libc_free.  Only
 * a non-zero cell (a sampled block, or a collision: live samples / 65536
 * of frees) takes the lock and searches the table.  free's fast path is
 * frameless and ends in a tail call.  Measured on the 2-core test machine
 * (a tight loop of malloc 16..256 bytes + free, min of 300 runs): glibc
 * alone 7.4 ns per pair, through these wrappers 8.2-8.8 ns, at the
 * default rate or 0 alike; bench/heapalloc has the two-worker loop.
 *
 * The slow path allocates nothing from malloc: its tables live in mmap'd
 * arenas (mp_arena_alloc) that are never unmapped, and a thread-local
 * flag (mp_busy) sends any allocation made while the thread is inside the
 * profiler (by introspect_self_stack's first probe, or by the profile
 * writer under the lock) straight to glibc, unsampled.  The stack comes
 * from introspect_self_stack (async-signal-safe, no lock, bounded walk on
 * any thread) and starts at the return address of the interposed entry,
 * so that the profile's leaf is the allocating function.  One mutex
 * (mp.lock) guards the tables; it is taken once per sample and per free
 * of a sampled block, and pthread_atfork takes it around fork() so that a
 * child never inherits it held (the forking thread, which then owns the
 * tables, allocates and frees without taking it again: mp_forking).
 *
 * Tables, all under mp.lock:
 *   - buckets: one per (stack, size), as Go's mprof buckets, with
 *     cumulative alloc and free counts; never freed, so heap.c may keep
 *     pointers to their stacks;
 *   - blocks: the live sampled blocks, a chained hash on the address
 *     (2^18 heads, MAP_NORESERVE so only touched pages cost), nodes
 *     recycled through a free list.
 *
 * Rejected designs.  A header in front of sampled blocks: free cannot tell
 * a sampled block from another without reading memory before an arbitrary
 * pointer (a foreign or double free would then crash in our code, not
 * glibc's), and malloc_usable_size, memalign and realloc would need
 * translating.  Serving sampled blocks from an arena of our own (free
 * tests an address range): every sampled block would cost a page or a
 * custom allocator, glibc's statistics would miss them, and a double free
 * of one would behave differently.  Tagging through malloc_usable_size
 * (over-allocate sampled blocks to an odd usable size): glibc rounds sizes
 * to 16 bytes, so unsampled blocks share every usable size, and the call
 * costs a load of the chunk header on every free.  A lock-free hash set
 * probed on every free: the probe touches a table line per free (a cache
 * miss once the table is big); the 64 KiB filter stays in cache and
 * answers nearly every free alone.  A plain bitmap (Bloom filter with
 * k = 1 and no counts): bits cannot be cleared when a block is freed, so
 * it fills up and every free ends up taking the lock.  The global "any
 * sampled block alive" test alone: a program that retains anything has a
 * live sample at all times, so it saves nothing after start-up; it stays
 * as the first test because it makes rate 0 free.  dlsym(RTLD_NEXT,
 * "malloc"): dlsym allocates, so the first malloc would recurse.
 *
 * Task labels are not attached to heap samples (Go attaches none either):
 * a label set is reference-counted and owned by tasks, and taking a
 * reference from inside malloc on any thread is not worth the risk.
 *
 * Under AddressSanitizer (__SANITIZE_ADDRESS__), the sanitizer owns malloc:
 * none of the allocator functions is defined, memprof_available() is false
 * and heap.c writes profiles that say heap profiling is unavailable.
 *
 * Invariants:
 *   - every pointer in the block table is a block glibc returned and has
 *     not been freed since (an entry is removed before its free reaches
 *     glibc, so a concurrent malloc cannot get the address while it is
 *     still listed);
 *   - mp_filter[cell] counts the listed blocks whose hash lands on cell
 *     (saturating at 255, which then never decreases), and mp.live counts
 *     all of them;
 *   - a bucket's free counts never exceed its alloc counts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEMPROF_INTERPOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMPROF_INTERPOSE 0
#endif
#endif
#ifndef MEMPROF_INTERPOSE
#define MEMPROF_INTERPOSE 1
#endif

/* The allocator functions themselves are exported: they replace glibc's.
 * Weak, so that a program linked with the static library that defines
 * its own allocator (or links jemalloc statically) keeps it rather than
 * failing to link; the profile is then empty. */
#define MEMPROF_EXPORT __attribute__((visibility("default"), weak))

#define MP_RATE_DEFAULT (512 * 1024)
#define MP_RATE_MAX (1L << 40)
#define MP_OFF_RECHECK (4L << 20)    /* countdown while the rate is 0 */
#define MP_FRAMES (PROF_MAX_FRAMES + 8)
#define MP_FILTER_BITS 16
#define MP_BLOCK_BITS 18
#define MP_BUCKET_BITS 14
#define MP_ARENA_CHUNK (1u << 20)

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

/* One (stack, size): Go's memRecord.  Created by a sample, never freed. */
struct mp_bucket {
	struct mp_bucket *next;      /* hash chain; set once at creation */
	uint64_t hash;               /* of pcs and size */
	size_t size;                 /* the allocation size */
	int npcs;                    /* entries in pcs */
	int64_t alloc_objects;       /* sampled allocations (mp.lock) */
	int64_t alloc_bytes;
	int64_t free_objects;        /* frees of them (mp.lock) */
	int64_t free_bytes;
	uintptr_t pcs[];             /* return addresses, leaf first */
};

/* One live sampled block. */
struct mp_block {
	struct mp_block *next;       /* hash chain or free list */
	uintptr_t addr;              /* what glibc returned */
	struct mp_bucket *bucket;    /* where its allocation was counted */
};

static struct {
	pthread_mutex_t lock;        /* guards everything below but rate and
					live, and the filter's updates */
	_Atomic long rate;           /* bytes between samples; 0: off */
	_Atomic long live;           /* listed blocks (read without lock) */
	struct mp_block **blocks;    /* 2^MP_BLOCK_BITS chain heads */
	struct mp_block *free_nodes; /* recycled block nodes */
	struct mp_bucket **buckets;  /* 2^MP_BUCKET_BITS chain heads */
	long nbuckets;               /* buckets created */
	char *arena;                 /* current arena chunk ... */
	size_t arena_left;           /* ... and what is left of it */
	char env_bad[64];            /* COPPER_MEMPROFILERATE's value if it
					was rejected (reported at co_run) */
	bool tables_failed;          /* mmap failed: sampling stopped */
} mp = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.rate = MP_RATE_DEFAULT,
};

static _Thread_local int64_t mp_countdown
	__attribute__((tls_model("initial-exec")));
static _Thread_local bool mp_busy __attribute__((tls_model("initial-exec")));
static _Thread_local bool mp_armed __attribute__((tls_model("initial-exec")));
static _Thread_local uint64_t mp_rng __attribute__((tls_model("initial-exec")));
/* Set on the thread that forks, from the prepare handler (which takes
 * mp.lock) to the parent's or child's: that thread owns the tables then,
 * and an allocation or free it makes meanwhile (another prepare handler,
 * glibc's fork itself) must not take the lock again. */
static _Thread_local bool mp_forking __attribute__((tls_model("initial-exec")));

static void mp_lock(void)
{
	if (!mp_forking)
		pthread_mutex_lock(&mp.lock);
}

static void mp_unlock(void)
{
	if (!mp_forking)
		pthread_mutex_unlock(&mp.lock);
}

#if MEMPROF_INTERPOSE
/* noplt: called through the GOT, one indirect call instead of a call to
 * a PLT stub that jumps. */
#define MP_GLIBC __attribute__((noplt))
extern void *__libc_malloc(size_t n) MP_GLIBC;
extern void *__libc_calloc(size_t n, size_t size) MP_GLIBC;
extern void *__libc_realloc(void *p, size_t n) MP_GLIBC;
extern void *__libc_memalign(size_t align, size_t n) MP_GLIBC;
extern void *__libc_valloc(size_t n) MP_GLIBC;
extern void *__libc_pvalloc(size_t n) MP_GLIBC;
extern void __libc_free(void *p) MP_GLIBC;
#endif

/* ------------------------------------------------------------------------
 * Random sample points
 * ---------------------------------------------------------------------- */

/* xorshift64*, seeded per thread from its TLS address and the clock. */
static uint64_t mp_random(void)
{
	uint64_t x = mp_rng;

	if (x == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (uint64_t)(uintptr_t)&mp_rng ^
		    ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix */
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		if (x == 0)
			x = 0x9e3779b97f4a7c15ull;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	mp_rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ln(u) for u in (0, 1], without libm: u = m * 2^e with m in [1, 2),
 * ln m = 2 atanh((m-1)/(m+1)) by its series (|s| <= 1/3, error < 1e-7). */
static double mp_log(double u)
{
	int e = 0;
	double m = u, s, s2;

	while (m < 1.0) {
		m *= 2.0;
		e--;
	}
	s = (m - 1.0) / (m + 1.0);
	s2 = s * s;
	return e * 0.6931471805599453 +
	       2.0 * s * (1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 *
	       (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11)))));
}

/* The next countdown: exponential with mean rate (Go's nextSample). */
static int64_t mp_next_sample(long rate)
{
	if (rate <= 0)
		return MP_OFF_RECHECK;
	if (rate == 1)
		return 0;
	/* u uniform in (0, 1] with 53 bits. */
	double u = (double)((mp_random() >> 11) + 1) * (1.0 / 9007199254740992.0);
	double d = -mp_log(u) * (double)rate;
	return d >= 9.0e18 ? INT64_MAX : (int64_t)d;
}

/* Everything from here to the entry points exists only when they do. */
#if MEMPROF_INTERPOSE

/* How many listed blocks hash to each cell; read on every free. */
static _Atomic unsigned char mp_filter[1u << MP_FILTER_BITS];

/* ------------------------------------------------------------------------
 * Tables (mp.lock held)
 * ---------------------------------------------------------------------- */

static void *mp_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Bump allocation from mmap'd chunks; never freed. */
static void *mp_arena_alloc(size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (size > mp.arena_left) {
		size_t chunk = size > MP_ARENA_CHUNK ? size : MP_ARENA_CHUNK;
		char *c = mp_map(chunk);
		if (!c)
			return NULL;
		mp.arena = c;
		mp.arena_left = chunk;
	}
	void *p = mp.arena;
	mp.arena += size;
	mp.arena_left -= size;
	return p;
}

static bool mp_tables_init_locked(void)
{
	if (mp.blocks)
		return true;
	if (mp.tables_failed)
		return false;
	mp.blocks = mp_map(sizeof(*mp.blocks) << MP_BLOCK_BITS);
	mp.buckets = mp_map(sizeof(*mp.buckets) << MP_BUCKET_BITS);
	if (!mp.blocks || !mp.buckets) {
		mp.tables_failed = true;
		mp.blocks = NULL;
		return false;
	}
	return true;
}

static inline uint64_t mp_addr_hash(uintptr_t a)
{
	return (uint64_t)(a >> 4) * 0x9e3779b97f4a7c15ull;
}

static inline size_t mp_filter_cell(uintptr_t a)
{
	return (size_t)(mp_addr_hash(a) >> (64 - MP_FILTER_BITS));
}

static inline size_t mp_block_head(uintptr_t a)
{
	return (size_t)(mp_addr_hash(a) >> (64 - MP_BLOCK_BITS));
}

static struct mp_bucket *mp_bucket_get_locked(const uintptr_t *pcs, int n,
					      size_t size)
{
	uint64_t h = 0xcbf29ce484222325ull ^ size;
	struct mp_bucket *b;

	for (int i = 0; i < n; i++)
		h = (h ^ pcs[i]) * 0x100000001b3ull;
	h ^= h >> 29;
	size_t head = (size_t)(h >> (64 - MP_BUCKET_BITS));
	for (b = mp.buckets[head]; b; b = b->next)
		if (b->hash == h && b->size == size && b->npcs == n &&
		    memcmp(b->pcs, pcs, (size_t)n * sizeof(*pcs)) == 0)
			return b;
	b = mp_arena_alloc(sizeof(*b) + (size_t)n * sizeof(*pcs));
	if (!b)
		return NULL;
	*b = (struct mp_bucket){.next = mp.buckets[head], .hash = h,
				.size = size, .npcs = n};
	memcpy(b->pcs, pcs, (size_t)n * sizeof(*pcs));
	mp.buckets[head] = b;
	mp.nbuckets++;
	return b;
}

static void mp_block_add_locked(uintptr_t addr, struct mp_bucket *b)
{
	struct mp_block *k = mp.free_nodes;
	size_t cell = mp_filter_cell(addr);

	if (k)
		mp.free_nodes = k->next;
	else if (!(k = mp_arena_alloc(sizeof(*k))))
		return; /* counted as allocated, never as freed */
	size_t head = mp_block_head(addr);
	*k = (struct mp_block){mp.blocks[head], addr, b};
	mp.blocks[head] = k;
	unsigned char c = atomic_load_explicit(&mp_filter[cell],
					       memory_order_relaxed);
	if (c != 255)
		atomic_store_explicit(&mp_filter[cell], c + 1,
				      memory_order_relaxed);
	atomic_fetch_add_explicit(&mp.live, 1, memory_order_relaxed);
}

/* Unlists addr; its bucket, or NULL if it was not listed. */
static struct mp_bucket *mp_block_remove_locked(uintptr_t addr)
{
	struct mp_block **pp, *k;
	size_t cell = mp_filter_cell(addr);

	if (!mp.blocks)
		return NULL;
	for (pp = &mp.blocks[mp_block_head(addr)]; (k = *pp); pp = &k->next)
		if (k->addr == addr)
			break;
	if (!k)
		return NULL;
	*pp = k->next;
	struct mp_bucket *b = k->bucket;
	k->next = mp.free_nodes;
	mp.free_nodes = k;
	unsigned char c = atomic_load_explicit(&mp_filter[cell],
					       memory_order_relaxed);
	if (c != 255)
		atomic_store_explicit(&mp_filter[cell], c - 1,
				      memory_order_relaxed);
	atomic_fetch_sub_explicit(&mp.live, 1, memory_order_relaxed);
	return b;
}

/* ------------------------------------------------------------------------
 * The slow paths
 * ---------------------------------------------------------------------- */

/* Records the sampled block p of n bytes; ret is the return address of
 * the interposed entry (the allocating call). */
static void mp_record(void *p, size_t n, uintptr_t ret)
{
	uintptr_t pcs[MP_FRAMES];
	int np = introspect_self_stack(pcs, MP_FRAMES, NULL, NULL), i = 0;

	while (i < np && pcs[i] != ret)
		i++;
	if (i == np)
		i = 0; /* chain broken above the caller: keep what we have */
	if (np - i > PROF_MAX_FRAMES)
		np = i + PROF_MAX_FRAMES;
	mp_lock();
	if (mp_tables_init_locked()) {
		struct mp_bucket *b = mp_bucket_get_locked(pcs + i, np - i, n);
		if (b) {
			b->alloc_objects++;
			b->alloc_bytes += (int64_t)n;
			mp_block_add_locked((uintptr_t)p, b);
		}
	}
	mp_unlock();
}

/* The allocation of n bytes at p took the countdown below zero. */
__attribute__((noinline, cold)) static void *mp_alloc_slow(void *p, size_t n,
							   uintptr_t ret)
{
	if (mp_busy)
		return p; /* inside the profiler: the outer call redraws */
	mp_busy = true;
	long rate = atomic_load_explicit(&mp.rate, memory_order_relaxed);
	if (!mp_armed) {
		/* A new thread: its Poisson process starts here. */
		mp_armed = true;
		mp_countdown = mp_next_sample(rate) - (int64_t)n;
		if (mp_countdown >= 0 || rate <= 0) {
			if (rate <= 0)
				mp_countdown = MP_OFF_RECHECK;
			mp_busy = false;
			return p;
		}
	}
	if (p && rate > 0)
		mp_record(p, n, ret);
	mp_countdown = mp_next_sample(rate);
	mp_busy = false;
	return p;
}

/* A free (or realloc) of p found p's filter cell non-zero: unlists p if
 * it was sampled, counting the free now if count (a realloc counts it
 * once it knows the block is gone).  Returns p's bucket or NULL. */
__attribute__((noinline, cold)) static struct mp_bucket *
mp_untrack(void *p, bool count)
{
	struct mp_bucket *b;

	mp_lock();
	b = mp_block_remove_locked((uintptr_t)p);
	if (b && count) {
		b->free_objects++;
		b->free_bytes += (int64_t)b->size;
	}
	mp_unlock();
	return b;
}

static inline bool mp_maybe_sampled(const void *p)
{
	return atomic_load_explicit(&mp.live, memory_order_relaxed) != 0 && p &&
	       atomic_load_explicit(&mp_filter[mp_filter_cell((uintptr_t)p)],
				    memory_order_relaxed) != 0;
}

static void mp_count_free(struct mp_bucket *b)
{
	mp_lock();
	b->free_objects++;
	b->free_bytes += (int64_t)b->size;
	mp_unlock();
}

/* Puts back a block unlisted for a realloc that failed (the block is
 * still the caller's, so nobody else can have its address). */
static void mp_relist(void *p, struct mp_bucket *b)
{
	mp_lock();
	mp_block_add_locked((uintptr_t)p, b);
	mp_unlock();
}

/* After an allocation of n bytes at p: the countdown, and the sample when
 * it runs out.  A macro, so that the return address is read in the
 * allocator's own frame, and only on the slow path. */
#define MP_AFTER_ALLOC(p, n)                                               \
	do {                                                               \
		if (__builtin_expect((mp_countdown -= (int64_t)(n)) < 0, 0)) \
			return mp_alloc_slow((p), (n), MP_RET);            \
		return (p);                                                \
	} while (0)

/* free's slow path: p may be sampled.  Ends with glibc's free, so that
 * free's fast path is a tail call. */
__attribute__((noinline, cold)) static void mp_free_slow(void *p)
{
	mp_untrack(p, true);
	__libc_free(p);
}

/* ------------------------------------------------------------------------
 * The allocator entry points
 * ---------------------------------------------------------------------- */

#define MP_RET ((uintptr_t)__builtin_return_address(0))

MEMPROF_EXPORT void *malloc(size_t n)
{
	void *p = __libc_malloc(n);

	MP_AFTER_ALLOC(p, n);
}

/* Sibling calls allowed here (the build turns them off for the stacks'
 * sake): free's frame is never in a recorded stack, and the tail call
 * spares the fast path a frame. */
MEMPROF_EXPORT __attribute__((optimize("optimize-sibling-calls"))) void
free(void *p)
{
	if (__builtin_expect(mp_maybe_sampled(p), 0))
		mp_free_slow(p);
	else
		__libc_free(p);
}

MEMPROF_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	void *p = __libc_calloc(n, size);

	if (__builtin_mul_overflow(n, size, &total))
		total = 0; /* glibc failed it with ENOMEM */
	MP_AFTER_ALLOC(p, total);
}

/* glibc's realloc of p to n, with p unlisted first if it was sampled
 * (and listed again if the realloc fails). */
static inline void *mp_realloc(void *p, size_t n)
{
	struct mp_bucket *b = NULL;
	void *q;

	if (__builtin_expect(mp_maybe_sampled(p), 0))
		b = mp_untrack(p, false);
	q = __libc_realloc(p, n);
	if (b) {
		if (!q && n != 0)
			mp_relist(p, b); /* failed: p is still there */
		else
			mp_count_free(b);
	}
	return q;
}

MEMPROF_EXPORT void *realloc(void *p, size_t n)
{
	void *q = mp_realloc(p, n);

	if (!q)
		return NULL;
	MP_AFTER_ALLOC(q, n);
}

MEMPROF_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	void *q;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!(q = mp_realloc(p, total)))
		return NULL;
	MP_AFTER_ALLOC(q, total);
}

MEMPROF_EXPORT void *memalign(size_t align, size_t n)
{
	void *p = __libc_memalign(align, n);

	MP_AFTER_ALLOC(p, n);
}

/* glibc 2.36's aligned_alloc is memalign under another name. */
MEMPROF_EXPORT void *aligned_alloc(size_t align, size_t n)
{
	void *p = __libc_memalign(align, n);

	MP_AFTER_ALLOC(p, n);
}

MEMPROF_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 ||
	    align == 0)
		return EINVAL;
	if (!(p = __libc_memalign(align, n)))
		return ENOMEM;
	if (__builtin_expect((mp_countdown -= (int64_t)n) < 0, 0))
		p = mp_alloc_slow(p, n, MP_RET);
	*out = p;
	return 0;
}

MEMPROF_EXPORT void *valloc(size_t n)
{
	void *p = __libc_valloc(n);

	MP_AFTER_ALLOC(p, n);
}

MEMPROF_EXPORT void *pvalloc(size_t n)
{
	void *p = __libc_pvalloc(n);

	MP_AFTER_ALLOC(p, n);
}

#endif /* MEMPROF_INTERPOSE */

/* ------------------------------------------------------------------------
 * Rate, start-up and fork
 * ---------------------------------------------------------------------- */

CO_EXTERN void co_set_mem_profile_rate(long bytes)
{
	if (bytes < 0)
		return; /* documented: ignored, the rate stays */
	if (bytes > MP_RATE_MAX)
		bytes = MP_RATE_MAX;
	atomic_store(&mp.rate, bytes);
	/* The calling thread draws again at once. */
	mp_busy = true;
	mp_armed = true;
	mp_countdown = mp_next_sample(bytes);
	mp_busy = false;
}

long memprof_rate(void)
{
	return atomic_load(&mp.rate);
}

long memprof_count(void)
{
	mp_lock();
	long n = mp.nbuckets;
	mp_unlock();
	return n;
}

bool memprof_available(void)
{
	return MEMPROF_INTERPOSE;
}

/* Parses COPPER_MEMPROFILERATE: bytes, with an optional k/m/g suffix. */
static bool mp_parse_rate(const char *s, long *out)
{
	unsigned long long v = 0;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > (unsigned long long)MP_RATE_MAX)
			return false;
	}
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	default: break;
	}
	if (*s || v > ((unsigned long long)MP_RATE_MAX >> shift))
		return false; /* checked before the shift can wrap */
	*out = (long)(v << shift);
	return true;
}

int memprof_env_check(void)
{
	if (!mp.env_bad[0])
		return 0;
	fprintf(stderr, "copper: invalid COPPER_MEMPROFILERATE=\"%s\": want "
			"bytes between samples, 0 (off) to 1024g (suffix k, m "
			"or g allowed)\n", mp.env_bad);
	return CO_EINVAL;
}

static void mp_fork_prepare(void)
{
	pthread_mutex_lock(&mp.lock);
	mp_forking = true;
}

static void mp_fork_parent(void)
{
	mp_forking = false;
	pthread_mutex_unlock(&mp.lock);
}

/* The child's only thread is the one that forked: it held the lock. */
static void mp_fork_child(void)
{
	mp_forking = false;
	pthread_mutex_unlock(&mp.lock);
}

/* Runs before main (and before co_run), so the environment's rate
 * applies to the program's first allocations; an invalid value keeps the
 * default and makes co_run fail (memprof_env_check). */
__attribute__((constructor)) static void mp_init(void)
{
	const char *s = getenv("COPPER_MEMPROFILERATE");
	long v;

	mp_busy = true;
	if (s && mp_parse_rate(s, &v))
		atomic_store(&mp.rate, v);
	else if (s) /* copied: the program may change its environment */
		snprintf(mp.env_bad, sizeof(mp.env_bad), "%s", s);
	pthread_atfork(mp_fork_prepare, mp_fork_parent, mp_fork_child);
	/* co_run reports a bad value, before task 1 runs. */
	introspect_add_lifecycle(memprof_env_check, NULL);
	mp_armed = true;
	mp_countdown = mp_next_sample(atomic_load(&mp.rate));
	mp_busy = false;
}

/* ------------------------------------------------------------------------
 * Reading the records (heap.c)
 * ---------------------------------------------------------------------- */

long memprof_records(struct memprof_record **out)
{
	struct memprof_record *r = NULL;
	long n = 0;

	*out = NULL;
	/* Allocations made under the lock must not sample (they would take
	 * it again), nor count toward this thread's next sample. */
	int64_t countdown = mp_countdown;
	mp_busy = true;
	mp_lock();
	if (mp.buckets && mp.nbuckets > 0) {
		r = malloc((size_t)mp.nbuckets * sizeof(*r));
		for (size_t h = 0; r && h < (1u << MP_BUCKET_BITS); h++)
			for (struct mp_bucket *b = mp.buckets[h]; b; b = b->next)
				r[n++] = (struct memprof_record){
					b->pcs, b->npcs, b->size,
					b->alloc_objects, b->alloc_bytes,
					b->free_objects, b->free_bytes};
	}
	bool oom = mp.nbuckets > 0 && !r;
	mp_unlock();
	mp_countdown = countdown;
	mp_busy = false;
	if (oom)
		return CO_ENOMEM;
	*out = r;
	return n;
}
