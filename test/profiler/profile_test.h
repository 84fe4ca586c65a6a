/* SPDX-License-Identifier: MIT */
/*
 * profile_test.h - what the goroutine-profile suites (test_goroutine.c,
 * test_dump.c) share: capturing a profile into memory, reading files,
 * decoding debug=0 with zlib and the protobuf-c code generated from
 * profiler/profile.proto, strict parsers for the debug=1 and debug=2
 * texts, and running outside readers (`go tool pprof`, python3).
 *
 * The parsers are written from ../shared/reference/pprof-formats.md (2.0,
 * 2.2, 2.3, 5), not from profiler/goroutine.c: they accept exactly the
 * layout Go prints and say where a text departs from it.  They never
 * assert, so a task may call them (and report with CHECK); the test
 * thread wraps them in assertions.
 *
 *   debug=1   "goroutine profile: total N", records "<count> @ 0x.. 0x..",
 *             an optional "# labels: {...}" line directly after the @ line,
 *             frame lines "#\t<pc>\t<func>+0x<off>\t<file>:<line>" whose
 *             columns are separated by runs of TABs (never spaces), one
 *             empty line after every record.
 *   debug=2   blocks "goroutine <id> [<bracket>]:" (the header regular
 *             expression panicparse and goleak use), frame pairs
 *             "<func>(<args>)" + "\t<file>:<line>[ +0x<off>]", an optional
 *             "created by <func> in goroutine <id>" pair, blocks separated
 *             by exactly one empty line and no empty line at the end.
 *
 * Invariants: every parse result points into its own copy of the text, so
 * the caller may free the text at once; pt_*_free releases everything; a
 * parser that fails has already released everything but its message.
 */
#ifndef COPPER_TEST_PROFILE_TEST_H
#define COPPER_TEST_PROFILE_TEST_H

#include "test_util.h"

#include <dirent.h>
#include <inttypes.h>
#include <regex.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <zlib.h>

#include "profiler/profile.pb-c.h"

typedef Perftools__Profiles__Profile pt_pb_profile;

/* ------------------------------------------------------------------------
 * Buffers, files, capturing a profile
 * ---------------------------------------------------------------------- */

struct pt_buf {
	char *data;   /* NUL-terminated (the NUL is not counted) */
	size_t len;
};

static inline void pt_buf_free(struct pt_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* Reads fd from its current offset to its end.  0 or -errno. */
static inline int pt_read_fd(int fd, struct pt_buf *b)
{
	size_t cap = 1 << 16;

	b->len = 0;
	b->data = malloc(cap);
	if (!b->data)
		return -ENOMEM;
	for (;;) {
		if (b->len + 1 >= cap) {
			char *p = realloc(b->data, cap *= 2);
			if (!p) {
				pt_buf_free(b);
				return -ENOMEM;
			}
			b->data = p;
		}
		ssize_t n = read(fd, b->data + b->len, cap - 1 - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			pt_buf_free(b);
			return err;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	b->data[b->len] = '\0';
	return 0;
}

static inline int pt_read_file(const char *path, struct pt_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	b->data = NULL;
	b->len = 0;
	if (fd < 0)
		return -errno;
	int err = pt_read_fd(fd, b);
	close(fd);
	return err;
}

/* An anonymous in-memory file to write a profile into. */
static inline int pt_memfd(void)
{
	return memfd_create("copper-test-profile", MFD_CLOEXEC);
}

/* Rewinds a memfd and reads what was written to it. */
static inline int pt_memfd_read(int fd, struct pt_buf *b)
{
	if (lseek(fd, 0, SEEK_SET) != 0)
		return -errno;
	return pt_read_fd(fd, b);
}

/*
 * Writes profile name at debug into memory; returns what co_profile_write
 * returned (or a memfd error).  Safe inside a task.
 */
static inline int pt_capture_profile(const char *name, int debug,
				     struct pt_buf *b)
{
	int fd = pt_memfd(), err;

	b->data = NULL;
	b->len = 0;
	if (fd < 0)
		return -errno;
	err = co_profile_write(co_profile_lookup(name), fd, debug);
	if (err == 0)
		err = pt_memfd_read(fd, b);
	close(fd);
	return err;
}

/* The goroutine profile at debug into memory (pt_capture_profile). */
static inline int pt_capture(int debug, struct pt_buf *b)
{
	return pt_capture_profile("goroutine", debug, b);
}

/* co_dump_json into memory. */
static inline int pt_capture_json(struct pt_buf *b)
{
	int fd = pt_memfd(), err;

	b->data = NULL;
	b->len = 0;
	if (fd < 0)
		return -errno;
	err = co_dump_json(fd);
	if (err == 0)
		err = pt_memfd_read(fd, b);
	close(fd);
	return err;
}

/* ------------------------------------------------------------------------
 * debug=0: gunzip and decode
 * ---------------------------------------------------------------------- */

/*
 * Gunzips (exactly one gzip member, nothing after it) and decodes a
 * profile.  NULL with a message in err on any failure.
 */
static inline pt_pb_profile *pt_decode(const void *gz, size_t len, char *err,
				       size_t err_len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *raw = malloc(cap);
	z_stream zs;
	pt_pb_profile *p = NULL;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (!raw || inflateInit2(&zs, 15 + 16) != Z_OK) {
		snprintf(err, err_len, "inflateInit2 failed");
		free(raw);
		return NULL;
	}
	if (len < 2 || ((const uint8_t *)gz)[0] != 0x1f ||
	    ((const uint8_t *)gz)[1] != 0x8b) {
		snprintf(err, err_len, "no gzip magic 1f 8b");
		goto out;
	}
	zs.next_in = (Bytef *)gz;
	zs.avail_in = (uInt)len;
	do {
		if (n == cap) {
			uint8_t *r = realloc(raw, cap *= 2);
			if (!r) {
				snprintf(err, err_len, "out of memory");
				goto out;
			}
			raw = r;
		}
		zs.next_out = raw + n;
		zs.avail_out = (uInt)(cap - n);
		rc = inflate(&zs, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) {
			snprintf(err, err_len, "inflate: %d", rc);
			goto out;
		}
		n = cap - zs.avail_out;
	} while (rc != Z_STREAM_END);
	if (zs.avail_in != 0) {
		snprintf(err, err_len, "%u bytes after the gzip member",
			 zs.avail_in);
		goto out;
	}
	p = perftools__profiles__profile__unpack(NULL, n, raw);
	if (!p)
		snprintf(err, err_len, "protobuf-c cannot unpack the profile");
out:
	inflateEnd(&zs);
	free(raw);
	return p;
}

static inline void pt_pb_free(pt_pb_profile *p)
{
	if (p)
		perftools__profiles__profile__free_unpacked(p, NULL);
}

/* string_table[i], or NULL out of range. */
static inline const char *pt_pb_str(const pt_pb_profile *p, int64_t i)
{
	return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i]
						       : NULL;
}

static inline const Perftools__Profiles__Location *
pt_pb_location(const pt_pb_profile *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_location; i++)
		if (p->location[i]->id == id)
			return p->location[i];
	return NULL;
}

static inline const Perftools__Profiles__Function *
pt_pb_function(const pt_pb_profile *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_function; i++)
		if (p->function[i]->id == id)
			return p->function[i];
	return NULL;
}

/* Does any line of any location of sample s name function fn? */
static inline bool pt_pb_sample_has_function(const pt_pb_profile *p,
					     const Perftools__Profiles__Sample *s,
					     const char *fn)
{
	for (size_t i = 0; i < s->n_location_id; i++) {
		const Perftools__Profiles__Location *l =
			pt_pb_location(p, s->location_id[i]);
		for (size_t k = 0; l && k < l->n_line; k++) {
			const Perftools__Profiles__Function *f =
				pt_pb_function(p, l->line[k]->function_id);
			const char *name = f ? pt_pb_str(p, f->name) : NULL;
			if (name && strcmp(name, fn) == 0)
				return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Lines
 * ---------------------------------------------------------------------- */

/* Splits a private copy of text at '\n'.  The last element is whatever
 * follows the last '\n' ("" when the text ends with one). */
struct pt_lines {
	char *copy;
	char **line;
	size_t n;
};

static inline bool pt_lines_split(const char *text, size_t len,
				  struct pt_lines *l)
{
	size_t cap = 64;

	memset(l, 0, sizeof(*l));
	l->copy = malloc(len + 1);
	l->line = malloc(cap * sizeof(*l->line));
	if (!l->copy || !l->line)
		return false;
	memcpy(l->copy, text, len);
	l->copy[len] = '\0';
	char *p = l->copy;
	for (;;) {
		if (l->n == cap) {
			char **nl = realloc(l->line, (cap *= 2) * sizeof(*nl));
			if (!nl)
				return false;
			l->line = nl;
		}
		l->line[l->n++] = p;
		char *eol = strchr(p, '\n');
		if (!eol)
			break;
		*eol = '\0';
		p = eol + 1;
	}
	return true;
}

static inline void pt_lines_free(struct pt_lines *l)
{
	free(l->copy);
	free(l->line);
	memset(l, 0, sizeof(*l));
}

/* Compiles an extended regular expression that the suite knows is valid. */
static inline regex_t *pt_regex(regex_t *re, const char *pattern)
{
	if (regcomp(re, pattern, REG_EXTENDED) != 0)
		abort();
	return re;
}

/* Match group g of m in s as a fresh string. */
static inline char *pt_group(const char *s, const regmatch_t *m, int g)
{
	if (m[g].rm_so < 0)
		return NULL;
	return strndup(s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
}

/* ------------------------------------------------------------------------
 * debug=1: the count profile
 * ---------------------------------------------------------------------- */

struct pt_d1_frame {
	uintptr_t pc;          /* printed pc (return address - 1) */
	const char *func;      /* function name */
	uintptr_t off;         /* +0x offset */
	const char *file;
	int line;
	const char *raw;       /* the line, cut after the function */
};

struct pt_d1_record {
	long count;
	uintptr_t *pcs;        /* the @ list */
	int npcs;
	const char *at_line;   /* "<count> @ ..." */
	const char *labels;    /* "{...}" of "# labels: {...}", or NULL */
	struct pt_d1_frame *frames;
	int nframes;
};

struct pt_d1 {
	long total;            /* from the header */
	struct pt_d1_record *rec;
	size_t n;
	struct pt_lines lines;
	char err[512];
};

static inline void pt_d1_free(struct pt_d1 *d)
{
	for (size_t i = 0; d->rec && i < d->n; i++) {
		free(d->rec[i].pcs);
		free(d->rec[i].frames);
	}
	free(d->rec);
	pt_lines_free(&d->lines);
	memset(d, 0, sizeof(*d));
}

/* On a parse failure: frees everything but keeps the message. */
static inline void pt_d1_keep_err_free(struct pt_d1 *d)
{
	char err[sizeof(d->err)];

	memcpy(err, d->err, sizeof(err));
	pt_d1_free(d);
	memcpy(d->err, err, sizeof(err));
}

#define PT_FAIL(d, ...)                                                    \
	do {                                                               \
		snprintf((d)->err, sizeof((d)->err), __VA_ARGS__);         \
		goto fail;                                                 \
	} while (0)

/* The screen column where each TAB-separated cell of line starts, with
 * TAB stops every 8 columns (how the tabwriter's output is meant to be
 * read).  Returns the number of cells. */
static inline int pt_tab_columns(const char *line, size_t *col, int max)
{
	size_t c = 0;
	int n = 0;

	if (max > 0)
		col[n++] = 0;
	for (const char *p = line; *p; p++) {
		if (*p == '\t') {
			c = (c / 8 + 1) * 8;
			if (p[1] != '\t' && p[1] && n < max)
				col[n++] = c;
		} else {
			c++;
		}
	}
	return n;
}

/*
 * Parses a debug=1 goroutine profile strictly (2.0, 2.2).  false with a
 * message in d->err at the first departure.  Frame columns must be padded
 * with TABs only, and aligned within each record as Go's tabwriter does.
 */
static inline bool pt_parse_debug1(const char *text, size_t len,
				   struct pt_d1 *d)
{
	regex_t re_head, re_at, re_frame, re_labels;
	regmatch_t m[8];
	size_t i = 0, cap = 16;

	memset(d, 0, sizeof(*d));
	pt_regex(&re_head, "^goroutine profile: total ([0-9]+)$");
	pt_regex(&re_at, "^([0-9]+) @(( 0x[0-9a-f]+)+)$");
	pt_regex(&re_frame, "^#\t+(0x[0-9a-f]+)\t+([^\t ]+)\\+(0x[0-9a-f]+)"
			    "\t+([^\t ]+):([0-9]+)$");
	pt_regex(&re_labels, "^# labels: (\\{.*\\})$");
	if (!pt_lines_split(text, len, &d->lines) ||
	    !(d->rec = calloc(cap, sizeof(*d->rec))))
		PT_FAIL(d, "out of memory");
	char **L = d->lines.line;
	size_t nl = d->lines.n;
	if (len == 0 || text[len - 1] != '\n')
		PT_FAIL(d, "the text does not end with a newline");
	if (regexec(&re_head, L[0], 2, m, 0) != 0)
		PT_FAIL(d, "bad header line: \"%s\"", L[0]);
	d->total = strtol(L[0] + m[1].rm_so, NULL, 10);
	/* nl - 1: the "" after the final newline is not a line. */
	for (i = 1; i < nl - 1;) {
		struct pt_d1_record *r;
		if (d->n == cap) {
			struct pt_d1_record *nr =
				realloc(d->rec, (cap *= 2) * sizeof(*nr));
			if (!nr)
				PT_FAIL(d, "out of memory");
			d->rec = nr;
			memset(d->rec + d->n, 0, (cap - d->n) * sizeof(*nr));
		}
		r = &d->rec[d->n++];
		if (regexec(&re_at, L[i], 3, m, 0) != 0)
			PT_FAIL(d, "line %zu: bad record line: \"%s\"", i + 1, L[i]);
		r->at_line = L[i];
		r->count = strtol(L[i], NULL, 10);
		r->pcs = calloc(strlen(L[i]) / 4 + 1, sizeof(*r->pcs));
		if (!r->pcs)
			PT_FAIL(d, "out of memory");
		for (char *p = L[i] + m[2].rm_so; p && *p == ' ';) {
			char *end;
			r->pcs[r->npcs++] = (uintptr_t)strtoull(p + 1, &end, 16);
			p = end;
		}
		i++;
		if (i < nl - 1 && regexec(&re_labels, L[i], 2, m, 0) == 0) {
			r->labels = L[i] + m[1].rm_so;
			i++;
		} else if (i < nl - 1 && strncmp(L[i], "# labels", 8) == 0) {
			PT_FAIL(d, "line %zu: bad labels line: \"%s\"", i + 1, L[i]);
		}
		size_t first = i;
		while (i < nl - 1 && L[i][0] == '#')
			i++;
		r->frames = calloc(i - first + 1, sizeof(*r->frames));
		if (!r->frames)
			PT_FAIL(d, "out of memory");
		size_t col0[8], col[8], maxw[3] = {1, 0, 0};
		int ncol0 = 0;
		for (size_t k = first; k < i; k++) {
			struct pt_d1_frame *f = &r->frames[r->nframes];
			if (strcmp(L[k], "#\t0x0") == 0 && first + 1 == i)
				break; /* an empty stack, as Go prints it */
			if (strchr(L[k], ' '))
				PT_FAIL(d, "line %zu: a space in a frame line: \"%s\"",
					k + 1, L[k]);
			if (regexec(&re_frame, L[k], 6, m, 0) != 0)
				PT_FAIL(d, "line %zu: bad frame line: \"%s\"", k + 1, L[k]);
			/* Columns first, while the line is whole. */
			int ncol = pt_tab_columns(L[k], col, 8);
			size_t w1 = (size_t)(m[1].rm_eo - m[1].rm_so);
			size_t w2 = (size_t)(m[3].rm_eo - m[2].rm_so);
			maxw[1] = w1 > maxw[1] ? w1 : maxw[1];
			maxw[2] = w2 > maxw[2] ? w2 : maxw[2];
			f->raw = L[k];
			f->pc = (uintptr_t)strtoull(L[k] + m[1].rm_so, NULL, 16);
			f->off = (uintptr_t)strtoull(L[k] + m[3].rm_so, NULL, 16);
			f->line = atoi(L[k] + m[5].rm_so);
			/* Cut the function and the file out of the copy. */
			L[k][m[3].rm_so - 1] = '\0';
			L[k][m[4].rm_eo] = '\0';
			f->func = L[k] + m[2].rm_so;
			f->file = L[k] + m[4].rm_so;
			if (k == first) {
				ncol0 = ncol;
				memcpy(col0, col, sizeof(col));
			} else if (ncol != ncol0 ||
				   memcmp(col, col0, (size_t)ncol * sizeof(*col))) {
				PT_FAIL(d, "line %zu: columns not aligned with the "
					   "record's first frame line", k + 1);
			}
			r->nframes++;
		}
		/* Go's tabwriter (minwidth 1, tabwidth 8, padding 1, TABs):
		 * a column is its widest cell plus one, rounded up to 8. */
		for (int c = 0; r->nframes && c < 3; c++)
			if (ncol0 != 4 ||
			    col0[c + 1] - col0[c] != (maxw[c] + 1 + 7) / 8 * 8)
				PT_FAIL(d, "record %zu: column %d is %zu wide, Go's "
					   "tabwriter makes it %zu", d->n, c,
					ncol0 == 4 ? col0[c + 1] - col0[c] : 0,
					(maxw[c] + 1 + 7) / 8 * 8);
		if (i >= nl - 1 || L[i][0] != '\0')
			PT_FAIL(d, "line %zu: a record must end with an empty "
				   "line, got \"%s\"", i + 1, i < nl ? L[i] : "");
		i++;
	}
	regfree(&re_head);
	regfree(&re_at);
	regfree(&re_frame);
	regfree(&re_labels);
	return true;
fail:
	regfree(&re_head);
	regfree(&re_at);
	regfree(&re_frame);
	regfree(&re_labels);
	pt_d1_keep_err_free(d);
	return false;
}

/* The first record that has a frame in function fn (and, if labels is
 * not NULL, exactly those labels; "" means none). */
static inline const struct pt_d1_record *
pt_d1_find(const struct pt_d1 *d, const char *fn, const char *labels)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct pt_d1_record *r = &d->rec[i];
		if (labels && strcmp(r->labels ? r->labels : "", labels) != 0)
			continue;
		for (int k = 0; k < r->nframes; k++)
			if (strcmp(r->frames[k].func, fn) == 0)
				return r;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * debug=2: one block per task
 * ---------------------------------------------------------------------- */

struct pt_d2_frame {
	const char *func;      /* name before "(" */
	const char *args;      /* what is between the parentheses */
	const char *file;
	int line;
	bool has_off;          /* " +0x.." present */
	uintptr_t off;
};

struct pt_d2_block {
	uint64_t id;
	const char *header;    /* the whole header line */
	char *bracket;         /* between "[" and "]:" (allocated) */
	char *status;          /* the bracket up to ", " or " labels:" */
	char *labels;          /* "{...}" after " labels:", or NULL */
	struct pt_d2_frame *frames;
	int nframes;
	bool unavailable;      /* "goroutine running on other thread" */
	bool created;          /* has a "created by" pair */
	const char *created_func;
	uint64_t created_in;   /* the N of "in goroutine N" */
	struct pt_d2_frame created_pos;
};

struct pt_d2 {
	struct pt_d2_block *b;
	size_t n;
	struct pt_lines lines;
	char err[512];
};

static inline void pt_d2_free(struct pt_d2 *d)
{
	for (size_t i = 0; d->b && i < d->n; i++) {
		free(d->b[i].bracket);
		free(d->b[i].status);
		free(d->b[i].labels);
		free(d->b[i].frames);
	}
	free(d->b);
	pt_lines_free(&d->lines);
	memset(d, 0, sizeof(*d));
}

static inline void pt_d2_keep_err_free(struct pt_d2 *d)
{
	char err[sizeof(d->err)];

	memcpy(err, d->err, sizeof(err));
	pt_d2_free(d);
	memcpy(d->err, err, sizeof(err));
}

/* "\t<file>:<line>[ +0x<off>]" into f; false if the line is not one. */
static inline bool pt_d2_position(char *line, const regex_t *re,
				  struct pt_d2_frame *f)
{
	regmatch_t m[5];

	if (regexec(re, line, 5, m, 0) != 0)
		return false;
	f->line = atoi(line + m[2].rm_so);
	f->has_off = m[3].rm_so >= 0;
	f->off = f->has_off ? (uintptr_t)strtoull(line + m[4].rm_so, NULL, 16)
			    : 0;
	line[m[1].rm_eo] = '\0';
	f->file = line + m[1].rm_so;
	return true;
}

/* Splits the bracket as panicparse does (on ", "), with Go 1.27's
 * " labels:{...}" closing it. */
static inline bool pt_d2_bracket(struct pt_d2_block *b)
{
	const char *lab = strstr(b->bracket, " labels:{");
	size_t stat_len = strcspn(b->bracket, ",");

	if (lab) {
		if (b->bracket[strlen(b->bracket) - 1] != '}')
			return false;
		b->labels = strdup(lab + strlen(" labels:"));
		if ((size_t)(lab - b->bracket) < stat_len)
			stat_len = (size_t)(lab - b->bracket);
	}
	b->status = strndup(b->bracket, stat_len);
	return b->status != NULL;
}

/*
 * Parses a debug=2 dump strictly (2.3, 5).  The header must match
 * ^goroutine (\d+) \[([^\]]+)\]:$ (panicparse, goleak); a frame is a
 * "<func>(<args>)" line followed by a position line; "created by <func>
 * in goroutine <N>" and its position line close a block; blocks are
 * separated by exactly one empty line; the text ends right after the
 * last block's last line.
 */
static inline bool pt_parse_debug2(const char *text, size_t len,
				   struct pt_d2 *d)
{
	regex_t re_head, re_func, re_pos, re_created;
	regmatch_t m[5];
	size_t cap = 64;

	memset(d, 0, sizeof(*d));
	pt_regex(&re_head, "^goroutine ([0-9]+) \\[([^]]+)\\]:$");
	pt_regex(&re_func, "^([^\t (]+)\\((.*)\\)$");
	pt_regex(&re_pos, "^\t([^\t ]+):([0-9]+)( \\+0x([0-9a-f]+))?$");
	pt_regex(&re_created, "^created by ([^\t ]+) in goroutine ([0-9]+)$");
	if (!pt_lines_split(text, len, &d->lines) ||
	    !(d->b = calloc(cap, sizeof(*d->b))))
		PT_FAIL(d, "out of memory");
	char **L = d->lines.line;
	size_t nl = d->lines.n, i = 0;
	if (len == 0 || text[len - 1] != '\n')
		PT_FAIL(d, "the dump does not end with a newline");
	if (len >= 2 && text[len - 2] == '\n')
		PT_FAIL(d, "the dump ends with an empty line");
	nl--; /* the "" after the final newline */
	while (i < nl) {
		struct pt_d2_block *b;
		if (d->n == cap) {
			struct pt_d2_block *nb =
				realloc(d->b, (cap *= 2) * sizeof(*nb));
			if (!nb)
				PT_FAIL(d, "out of memory");
			d->b = nb;
			memset(d->b + d->n, 0, (cap - d->n) * sizeof(*nb));
		}
		b = &d->b[d->n++];
		if (regexec(&re_head, L[i], 3, m, 0) != 0)
			PT_FAIL(d, "line %zu: not a goroutine header: \"%s\"",
				i + 1, L[i]);
		b->header = L[i];
		b->id = strtoull(L[i] + m[1].rm_so, NULL, 10);
		b->bracket = pt_group(L[i], m, 2);
		if (!b->bracket || !pt_d2_bracket(b))
			PT_FAIL(d, "line %zu: bad bracket: \"%s\"", i + 1, L[i]);
		i++;
		size_t room = (nl - i) / 2 + 1;
		b->frames = calloc(room, sizeof(*b->frames));
		if (!b->frames)
			PT_FAIL(d, "out of memory");
		while (i < nl && L[i][0] != '\0') {
			if (b->created)
				PT_FAIL(d, "line %zu: \"%s\" after created by",
					i + 1, L[i]);
			if (strcmp(L[i], "\tgoroutine running on other thread; "
					 "stack unavailable") == 0) {
				b->unavailable = true;
				i++;
				continue;
			}
			if (strcmp(L[i], "...additional frames elided...") == 0 ||
			    (strncmp(L[i], "...", 3) == 0 &&
			     strstr(L[i], " frames elided..."))) {
				i++;
				continue;
			}
			if (regexec(&re_created, L[i], 3, m, 0) == 0) {
				L[i][m[1].rm_eo] = '\0';
				b->created_func = L[i] + m[1].rm_so;
				b->created_in = strtoull(L[i] + m[2].rm_so, NULL, 10);
				b->created = true;
				if (i + 1 >= nl ||
				    !pt_d2_position(L[i + 1], &re_pos,
						    &b->created_pos))
					PT_FAIL(d, "line %zu: created by without a "
						   "position line", i + 1);
				i += 2;
				continue;
			}
			if (regexec(&re_func, L[i], 3, m, 0) != 0)
				PT_FAIL(d, "line %zu: not a frame: \"%s\"", i + 1,
					L[i]);
			struct pt_d2_frame *f = &b->frames[b->nframes];
			L[i][m[1].rm_eo] = '\0';
			L[i][m[2].rm_eo] = '\0';
			f->func = L[i] + m[1].rm_so;
			f->args = L[i] + m[2].rm_so;
			if (i + 1 >= nl || !pt_d2_position(L[i + 1], &re_pos, f))
				PT_FAIL(d, "line %zu: frame %s without a position "
					   "line (\"%s\")", i + 1, f->func,
					i + 1 < nl ? L[i + 1] : "");
			b->nframes++;
			i += 2;
		}
		if (i < nl) {
			/* L[i] is the separator: exactly one, then a header. */
			i++;
			if (i >= nl || L[i][0] == '\0')
				PT_FAIL(d, "line %zu: more than one empty line "
					   "between blocks, or one at the end", i + 1);
		}
	}
	regfree(&re_head);
	regfree(&re_func);
	regfree(&re_pos);
	regfree(&re_created);
	return true;
fail:
	regfree(&re_head);
	regfree(&re_func);
	regfree(&re_pos);
	regfree(&re_created);
	pt_d2_keep_err_free(d);
	return false;
}

static inline const struct pt_d2_block *pt_d2_find(const struct pt_d2 *d,
						   uint64_t id)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->b[i].id == id)
			return &d->b[i];
	return NULL;
}

/* Index of the first frame of b in function fn, -1 if none. */
static inline int pt_d2_frame_index(const struct pt_d2_block *b,
				    const char *fn)
{
	for (int i = 0; i < b->nframes; i++)
		if (strcmp(b->frames[i].func, fn) == 0)
			return i;
	return -1;
}

/* ------------------------------------------------------------------------
 * Outside readers
 * ---------------------------------------------------------------------- */

static inline bool pt_have(const char *program)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
	return system(cmd) == 0;
}

/* Runs a shell command; its stdout and stderr into out.  Returns the
 * exit status (-1 if it could not run). */
static inline int pt_shell(const char *cmd, struct pt_buf *out)
{
	char full[8192];
	FILE *f;

	out->data = NULL;
	out->len = 0;
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	fflush(NULL);
	f = popen(full, "r");
	if (!f)
		return -1;
	int err = pt_read_fd(fileno(f), out);
	int st = pclose(f);
	if (err < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Writes buf to a new temporary file (pattern ends in XXXXXX plus
 * suffix_len more characters); returns 0 or -errno. */
static inline int pt_write_temp(char *pattern, int suffix_len,
				const void *buf, size_t len)
{
	int fd = mkstemps(pattern, suffix_len);

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);
		if (n < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
		off += (size_t)n;
	}
	return close(fd) == 0 ? 0 : -errno;
}

#endif /* COPPER_TEST_PROFILE_TEST_H */
