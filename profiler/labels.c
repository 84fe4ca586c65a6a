/* SPDX-License-Identifier: MIT */
/*
 * labels.c - task labels (Go's pprof labels): co_labels_set, inheritance,
 * and their text forms.
 *
 * A label set is immutable and reference counted: co_labels_set builds a
 * new set from the task's current one and the new pairs, and swaps it in.
 * A task created afterwards shares its parent's set (the runtime takes a
 * reference at spawn and drops it at exit through hooks installed here on
 * first use), and a snapshot record takes one more so the set outlives the
 * task.  Immutability is what makes it safe for a snapshot to read a set
 * without any lock, even from a signal handler, and cheap for 100,000
 * tasks to share one.
 *
 * Rejected: a per-task copy (memory per task, and a copy at every spawn);
 * a global string table keyed by id (a lock on every spawn).
 *
 * Invariant: pairs are sorted by key, keys unique, strings NUL-terminated
 * inside the same allocation.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "copper.h"
#include "profiler.h"
#include "runtime/introspect.h"

#define LABELS_MAX 64

void labels_ref(struct labels *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

void labels_unref(struct labels *l)
{
	if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		free(l);
}

static void hook_ref(void *l) { labels_ref(l); }
static void hook_unref(void *l) { labels_unref(l); }

static int cmp_pair(const void *a, const void *b)
{
	return strcmp(((const struct label_pair *)a)->key,
		      ((const struct label_pair *)b)->key);
}

/* Builds a set from pairs[0..n) (unsorted, later keys win, NULL values
 * removed). */
static struct labels *labels_build(struct label_pair *pairs, size_t n)
{
	size_t bytes = 0, k = 0;
	struct labels *l;
	char *p;

	/* Stable sort so that the last value given for a key wins below. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cmp_pair(&pairs[j - 1], &pairs[j]) > 0; j--) {
			struct label_pair t = pairs[j];
			pairs[j] = pairs[j - 1];
			pairs[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(pairs[i].key, pairs[i + 1].key) == 0)
			continue;
		if (!*pairs[i].value)
			continue; /* "" removes the key (pprof drops it anyway) */
		pairs[k++] = pairs[i];
		bytes += strlen(pairs[i].key) + strlen(pairs[i].value) + 2;
	}
	l = malloc(sizeof(*l) + k * sizeof(l->pairs[0]) + bytes);
	if (!l)
		return NULL;
	atomic_init(&l->refs, 1);
	l->n = k;
	p = (char *)&l->pairs[k];
	for (size_t i = 0; i < k; i++) {
		size_t kl = strlen(pairs[i].key) + 1, vl = strlen(pairs[i].value) + 1;
		l->pairs[i].key = memcpy(p, pairs[i].key, kl);
		p += kl;
		l->pairs[i].value = memcpy(p, pairs[i].value, vl);
		p += vl;
	}
	return l;
}

CO_EXTERN int co_labels_set(const char *key, const char *value, ...)
{
	struct label_pair pairs[2 * LABELS_MAX];
	struct labels *cur, *next;
	size_t n = 0, given = 1;
	va_list ap;

	if (!introspect_running() || !co_self())
		return CO_EPERM;
	if (!key || !*key || !value)
		return CO_EINVAL;
	cur = introspect_self_labels();
	for (size_t i = 0; cur && i < cur->n; i++)
		pairs[n++] = cur->pairs[i];
	pairs[n].key = key;
	pairs[n++].value = value;
	va_start(ap, value);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		/* A NULL value is the terminator met where a value belongs:
		 * an odd list.  n never passes the array: a set holds at most
		 * LABELS_MAX keys, and so does one call. */
		if (!*k || !v || ++given > LABELS_MAX ||
		    n == sizeof(pairs) / sizeof(pairs[0])) {
			va_end(ap);
			return CO_EINVAL;
		}
		pairs[n].key = k;
		pairs[n++].value = v;
	}
	va_end(ap);
	if (!(next = labels_build(pairs, n)))
		return CO_ENOMEM;
	if (next->n > LABELS_MAX) {
		labels_unref(next);
		return CO_ERANGE;
	}
	introspect_set_label_hooks(hook_ref, hook_unref);
	labels_unref(introspect_self_labels_swap(next->n ? next : NULL));
	if (!next->n)
		labels_unref(next);
	return 0;
}

CO_EXTERN int co_labels_get(const char *key, char *buf, size_t len)
{
	struct labels *cur = introspect_self_labels();

	if (!key || (!buf && len))
		return CO_EINVAL;
	for (size_t i = 0; cur && i < cur->n; i++) {
		if (strcmp(cur->pairs[i].key, key) == 0) {
			size_t vl = strlen(cur->pairs[i].value);
			if (vl >= len)
				return CO_ERANGE;
			memcpy(buf, cur->pairs[i].value, vl + 1);
			return 0;
		}
	}
	return CO_ENOENT;
}

/* ------------------------------------------------------------------------
 * Text forms
 * ---------------------------------------------------------------------- */

/* Go's strconv.Quote for the bytes Copper sees: printable ASCII as is,
 * the usual escapes, \xNN for other control bytes; bytes >= 0x80 are
 * passed through (UTF-8 text stays readable). */
static size_t quote(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	char tmp[4];

#define PUT(c) do { if (n + 1 < len) buf[n] = (c); n++; } while (0)
	PUT('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = NULL;
		switch (*p) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\a': esc = "\\a"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\v': esc = "\\v"; break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				tmp[0] = '\\', tmp[1] = 'x';
				tmp[2] = hex[*p >> 4], tmp[3] = hex[*p & 15];
				for (int i = 0; i < 4; i++)
					PUT(tmp[i]);
				continue;
			}
			PUT((char)*p);
			continue;
		}
		for (; *esc; esc++)
			PUT(*esc);
	}
	PUT('"');
	if (len)
		buf[n < len ? n : len - 1] = '\0';
#undef PUT
	return n;
}

void prof_fput_quoted(FILE *f, const char *s)
{
	char small[256];
	size_t n = quote(s, small, sizeof(small));

	if (n < sizeof(small)) {
		fputs(small, f);
		return;
	}
	char *big = malloc(n + 1);
	if (!big)
		return;
	quote(s, big, n + 1);
	fputs(big, f);
	free(big);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t labels_format_debug1(const struct labels *l, char *buf, size_t len)
{
	size_t n = 0, count = l ? l->n : 0;
	char **entries = calloc(count + 1, sizeof(*entries));

	if (!entries)
		return snprintf(buf, len, "{}");
	/* Go formats each pair as %q:%q and sorts those strings. */
	for (size_t i = 0; i < count; i++) {
		size_t kl = quote(l->pairs[i].key, NULL, 0);
		size_t vl = quote(l->pairs[i].value, NULL, 0);
		entries[i] = malloc(kl + vl + 2);
		if (!entries[i])
			break;
		quote(l->pairs[i].key, entries[i], kl + 1);
		entries[i][kl] = ':';
		quote(l->pairs[i].value, entries[i] + kl + 1, vl + 1);
	}
	for (size_t i = 0; i < count; i++)
		if (!entries[i])
			count = i;
	qsort(entries, count, sizeof(*entries), cmp_str);
	n += snprintf(buf, len, "{");
	for (size_t i = 0; i < count; i++)
		n += snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
			      "%s%s", i ? ", " : "", entries[i]);
	n += snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "}");
	for (size_t i = 0; i < (l ? l->n : 0); i++)
		free(entries[i]);
	free(entries);
	return n;
}
