/* SPDX-License-Identifier: MIT */
/*
 * pprof.c - the pprof encoder: a profile builder shaped like Go's
 * runtime/pprof/proto.go profileBuilder (STYLE.md rule 17).
 *
 * How it works.  The builder keeps the profile as flat tables: the string
 * table (with an index table for interning), Locations keyed by address,
 * their Lines, Functions keyed by (name, file), Mappings, and Samples whose
 * location ids, values and labels sit in three shared pools.  Adding a
 * sample turns each stack address into a Location id (the step with a
 * worked example at stack_locate), symbolizing an address the first time it
 * is seen, exactly once, and interning every string it meets.
 *
 * Writing wraps the tables in protobuf-c messages (enc_sample,
 * enc_location, enc_function, enc_mapping), which point into the tables
 * rather than copy them, and packs the Profile into a ProtobufCBuffer whose
 * append feeds deflate; deflate's output goes to the file descriptor or the
 * memory buffer in 16 KiB chunks.  So the serialized profile never exists
 * whole in memory, as in Go, where the builder streams into gzip.  Mappings
 * are matched to locations at write time, so they may be added in any
 * order, and Mapping.has_functions comes out of the same pass (Go's
 * symbolizeFlag).
 *
 * Rejected: encoding each message as it is created, as Go does.  Go needs
 * that because its hand-written encoder streams; protobuf-c packs whole
 * messages, and keeping the tables lets a profile be written twice (file
 * and HTTP) and mappings arrive late.  Also rejected: packing into one
 * buffer and compressing it afterwards, which doubles peak memory.
 *
 * Invariants:
 *   - strs.v[0] is "" and no string appears twice in strs;
 *   - every string index stored anywhere is < strs.n;
 *   - locs and funcs hold no duplicate key (address; name and file), and
 *     the index tables map each key to its entry: Location id = index + 1,
 *     Function id = index + 1;
 *   - every sample has types.n values, and types.n never changes once a
 *     sample exists;
 *   - a failed call leaves at most unused strings, functions and locations
 *     behind, never a sample that points at nothing.
 */
#define ZLIB_CONST

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "pprof.h"
#include "profile.pb-c.h"

/* ------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

/* A growable array of T: v[0..n) in use, room for cap. */
#define VEC(T) struct { T *v; size_t n; size_t cap; }

/* Makes room for `more` elements after vec.n: 0 or -ENOMEM. */
#define VEC_RESERVE(vec, more) \
	vec_reserve(&(vec).v, &(vec).cap, (vec).n, (more), sizeof(*(vec).v))

/* One slot of an index table. */
struct islot {
	uint32_t idx1;		/* index + 1 into the owner's array; 0: empty */
	uint32_t hash;		/* the key's hash, so growing never re-reads keys */
};

/* An open-addressing hash of indices into one of the builder's arrays; the
 * owner supplies the key's hash and an equality test. */
struct itab {
	struct islot *slot;	/* cap slots; NULL until the first insert */
	size_t cap;		/* a power of two, or 0 */
	size_t n;		/* used slots, kept at most cap / 2 */
};

/* A Location before encoding. */
struct loc {
	uint64_t addr;		/* Location.address: the PC that was symbolized */
	size_t line0;		/* its Lines are lines.v[line0 .. line0 + nline) */
	size_t nline;		/* 0 when the symbolizer did not know addr */
	bool full;		/* every frame had function, file and line */
};

/* A Line before encoding. */
struct line {
	uint32_t func;		/* Line.function_id - 1: index into funcs */
	int64_t line;		/* Line.line, 0 if unknown */
};

/* A Function before encoding; the key is (name, file). */
struct func {
	uint32_t name;		/* Function.name and .system_name (string index) */
	uint32_t file;		/* Function.filename (string index) */
	int64_t start_line;	/* Function.start_line, from the first frame seen */
};

/* A Mapping before encoding; its id is its index + 1. */
struct mapping {
	uint64_t start;		/* Mapping.memory_start */
	uint64_t limit;		/* Mapping.memory_limit (exclusive) */
	uint64_t offset;	/* Mapping.file_offset */
	uint32_t file;		/* Mapping.filename (string index) */
	uint32_t build_id;	/* Mapping.build_id (string index) */
};

/* A Sample before encoding: runs in the builder's pools. */
struct sample {
	size_t id0;		/* location ids: ids.v[id0 .. id0 + nid) */
	size_t nid;		/* stack depth */
	size_t val0;		/* values: vals.v[val0 .. val0 + types.n) */
	size_t lab0;		/* labels: labs.v[lab0 .. lab0 + nlab) */
	size_t nlab;		/* number of labels */
};

/* A Label before encoding (string indices; 0 leaves a field out). */
struct label {
	uint32_t key;		/* Label.key */
	uint32_t str;		/* Label.str */
	int64_t num;		/* Label.num */
	uint32_t unit;		/* Label.num_unit */
};

/* A ValueType before encoding. */
struct value_type {
	uint32_t type;		/* ValueType.type (string index) */
	uint32_t unit;		/* ValueType.unit (string index) */
};

struct pprof_builder {
	VEC(char *) strs;		/* Profile.string_table, owned copies */
	struct itab strtab;		/* string -> index in strs */
	VEC(struct value_type) types;	/* Profile.sample_type, in order */
	struct value_type period_type;	/* Profile.period_type, if has_period */
	bool has_period;		/* pprof_period_set was called */
	int64_t period;			/* Profile.period */
	uint32_t default_type;		/* Profile.default_sample_type, 0: unset */
	int64_t time_nanos;		/* Profile.time_nanos, now at creation */
	int64_t duration_nanos;		/* Profile.duration_nanos, 0: unset */
	VEC(int64_t) comments;		/* Profile.comment (string indices) */
	VEC(struct mapping) maps;	/* Profile.mapping, in id order */
	VEC(struct loc) locs;		/* Profile.location, in id order */
	struct itab loctab;		/* address -> index in locs */
	VEC(struct line) lines;		/* every location's lines */
	VEC(struct func) funcs;		/* Profile.function, in id order */
	struct itab functab;		/* (name, file) -> index in funcs */
	VEC(struct sample) samples;	/* Profile.sample, in order */
	VEC(uint64_t) ids;		/* pool: samples' location ids */
	VEC(int64_t) vals;		/* pool: samples' values */
	VEC(struct label) labs;		/* pool: samples' labels */
	pprof_symbolize_fn symbolize;	/* set by pprof_symbolizer_set, may be NULL */
	void *symbolize_ctx;		/* its first argument */
};

typedef bool (*itab_eq_fn)(const struct pprof_builder *b, uint32_t idx,
			   const void *key);

/* The protobuf-c messages of one write, pointing into the builder. */
struct enc {
	Perftools__Profiles__Profile prof;		/* what is packed */
	Perftools__Profiles__ValueType period_type;	/* prof.period_type */
	Perftools__Profiles__ValueType **types;		/* prof.sample_type */
	Perftools__Profiles__Label **labels;		/* all samples' labels */
	Perftools__Profiles__Sample **samples;		/* prof.sample */
	Perftools__Profiles__Line **lines;		/* all locations' lines */
	Perftools__Profiles__Location **locs;		/* prof.location */
	Perftools__Profiles__Function **funcs;		/* prof.function */
	Perftools__Profiles__Mapping **maps;		/* prof.mapping */
	uint8_t *mapflags;	/* per mapping: MAP_TRIED, MAP_FAILED */
	size_t nmaps;		/* maps.n, or 1 for Go's fake mapping */
};

/* Go's symbolizeFlag: a location was looked up in the mapping, and one
 * was not fully symbolized.  has_functions = exactly MAP_TRIED. */
#define MAP_TRIED 1
#define MAP_FAILED 2

/* The gzip stream protobuf-c packs into (Go's b.zw). */
struct sink {
	ProtobufCBuffer base;	/* first: protobuf-c calls base.append(&base) */
	z_stream zs;		/* deflate state, gzip framing */
	gz_header gzh;		/* OS 255, no name, no mtime: Go's header */
	bool open;		/* deflateInit2 succeeded, deflateEnd is due */
	int err;		/* first error (negative errno); then input is dropped */
	int fd;			/* output descriptor, or -1 for memory */
	uint8_t *mem;		/* fd == -1: the output so far (malloc'd) */
	size_t len;		/* bytes in mem */
	size_t cap;		/* bytes allocated for mem */
	size_t nin;		/* bytes staged in in[] */
	uint8_t in[4096];	/* small appends gathered before deflate */
	uint8_t out[16384];	/* deflate output, emitted when full */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ------------------------------------------------------------------------ */

static void *pp_malloc(size_t n);
static void *pp_calloc(size_t n, size_t size);
static void *pp_realloc(void *p, size_t n);
static int vec_reserve(void *vp, size_t *cap, size_t n, size_t more,
		       size_t size);
static int str_intern(struct pprof_builder *b, const char *s, uint32_t *idx);
static bool str_lookup(const struct pprof_builder *b, const char *s,
		       uint32_t *idx);
static int sample_check(const struct pprof_builder *b,
			const uintptr_t *stack, size_t depth, bool leaf_is_pc,
			const int64_t *values, const struct pprof_label *labels,
			size_t nlabels);
static int stack_locate(struct pprof_builder *b, const uintptr_t *stack,
			size_t depth, bool leaf_is_pc, uint64_t *ids);
static int labels_intern(struct pprof_builder *b,
			 const struct pprof_label *labels, size_t n,
			 struct label *out);
static int encode(const struct pprof_builder *b, struct sink *s);
static struct sink *sink_new(int fd);

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

struct pprof_builder *pprof_builder_new(int *err)
{
	struct pprof_builder *b;
	struct timespec now;
	uint32_t zero;

	b = pp_calloc(1, sizeof(*b));
	if (!b)
		goto out_err;
	/* string_table[0] must be "": intern it first. */
	if (str_intern(b, "", &zero) < 0)
		goto out_free_builder;
	clock_gettime(CLOCK_REALTIME, &now);
	b->time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	return b;

out_free_builder:
	pprof_builder_free(b);
out_err:
	if (err)
		*err = -ENOMEM;
	return NULL;
}

void pprof_builder_free(struct pprof_builder *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->strs.n; i++)
		free(b->strs.v[i]);
	free(b->strs.v);
	free(b->strtab.slot);
	free(b->types.v);
	free(b->comments.v);
	free(b->maps.v);
	free(b->locs.v);
	free(b->loctab.slot);
	free(b->lines.v);
	free(b->funcs.v);
	free(b->functab.slot);
	free(b->samples.v);
	free(b->ids.v);
	free(b->vals.v);
	free(b->labs.v);
	free(b);
}

int pprof_sample_type_add(struct pprof_builder *b, const char *type,
			  const char *unit)
{
	struct value_type vt;
	int err;

	if (!b || !type || !unit || b->samples.n > 0)
		return -EINVAL;
	if ((err = VEC_RESERVE(b->types, 1)) < 0 ||
	    (err = str_intern(b, type, &vt.type)) < 0 ||
	    (err = str_intern(b, unit, &vt.unit)) < 0)
		return err;
	b->types.v[b->types.n++] = vt;
	return 0;
}

int pprof_period_set(struct pprof_builder *b, const char *type,
		     const char *unit, int64_t period)
{
	struct value_type vt;
	int err;

	if (!b || !type || !unit)
		return -EINVAL;
	if ((err = str_intern(b, type, &vt.type)) < 0 ||
	    (err = str_intern(b, unit, &vt.unit)) < 0)
		return err;
	b->period_type = vt;
	b->period = period;
	b->has_period = true;
	return 0;
}

int pprof_default_sample_type_set(struct pprof_builder *b, const char *type)
{
	uint32_t idx;

	if (!b || !type || !str_lookup(b, type, &idx))
		return -EINVAL;
	for (size_t i = 0; i < b->types.n; i++) {
		if (b->types.v[i].type == idx) {
			b->default_type = idx;
			return 0;
		}
	}
	return -EINVAL;
}

void pprof_time_set(struct pprof_builder *b, int64_t time_nanos,
		    int64_t duration_nanos)
{
	if (!b)
		return;
	b->time_nanos = time_nanos;
	b->duration_nanos = duration_nanos;
}

int pprof_comment_add(struct pprof_builder *b, const char *text)
{
	uint32_t idx;
	int err;

	if (!b || !text)
		return -EINVAL;
	if ((err = VEC_RESERVE(b->comments, 1)) < 0 ||
	    (err = str_intern(b, text, &idx)) < 0)
		return err;
	b->comments.v[b->comments.n++] = idx;
	return 0;
}

int pprof_mapping_add(struct pprof_builder *b, uint64_t start, uint64_t limit,
		      uint64_t file_offset, const char *file,
		      const char *build_id)
{
	struct mapping m = { .start = start, .limit = limit,
			     .offset = file_offset };
	int err;

	if (!b || start > limit)
		return -EINVAL;
	if ((err = VEC_RESERVE(b->maps, 1)) < 0 ||
	    (err = str_intern(b, file ? file : "", &m.file)) < 0 ||
	    (err = str_intern(b, build_id ? build_id : "", &m.build_id)) < 0)
		return err;
	b->maps.v[b->maps.n++] = m;
	return 0;
}

void pprof_symbolizer_set(struct pprof_builder *b, pprof_symbolize_fn fn,
			  void *ctx)
{
	if (!b)
		return;
	b->symbolize = fn;
	b->symbolize_ctx = ctx;
}

int pprof_sample_add(struct pprof_builder *b, const uintptr_t *stack,
		     size_t depth, bool leaf_is_pc, const int64_t *values,
		     const struct pprof_label *labels, size_t nlabels)
{
	struct sample s;
	int err;

	err = sample_check(b, stack, depth, leaf_is_pc, values, labels,
			   nlabels);
	if (err < 0)
		return err;
	if ((err = VEC_RESERVE(b->samples, 1)) < 0 ||
	    (err = VEC_RESERVE(b->ids, depth)) < 0 ||
	    (err = VEC_RESERVE(b->vals, b->types.n)) < 0 ||
	    (err = VEC_RESERVE(b->labs, nlabels)) < 0)
		return err;
	/* Fill the reserved room past each pool's end; commit only when all
	 * of it succeeded, so a failure leaves no half sample behind. */
	s = (struct sample){ .id0 = b->ids.n, .nid = depth,
			     .val0 = b->vals.n,
			     .lab0 = b->labs.n, .nlab = nlabels };
	if ((err = stack_locate(b, stack, depth, leaf_is_pc,
				&b->ids.v[s.id0])) < 0 ||
	    (err = labels_intern(b, labels, nlabels, &b->labs.v[s.lab0])) < 0)
		return err;
	memcpy(&b->vals.v[s.val0], values, b->types.n * sizeof(*values));
	b->ids.n += depth;
	b->vals.n += b->types.n;
	b->labs.n += nlabels;
	b->samples.v[b->samples.n++] = s;
	return 0;
}

int pprof_builder_write(const struct pprof_builder *b, int fd)
{
	struct sink *s;
	int err;

	if (!b)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	s = sink_new(fd);
	if (!s)
		return -ENOMEM;
	err = encode(b, s);
	free(s);
	return err;
}

int pprof_builder_encode(const struct pprof_builder *b, uint8_t **out,
			 size_t *len)
{
	struct sink *s;
	int err;

	if (!b || !out || !len)
		return -EINVAL;
	s = sink_new(-1);
	if (!s)
		return -ENOMEM;
	err = encode(b, s);
	if (err == 0) {
		*out = s->mem;
		*len = s->len;
	} else {
		free(s->mem);
	}
	free(s);
	return err;
}

/* ------------------------------------------------------------------------
 * Statics: memory and index tables
 * ------------------------------------------------------------------------ */

static int vec_reserve(void *vp, size_t *cap, size_t n, size_t more,
		       size_t size)
{
	size_t want, ncap;
	void *v;

	if (more > SIZE_MAX - n)
		return -ENOMEM;
	want = n + more;
	if (want <= *cap)
		return 0;
	for (ncap = *cap ? *cap : 8; ncap < want; ncap *= 2)
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
	if (ncap > SIZE_MAX / size)
		return -ENOMEM;
	/* vp points at a T *; copy it through memcpy, not a void ** cast. */
	memcpy(&v, vp, sizeof(v));
	v = pp_realloc(v, ncap * size);
	if (!v)
		return -ENOMEM;
	memcpy(vp, &v, sizeof(v));
	*cap = ncap;
	return 0;
}

/* FNV-1a: strings are short (names, paths), so a byte loop is enough. */
static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The murmur3 finalizer: addresses differ in a few middle bits. */
static uint32_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* Finds key; on success *idx is its index in the owner's array. */
static bool itab_find(const struct itab *t, uint32_t hash, itab_eq_fn eq,
		      const struct pprof_builder *b, const void *key,
		      uint32_t *idx)
{
	size_t mask = t->cap - 1;

	if (t->cap == 0)
		return false;
	for (size_t i = hash & mask; t->slot[i].idx1 != 0; i = (i + 1) & mask) {
		const struct islot *s = &t->slot[i];
		if (s->hash == hash && eq(b, s->idx1 - 1, key)) {
			*idx = s->idx1 - 1;
			return true;
		}
	}
	return false;
}

/* Stores idx under hash; the key is absent and itab_grow made room. */
static void itab_put(struct itab *t, uint32_t hash, uint32_t idx)
{
	size_t mask = t->cap - 1;
	size_t i = hash & mask;

	while (t->slot[i].idx1 != 0)
		i = (i + 1) & mask;
	t->slot[i] = (struct islot){ .idx1 = idx + 1, .hash = hash };
	t->n++;
}

/* Makes room for one more entry, keeping the load at most 1/2. */
static int itab_grow(struct itab *t)
{
	struct itab nt;

	if (t->n >= UINT32_MAX / 2)
		return -ENOMEM;
	if ((t->n + 1) * 2 <= t->cap)
		return 0;
	nt.cap = t->cap ? t->cap * 2 : 64;
	nt.n = 0;
	nt.slot = pp_calloc(nt.cap, sizeof(*nt.slot));
	if (!nt.slot)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].idx1 != 0)
			itab_put(&nt, t->slot[i].hash, t->slot[i].idx1 - 1);
	free(t->slot);
	*t = nt;
	return 0;
}

/* ------------------------------------------------------------------------
 * Statics: strings, functions, locations (Go's stringIndex, funcs, locs)
 * ------------------------------------------------------------------------ */

static bool str_eq(const struct pprof_builder *b, uint32_t idx,
		   const void *key)
{
	return strcmp(b->strs.v[idx], key) == 0;
}

static bool str_lookup(const struct pprof_builder *b, const char *s,
		       uint32_t *idx)
{
	return itab_find(&b->strtab, hash_str(s), str_eq, b, s, idx);
}

/* The index of s in the string table, adding a copy if it is new. */
static int str_intern(struct pprof_builder *b, const char *s, uint32_t *idx)
{
	uint32_t hash = hash_str(s);
	size_t len;
	char *copy;
	int err;

	if (itab_find(&b->strtab, hash, str_eq, b, s, idx))
		return 0;
	if ((err = VEC_RESERVE(b->strs, 1)) < 0 ||
	    (err = itab_grow(&b->strtab)) < 0)
		return err;
	len = strlen(s) + 1;
	copy = pp_malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, s, len);
	*idx = (uint32_t)b->strs.n;
	b->strs.v[b->strs.n++] = copy;
	itab_put(&b->strtab, hash, *idx);
	return 0;
}

/* Function keys pack (name, file) string indices into one word. */
static uint64_t func_key(uint32_t name, uint32_t file)
{
	return (uint64_t)name << 32 | file;
}

static bool func_eq(const struct pprof_builder *b, uint32_t idx,
		    const void *key)
{
	const struct func *f = &b->funcs.v[idx];

	return func_key(f->name, f->file) == *(const uint64_t *)key;
}

/* The Function for (name, file), created on first use.  Go keys by name
 * alone; C has static functions of one name in many files. */
static int func_find(struct pprof_builder *b, const struct pprof_frame *f,
		     uint32_t *idx)
{
	struct func fn = { .start_line = f->start_line > 0 ? f->start_line : 0 };
	uint64_t key;
	int err;

	if ((err = str_intern(b, f->function ? f->function : "", &fn.name)) < 0 ||
	    (err = str_intern(b, f->file ? f->file : "", &fn.file)) < 0)
		return err;
	key = func_key(fn.name, fn.file);
	if (itab_find(&b->functab, hash_u64(key), func_eq, b, &key, idx))
		return 0;
	if ((err = VEC_RESERVE(b->funcs, 1)) < 0 ||
	    (err = itab_grow(&b->functab)) < 0)
		return err;
	*idx = (uint32_t)b->funcs.n;
	b->funcs.v[b->funcs.n++] = fn;
	itab_put(&b->functab, hash_u64(key), *idx);
	return 0;
}

/* Appends the Line for frame f (room reserved); clears *full when f lacks
 * a function, file or line, Go's lookupFailed. */
static int line_add(struct pprof_builder *b, const struct pprof_frame *f,
		    bool *full)
{
	uint32_t fn;
	int err;

	if (!f->function || !*f->function || !f->file || !*f->file ||
	    f->line <= 0)
		*full = false;
	if ((err = func_find(b, f, &fn)) < 0)
		return err;
	b->lines.v[b->lines.n++] = (struct line){
		.func = fn,
		.line = f->line > 0 ? f->line : 0,
	};
	return 0;
}

static bool loc_eq(const struct pprof_builder *b, uint32_t idx,
		   const void *key)
{
	return b->locs.v[idx].addr == *(const uint64_t *)key;
}

/* Symbolizes pc, which is not in the location cache, and adds its
 * Location with one Line per frame (Go's emitLocation). */
static int loc_new(struct pprof_builder *b, uint64_t pc, uint32_t hash,
		   uint32_t *idx)
{
	struct pprof_frame frames[PPROF_MAX_FRAMES];
	struct loc l = { .addr = pc, .line0 = b->lines.n };
	int n = 0, err;

	if (b->symbolize) {
		memset(frames, 0, sizeof(frames));
		n = b->symbolize(b->symbolize_ctx, (uintptr_t)pc, frames,
				 PPROF_MAX_FRAMES);
		if (n < 0)
			return n;
		if (n > PPROF_MAX_FRAMES)
			n = PPROF_MAX_FRAMES;
	}
	if ((err = VEC_RESERVE(b->locs, 1)) < 0 ||
	    (err = VEC_RESERVE(b->lines, (size_t)n)) < 0 ||
	    (err = itab_grow(&b->loctab)) < 0)
		return err;
	l.full = n > 0;
	for (int i = 0; i < n; i++) {
		if ((err = line_add(b, &frames[i], &l.full)) < 0) {
			b->lines.n = l.line0;
			return err;
		}
	}
	l.nline = (size_t)n;
	*idx = (uint32_t)b->locs.n;
	b->locs.v[b->locs.n++] = l;
	itab_put(&b->loctab, hash, *idx);
	return 0;
}

/* ------------------------------------------------------------------------
 * Statics: samples
 * ------------------------------------------------------------------------ */

static int sample_check(const struct pprof_builder *b,
			const uintptr_t *stack, size_t depth, bool leaf_is_pc,
			const int64_t *values, const struct pprof_label *labels,
			size_t nlabels)
{
	if (!b || (!stack && depth > 0) || !values ||
	    (!labels && nlabels > 0) || b->types.n == 0)
		return -EINVAL;
	/* A return address of 0 would wrap to 2^64 - 1 below. */
	for (size_t i = leaf_is_pc ? 1 : 0; i < depth; i++)
		if (stack[i] == 0)
			return -EINVAL;
	for (size_t i = 0; i < nlabels; i++)
		if (!labels[i].key)
			return -EINVAL;
	return 0;
}

/*
 * The step from stack addresses to Location ids (Go's appendLocsForStack),
 * where profile bugs live.
 *
 * A caller's stack entry is a return address: the instruction after the
 * call.  Take main_task calling step() on line 12 of demo.c:
 *
 *	demo.c:12  0x401130  e8 4b 00 00 00    call  step
 *	demo.c:13  0x401135  83 45 fc 01       addl  $1, -4(%rbp)
 *
 * The unwinder finds 0x401135 in step's frame.  Symbolized as is, that is
 * line 13, the line after the call; and when the call is the last
 * instruction of its function (a noreturn callee), it is the first byte of
 * the next function, another name altogether.  0x401135 - 1 = 0x401134 is
 * inside the call: main_task, line 12.  So the Location carries, and the
 * symbolizer sees, 0x401134.  That is what Go writes (runtime.Frame.PC of a
 * caller is its return PC - 1), and pprof, addr2line and the symbol
 * endpoint all resolve 0x401134 to line 12.
 *
 * A CPU sample's leaf differs: the interrupted PC, say 0x401200, is the
 * instruction that was running, and 0x4011ff would be the one before it.
 * Go stores PC + 1 for it so that the same - 1 gives the PC back; here
 * leaf_is_pc says so and the leaf is taken unchanged.  The cache is keyed
 * by the recorded address: a return address minus one is never the start
 * of an instruction, an exact PC always is, so the two cannot collide.
 */
static int stack_locate(struct pprof_builder *b, const uintptr_t *stack,
			size_t depth, bool leaf_is_pc, uint64_t *ids)
{
	for (size_t i = 0; i < depth; i++) {
		uint64_t pc = stack[i];
		uint32_t hash, idx;
		int err;

		if (i > 0 || !leaf_is_pc)
			pc -= 1;
		hash = hash_u64(pc);
		if (!itab_find(&b->loctab, hash, loc_eq, b, &pc, &idx) &&
		    (err = loc_new(b, pc, hash, &idx)) < 0)
			return err;
		ids[i] = (uint64_t)idx + 1;	/* Location.id */
	}
	return 0;
}

/* Interns the labels into out[0..n) (room reserved).  A string label is
 * {key, str}; a numeric one {key, num, num_unit}, as Go's pbLabel. */
static int labels_intern(struct pprof_builder *b,
			 const struct pprof_label *labels, size_t n,
			 struct label *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct pprof_label *l = &labels[i];
		struct label *o = &out[i];
		int err;

		*o = (struct label){ 0 };
		if ((err = str_intern(b, l->key, &o->key)) < 0)
			return err;
		if (l->str)
			err = str_intern(b, l->str, &o->str);
		else if (l->num_unit)
			err = str_intern(b, l->num_unit, &o->unit);
		if (err < 0)
			return err;
		if (!l->str)
			o->num = l->num;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Statics: encoding, one helper per message (Go's pbSample, pbLabel, ...)
 * ------------------------------------------------------------------------ */

/* n message pointers followed by the n zeroed messages, in one block
 * (never NULL for n == 0, so that NULL always means ENOMEM). */
static void *msg_block(size_t n, size_t size)
{
	if (n > SIZE_MAX / (sizeof(void *) + size) - 1)
		return NULL;
	return pp_calloc(n + 1, sizeof(void *) + size);
}

/* ValueType {type = 1: int64 string index, unit = 2: int64 string index}. */
static void enc_value_type(Perftools__Profiles__ValueType *m,
			   const struct value_type *vt)
{
	perftools__profiles__value_type__init(m);
	m->type = vt->type;
	m->unit = vt->unit;
}

static int enc_types(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->types.n;
	Perftools__Profiles__ValueType *m;

	e->types = msg_block(n, sizeof(*m));
	if (!e->types)
		return -ENOMEM;
	m = (Perftools__Profiles__ValueType *)(e->types + n);
	for (size_t i = 0; i < n; i++) {
		e->types[i] = &m[i];
		enc_value_type(&m[i], &b->types.v[i]);
	}
	return 0;
}

/* Label {key = 1: int64 string index, str = 2: int64 string index,
 * num = 3: int64, num_unit = 4: int64 string index}; zeros are left out. */
static int enc_labels(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->labs.n;
	Perftools__Profiles__Label *m;

	e->labels = msg_block(n, sizeof(*m));
	if (!e->labels)
		return -ENOMEM;
	m = (Perftools__Profiles__Label *)(e->labels + n);
	for (size_t i = 0; i < n; i++) {
		const struct label *l = &b->labs.v[i];

		perftools__profiles__label__init(&m[i]);
		m[i].key = l->key;
		m[i].str = l->str;
		m[i].num = l->num;
		m[i].num_unit = l->unit;
		e->labels[i] = &m[i];
	}
	return 0;
}

/* Sample {location_id = 1: repeated uint64, leaf first; value = 2:
 * repeated int64, one per sample_type; label = 3: repeated Label}. */
static void enc_sample(const struct pprof_builder *b, const struct enc *e,
		       const struct sample *s, Perftools__Profiles__Sample *m)
{
	perftools__profiles__sample__init(m);
	m->n_location_id = s->nid;
	m->location_id = &b->ids.v[s->id0];
	m->n_value = b->types.n;
	m->value = &b->vals.v[s->val0];
	m->n_label = s->nlab;
	m->label = &e->labels[s->lab0];
}

static int enc_samples(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->samples.n;
	Perftools__Profiles__Sample *m;

	e->samples = msg_block(n, sizeof(*m));
	if (!e->samples)
		return -ENOMEM;
	m = (Perftools__Profiles__Sample *)(e->samples + n);
	for (size_t i = 0; i < n; i++) {
		e->samples[i] = &m[i];
		enc_sample(b, e, &b->samples.v[i], &m[i]);
	}
	return 0;
}

/* Line {function_id = 1: uint64, line = 2: int64}. */
static int enc_lines(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->lines.n;
	Perftools__Profiles__Line *m;

	e->lines = msg_block(n, sizeof(*m));
	if (!e->lines)
		return -ENOMEM;
	m = (Perftools__Profiles__Line *)(e->lines + n);
	for (size_t i = 0; i < n; i++) {
		perftools__profiles__line__init(&m[i]);
		m[i].function_id = (uint64_t)b->lines.v[i].func + 1;
		m[i].line = b->lines.v[i].line;
		e->lines[i] = &m[i];
	}
	return 0;
}

/* Function {id = 1: uint64, name = 2, system_name = 3, filename = 4: int64
 * string indices, start_line = 5: int64}.  system_name = name, as Go. */
static int enc_functions(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->funcs.n;
	Perftools__Profiles__Function *m;

	e->funcs = msg_block(n, sizeof(*m));
	if (!e->funcs)
		return -ENOMEM;
	m = (Perftools__Profiles__Function *)(e->funcs + n);
	for (size_t i = 0; i < n; i++) {
		const struct func *f = &b->funcs.v[i];

		perftools__profiles__function__init(&m[i]);
		m[i].id = i + 1;
		m[i].name = f->name;
		m[i].system_name = f->name;
		m[i].filename = f->file;
		m[i].start_line = f->start_line;
		e->funcs[i] = &m[i];
	}
	return 0;
}

/* The id of the first mapping holding addr, 0 if none; with no mapping
 * added, Go's fake mapping 1 holds everything. */
static uint64_t mapping_find(const struct pprof_builder *b, uint64_t addr)
{
	if (b->maps.n == 0)
		return 1;
	for (size_t i = 0; i < b->maps.n; i++)
		if (b->maps.v[i].start <= addr && addr < b->maps.v[i].limit)
			return i + 1;
	return 0;
}

/* Location {id = 1: uint64, mapping_id = 2: uint64, address = 3: uint64,
 * line = 4: repeated Line, innermost first}.  Also folds the location's
 * symbolization into its mapping's flags (Go's emitLocation). */
static void enc_location(const struct pprof_builder *b, struct enc *e,
			 size_t i, Perftools__Profiles__Location *m)
{
	const struct loc *l = &b->locs.v[i];

	perftools__profiles__location__init(m);
	m->id = i + 1;
	m->address = l->addr;
	m->mapping_id = mapping_find(b, l->addr);
	m->n_line = l->nline;
	m->line = &e->lines[l->line0];
	if (m->mapping_id != 0)
		e->mapflags[m->mapping_id - 1] |=
			MAP_TRIED | (l->full ? 0 : MAP_FAILED);
}

static int enc_locations(const struct pprof_builder *b, struct enc *e)
{
	size_t n = b->locs.n;
	Perftools__Profiles__Location *m;

	e->locs = msg_block(n, sizeof(*m));
	if (!e->locs)
		return -ENOMEM;
	m = (Perftools__Profiles__Location *)(e->locs + n);
	for (size_t i = 0; i < n; i++) {
		e->locs[i] = &m[i];
		enc_location(b, e, i, &m[i]);
	}
	return 0;
}

/* Mapping {id = 1, memory_start = 2, memory_limit = 3, file_offset = 4:
 * uint64; filename = 5, build_id = 6: int64 string indices;
 * has_functions = 7: bool}.  has_filenames, has_line_numbers and
 * has_inline_frames (8-10) stay false, as in Go 1.19. */
static int enc_mappings(const struct pprof_builder *b, struct enc *e)
{
	Perftools__Profiles__Mapping *m;

	e->maps = msg_block(e->nmaps, sizeof(*m));
	if (!e->maps)
		return -ENOMEM;
	m = (Perftools__Profiles__Mapping *)(e->maps + e->nmaps);
	for (size_t i = 0; i < e->nmaps; i++) {
		perftools__profiles__mapping__init(&m[i]);
		m[i].id = i + 1;
		if (i < b->maps.n) {
			m[i].memory_start = b->maps.v[i].start;
			m[i].memory_limit = b->maps.v[i].limit;
			m[i].file_offset = b->maps.v[i].offset;
			m[i].filename = b->maps.v[i].file;
			m[i].build_id = b->maps.v[i].build_id;
		}
		m[i].has_functions = e->mapflags[i] == MAP_TRIED;
		e->maps[i] = &m[i];
	}
	return 0;
}

/* Profile: the fields 1-14 of profile.proto; 7 and 8 (drop_frames,
 * keep_frames) stay unset, as in Go. */
static void enc_profile(const struct pprof_builder *b, struct enc *e)
{
	Perftools__Profiles__Profile *p = &e->prof;

	perftools__profiles__profile__init(p);
	p->n_sample_type = b->types.n;
	p->sample_type = e->types;
	p->n_sample = b->samples.n;
	p->sample = e->samples;
	p->n_mapping = e->nmaps;
	p->mapping = e->maps;
	p->n_location = b->locs.n;
	p->location = e->locs;
	p->n_function = b->funcs.n;
	p->function = e->funcs;
	p->n_string_table = b->strs.n;
	p->string_table = b->strs.v;
	p->time_nanos = b->time_nanos;
	p->duration_nanos = b->duration_nanos;
	if (b->has_period) {
		enc_value_type(&e->period_type, &b->period_type);
		p->period_type = &e->period_type;
		p->period = b->period;
	}
	p->n_comment = b->comments.n;
	p->comment = b->comments.v;
	p->default_sample_type = b->default_type;
}

/* Builds every message; labels before samples and lines before locations,
 * which point into them, and locations before mappings, whose
 * has_functions they decide. */
static int enc_build(const struct pprof_builder *b, struct enc *e)
{
	int err;

	e->nmaps = b->maps.n > 0 ? b->maps.n : 1;
	e->mapflags = pp_calloc(e->nmaps, 1);
	if (!e->mapflags)
		return -ENOMEM;
	if ((err = enc_types(b, e)) < 0 || (err = enc_labels(b, e)) < 0 ||
	    (err = enc_samples(b, e)) < 0 || (err = enc_lines(b, e)) < 0 ||
	    (err = enc_functions(b, e)) < 0 ||
	    (err = enc_locations(b, e)) < 0 || (err = enc_mappings(b, e)) < 0)
		return err;
	enc_profile(b, e);
	return 0;
}

static void enc_free(struct enc *e)
{
	free(e->mapflags);
	free(e->types);
	free(e->labels);
	free(e->samples);
	free(e->lines);
	free(e->locs);
	free(e->funcs);
	free(e->maps);
}

/* ------------------------------------------------------------------------
 * Statics: the gzip sink
 * ------------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Hands n compressed bytes to the file or the memory buffer. */
static void sink_emit(struct sink *s, const uint8_t *p, size_t n)
{
	if (n == 0 || s->err)
		return;
	if (s->fd >= 0) {
		s->err = write_all(s->fd, p, n);
		return;
	}
	if (n > s->cap - s->len) {
		size_t ncap = s->cap ? s->cap : sizeof(s->out);
		uint8_t *mem;

		while (ncap - s->len < n && ncap <= SIZE_MAX / 2)
			ncap *= 2;
		mem = ncap - s->len >= n ? pp_realloc(s->mem, ncap) : NULL;
		if (!mem) {
			s->err = -ENOMEM;
			return;
		}
		s->mem = mem;
		s->cap = ncap;
	}
	memcpy(s->mem + s->len, p, n);
	s->len += n;
}

/* Runs deflate over p[0..n) until it has taken all of it (Z_NO_FLUSH) or
 * finished the stream (Z_FINISH), emitting each full output chunk. */
static void sink_deflate(struct sink *s, const uint8_t *p, size_t n,
			 int flush)
{
	int rc;

	if (s->err)
		return;
	if (n > UINT_MAX) {
		s->err = -EOVERFLOW;
		return;
	}
	s->zs.next_in = p;
	s->zs.avail_in = (uInt)n;
	do {
		s->zs.next_out = s->out;
		s->zs.avail_out = sizeof(s->out);
		rc = deflate(&s->zs, flush);
		if (rc == Z_STREAM_ERROR) {
			s->err = -EINVAL;
			return;
		}
		sink_emit(s, s->out, sizeof(s->out) - s->zs.avail_out);
	} while (!s->err && (s->zs.avail_out == 0 ||
			     (flush == Z_FINISH && rc != Z_STREAM_END)));
}

/* ProtobufCBuffer.append: protobuf-c hands over the serialized profile
 * a few bytes at a time; gather them so deflate sees 4 KiB at once. */
static void sink_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
	struct sink *s = (struct sink *)buf;

	if (len > sizeof(s->in) - s->nin) {
		sink_deflate(s, s->in, s->nin, Z_NO_FLUSH);
		s->nin = 0;
	}
	if (len >= sizeof(s->in)) {
		sink_deflate(s, data, len, Z_NO_FLUSH);
		return;
	}
	memcpy(s->in + s->nin, data, len);
	s->nin += len;
}

static voidpf sink_zalloc(voidpf opaque, uInt items, uInt size)
{
	(void)opaque;
	return pp_calloc(items, size);
}

static void sink_zfree(voidpf opaque, voidpf p)
{
	(void)opaque;
	free(p);
}

static struct sink *sink_new(int fd)
{
	struct sink *s = pp_calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->base.append = sink_append;
	s->fd = fd;
	return s;
}

/* Starts the gzip member: level 1 (Go's gzip.BestSpeed), gzip framing
 * (window bits 15 + 16), header OS byte 255 and no name or mtime. */
static int sink_open(struct sink *s)
{
	int rc;

	s->zs.zalloc = sink_zalloc;
	s->zs.zfree = sink_zfree;
	rc = deflateInit2(&s->zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
			  Z_DEFAULT_STRATEGY);
	if (rc != Z_OK)
		return rc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
	s->open = true;
	s->gzh.os = 255;
	if (deflateSetHeader(&s->zs, &s->gzh) != Z_OK)
		return -EINVAL;
	return 0;
}

/* Flushes what is staged, finishes the member and frees deflate's state. */
static int sink_close(struct sink *s)
{
	if (s->open) {
		sink_deflate(s, s->in, s->nin, Z_FINISH);
		s->nin = 0;
		deflateEnd(&s->zs);
		s->open = false;
	}
	return s->err;
}

/* Serializes b into s: protobuf-c packs, the sink gzips and emits. */
static int encode(const struct pprof_builder *b, struct sink *s)
{
	struct enc e;
	int err;

	memset(&e, 0, sizeof(e));
	err = enc_build(b, &e);
	if (err == 0)
		err = sink_open(s);
	if (err == 0)
		protobuf_c_message_pack_to_buffer(&e.prof.base, &s->base);
	if (s->open) {
		int cerr = sink_close(s);
		if (err == 0)
			err = cerr;
	}
	enc_free(&e);
	return err;
}

/* ------------------------------------------------------------------------
 * Debug: allocation with fault injection (STYLE.md rule 12)
 * ------------------------------------------------------------------------ */

#ifdef COPPER_TESTING
/* Allocations left until the failing one; 0: none fails.  Tests only,
 * single-threaded. */
static unsigned long fail_countdown;

unsigned long pprof_testing_fail_alloc(unsigned long nth)
{
	unsigned long left = fail_countdown;

	fail_countdown = nth;
	return left;
}

static bool alloc_fails(void)
{
	return fail_countdown != 0 && --fail_countdown == 0;
}
#else
static bool alloc_fails(void)
{
	return false;
}
#endif /* COPPER_TESTING */

static void *pp_malloc(size_t n)
{
	return alloc_fails() ? NULL : malloc(n);
}

static void *pp_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : calloc(n, size);
}

static void *pp_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : realloc(p, n);
}
