/* SPDX-License-Identifier: MIT */
/*
 * test_pprof.c - tests of profiler/pprof.c: profiles built with a fake
 * symbolizer, gunzipped with zlib, decoded with the protobuf-c code
 * generated from profiler/profile.proto, and read by `go tool pprof`.
 *
 * Scenario groups:
 *   1. Round trip      a CPU-style profile with two sample types, three
 *                      mappings, shared stacks, inlined frames, string and
 *                      numeric labels and comments decodes to exactly what
 *                      went in: string_table[0] == "" and no duplicates,
 *                      ids from 1, locations and functions de-duplicated,
 *                      Location.address = return address - 1 for callers
 *                      and the exact PC for a CPU leaf, mapping ids and
 *                      has_functions as Go computes it, values, labels.
 *   2. Container       gzip magic, Go's header (no mtime, OS 255); write()
 *                      and encode() give the same bytes.
 *   3. Tables          a function name in two files is two Functions; no
 *                      mapping gives Go's fake mapping; an address in no
 *                      mapping has mapping_id 0; no symbolizer leaves
 *                      addresses only; many distinct addresses grow the
 *                      caches and stay de-duplicated.
 *   4. go tool pprof   -raw and -top on a written .pb.gz show the sample
 *                      counts and the function names (skipped without go).
 *   5. Errors          NULL and inconsistent arguments give -EINVAL; a
 *                      closed fd, /dev/full and a pipe with no reader give
 *                      -EBADF, -ENOSPC, -EPIPE; a symbolizer's error comes
 *                      back; every allocation failure gives -ENOMEM and
 *                      leaves a builder that still writes a valid profile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "profiler/pprof.h"
#include "profiler/profile.pb-c.h"

typedef Perftools__Profiles__Profile Profile;

/* ------------------------------------------------------------------------
 * The fake program: a demo binary, libc, a vdso
 * ---------------------------------------------------------------------- */

#define DEMO_START 0x400000u
#define DEMO_LIMIT 0x500000u
#define LIBC_START 0x7f0000000000u
#define LIBC_LIMIT 0x7f0000100000u
#define VDSO_START 0x7fff00000000u
#define VDSO_LIMIT 0x7fff00002000u
#define ADDR_EIO   0x4dead0u	/* the symbolizer fails with -EIO here */

/* A function of the fake binary: [start, start + 0x100), one source line
 * per 16 bytes from start_line on. */
struct fake_func {
	uintptr_t start;
	const char *name;
	const char *file;
	int64_t start_line;
};

static const struct fake_func fake_funcs[] = {
	{ 0x401000, "main_task", "demo.c", 10 },
	{ 0x401100, "step",      "demo.c", 30 },
	{ 0x401200, "leaf_work", "demo.c", 50 },
	{ 0x402000, "init",      "a.c",    70 },
	{ 0x402100, "init",      "b.c",    90 },
};

/* What the symbolizer was asked, for the once-per-address checks. */
struct fake_sym {
	int calls;		/* number of calls */
	uintptr_t asked[64];	/* the first 64 addresses asked, in order */
};

static int64_t fake_line(const struct fake_func *f, uintptr_t pc)
{
	return f->start_line + (int64_t)((pc - f->start) / 16);
}

/* leaf_work's upper half has inlined_helper (demo.h:7) inlined into it. */
static int fake_symbolize(void *ctx, uintptr_t pc, struct pprof_frame *fr,
			  int max)
{
	struct fake_sym *fs = ctx;
	int n = 0;

	if (fs->calls < 64)
		fs->asked[fs->calls] = pc;
	fs->calls++;
	if (pc == ADDR_EIO)
		return -EIO;
	for (size_t i = 0; i < sizeof(fake_funcs) / sizeof(fake_funcs[0]); i++) {
		const struct fake_func *f = &fake_funcs[i];

		if (pc < f->start || pc >= f->start + 0x100)
			continue;
		if (f->start == 0x401200 && pc >= 0x401280 && n < max)
			fr[n++] = (struct pprof_frame){ "inlined_helper",
							"demo.h", 7, 5 };
		if (n < max)
			fr[n++] = (struct pprof_frame){ f->name, f->file,
							fake_line(f, pc),
							f->start_line };
	}
	return n;	/* 0 for libc: unknown */
}

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* Gunzips and decodes a profile; fails the test on any error. */
static Profile *decode(const uint8_t *gz, size_t len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *raw = malloc(cap);
	z_stream zs = { 0 };
	Profile *p;
	int rc;

	assert_non_null(raw);
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)gz;
	zs.avail_in = (uInt)len;
	do {
		if (n == cap) {
			raw = realloc(raw, cap *= 2);
			assert_non_null(raw);
		}
		zs.next_out = raw + n;
		zs.avail_out = (uInt)(cap - n);
		rc = inflate(&zs, Z_NO_FLUSH);
		assert_true(rc == Z_OK || rc == Z_STREAM_END);
		n = cap - zs.avail_out;
	} while (rc != Z_STREAM_END);
	assert_int_equal(zs.avail_in, 0);	/* one gzip member, nothing after */
	inflateEnd(&zs);
	p = perftools__profiles__profile__unpack(NULL, n, raw);
	free(raw);
	assert_non_null(p);
	return p;
}

static Profile *encode_decode(const struct pprof_builder *b)
{
	uint8_t *gz = NULL;
	size_t len = 0;
	Profile *p;

	assert_int_equal(pprof_builder_encode(b, &gz, &len), 0);
	p = decode(gz, len);
	free(gz);
	return p;
}

static const char *str(const Profile *p, int64_t idx)
{
	assert_true(idx >= 0 && (size_t)idx < p->n_string_table);
	return p->string_table[idx];
}

/* What pprof's decoder and CheckValid demand (pprof-formats.md 1.1). */
static void check_valid(const Profile *p)
{
	assert_true(p->n_string_table >= 1);
	assert_string_equal(p->string_table[0], "");
	for (size_t i = 0; i < p->n_string_table; i++)
		for (size_t j = i + 1; j < p->n_string_table; j++)
			assert_string_not_equal(p->string_table[i],
						p->string_table[j]);
	for (size_t i = 0; i < p->n_mapping; i++)
		assert_int_equal(p->mapping[i]->id, i + 1);
	for (size_t i = 0; i < p->n_function; i++)
		assert_int_equal(p->function[i]->id, i + 1);
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];

		assert_int_equal(l->id, i + 1);
		assert_true(l->mapping_id <= p->n_mapping);
		for (size_t j = 0; j < l->n_line; j++)
			assert_true(l->line[j]->function_id >= 1 &&
				    l->line[j]->function_id <= p->n_function);
	}
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];

		assert_int_equal(s->n_value, p->n_sample_type);
		for (size_t j = 0; j < s->n_location_id; j++)
			assert_true(s->location_id[j] >= 1 &&
				    s->location_id[j] <= p->n_location);
	}
}

static const Perftools__Profiles__Function *
line_func(const Profile *p, const Perftools__Profiles__Location *l, size_t i)
{
	assert_true(i < l->n_line);
	return p->function[l->line[i]->function_id - 1];
}

/* Asserts location id's address, mapping and first (or only) frame. */
static void check_loc(const Profile *p, uint64_t id, uint64_t addr,
		      uint64_t mapping_id, const char *func, int64_t line)
{
	const Perftools__Profiles__Location *l = p->location[id - 1];

	assert_int_equal(l->id, id);
	assert_int_equal(l->address, addr);
	assert_int_equal(l->mapping_id, mapping_id);
	if (!func) {
		assert_int_equal(l->n_line, 0);
		return;
	}
	assert_int_equal(l->n_line, 1);
	assert_string_equal(str(p, line_func(p, l, 0)->name), func);
	assert_int_equal(l->line[0]->line, line);
}

/* The scenario of group 1.  Return addresses sit one byte past a 16-byte
 * line boundary, so that "- 1" changes the line as a real call would. */
static const uintptr_t stack1[] = { 0x401210, 0x401140, 0x401060 };
static const uintptr_t stack2[] = { 0x401290, 0x401140, 0x401060 };
static const uintptr_t stack3[] = { LIBC_START + 0x124, 0x401060 };

static int build_demo(struct pprof_builder *b, struct fake_sym *fs)
{
	static const struct pprof_label l1[] = {
		{ .key = "worker", .str = "ingest" },
	};
	static const struct pprof_label l2[] = {
		{ .key = "worker", .str = "ingest" },
		{ .key = "bytes", .num = 64, .num_unit = "bytes" },
	};
	int err;

	pprof_symbolizer_set(b, fake_symbolize, fs);
	pprof_time_set(b, 1700000000000000000, 1000000000);
	if ((err = pprof_sample_type_add(b, "samples", "count")) < 0 ||
	    (err = pprof_sample_type_add(b, "cpu", "nanoseconds")) < 0 ||
	    (err = pprof_period_set(b, "cpu", "nanoseconds", 10000000)) < 0 ||
	    (err = pprof_default_sample_type_set(b, "cpu")) < 0 ||
	    (err = pprof_comment_add(b, "copper test profile")) < 0 ||
	    (err = pprof_comment_add(b, "second comment")) < 0 ||
	    (err = pprof_mapping_add(b, DEMO_START, DEMO_LIMIT, 0x1000,
				     "/usr/bin/demo", "0123abcd")) < 0 ||
	    (err = pprof_mapping_add(b, LIBC_START, LIBC_LIMIT, 0,
				     "/lib/libc.so.6", NULL)) < 0 ||
	    (err = pprof_mapping_add(b, VDSO_START, VDSO_LIMIT, 0,
				     "[vdso]", "")) < 0)
		return err;
	if ((err = pprof_sample_add(b, stack1, 3, true,
				    (int64_t[]){ 1, 10000000 }, l1, 1)) < 0 ||
	    (err = pprof_sample_add(b, stack2, 3, true,
				    (int64_t[]){ 2, 20000000 }, l2, 2)) < 0 ||
	    (err = pprof_sample_add(b, stack3, 2, false,
				    (int64_t[]){ 3, 30000000 }, NULL, 0)) < 0 ||
	    (err = pprof_sample_add(b, NULL, 0, false,
				    (int64_t[]){ 4, 40000000 }, NULL, 0)) < 0)
		return err;
	return 0;
}

static struct pprof_builder *builder_new(void)
{
	int err = 0;
	struct pprof_builder *b = pprof_builder_new(&err);

	assert_non_null(b);
	assert_int_equal(err, 0);
	return b;
}

/* A builder with one count sample type and the demo mapping. */
static struct pprof_builder *builder_count(struct fake_sym *fs)
{
	struct pprof_builder *b = builder_new();

	assert_int_equal(pprof_sample_type_add(b, "goroutine", "count"), 0);
	assert_int_equal(pprof_period_set(b, "goroutine", "count", 1), 0);
	if (fs)
		pprof_symbolizer_set(b, fake_symbolize, fs);
	return b;
}

/* ------------------------------------------------------------------------
 * 1. Round trip
 * ---------------------------------------------------------------------- */

static void test_pprof_roundtrip_header_fields(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	Profile *p;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	p = encode_decode(b);
	check_valid(p);
	assert_int_equal(p->n_sample_type, 2);
	assert_string_equal(str(p, p->sample_type[0]->type), "samples");
	assert_string_equal(str(p, p->sample_type[0]->unit), "count");
	assert_string_equal(str(p, p->sample_type[1]->type), "cpu");
	assert_string_equal(str(p, p->sample_type[1]->unit), "nanoseconds");
	assert_non_null(p->period_type);
	assert_string_equal(str(p, p->period_type->type), "cpu");
	assert_string_equal(str(p, p->period_type->unit), "nanoseconds");
	assert_int_equal(p->period, 10000000);
	assert_string_equal(str(p, p->default_sample_type), "cpu");
	assert_int_equal(p->time_nanos, 1700000000000000000);
	assert_int_equal(p->duration_nanos, 1000000000);
	assert_int_equal(p->n_comment, 2);
	assert_string_equal(str(p, p->comment[0]), "copper test profile");
	assert_string_equal(str(p, p->comment[1]), "second comment");
	assert_int_equal(p->drop_frames, 0);
	assert_int_equal(p->keep_frames, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_roundtrip_locations_deduplicated(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	const Perftools__Profiles__Location *l4;
	Profile *p;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	p = encode_decode(b);
	/* Eight stack entries, five distinct addresses: ids in first use. */
	assert_int_equal(p->n_location, 5);
	check_loc(p, 1, 0x401210, 1, "leaf_work", 51);	/* exact PC */
	check_loc(p, 2, 0x40113f, 1, "step", 33);	/* 0x401140 - 1 */
	check_loc(p, 3, 0x40105f, 1, "main_task", 15);	/* 0x401060 - 1 */
	check_loc(p, 5, LIBC_START + 0x123, 2, NULL, 0); /* unknown: no lines */
	/* Location 4 holds two frames, the inlined callee first. */
	l4 = p->location[3];
	assert_int_equal(l4->address, 0x401290);
	assert_int_equal(l4->mapping_id, 1);
	assert_int_equal(l4->n_line, 2);
	assert_string_equal(str(p, line_func(p, l4, 0)->name), "inlined_helper");
	assert_string_equal(str(p, line_func(p, l4, 0)->filename), "demo.h");
	assert_int_equal(l4->line[0]->line, 7);
	assert_string_equal(str(p, line_func(p, l4, 1)->name), "leaf_work");
	assert_int_equal(l4->line[1]->line, 59);
	/* The symbolizer saw each distinct address once, already adjusted. */
	assert_int_equal(fs.calls, 5);
	assert_int_equal(fs.asked[0], 0x401210);
	assert_int_equal(fs.asked[1], 0x40113f);
	assert_int_equal(fs.asked[2], 0x40105f);
	assert_int_equal(fs.asked[3], 0x401290);
	assert_int_equal(fs.asked[4], LIBC_START + 0x123);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_roundtrip_functions_deduplicated(void **state)
{
	static const char *names[] = { "leaf_work", "step", "main_task",
				       "inlined_helper" };
	static const int64_t starts[] = { 50, 30, 10, 5 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	Profile *p;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	p = encode_decode(b);
	/* Six lines, four functions: leaf_work is shared by two locations. */
	assert_int_equal(p->n_function, 4);
	for (size_t i = 0; i < 4; i++) {
		const Perftools__Profiles__Function *f = p->function[i];

		assert_int_equal(f->id, i + 1);
		assert_string_equal(str(p, f->name), names[i]);
		assert_int_equal(f->system_name, f->name);
		assert_string_equal(str(p, f->filename),
				    i == 3 ? "demo.h" : "demo.c");
		assert_int_equal(f->start_line, starts[i]);
	}
	assert_int_equal(p->location[0]->line[0]->function_id,
			 p->location[3]->line[1]->function_id);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_roundtrip_mappings_has_functions(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	const Perftools__Profiles__Mapping *m;
	Profile *p;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	p = encode_decode(b);
	assert_int_equal(p->n_mapping, 3);
	m = p->mapping[0];	/* every location fully symbolized */
	assert_int_equal(m->memory_start, DEMO_START);
	assert_int_equal(m->memory_limit, DEMO_LIMIT);
	assert_int_equal(m->file_offset, 0x1000);
	assert_string_equal(str(p, m->filename), "/usr/bin/demo");
	assert_string_equal(str(p, m->build_id), "0123abcd");
	assert_true(m->has_functions);
	m = p->mapping[1];	/* a location the symbolizer did not know */
	assert_string_equal(str(p, m->filename), "/lib/libc.so.6");
	assert_int_equal(m->build_id, 0);
	assert_false(m->has_functions);
	m = p->mapping[2];	/* no location at all */
	assert_string_equal(str(p, m->filename), "[vdso]");
	assert_false(m->has_functions);
	for (size_t i = 0; i < 3; i++) {
		assert_false(p->mapping[i]->has_filenames);
		assert_false(p->mapping[i]->has_line_numbers);
		assert_false(p->mapping[i]->has_inline_frames);
	}
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_roundtrip_samples_values_labels(void **state)
{
	static const uint64_t ids[3][3] = { { 1, 2, 3 }, { 4, 2, 3 }, { 5, 3 } };
	static const size_t depth[] = { 3, 3, 2, 0 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	const Perftools__Profiles__Label *l;
	Profile *p;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	p = encode_decode(b);
	assert_int_equal(p->n_sample, 4);
	for (size_t i = 0; i < 4; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];

		assert_int_equal(s->n_value, 2);
		assert_int_equal(s->value[0], (int64_t)i + 1);
		assert_int_equal(s->value[1], ((int64_t)i + 1) * 10000000);
		assert_int_equal(s->n_location_id, depth[i]);
		for (size_t j = 0; j < depth[i]; j++)
			assert_int_equal(s->location_id[j], ids[i][j]);
	}
	assert_int_equal(p->sample[0]->n_label, 1);
	l = p->sample[0]->label[0];
	assert_string_equal(str(p, l->key), "worker");
	assert_string_equal(str(p, l->str), "ingest");
	assert_int_equal(l->num, 0);
	assert_int_equal(l->num_unit, 0);
	assert_int_equal(p->sample[1]->n_label, 2);
	assert_int_equal(p->sample[1]->label[0]->key, l->key);	/* interned */
	l = p->sample[1]->label[1];
	assert_string_equal(str(p, l->key), "bytes");
	assert_int_equal(l->str, 0);
	assert_int_equal(l->num, 64);
	assert_string_equal(str(p, l->num_unit), "bytes");
	assert_int_equal(p->sample[2]->n_label, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_roundtrip_label_empty_string_index_zero(void **state)
{
	static const struct pprof_label l[] = { { .key = "k", .str = "" } };
	static const uintptr_t stk[] = { 0x401010 };
	struct pprof_builder *b = builder_count(NULL);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_sample_add(b, stk, 1, false,
					  (int64_t[]){ 1 }, l, 1), 0);
	p = encode_decode(b);
	/* Go writes the same: index 0, which pprof's decoder drops. */
	assert_int_equal(p->sample[0]->n_label, 1);
	assert_int_equal(p->sample[0]->label[0]->str, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

/* ------------------------------------------------------------------------
 * 2. Container
 * ---------------------------------------------------------------------- */

static void test_pprof_encode_gzip_header_like_go(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	uint8_t *gz = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	assert_int_equal(pprof_builder_encode(b, &gz, &len), 0);
	assert_true(len > 18);
	assert_int_equal(gz[0], 0x1f);
	assert_int_equal(gz[1], 0x8b);
	assert_int_equal(gz[2], 8);	/* deflate */
	assert_int_equal(gz[3], 0);	/* no name, comment, extra */
	assert_int_equal(gz[4] | gz[5] | gz[6] | gz[7], 0);	/* no mtime */
	assert_int_equal(gz[9], 255);	/* OS unknown, as compress/gzip */
	free(gz);
	pprof_builder_free(b);
}

static void test_pprof_write_same_bytes_as_encode(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	char path[] = "/tmp/test_pprof_XXXXXX";
	uint8_t *gz = NULL, *file;
	size_t len = 0;
	int fd;

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	assert_int_equal(pprof_builder_encode(b, &gz, &len), 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pprof_builder_write(b, fd), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)len);
	file = malloc(len);
	assert_int_equal(pread(fd, file, len, 0), (ssize_t)len);
	assert_memory_equal(file, gz, len);
	/* Writing did not symbolize again. */
	assert_int_equal(fs.calls, 5);
	close(fd);
	free(file);
	free(gz);
	pprof_builder_free(b);
}

/* ------------------------------------------------------------------------
 * 3. Tables
 * ---------------------------------------------------------------------- */

static void test_pprof_function_same_name_two_files(void **state)
{
	static const uintptr_t stk[] = { 0x402010, 0x402110 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_count(&fs);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_sample_add(b, stk, 2, true, (int64_t[]){ 1 },
					  NULL, 0), 0);
	p = encode_decode(b);
	assert_int_equal(p->n_function, 2);
	assert_int_equal(p->function[0]->name, p->function[1]->name);
	assert_string_equal(str(p, p->function[0]->filename), "a.c");
	assert_string_equal(str(p, p->function[1]->filename), "b.c");
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_mapping_none_gives_go_fake_mapping(void **state)
{
	static const uintptr_t stk[] = { 0x401210, 0x401060 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_count(&fs);
	const Perftools__Profiles__Mapping *m;
	Profile *p;

	(void)state;
	assert_int_equal(pprof_sample_add(b, stk, 2, true, (int64_t[]){ 1 },
					  NULL, 0), 0);
	p = encode_decode(b);
	check_valid(p);
	assert_int_equal(p->n_mapping, 1);
	m = p->mapping[0];
	assert_int_equal(m->id, 1);
	assert_int_equal(m->memory_start | m->memory_limit | m->file_offset, 0);
	assert_int_equal(m->filename, 0);
	assert_true(m->has_functions);
	assert_int_equal(p->location[0]->mapping_id, 1);
	assert_int_equal(p->location[1]->mapping_id, 1);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_mapping_address_outside_gives_id_zero(void **state)
{
	static const uintptr_t stk[] = { 0x401210, 0x900001 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_count(&fs);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_mapping_add(b, DEMO_START, DEMO_LIMIT, 0,
					   "/usr/bin/demo", NULL), 0);
	assert_int_equal(pprof_sample_add(b, stk, 2, true, (int64_t[]){ 1 },
					  NULL, 0), 0);
	p = encode_decode(b);
	check_loc(p, 1, 0x401210, 1, "leaf_work", 51);
	check_loc(p, 2, 0x900000, 0, NULL, 0);
	assert_true(p->mapping[0]->has_functions);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_symbolizer_none_addresses_only(void **state)
{
	static const uintptr_t stk[] = { 0x401210, 0x401060 };
	struct pprof_builder *b = builder_count(NULL);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_mapping_add(b, DEMO_START, DEMO_LIMIT, 0,
					   "/usr/bin/demo", NULL), 0);
	assert_int_equal(pprof_sample_add(b, stk, 2, false, (int64_t[]){ 1 },
					  NULL, 0), 0);
	p = encode_decode(b);
	check_loc(p, 1, 0x40120f, 1, NULL, 0);
	check_loc(p, 2, 0x40105f, 1, NULL, 0);
	assert_int_equal(p->n_function, 0);
	/* Left for pprof to symbolize through the mapping. */
	assert_false(p->mapping[0]->has_functions);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_many_addresses_grow_caches(void **state)
{
	enum { NSTACKS = 3000 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_count(&fs);
	Profile *p;

	(void)state;
	/* Each stack: a distinct unknown leaf, then one shared caller.  Every
	 * stack is added twice, so half the lookups hit the cache. */
	for (int round = 0; round < 2; round++) {
		for (uintptr_t i = 0; i < NSTACKS; i++) {
			uintptr_t stk[] = { 0x410000 + 4 * i, 0x401060 };

			assert_int_equal(pprof_sample_add(b, stk, 2, true,
							  (int64_t[]){ 1 },
							  NULL, 0), 0);
		}
	}
	assert_int_equal(fs.calls, NSTACKS + 1);
	p = encode_decode(b);
	assert_int_equal(p->n_sample, 2 * NSTACKS);
	assert_int_equal(p->n_location, NSTACKS + 1);
	assert_int_equal(p->n_function, 1);
	for (size_t i = 0; i < NSTACKS; i++) {
		assert_int_equal(p->sample[i]->location_id[0],
				 p->sample[NSTACKS + i]->location_id[0]);
		assert_int_equal(p->sample[i]->location_id[1], 2);
	}
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

/* ------------------------------------------------------------------------
 * 4. go tool pprof
 * ---------------------------------------------------------------------- */

static bool go_available(void)
{
	return system("command -v go >/dev/null 2>&1") == 0;
}

/* Writes a CPU profile of main_task -> step -> leaf_work (7 samples) and
 * main_task -> step (3 samples) to a temporary .pb.gz file. */
static void write_cpu_profile(char *path)
{
	static const uintptr_t hot[] = { 0x401210, 0x401140, 0x401060 };
	static const uintptr_t warm[] = { 0x401120, 0x401060 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	int fd;

	pprof_symbolizer_set(b, fake_symbolize, &fs);
	assert_int_equal(pprof_sample_type_add(b, "samples", "count"), 0);
	assert_int_equal(pprof_sample_type_add(b, "cpu", "nanoseconds"), 0);
	assert_int_equal(pprof_period_set(b, "cpu", "nanoseconds", 10000000), 0);
	assert_int_equal(pprof_mapping_add(b, DEMO_START, DEMO_LIMIT, 0,
					   "/nonexistent/demo", NULL), 0);
	assert_int_equal(pprof_sample_add(b, hot, 3, true,
					  (int64_t[]){ 7, 70000000 }, NULL, 0), 0);
	assert_int_equal(pprof_sample_add(b, warm, 2, true,
					  (int64_t[]){ 3, 30000000 }, NULL, 0), 0);
	fd = mkstemps(path, 6);
	assert_true(fd >= 0);
	assert_int_equal(pprof_builder_write(b, fd), 0);
	assert_int_equal(close(fd), 0);
	pprof_builder_free(b);
}

/* Runs `go tool pprof <flag> <path>` and returns its output (stderr too). */
static char *go_pprof(const char *flag, const char *path)
{
	char cmd[512], *out = calloc(1, 1 << 16);
	size_t n = 0, got;
	FILE *f;

	assert_non_null(out);
	snprintf(cmd, sizeof(cmd), "go tool pprof %s %s 2>&1", flag, path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (n < (1 << 16) - 1 &&
	       (got = fread(out + n, 1, (1 << 16) - 1 - n, f)) > 0)
		n += got;
	if (pclose(f) != 0)
		fail_msg("%s failed:\n%s", cmd, out);
	return out;
}

static void test_pprof_go_tool_raw_reads_profile(void **state)
{
	char path[] = "/tmp/test_pprof_XXXXXX.pb.gz";
	char *out;

	(void)state;
	if (!go_available()) {
		printf("# go is not on PATH: skipping go tool pprof -raw\n");
		skip();
	}
	write_cpu_profile(path);
	out = go_pprof("-raw", path);
	unlink(path);
	assert_non_null(strstr(out, "PeriodType: cpu nanoseconds"));
	assert_non_null(strstr(out, "Period: 10000000"));
	assert_non_null(strstr(out, "samples/count cpu/nanoseconds"));
	assert_non_null(strstr(out, "          7   70000000: 1 2 3 "));
	assert_non_null(strstr(out, "          3   30000000: 4 3 "));
	assert_non_null(strstr(out, "main_task demo.c:15 s=10"));
	assert_non_null(strstr(out, "step demo.c:33 s=30"));
	assert_non_null(strstr(out, "leaf_work demo.c:51 s=50"));
	assert_non_null(strstr(out, "0x40113f M=1"));
	/* [FN]: has_functions, so pprof keeps our names. */
	assert_non_null(strstr(out, "0x400000/0x500000/0x0 /nonexistent/demo  [FN]"));
	free(out);
}

static void test_pprof_go_tool_top_shows_functions(void **state)
{
	char path[] = "/tmp/test_pprof_XXXXXX.pb.gz";
	char *out;

	(void)state;
	if (!go_available()) {
		printf("# go is not on PATH: skipping go tool pprof -top\n");
		skip();
	}
	write_cpu_profile(path);
	out = go_pprof("-top", path);
	unlink(path);
	assert_non_null(strstr(out, "Type: cpu"));
	assert_non_null(strstr(out, "File: demo\n"));
	assert_non_null(strstr(out,
			       "Showing nodes accounting for 100ms, 100% of 100ms total"));
	assert_non_null(strstr(out, "70ms 70.00% 70.00%       70ms 70.00%  leaf_work"));
	assert_non_null(strstr(out, "30ms 30.00%   100%      100ms   100%  step"));
	assert_non_null(strstr(out, "0     0%   100%      100ms   100%  main_task"));
	free(out);
}

/* ------------------------------------------------------------------------
 * 5. Errors
 * ---------------------------------------------------------------------- */

static void test_pprof_args_null_einval(void **state)
{
	static const uintptr_t stk[] = { 0x401060 };
	struct pprof_builder *b = builder_count(NULL);
	const struct pprof_label nokey = { .key = NULL, .str = "v" };
	int64_t v[] = { 1 };
	uint8_t *out;
	size_t len;

	(void)state;
	assert_int_equal(pprof_sample_type_add(NULL, "a", "b"), -EINVAL);
	assert_int_equal(pprof_sample_type_add(b, NULL, "b"), -EINVAL);
	assert_int_equal(pprof_sample_type_add(b, "a", NULL), -EINVAL);
	assert_int_equal(pprof_period_set(NULL, "a", "b", 1), -EINVAL);
	assert_int_equal(pprof_period_set(b, "a", NULL, 1), -EINVAL);
	assert_int_equal(pprof_default_sample_type_set(NULL, "a"), -EINVAL);
	assert_int_equal(pprof_default_sample_type_set(b, NULL), -EINVAL);
	assert_int_equal(pprof_comment_add(NULL, "x"), -EINVAL);
	assert_int_equal(pprof_comment_add(b, NULL), -EINVAL);
	assert_int_equal(pprof_mapping_add(NULL, 0, 1, 0, "f", ""), -EINVAL);
	assert_int_equal(pprof_sample_add(NULL, stk, 1, false, v, NULL, 0),
			 -EINVAL);
	assert_int_equal(pprof_sample_add(b, NULL, 1, false, v, NULL, 0),
			 -EINVAL);
	assert_int_equal(pprof_sample_add(b, stk, 1, false, NULL, NULL, 0),
			 -EINVAL);
	assert_int_equal(pprof_sample_add(b, stk, 1, false, v, NULL, 1),
			 -EINVAL);
	assert_int_equal(pprof_sample_add(b, stk, 1, false, v, &nokey, 1),
			 -EINVAL);
	assert_int_equal(pprof_builder_write(NULL, 1), -EINVAL);
	assert_int_equal(pprof_builder_encode(NULL, &out, &len), -EINVAL);
	assert_int_equal(pprof_builder_encode(b, NULL, &len), -EINVAL);
	assert_int_equal(pprof_builder_encode(b, &out, NULL), -EINVAL);
	/* The void setters and free ignore NULL. */
	pprof_time_set(NULL, 1, 2);
	pprof_symbolizer_set(NULL, fake_symbolize, NULL);
	pprof_builder_free(NULL);
	pprof_builder_free(b);
}

static void test_pprof_args_inconsistent_einval(void **state)
{
	static const uintptr_t stk[] = { 0x401210, 0 };
	struct pprof_builder *b = builder_new();
	int64_t v[] = { 1 };
	Profile *p;

	(void)state;
	/* No sample type yet: a sample would have values of no type. */
	assert_int_equal(pprof_sample_add(b, stk, 1, true, v, NULL, 0), -EINVAL);
	assert_int_equal(pprof_sample_type_add(b, "goroutine", "count"), 0);
	assert_int_equal(pprof_default_sample_type_set(b, "nosuch"), -EINVAL);
	assert_int_equal(pprof_default_sample_type_set(b, "count"), -EINVAL);
	assert_int_equal(pprof_mapping_add(b, 2, 1, 0, "f", ""), -EINVAL);
	/* A return address of 0 (but an exact PC of 0 is fine). */
	assert_int_equal(pprof_sample_add(b, stk, 2, true, v, NULL, 0), -EINVAL);
	assert_int_equal(pprof_sample_add(b, &stk[1], 1, false, v, NULL, 0),
			 -EINVAL);
	assert_int_equal(pprof_sample_add(b, &stk[1], 1, true, v, NULL, 0), 0);
	/* Once a sample exists, the number of values is fixed. */
	assert_int_equal(pprof_sample_type_add(b, "more", "count"), -EINVAL);
	p = encode_decode(b);
	check_valid(p);
	assert_int_equal(p->n_sample, 1);
	assert_int_equal(p->n_sample_type, 1);
	assert_int_equal(p->location[0]->address, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_pprof_write_closed_fd_ebadf(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	int fds[2];

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(pprof_builder_write(b, fds[1]), -EBADF);
	assert_int_equal(pprof_builder_write(b, -1), -EBADF);
	/* Read-only: write(2) says EBADF too. */
	fds[0] = open("/dev/null", O_RDONLY);
	assert_true(fds[0] >= 0);
	assert_int_equal(pprof_builder_write(b, fds[0]), -EBADF);
	close(fds[0]);
	pprof_builder_free(b);
}

static void test_pprof_write_dev_full_enospc(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	int fd;

	(void)state;
	fd = open("/dev/full", O_WRONLY);
	if (fd < 0) {
		printf("# /dev/full is missing: skipping\n");
		skip();
	}
	assert_int_equal(build_demo(b, &fs), 0);
	assert_int_equal(pprof_builder_write(b, fd), -ENOSPC);
	close(fd);
	pprof_builder_free(b);
}

static void test_pprof_write_pipe_no_reader_epipe(void **state)
{
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_new();
	void (*old)(int);
	int fds[2];

	(void)state;
	assert_int_equal(build_demo(b, &fs), 0);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	old = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pprof_builder_write(b, fds[1]), -EPIPE);
	signal(SIGPIPE, old);
	close(fds[1]);
	pprof_builder_free(b);
}

static void test_pprof_symbolizer_error_returned(void **state)
{
	static const uintptr_t bad[] = { 0x401210, ADDR_EIO + 1 };
	static const uintptr_t good[] = { 0x401210 };
	struct fake_sym fs = { 0 };
	struct pprof_builder *b = builder_count(&fs);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_sample_add(b, bad, 2, true, (int64_t[]){ 1 },
					  NULL, 0), -EIO);
	assert_int_equal(pprof_sample_add(b, good, 1, true, (int64_t[]){ 2 },
					  NULL, 0), 0);
	p = encode_decode(b);
	check_valid(p);
	/* The failed sample is gone; its first location stayed cached. */
	assert_int_equal(p->n_sample, 1);
	assert_int_equal(p->sample[0]->value[0], 2);
	assert_int_equal(p->n_location, 1);
	assert_int_equal(fs.calls, 2);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

/* Fails the 1st, 2nd, ... allocation of building and encoding the demo
 * profile until a run completes with no failure left to inject.  Every
 * injected failure must surface as -ENOMEM (none is swallowed), and the
 * builder it leaves must still encode a valid profile. */
static void test_pprof_alloc_fail_each_enomem(void **state)
{
	unsigned long nth;

	(void)state;
	for (nth = 1;; nth++) {
		struct fake_sym fs = { 0 };
		struct pprof_builder *b;
		uint8_t *gz = NULL;
		size_t len = 0;
		int err = 0;

		pprof_testing_fail_alloc(nth);
		b = pprof_builder_new(&err);
		if (b) {
			err = build_demo(b, &fs);
			if (err == 0)
				err = pprof_builder_encode(b, &gz, &len);
		}
		if (pprof_testing_fail_alloc(0) != 0) {
			/* The failure was never reached: a clean run. */
			assert_int_equal(err, 0);
			free(gz);
			pprof_builder_free(b);
			break;
		}
		assert_int_equal(err, -ENOMEM);
		if (b) {
			Profile *p = encode_decode(b);

			check_valid(p);
			perftools__profiles__profile__free_unpacked(p, NULL);
		}
		pprof_builder_free(b);
	}
	/* Builder, tables, index tables, messages, zlib, output: many. */
	assert_true(nth > 20);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pprof_roundtrip_header_fields),
		T(test_pprof_roundtrip_locations_deduplicated),
		T(test_pprof_roundtrip_functions_deduplicated),
		T(test_pprof_roundtrip_mappings_has_functions),
		T(test_pprof_roundtrip_samples_values_labels),
		T(test_pprof_roundtrip_label_empty_string_index_zero),
		T(test_pprof_encode_gzip_header_like_go),
		T(test_pprof_write_same_bytes_as_encode),
		T(test_pprof_function_same_name_two_files),
		T(test_pprof_mapping_none_gives_go_fake_mapping),
		T(test_pprof_mapping_address_outside_gives_id_zero),
		T(test_pprof_symbolizer_none_addresses_only),
		T(test_pprof_many_addresses_grow_caches),
		T(test_pprof_go_tool_raw_reads_profile),
		T(test_pprof_go_tool_top_shows_functions),
		T(test_pprof_args_null_einval),
		T(test_pprof_args_inconsistent_einval),
		T(test_pprof_write_closed_fd_ebadf),
		T(test_pprof_write_dev_full_enospc),
		T(test_pprof_write_pipe_no_reader_epipe),
		T(test_pprof_symbolizer_error_returned),
		T(test_pprof_alloc_fail_each_enomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
