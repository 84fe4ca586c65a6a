/* SPDX-License-Identifier: MIT */
/*
 * delta.c - the difference of two profiles of one kind, as Go's
 * net/http/pprof serves `?seconds=N` (pprof-formats.md 1.5) and
 * godeltaprof serves delta_heap, delta_mutex and delta_block: the later
 * profile minus the earlier one, samples matched by stack and labels.
 *
 * How it works.  Both gzipped profiles are inflated and unpacked with
 * protobuf-c.  Each sample gets a key: the addresses of its locations
 * (not the location ids, which each profile numbers on its own) and its
 * labels as strings.  The earlier profile's samples go into a hash
 * table by key; every sample of the later one subtracts its match; a
 * sample whose values all come to zero is dropped.  A sample only in the
 * earlier profile (fewer goroutines now, memory freed) is added with
 * negated values when all its addresses exist in the later profile's
 * locations, as Go's Merge would show it; otherwise it is left out (it
 * can only happen for a stack that vanished between the two, for
 * goroutine and heap).  The later profile, with its samples replaced,
 * time_nanos of its own and duration_nanos of the interval, is packed
 * and gzipped again.
 *
 * keep_inuse (godeltaprof's heap): the inuse_* values stay as the later
 * profile has them; only alloc_* are differences.
 *
 * Rejected: subtracting inside the profilers (each keeps one cumulative
 * table, and a delta needs the state at the request's start, which only
 * the asker knows); Go's full Merge (mappings, functions and locations
 * united across both profiles: the later profile already holds every
 * stack a cumulative profile can have).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "profile.pb-c.h"
#include "profiler.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Label Label;

static int inflate_all(const void *in, size_t len, uint8_t **out, size_t *olen)
{
	z_stream zs = {0};
	size_t cap = len * 4 + 4096, n = 0;
	uint8_t *buf = malloc(cap);
	int r;

	if (!buf)
		return -ENOMEM;
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		free(buf);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	do {
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				r = Z_MEM_ERROR;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		zs.next_out = buf + n;
		zs.avail_out = (uInt)(cap - n);
		r = inflate(&zs, Z_NO_FLUSH);
		n = cap - zs.avail_out;
	} while (r == Z_OK);
	inflateEnd(&zs);
	if (r != Z_STREAM_END) {
		free(buf);
		return r == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
	}
	*out = buf;
	*olen = n;
	return 0;
}

static int gzip_all(const uint8_t *in, size_t len, char **out, size_t *olen)
{
	z_stream zs = {0};
	size_t cap = deflateBound(&zs, len) + 64;
	char *buf;

	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS,
			 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	cap = deflateBound(&zs, len) + 64;
	if (!(buf = malloc(cap))) {
		deflateEnd(&zs);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)buf;
	zs.avail_out = (uInt)cap;
	int r = deflate(&zs, Z_FINISH);
	*olen = cap - zs.avail_out;
	deflateEnd(&zs);
	if (r != Z_STREAM_END) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	return 0;
}

static Profile *unpack_gz(const void *gz, size_t len)
{
	uint8_t *raw;
	size_t n;
	Profile *p;

	if (inflate_all(gz, len, &raw, &n) < 0)
		return NULL;
	p = perftools__profiles__profile__unpack(NULL, n, raw);
	free(raw);
	return p;
}

/* A location id's address (ids are dense from 1 in our profiles, but a
 * search keeps this right for any). */
static uint64_t loc_addr(const Profile *p, uint64_t id)
{
	if (id >= 1 && id <= p->n_location && p->location[id - 1]->id == id)
		return p->location[id - 1]->address;
	for (size_t i = 0; i < p->n_location; i++)
		if (p->location[i]->id == id)
			return p->location[i]->address;
	return 0;
}

static const char *str_at(const Profile *p, int64_t i)
{
	return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "";
}

/* The key of a sample: addresses, then labels, as one byte string. */
static char *sample_key(const Profile *p, const Sample *s, size_t *len)
{
	size_t cap = s->n_location_id * 8 + 16, n = 0;
	for (size_t i = 0; i < s->n_label; i++)
		cap += strlen(str_at(p, s->label[i]->key)) +
		       strlen(str_at(p, s->label[i]->str)) + 24;
	char *k = malloc(cap);
	if (!k)
		return NULL;
	for (size_t i = 0; i < s->n_location_id; i++) {
		uint64_t a = loc_addr(p, s->location_id[i]);
		memcpy(k + n, &a, 8);
		n += 8;
	}
	for (size_t i = 0; i < s->n_label; i++) {
		const Label *l = s->label[i];
		const char *key = str_at(p, l->key), *str = str_at(p, l->str);
		size_t kl = strlen(key) + 1, sl = strlen(str) + 1;
		memcpy(k + n, key, kl);
		n += kl;
		memcpy(k + n, str, sl);
		n += sl;
		memcpy(k + n, &l->num, 8);
		n += 8;
	}
	*len = n;
	return k;
}

struct entry {
	char *key;
	size_t len;
	size_t index;         /* the earlier profile's sample */
	bool used;
};

static uint64_t key_hash(const char *k, size_t n);

/* The slot of key k in the table (cap a power of two): its entry, or the
 * empty slot where it would go. */
static struct entry *table_slot(struct entry *tab, size_t cap, const char *k,
				size_t len)
{
	size_t h = key_hash(k, len) & (cap - 1);

	while (tab[h].key &&
	       !(tab[h].len == len && memcmp(tab[h].key, k, len) == 0))
		h = (h + 1) & (cap - 1);
	return &tab[h];
}

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
	return h;
}

/* The string's index in p, appended (to a table of our own) if absent. */
static int64_t str_index(Profile *p, const char *s, char ***own, size_t *nown)
{
	for (size_t i = 0; i < p->n_string_table; i++)
		if (strcmp(p->string_table[i], s) == 0)
			return (int64_t)i;
	char **t = malloc((p->n_string_table + 1) * sizeof(*t));
	if (!t)
		return 0;
	memcpy(t, p->string_table, p->n_string_table * sizeof(*t));
	t[p->n_string_table] = (char *)s;
	if (*own)
		free(*own);
	*own = t;
	(*nown)++;
	p->string_table = t;
	return (int64_t)p->n_string_table++;
}

int pprof_delta(const void *before, size_t before_len, const void *after,
		size_t after_len, int64_t duration_ns, bool keep_inuse,
		char **out, size_t *out_len)
{
	Profile *p0 = unpack_gz(before, before_len);
	Profile *p1 = unpack_gz(after, after_len);
	struct entry *tab = NULL;
	size_t cap = 0, nsamp = 0;
	Sample **samples = NULL, *extra = NULL;
	uint64_t *extra_locs = NULL;
	int64_t *extra_vals = NULL;
	Label *extra_labels = NULL;
	Label **extra_label_ptrs = NULL;
	char **own_strings = NULL;
	size_t nown = 0;
	Sample **orig_samples = NULL;
	size_t orig_n = 0;
	char **orig_strings = NULL;
	size_t orig_nstr = 0;
	bool *keep_type = NULL;
	int err = -ENOMEM;

	*out = NULL;
	*out_len = 0;
	if (!p0 || !p1) {
		err = -EINVAL;
		goto out;
	}
	if (p0->n_sample_type != p1->n_sample_type) {
		err = -EINVAL;
		goto out;
	}
	orig_samples = p1->sample;
	orig_n = p1->n_sample;
	orig_strings = p1->string_table;
	orig_nstr = p1->n_string_table;
	if (!(keep_type = calloc(p1->n_sample_type + 1, sizeof(bool))))
		goto out;
	for (size_t i = 0; i < p1->n_sample_type && keep_inuse; i++)
		keep_type[i] = strncmp(str_at(p1, p1->sample_type[i]->type),
				       "inuse_", 6) == 0;

	/* The earlier samples by key. */
	for (cap = 16; cap < p0->n_sample * 2; cap *= 2)
		;
	if (!(tab = calloc(cap, sizeof(*tab))))
		goto out;
	for (size_t i = 0; i < p0->n_sample; i++) {
		size_t len;
		char *k = sample_key(p0, p0->sample[i], &len);
		if (!k)
			goto out;
		struct entry *slot = table_slot(tab, cap, k, len);
		if (slot->key) {
			free(k); /* the same stack twice: keep the first */
			continue;
		}
		*slot = (struct entry){.key = k, .len = len, .index = i};
	}

	if (!(samples = calloc(p1->n_sample + p0->n_sample + 1,
			       sizeof(*samples))))
		goto out;
	for (size_t i = 0; i < p1->n_sample; i++) {
		Sample *s = p1->sample[i];
		size_t len;
		char *k = sample_key(p1, s, &len);
		bool nonzero = false;
		if (!k)
			goto out;
		struct entry *slot = table_slot(tab, cap, k, len);
		free(k);
		const Sample *o = slot->key ? p0->sample[slot->index] : NULL;
		if (slot->key)
			slot->used = true;
		for (size_t v = 0; v < s->n_value; v++) {
			if (o && v < o->n_value && !keep_type[v])
				s->value[v] -= o->value[v];
			nonzero |= s->value[v] != 0;
		}
		if (nonzero)
			samples[nsamp++] = s;
	}

	/* Earlier only: negated, when their stack can be written. */
	size_t nextra = 0, nlocs = 0, nlabels = 0;
	for (size_t i = 0; i < cap; i++) {
		if (!tab[i].key || tab[i].used)
			continue;
		nextra++;
		nlocs += p0->sample[tab[i].index]->n_location_id;
		nlabels += p0->sample[tab[i].index]->n_label;
	}
	extra = calloc(nextra + 1, sizeof(*extra));
	extra_locs = calloc(nlocs + 1, sizeof(*extra_locs));
	extra_vals = calloc(nextra * p1->n_sample_type + 1, sizeof(*extra_vals));
	extra_labels = calloc(nlabels + 1, sizeof(*extra_labels));
	extra_label_ptrs = calloc(nlabels + 1, sizeof(*extra_label_ptrs));
	if (!extra || !extra_locs || !extra_vals || !extra_labels ||
	    !extra_label_ptrs)
		goto out;
	size_t li = 0, vi = 0, lb = 0, ne = 0;
	for (size_t i = 0; i < cap; i++) {
		if (!tab[i].key || tab[i].used)
			continue;
		const Sample *o = p0->sample[tab[i].index];
		Sample *s = &extra[ne];
		bool ok = true, nonzero = false;
		perftools__profiles__sample__init(s);
		s->location_id = extra_locs + li;
		for (size_t j = 0; j < o->n_location_id && ok; j++) {
			uint64_t a = loc_addr(p0, o->location_id[j]);
			uint64_t id = 0;
			for (size_t m = 0; m < p1->n_location && !id; m++)
				if (p1->location[m]->address == a)
					id = p1->location[m]->id;
			ok = id != 0;
			s->location_id[s->n_location_id++] = id;
		}
		if (!ok)
			continue;
		s->value = extra_vals + vi;
		s->n_value = p1->n_sample_type;
		for (size_t v = 0; v < s->n_value; v++) {
			s->value[v] = keep_type[v] || v >= o->n_value ? 0
								      : -o->value[v];
			nonzero |= s->value[v] != 0;
		}
		if (!nonzero)
			continue;
		s->label = extra_label_ptrs + lb;
		for (size_t j = 0; j < o->n_label; j++) {
			Label *l = &extra_labels[lb + j];
			*l = *o->label[j];
			l->key = str_index(p1, str_at(p0, o->label[j]->key),
					   &own_strings, &nown);
			if (o->label[j]->str)
				l->str = str_index(p1, str_at(p0, o->label[j]->str),
						   &own_strings, &nown);
			if (o->label[j]->num_unit)
				l->num_unit = str_index(
					p1, str_at(p0, o->label[j]->num_unit),
					&own_strings, &nown);
			s->label[j] = l;
		}
		s->n_label = o->n_label;
		li += o->n_location_id;
		vi += s->n_value;
		lb += o->n_label;
		samples[nsamp++] = s;
		ne++;
	}

	p1->sample = samples;
	p1->n_sample = nsamp;
	p1->duration_nanos = duration_ns;
	size_t packed_len = perftools__profiles__profile__get_packed_size(p1);
	uint8_t *packed = malloc(packed_len + 1);
	if (packed) {
		perftools__profiles__profile__pack(p1, packed);
		err = gzip_all(packed, packed_len, out, out_len);
		free(packed);
	}
out:
	if (p1) {
		p1->sample = orig_samples;
		p1->n_sample = orig_n;
		p1->string_table = orig_strings;
		p1->n_string_table = orig_nstr;
	}
	for (size_t i = 0; tab && i < cap; i++)
		free(tab[i].key);
	free(tab);
	free(samples);
	free(extra);
	free(extra_locs);
	free(extra_vals);
	free(extra_labels);
	free(extra_label_ptrs);
	free(own_strings);
	free(keep_type);
	if (p0)
		perftools__profiles__profile__free_unpacked(p0, NULL);
	if (p1)
		perftools__profiles__profile__free_unpacked(p1, NULL);
	return err;
}
