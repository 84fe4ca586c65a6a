/* SPDX-License-Identifier: MIT */
/*
 * test_symbols.c - tests of profiler/symbols.c: addresses of this very
 * program, of libc and of a dlopened library to function, file and line,
 * and the executable mappings with their build ids.
 *
 * Scenario groups:
 *   1. Own code          a function's entry gives its name, this file, its
 *                        first line and its decl line; a return address
 *                        minus one gives the caller and the line of the
 *                        call (__LINE__ on the same line).
 *   2. Inline chains     an always_inline function called from a noinline
 *                        one gives two frames, innermost first, each with
 *                        its own call line and the outer function's entry.
 *   3. Libraries         a libc function has a name; without DWARF its
 *                        file is "?" and its line 0.
 *   4. Unknown addresses an address in no module gives 0 frames; bad
 *                        arguments give -EINVAL.
 *   5. Cache             repeated lookups return the same pointers, and
 *                        two addresses of one function share one name.
 *   6. Mappings          the test executable with its 40-hex build id
 *                        (checked against the note in memory) and libc.
 *   7. Refresh           after dlopen a lookup finds the new library by
 *                        itself and symbols_refresh lists it; arrays handed
 *                        out before stay readable.
 *   8. Lifecycle         symbols_init twice; destroy, then use again.
 *   9. Concurrency       four threads look up the same cold addresses at
 *                        once and all get the right answers.
 *
 * The functions looked up are noipa so that the compiler keeps them, their
 * calls and their lines as written; every case ends with symbols_destroy
 * so that each starts cold.
 */
#include "test_util.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>

#include "profiler/symbols.h"

/* Keeps a function, its calls and its lines as written (clang has no
 * noipa; optnone keeps its interprocedural passes away). */
#if __has_attribute(noipa)
#define NOIPA __attribute__((noipa))
#else
#define NOIPA __attribute__((noinline, optnone))
#endif

/* ------------------------------------------------------------------------
 * Functions to look up
 * ---------------------------------------------------------------------- */

/* Returns the address of the call instruction in its caller. */
static NOIPA uintptr_t call_site(void)
{
	return (uintptr_t)__builtin_return_address(0) - 1;
}

enum { TARGET_LINE = __LINE__ + 1 };
static NOIPA int target_function(int x)
{
	return x * 3 + 1;
}

static inline __attribute__((always_inline)) uintptr_t
inlined_leaf(int *line)
{
	*line = __LINE__; return call_site();
}

/* Sets the lines of the two calls; returns the address inside the
 * inlined code. */
static NOIPA uintptr_t inline_outer(int *inner_line, int *outer_line)
{
	uintptr_t pc = inlined_leaf(inner_line); *outer_line = __LINE__;
	return pc;
}

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A source path as the symbolizer should give it: absolute and clean. */
static void assert_this_file(const char *file)
{
	assert_non_null(file);
	assert_true(ends_with(file, "/test_symbols.c"));
	assert_int_equal(file[0], '/');
	assert_null(strstr(file, "/../"));
	assert_null(strstr(file, "/./"));
}

/* The address of libc's own function name (dlsym through the libc handle:
 * under a sanitizer, RTLD_DEFAULT finds the sanitizer's interceptor). */
static uintptr_t libc_function(const char *name)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	uintptr_t addr;

	assert_non_null(libc);
	addr = (uintptr_t)dlsym(libc, name);
	dlclose(libc);
	assert_true(addr != 0);
	return addr;
}

static const struct symbols_mapping *mapping_of(uintptr_t addr)
{
	const struct symbols_mapping *m;
	size_t n;

	assert_int_equal(symbols_mappings(&m, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (addr >= m[i].start && addr < m[i].limit)
			return &m[i];
	return NULL;
}

struct note_search {
	uintptr_t addr;           /* an address of the object wanted */
	char hex[129];            /* its build id, "" if none */
};

/* Copies the GNU build id out of the PT_NOTE segments of one object. */
static void note_build_id(struct dl_phdr_info *info, char *hex)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;

		while (ph->p_type == PT_NOTE && p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const unsigned char *name = (const unsigned char *)(nh + 1);
			const unsigned char *desc = name + ((nh->n_namesz + 3) & ~3u);

			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0 && nh->n_descsz <= 64) {
				for (unsigned j = 0; j < nh->n_descsz; j++)
					sprintf(hex + 2 * j, "%02x", desc[j]);
				return;
			}
			p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
}

static int note_find(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct note_search *s = arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && s->addr >= lo &&
		    s->addr < lo + ph->p_memsz) {
			note_build_id(info, s->hex);
			return 1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	symbols_destroy();
	return 0;
}

/* ------------------------------------------------------------------------
 * 1. Own code
 * ---------------------------------------------------------------------- */

static void test_symbols_lookup_entry_names_function(void **state)
{
	uintptr_t addr = (uintptr_t)&target_function;
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];

	(void)state;
	assert_int_equal(symbols_lookup(addr, f, SYMBOLS_FRAMES_MAX), 1);
	assert_string_equal(f[0].function, "target_function");
	assert_this_file(f[0].file);
	assert_int_equal(f[0].start_line, TARGET_LINE);
	/* The entry belongs to the declarator line or the first statement. */
	assert_in_range(f[0].line, TARGET_LINE, TARGET_LINE + 2);
	assert_true(f[0].function_start == addr);
	assert_int_equal(target_function(1), 4);
}

static void test_symbols_lookup_call_site_gives_call_line(void **state)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	uintptr_t pc = call_site(); int line = __LINE__;

	(void)state;
	assert_int_equal(symbols_lookup(pc, f, SYMBOLS_FRAMES_MAX), 1);
	assert_string_equal(f[0].function,
			    "test_symbols_lookup_call_site_gives_call_line");
	assert_this_file(f[0].file);
	assert_int_equal(f[0].line, line);
	assert_true(f[0].function_start < pc);
	assert_int_equal(f[0].start_line, line - 3);
}

/* ------------------------------------------------------------------------
 * 2. Inline chains
 * ---------------------------------------------------------------------- */

static void test_symbols_lookup_inlined_two_frames(void **state)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	int inner_line = 0, outer_line = 0;
	uintptr_t pc = inline_outer(&inner_line, &outer_line);

	(void)state;
	assert_int_equal(symbols_lookup(pc, f, SYMBOLS_FRAMES_MAX), 2);
	assert_string_equal(f[0].function, "inlined_leaf");
	assert_this_file(f[0].file);
	assert_int_equal(f[0].line, inner_line);
	assert_string_equal(f[1].function, "inline_outer");
	assert_this_file(f[1].file);
	assert_int_equal(f[1].line, outer_line);
	/* Both frames share the physical function's entry (Go's Entry). */
	assert_true(f[0].function_start == (uintptr_t)&inline_outer);
	assert_true(f[1].function_start == (uintptr_t)&inline_outer);
	assert_int_equal(f[0].start_line, inner_line - 2);
	assert_int_equal(f[1].start_line, outer_line - 2);
}

static void test_symbols_lookup_inlined_truncated_to_max(void **state)
{
	struct symbols_frame f[1];
	int inner_line = 0, outer_line = 0;
	uintptr_t pc = inline_outer(&inner_line, &outer_line);

	(void)state;
	assert_int_equal(symbols_lookup(pc, f, 1), 1);
	assert_string_equal(f[0].function, "inlined_leaf");
}

/* ------------------------------------------------------------------------
 * 3. Libraries
 * ---------------------------------------------------------------------- */

static void test_symbols_lookup_libc_function_named(void **state)
{
	uintptr_t addr = libc_function("write");
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	const struct symbols_mapping *m;

	(void)state;
	assert_true(addr != 0);
	assert_true(symbols_lookup(addr, f, SYMBOLS_FRAMES_MAX) >= 1);
	assert_non_null(f[0].function);
	assert_true(f[0].function[0] != '\0');
	assert_non_null(strstr(f[0].function, "write"));
	assert_non_null(f[0].file);
	/* Without debug info: "?" and 0 together. */
	assert_int_equal(strcmp(f[0].file, "?") == 0, f[0].line == 0);
	assert_true(f[0].function_start <= addr);
	m = mapping_of(addr);
	assert_non_null(m);
	assert_non_null(strstr(m->path, "libc.so"));
}

/* ------------------------------------------------------------------------
 * 4. Unknown addresses
 * ---------------------------------------------------------------------- */

static void test_symbols_lookup_unmapped_returns_zero(void **state)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	void *heap = malloc(64);

	(void)state;
	assert_int_equal(symbols_lookup(1, f, SYMBOLS_FRAMES_MAX), 0);
	assert_int_equal(symbols_lookup(UINTPTR_MAX - 4096, f, 4), 0);
	assert_int_equal(symbols_lookup((uintptr_t)heap, f, 4), 0);
	/* Cached as unknown: the same answer again. */
	assert_int_equal(symbols_lookup(1, f, SYMBOLS_FRAMES_MAX), 0);
	free(heap);
}

static void test_symbols_bad_arguments_einval(void **state)
{
	struct symbols_frame f[1];
	const struct symbols_mapping *m;
	size_t n;

	(void)state;
	assert_int_equal(symbols_lookup(1, NULL, 1), -EINVAL);
	assert_int_equal(symbols_lookup(1, f, 0), -EINVAL);
	assert_int_equal(symbols_mappings(NULL, &n), -EINVAL);
	assert_int_equal(symbols_mappings(&m, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------
 * 5. Cache
 * ---------------------------------------------------------------------- */

static void test_symbols_cache_same_pointers(void **state)
{
	struct symbols_frame a[SYMBOLS_FRAMES_MAX], b[SYMBOLS_FRAMES_MAX];
	uintptr_t pc = call_site();
	uintptr_t pc2 = call_site();

	(void)state;
	assert_int_equal(symbols_lookup(pc, a, SYMBOLS_FRAMES_MAX), 1);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(symbols_lookup(pc, b, SYMBOLS_FRAMES_MAX), 1);
		assert_ptr_equal(a[0].function, b[0].function);
		assert_ptr_equal(a[0].file, b[0].file);
		assert_int_equal(a[0].line, b[0].line);
	}
	/* Another address of the same function: the same strings. */
	assert_int_equal(symbols_lookup(pc2, b, SYMBOLS_FRAMES_MAX), 1);
	assert_int_equal(b[0].line, a[0].line + 1);
	assert_ptr_equal(a[0].function, b[0].function);
	assert_ptr_equal(a[0].file, b[0].file);
}

/* ------------------------------------------------------------------------
 * 6. Mappings
 * ---------------------------------------------------------------------- */

static void test_symbols_mappings_executable_with_build_id(void **state)
{
	struct note_search s = { .addr = (uintptr_t)&target_function };
	const struct symbols_mapping *m, *all;
	size_t n;

	(void)state;
	m = mapping_of(s.addr);
	assert_non_null(m);
	assert_true(ends_with(m->path, "/test_symbols"));
	assert_int_equal(strlen(m->build_id), 40);
	assert_int_equal(strspn(m->build_id, "0123456789abcdef"), 40);
	dl_iterate_phdr(note_find, &s);
	assert_string_equal(m->build_id, s.hex);
	assert_int_equal(symbols_mappings(&all, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(all[i].start < all[i].limit);
		assert_true(i == 0 || all[i - 1].limit <= all[i].start);
		assert_non_null(all[i].path);
		assert_null(strstr(all[i].path, " (deleted)"));
	}
}

static void test_symbols_mappings_include_libc(void **state)
{
	struct note_search s = { .addr = libc_function("write") };
	const struct symbols_mapping *m;

	(void)state;
	m = mapping_of(s.addr);
	assert_non_null(m);
	assert_non_null(strstr(m->path, "libc.so"));
	dl_iterate_phdr(note_find, &s);
	assert_string_equal(m->build_id, s.hex);
}

/* ------------------------------------------------------------------------
 * 7. Refresh
 * ---------------------------------------------------------------------- */

static void test_symbols_refresh_after_dlopen(void **state)
{
	const char *lib = "libresolv.so.2";
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	const struct symbols_mapping *before, *after;
	size_t nbefore, nafter;
	void *h, *fn;

	(void)state;
	if ((h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD))) {
		dlclose(h);
		skip();         /* already loaded: nothing to discover */
	}
	assert_int_equal(symbols_mappings(&before, &nbefore), 0);
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	fn = dlsym(h, "__b64_ntop");
	assert_non_null(fn);
	/* No refresh yet: the unknown address makes the lookup refresh. */
	assert_true(symbols_lookup((uintptr_t)fn, f, SYMBOLS_FRAMES_MAX) >= 1);
	assert_non_null(strstr(f[0].function, "b64_ntop"));
	symbols_refresh();
	assert_int_equal(symbols_mappings(&after, &nafter), 0);
	assert_true(nafter > nbefore);
	assert_non_null(strstr(mapping_of((uintptr_t)fn)->path, lib));
	/* The array handed out before the refresh is still readable. */
	assert_non_null(before[0].path);
	dlclose(h);
}

static void test_symbols_refresh_unchanged_keeps_array(void **state)
{
	const struct symbols_mapping *a, *b;
	size_t na, nb;

	(void)state;
	assert_int_equal(symbols_mappings(&a, &na), 0);
	symbols_refresh();
	assert_int_equal(symbols_mappings(&b, &nb), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(na, nb);
}

/* ------------------------------------------------------------------------
 * 8. Lifecycle
 * ---------------------------------------------------------------------- */

static void test_symbols_init_twice_then_reuse(void **state)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	uintptr_t addr = (uintptr_t)&target_function;

	(void)state;
	assert_int_equal(symbols_init(), 0);
	assert_int_equal(symbols_init(), 0);
	assert_int_equal(symbols_lookup(addr, f, SYMBOLS_FRAMES_MAX), 1);
	symbols_destroy();
	symbols_destroy();
	/* After destroy, first use sets up again. */
	assert_int_equal(symbols_lookup(addr, f, SYMBOLS_FRAMES_MAX), 1);
	assert_string_equal(f[0].function, "target_function");
}

/* ------------------------------------------------------------------------
 * 9. Concurrency
 * ---------------------------------------------------------------------- */

#define NADDRS 6
#define NTHREADS 4

struct expect {
	uintptr_t addr;           /* address looked up */
	int n;                    /* frames */
	char function[128];       /* frames[0].function */
	int line;                 /* frames[0].line */
};

static struct expect expects[NADDRS];
static atomic_int ready;          /* threads waiting at the start line */
static atomic_int lookups;        /* successful lookups, all threads */

static void *task_lookup(void *arg)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];

	(void)arg;
	atomic_fetch_add(&ready, 1);
	while (atomic_load(&ready) < NTHREADS)
		;
	for (int round = 0; round < 200; round++) {
		const struct expect *e = &expects[round % NADDRS];
		int n = symbols_lookup(e->addr, f, SYMBOLS_FRAMES_MAX);

		CHECK_EQ(n, e->n);
		if (n < 1)
			continue;
		CHECK_STR(f[0].function, e->function);
		CHECK_EQ(f[0].line, e->line);
		atomic_fetch_add(&lookups, 1);
	}
	return NULL;
}

static void expects_fill(void)
{
	int l1, l2;
	uintptr_t addrs[NADDRS] = {
		(uintptr_t)&target_function, call_site(),
		inline_outer(&l1, &l2), libc_function("write"),
		(uintptr_t)&call_site, 1,
	};
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];

	for (int i = 0; i < NADDRS; i++) {
		expects[i].addr = addrs[i];
		expects[i].n = symbols_lookup(addrs[i], f, SYMBOLS_FRAMES_MAX);
		if (expects[i].n > 0) {
			snprintf(expects[i].function, sizeof(expects[i].function),
				 "%s", f[0].function);
			expects[i].line = f[0].line;
		}
	}
}

static void test_symbols_lookup_concurrent_cold(void **state)
{
	pthread_t t[NTHREADS];
	int known = 0;

	(void)state;
	tu_reset();
	expects_fill();
	symbols_destroy();      /* the threads start cold */
	atomic_store(&ready, 0);
	atomic_store(&lookups, 0);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, task_lookup, NULL), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	tu_assert_no_failures();
	/* Counts: every round on a known address, in every thread. */
	for (int round = 0; round < 200; round++)
		known += expects[round % NADDRS].n > 0;
	assert_int_equal(expects[NADDRS - 1].n, 0);
	assert_int_equal(known, 200 - 200 / NADDRS);
	assert_int_equal(atomic_load(&lookups), NTHREADS * known);
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* 1. Own code */
		T(test_symbols_lookup_entry_names_function),
		T(test_symbols_lookup_call_site_gives_call_line),
		/* 2. Inline chains */
		T(test_symbols_lookup_inlined_two_frames),
		T(test_symbols_lookup_inlined_truncated_to_max),
		/* 3. Libraries */
		T(test_symbols_lookup_libc_function_named),
		/* 4. Unknown addresses */
		T(test_symbols_lookup_unmapped_returns_zero),
		T(test_symbols_bad_arguments_einval),
		/* 5. Cache */
		T(test_symbols_cache_same_pointers),
		/* 6. Mappings */
		T(test_symbols_mappings_executable_with_build_id),
		T(test_symbols_mappings_include_libc),
		/* 7. Refresh */
		T(test_symbols_refresh_after_dlopen),
		T(test_symbols_refresh_unchanged_keeps_array),
		/* 8. Lifecycle */
		T(test_symbols_init_twice_then_reuse),
		/* 9. Concurrency */
		T(test_symbols_lookup_concurrent_cold),
	};
	return cmocka_run_group_tests_name("profiler.symbols", tests, NULL, NULL);
}
