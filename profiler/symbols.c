/* SPDX-License-Identifier: MIT */
/*
 * symbols.c - the symbolizer: addresses of this process to function, file
 * and line (with inline chains) through libdw's dwfl, plus the executable
 * mappings and their GNU build ids.
 *
 * How it works.  symbols_init opens one Dwfl on our own pid:
 * dwfl_linux_proc_report reads /proc/self/maps and reports one module per
 * loaded ELF file, dwfl_linux_proc_find_elf opens each file lazily on its
 * first lookup, and libdw parses its symbol table, line table and DIEs on
 * demand.  A lookup takes four steps:
 *
 *   1. dwfl_addrmodule: the module that holds the address (none: unknown);
 *   2. dwfl_module_addrdie: its compilation unit, from .debug_aranges, or
 *      where there is none (clang writes none) the first CU whose ranges
 *      hold it; then dwarf_getsrc_die: file:line from the line table;
 *   3. one descent from that CU into the DIE whose code range holds the
 *      address, level by level: every DW_TAG_inlined_subroutine down from
 *      the DW_TAG_subprogram is one frame, and an inlined frame's
 *      DW_AT_call_file/DW_AT_call_line is the position in the frame that
 *      encloses it (eu-addr2line -i gives the same answers, checked on
 *      40,000 addresses, through dwarf_getscopes and dwarf_getscopes_die,
 *      which walk the CU twice: 1.2 to 6 times slower, measured);
 *   4. only when DWARF has no function there (stripped libraries):
 *      dwfl_module_addrinfo, the ELF symbol, with the line table's
 *      file:line if any, else "?" and 0.  It scans the whole symbol table
 *      on every call (4-5x the cost of a DWARF lookup in libc), hence
 *      last.
 *
 * The cache.  Results are cached per address in a chained hash table, so
 * a profile of 100k stacks over a few hundred distinct PCs costs a few
 * hundred DWARF lookups; unknown addresses are cached too.  Every string
 * is copied into a string pool and interned (one pointer per distinct
 * string): libdw's own strings die with their module at dlclose, ours live
 * until symbols_destroy, and callers can compare them by pointer.
 *
 * Debug info is searched locally only: by build id under /usr/lib/debug
 * (Debian's -dbgsym packages), then by .gnu_debuglink.  libdw's standard
 * search is not used: it ends in debuginfod, and even with DEBUGINFOD_URLS
 * unset it dlopens libdebuginfod, which brings libcurl and some 25 more
 * libraries into the profiled process (measured); with it set, a profile
 * would wait on the network.
 *
 * Invariants (under S.lock, which guards every field of S):
 *   - S.dwfl is used only under the lock: a Dwfl is not thread-safe;
 *   - every cache entry was computed with the module set that S.maps
 *     describes: a refresh that sees the mappings change re-reports the
 *     modules and empties the cache before anything is looked up again;
 *   - S.maps is the newest mapping list; older lists stay behind it, and
 *     the pool is never freed, until symbols_destroy;
 *   - nothing here runs in a signal handler: it locks, mallocs and reads
 *     files.
 *
 * Rejected alternatives:
 *   - an addr2line (or llvm-symbolizer) subprocess: a fork and exec per
 *     profile, milliseconds per batch, binutils must be installed, and it
 *     reads the file on disk, which may have been replaced since;
 *   - dladdr/backtrace_symbols: dynamic symbols only, so no static
 *     functions, no file:line and no inline frames;
 *   - our own ELF/DWARF reader: DWARF 5, compressed sections, split debug
 *     files and build-id lookup are libdw's job and Debian ships it;
 *   - leaving symbolization to pprof through the mappings: the debug=1 and
 *     debug=2 text formats need names when they are written, and a remote
 *     pprof does not have our binaries.
 */
#include <assert.h>
#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profiler/symbols.h"

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

#define POOL_CHUNK_SIZE (64u << 10)
#define STRSET_MIN 256
#define CACHE_MIN 1024

/* A block of the string pool; strings are appended, never freed alone. */
struct pool_chunk {
	struct pool_chunk *next;  /* older chunk */
	size_t used;              /* bytes of data taken */
	size_t size;              /* bytes of data */
	char data[];
};

/* The symbolized frames of one address. */
struct cache_entry {
	struct cache_entry *next; /* next in the bucket */
	uintptr_t addr;           /* the address looked up */
	int n;                    /* frames, 0 if the address is unknown */
	struct symbols_frame frames[];
};

/* One generation of mappings, as one /proc/self/maps read saw them. */
struct map_list {
	struct map_list *next;    /* the previous generation, kept alive */
	size_t n;                 /* entries in m */
	struct symbols_mapping m[];
};

static struct {
	pthread_mutex_t lock;     /* guards every field below */
	pthread_t owner;          /* holder of lock, for lock_held */
	bool owned;               /* owner is valid */
	Dwfl *dwfl;               /* set by symbols_init, NULL before */
	struct pool_chunk *pool;  /* newest chunk of the string pool */
	const char **strs;        /* interned strings, open addressing */
	size_t strs_cap;          /* slots in strs, a power of two */
	size_t strs_len;          /* strings in strs */
	struct cache_entry **buckets; /* address cache */
	size_t nbuckets;          /* a power of two, 0 before the first use */
	size_t nentries;          /* entries in the cache */
	struct map_list *maps;    /* newest mappings, NULL before init */
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The parts of a lookup that do not depend on the inline chain. */
struct lookup_base {
	Dwfl_Module *mod;         /* module that holds the address */
	Dwarf_Die cu;             /* its CU, valid if has_cu */
	bool has_cu;              /* DWARF covers the address */
	Dwarf_Addr bias;          /* address minus bias = DWARF address */
	const char *comp_dir;     /* DW_AT_comp_dir of cu, NULL if none */
	const char *file;         /* line table file (interned), "?" if none */
	int line;                 /* line table line, 0 if none */
};

/* ------------------------------------------------------------------------
 * Static prototypes
 * ---------------------------------------------------------------------- */

static void state_lock(void);
static void state_unlock(void);
static int init_locked(void);
static int refresh_locked(void);
static void cache_clear_locked(void);
static struct cache_entry *cache_find_locked(uintptr_t addr);
static struct cache_entry *resolve_locked(uintptr_t addr);
static void pool_free_locked(void);
static void maps_free_locked(void);

/* ------------------------------------------------------------------------
 * API
 * ---------------------------------------------------------------------- */

int symbols_init(void)
{
	int err;

	state_lock();
	err = init_locked();
	state_unlock();
	return err;
}

void symbols_destroy(void)
{
	state_lock();
	if (S.dwfl)
		dwfl_end(S.dwfl);
	S.dwfl = NULL;
	cache_clear_locked();
	free(S.buckets);
	S.buckets = NULL;
	S.nbuckets = 0;
	maps_free_locked();
	pool_free_locked();
	state_unlock();
}

int symbols_lookup(uintptr_t addr, struct symbols_frame *frames, int max)
{
	struct cache_entry *e;
	int err, n;

	if (!frames || max < 1)
		return -EINVAL;
	state_lock();
	err = init_locked();
	if (err < 0)
		goto out_unlock;
	e = cache_find_locked(addr);
	if (!e)
		e = resolve_locked(addr);
	if (!e) {
		err = -ENOMEM;
		goto out_unlock;
	}
	n = e->n < max ? e->n : max;
	memcpy(frames, e->frames, (size_t)n * sizeof(*frames));
	err = n;
out_unlock:
	state_unlock();
	return err;
}

int symbols_mappings(const struct symbols_mapping **out, size_t *n)
{
	int err;

	if (!out || !n)
		return -EINVAL;
	state_lock();
	err = init_locked();
	if (err == 0) {
		*out = S.maps->m;
		*n = S.maps->n;
	}
	state_unlock();
	return err;
}

void symbols_refresh(void)
{
	state_lock();
	if (S.dwfl)
		refresh_locked();
	state_unlock();
}

/* ------------------------------------------------------------------------
 * Locking
 * ---------------------------------------------------------------------- */

static void state_lock(void)
{
	pthread_mutex_lock(&S.lock);
	S.owner = pthread_self();
	S.owned = true;
}

static void state_unlock(void)
{
	S.owned = false;
	pthread_mutex_unlock(&S.lock);
}

/* True if the calling thread holds S.lock (for asserts). */
static inline bool lock_held(void)
{
	return S.owned && pthread_equal(S.owner, pthread_self());
}

/* ------------------------------------------------------------------------
 * The string pool
 * ---------------------------------------------------------------------- */

static size_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (size_t)h;
}

/* Room for size bytes that live until symbols_destroy; NULL if out of
 * memory. */
static char *pool_alloc_locked(size_t size)
{
	struct pool_chunk *c = S.pool;

	if (!c || c->size - c->used < size) {
		size_t cap = size > POOL_CHUNK_SIZE ? size : POOL_CHUNK_SIZE;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = S.pool;
		c->used = 0;
		c->size = cap;
		S.pool = c;
	}
	c->used += size;
	return c->data + c->used - size;
}

/* Doubles the interned-string set; false if out of memory. */
static bool strs_grow_locked(void)
{
	size_t cap = S.strs_cap ? 2 * S.strs_cap : STRSET_MIN;
	const char **t = calloc(cap, sizeof(*t));

	if (!t)
		return false;
	for (size_t i = 0; i < S.strs_cap; i++) {
		if (!S.strs[i])
			continue;
		size_t j = str_hash(S.strs[i]) & (cap - 1);
		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = S.strs[i];
	}
	free(S.strs);
	S.strs = t;
	S.strs_cap = cap;
	return true;
}

/* The pooled copy of s, the same pointer for equal strings; NULL if out of
 * memory. */
static const char *intern_locked(const char *s)
{
	size_t i, len;
	char *copy;

	assert(lock_held());
	if (4 * (S.strs_len + 1) > 3 * S.strs_cap && !strs_grow_locked())
		return NULL;
	for (i = str_hash(s) & (S.strs_cap - 1); S.strs[i];
	     i = (i + 1) & (S.strs_cap - 1))
		if (strcmp(S.strs[i], s) == 0)
			return S.strs[i];
	len = strlen(s) + 1;
	copy = pool_alloc_locked(len);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	S.strs[i] = copy;
	S.strs_len++;
	return copy;
}

static void pool_free_locked(void)
{
	while (S.pool) {
		struct pool_chunk *c = S.pool;
		S.pool = c->next;
		free(c);
	}
	free(S.strs);
	S.strs = NULL;
	S.strs_cap = S.strs_len = 0;
}

/* Removes "." elements, "dir/.." pairs and doubled slashes in place, like
 * Go's path.Clean: build systems record "/src/build/../lib/x.c". */
static void path_clean(char *p)
{
	char *w = p, *r = p, *floor;
	bool abs = *p == '/';

	if (abs)
		*w++ = *r++;
	floor = w;      /* ".." never climbs above this */
	while (*r) {
		size_t len = strcspn(r, "/");
		bool dot = len == 1 && r[0] == '.';
		bool dotdot = len == 2 && r[0] == '.' && r[1] == '.';

		if (dotdot && w > floor) {
			while (w > floor && *--w != '/')
				;
		} else if (len > 0 && !dot && !(dotdot && abs)) {
			if (w > floor)
				*w++ = '/';
			memmove(w, r, len);
			w += len;
			if (dotdot)
				floor = w;      /* a leading ".." stays */
		}
		r += len;
		if (*r == '/')
			r++;
	}
	if (w == p)
		*w++ = '.';
	*w = '\0';
}

/*
 * Interns a source path, cleaned.  libdw joins a file name to its line
 * table directory; that directory is relative to the compilation directory
 * dir ("../src" for meson) except entry 0, which is dir itself, so a path
 * that already starts with dir is not joined twice.
 */
static const char *intern_path_locked(const char *dir, const char *path)
{
	size_t n = dir ? strlen(dir) : 0;
	const char *s;
	char *buf;

	if (path[0] != '/' && n > 0 &&
	    !(strncmp(path, dir, n) == 0 && path[n] == '/')) {
		if (asprintf(&buf, "%s/%s", dir, path) < 0)
			return NULL;
	} else if (!(buf = strdup(path))) {
		return NULL;
	}
	path_clean(buf);
	s = intern_locked(buf);
	free(buf);
	return s;
}

/* ------------------------------------------------------------------------
 * Modules and mappings
 * ---------------------------------------------------------------------- */

/* Opens path if it is a debug file for mod: its build id must match the
 * module's when the module has one.  An fd or -1. */
static int debug_file_open(Dwfl_Module *mod, const char *path)
{
	const unsigned char *want;
	const void *have;
	GElf_Addr vaddr;
	int fd, len;
	Elf *elf;
	bool ok;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = dwfl_module_build_id(mod, &want, &vaddr);
	if (len <= 0)
		return fd;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	ok = elf && dwelf_elf_gnu_build_id(elf, &have) == len &&
	     memcmp(have, want, (size_t)len) == 0;
	elf_end(elf);
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * libdw's find_debuginfo callback, local files only (see the top): by
 * build id under /usr/lib/debug/.build-id, then the .gnu_debuglink name
 * beside the file, in its .debug/ and under /usr/lib/debug.  An fd, with
 * *name set to the file's path (libdw frees it), or -1.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata,
			  const char *modname, Dwarf_Addr base,
			  const char *file, const char *debuglink,
			  GElf_Word crc, char **name)
{
	static const char *const fmt[] = {
		"%.*s/%s", "%.*s/.debug/%s", "/usr/lib/debug%.*s/%s",
	};
	int fd, dirlen;
	char *path;

	fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file,
					  debuglink, crc, name);
	if (fd >= 0 || !file || !debuglink || file[0] != '/')
		return fd;
	dirlen = (int)(strrchr(file, '/') - file);
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		if (asprintf(&path, fmt[i], dirlen, file, debuglink) < 0)
			return -1;
		fd = strcmp(path, file) ? debug_file_open(mod, path) : -1;
		if (fd >= 0) {
			*name = path;
			return fd;
		}
		free(path);
	}
	return -1;
}

static char *debuginfo_path;    /* NULL: libdw's default search path */

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* Reports the modules of this process to S.dwfl afresh: modules that
 * are gone (dlclose) are dropped, the others kept as they are. */
static int modules_report_locked(void)
{
	int rc;

	dwfl_report_begin(S.dwfl);
	rc = dwfl_linux_proc_report(S.dwfl, getpid());
	if (dwfl_report_end(S.dwfl, NULL, NULL) != 0 && rc == 0)
		rc = -1;
	if (rc == 0)
		return 0;
	return rc > 0 ? -rc : -EIO;
}

/* Parses one /proc/self/maps line; true for a named executable mapping,
 * whose path is then interned (NULL path: out of memory). */
static bool maps_parse_locked(char *line, struct symbols_mapping *m)
{
	unsigned long start, limit, offset, inode;
	char perms[5], *path, *end;
	int pos = 0;

	if (sscanf(line, "%lx-%lx %4s %lx %*s %lu %n", &start, &limit, perms,
		   &offset, &inode, &pos) < 5 || pos == 0 || perms[2] != 'x')
		return false;
	path = line + pos;
	path[strcspn(path, "\n")] = '\0';
	if (!path[0])
		return false;   /* anonymous code (a JIT): Go skips it too */
	end = path + strlen(path);
	if (end - path > 10 && strcmp(end - 10, " (deleted)") == 0)
		end[-10] = '\0';
	*m = (struct symbols_mapping){
		.start = start, .limit = limit, .offset = offset,
		.path = intern_locked(path), .build_id = "",
	};
	return true;
}

/* Reads the executable mappings into a new list; 0 or a negative errno. */
static int maps_read_locked(struct map_list **out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	struct map_list *ml = NULL, *bigger;
	size_t cap = 0, n = 0, linecap = 0;
	struct symbols_mapping m;
	char *line = NULL;
	int err = 0;

	if (!f)
		return -errno;
	while (err == 0 && getline(&line, &linecap, f) > 0) {
		if (!maps_parse_locked(line, &m))
			continue;
		if (!m.path) {
			err = -ENOMEM;
		} else if (n == cap) {
			cap = cap ? 2 * cap : 32;
			bigger = realloc(ml, sizeof(*ml) + cap * sizeof(m));
			if (!bigger)
				err = -ENOMEM;
			else
				ml = bigger;
		}
		if (err == 0)
			ml->m[n++] = m;
	}
	free(line);
	fclose(f);
	if (err == 0 && !ml && !(ml = malloc(sizeof(*ml))))
		err = -ENOMEM;
	if (err < 0) {
		free(ml);
		return err;
	}
	ml->n = n;
	ml->next = NULL;
	*out = ml;
	return 0;
}

static bool maps_same(const struct map_list *a, const struct map_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (a->m[i].start != b->m[i].start ||
		    a->m[i].limit != b->m[i].limit ||
		    a->m[i].offset != b->m[i].offset ||
		    a->m[i].path != b->m[i].path)       /* interned */
			return false;
	}
	return true;
}

/* The module whose address range holds addr, or NULL.  (dwfl_addrmodule
 * alone answers the last module for [vsyscall], far above its end.) */
static Dwfl_Module *module_at_locked(uintptr_t addr)
{
	Dwfl_Module *mod = dwfl_addrmodule(S.dwfl, addr);
	Dwarf_Addr start, end;

	if (!mod || !dwfl_module_info(mod, NULL, &start, &end, NULL, NULL,
				      NULL, NULL))
		return NULL;
	return addr >= start && addr < end ? mod : NULL;
}

/* The build id of the module at addr as lowercase hex, "" if none. */
static const char *build_id_locked(uintptr_t addr)
{
	static const char hex[] = "0123456789abcdef";
	Dwfl_Module *mod = module_at_locked(addr);
	const unsigned char *bits;
	char buf[2 * 64 + 1];
	GElf_Addr vaddr, bias;
	int len;

	if (!mod || !dwfl_module_getelf(mod, &bias))
		return "";
	len = dwfl_module_build_id(mod, &bits, &vaddr);
	if (len <= 0 || len > 64)
		return "";
	for (int i = 0; i < len; i++) {
		buf[2 * i] = hex[bits[i] >> 4];
		buf[2 * i + 1] = hex[bits[i] & 15];
	}
	buf[2 * len] = '\0';
	return intern_locked(buf);
}

/*
 * Re-reads the mappings; if they changed, re-reports the modules, gives
 * the new list its build ids, makes it current and empties the cache.
 * 0 or a negative errno (the old state is then kept).
 */
static int refresh_locked(void)
{
	struct map_list *ml = NULL;
	int err;

	assert(lock_held());
	err = maps_read_locked(&ml);
	if (err < 0)
		return err;
	if (S.maps && maps_same(ml, S.maps)) {
		free(ml);
		return 0;
	}
	err = modules_report_locked();
	if (err < 0) {
		free(ml);
		return err;
	}
	for (size_t i = 0; i < ml->n; i++) {
		const char *id = build_id_locked(ml->m[i].start);
		ml->m[i].build_id = id ? id : "";
	}
	ml->next = S.maps;
	S.maps = ml;
	cache_clear_locked();
	return 0;
}

static void maps_free_locked(void)
{
	while (S.maps) {
		struct map_list *ml = S.maps;
		S.maps = ml->next;
		free(ml);
	}
}

static int init_locked(void)
{
	int err;

	assert(lock_held());
	if (S.dwfl)
		return 0;
	S.dwfl = dwfl_begin(&dwfl_callbacks);
	if (!S.dwfl)
		return -ENOMEM;
	err = refresh_locked();
	if (err < 0) {
		dwfl_end(S.dwfl);
		S.dwfl = NULL;
	}
	return err;
}

/* ------------------------------------------------------------------------
 * The address cache
 * ---------------------------------------------------------------------- */

static size_t addr_hash(uintptr_t addr)
{
	uint64_t x = addr;      /* murmur3's finaliser */

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static struct cache_entry *cache_find_locked(uintptr_t addr)
{
	struct cache_entry *e;

	if (!S.nbuckets)
		return NULL;
	e = S.buckets[addr_hash(addr) & (S.nbuckets - 1)];
	while (e && e->addr != addr)
		e = e->next;
	return e;
}

/* Doubles the bucket array; on failure the cache only gets slower. */
static void cache_grow_locked(void)
{
	size_t n = S.nbuckets ? 2 * S.nbuckets : CACHE_MIN;
	struct cache_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < S.nbuckets; i++) {
		while (S.buckets[i]) {
			struct cache_entry *e = S.buckets[i];
			S.buckets[i] = e->next;
			e->next = b[addr_hash(e->addr) & (n - 1)];
			b[addr_hash(e->addr) & (n - 1)] = e;
		}
	}
	free(S.buckets);
	S.buckets = b;
	S.nbuckets = n;
}

/* Adds the frames of addr to the cache; NULL if out of memory. */
static struct cache_entry *cache_add_locked(uintptr_t addr,
					    const struct symbols_frame *f,
					    int n)
{
	struct cache_entry *e;
	size_t b;

	if (S.nentries >= S.nbuckets)
		cache_grow_locked();
	if (!S.nbuckets)
		return NULL;
	e = malloc(sizeof(*e) + (size_t)n * sizeof(*f));
	if (!e)
		return NULL;
	e->addr = addr;
	e->n = n;
	memcpy(e->frames, f, (size_t)n * sizeof(*f));
	b = addr_hash(addr) & (S.nbuckets - 1);
	e->next = S.buckets[b];
	S.buckets[b] = e;
	S.nentries++;
	return e;
}

/* Empties the cache; the strings stay in the pool. */
static void cache_clear_locked(void)
{
	for (size_t i = 0; i < S.nbuckets; i++) {
		while (S.buckets[i]) {
			struct cache_entry *e = S.buckets[i];
			S.buckets[i] = e->next;
			free(e);
		}
	}
	S.nentries = 0;
}

/* ------------------------------------------------------------------------
 * Lookups
 * ---------------------------------------------------------------------- */

/* The name of a function DIE, through DW_AT_abstract_origin and
 * DW_AT_specification: a mangled C++ linkage name as it is, else
 * DW_AT_name (the C name: glibc's "__libc_write", not its asm label
 * "__GI___libc_write"); NULL if it has none. */
static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	const char *s;

	s = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
	if (!s)
		s = dwarf_formstring(dwarf_attr_integrate(die,
			DW_AT_MIPS_linkage_name, &a));
	if (s && strncmp(s, "_Z", 2) == 0)
		return s;
	s = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
	return s;
}

static bool die_is_function(Dwarf_Die *die)
{
	int tag = dwarf_tag(die);

	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_entry_point;
}

/* Where the inlined subroutine die was called from: *file and *line of
 * the call, interned; "?" and 0 when DWARF does not say. */
static void die_call_site_locked(Dwarf_Die *die, Dwarf_Die *cu,
				 const char *comp_dir, const char **file,
				 int *line)
{
	Dwarf_Attribute a;
	Dwarf_Files *files;
	Dwarf_Word idx, l;
	const char *name = NULL;

	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &a), &idx) == 0 &&
	    dwarf_getsrcfiles(cu, &files, NULL) == 0)
		name = dwarf_filesrc(files, idx, NULL, NULL);
	*file = name ? intern_path_locked(comp_dir, name) : "?";
	if (!*file)
		*file = "?";
	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &a), &l) != 0)
		l = 0;
	*line = (int)l;
}

/* Fills one frame for a function DIE of the chain (function_start comes
 * later); false if it has no name or the pool is out of memory. */
static bool frame_fill_locked(struct symbols_frame *f, Dwarf_Die *die,
			      const char *file, int line)
{
	const char *name = die_name(die);

	if (!name || !(f->function = intern_locked(name)))
		return false;
	f->file = file;
	f->line = line;
	if (dwarf_decl_line(die, &f->start_line) != 0)
		f->start_line = 0;
	return true;
}

/* The entry of the physical function fn, CU-relative: the start of the
 * range of its code that holds pc, so a .cold part counts from its own
 * start as its ELF symbol "fn.cold" does; pc itself if DWARF says none. */
static Dwarf_Addr function_entry(Dwarf_Die *fn, Dwarf_Addr pc)
{
	Dwarf_Addr base, start, end;
	ptrdiff_t off = 0;

	while ((off = dwarf_ranges(fn, off, &base, &start, &end)) > 0)
		if (pc >= start && pc < end)
			return start;
	return pc;
}

/* Tags of DIEs that hold code and may hold the scopes inside it. */
static bool tag_is_scope(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point ||
	       tag == DW_TAG_try_block || tag == DW_TAG_catch_block;
}

/* The child of parent whose code range holds pc (looking into C++
 * namespaces and Fortran modules, which have no range); false if none. */
static bool scope_find(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *found,
		       int depth)
{
	Dwarf_Die c;
	int tag;

	if (dwarf_child(parent, &c) != 0)
		return false;
	do {
		tag = dwarf_tag(&c);
		if (tag == DW_TAG_namespace || tag == DW_TAG_module) {
			if (depth < 16 && scope_find(&c, pc, found, depth + 1))
				return true;
		} else if (tag_is_scope(tag) && dwarf_haspc(&c, pc) > 0) {
			*found = c;
			return true;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return false;
}

/*
 * The function DIEs whose code holds pc (CU-relative), innermost first,
 * at most SYMBOLS_FRAMES_MAX (the outermost are dropped); their number.
 * One descent from the CU, into the one child that holds pc at each level
 * and past every other subtree.
 */
static int function_chain(Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die *fn)
{
	Dwarf_Die die = *cu, found, tmp;
	int n = 0;

	while (scope_find(&die, pc, &found, 0)) {
		if (die_is_function(&found)) {
			if (n == SYMBOLS_FRAMES_MAX)
				memmove(fn, fn + 1, (size_t)--n * sizeof(*fn));
			fn[n++] = found;
		}
		die = found;
	}
	for (int i = 0; i < n / 2; i++) {
		tmp = fn[i];
		fn[i] = fn[n - 1 - i];
		fn[n - 1 - i] = tmp;
	}
	return n;
}

/*
 * The inline chain at addr from DWARF, innermost first, into f; the
 * number of frames, 0 if DWARF has no function there.  The innermost
 * frame's position is the line table's; each outer frame's is the
 * DW_AT_call_file/DW_AT_call_line of the inlined subroutine inside it.
 */
static int resolve_dwarf_locked(uintptr_t addr, const struct lookup_base *b,
				struct symbols_frame *f)
{
	Dwarf_Die fn[SYMBOLS_FRAMES_MAX], cu = b->cu;
	const char *file = b->file;
	int nfn, n = 0, line = b->line;
	Dwarf_Addr pc = addr - b->bias;
	uintptr_t entry;

	if (!b->has_cu)
		return 0;
	nfn = function_chain(&cu, pc, fn);
	for (; n < nfn; n++) {
		if (!frame_fill_locked(&f[n], &fn[n], file, line))
			break;
		if (dwarf_tag(&fn[n]) == DW_TAG_inlined_subroutine)
			die_call_site_locked(&fn[n], &cu, b->comp_dir, &file,
					     &line);
	}
	/* Every frame of a chain shares the physical function's entry. */
	entry = n ? function_entry(&fn[nfn - 1], pc) + b->bias : addr;
	for (int i = 0; i < n; i++)
		f[i].function_start = entry;
	return n;
}

/*
 * The CU of mod whose code holds addr into b.  dwfl_module_addrdie reads
 * .debug_aranges, which clang does not write (libdw 0.188 then answers
 * "address out of range"), so without it every CU's ranges are tried.
 */
static bool cu_find(struct lookup_base *b, uintptr_t addr)
{
	Dwarf_Die *cu = dwfl_module_addrdie(b->mod, addr, &b->bias);

	if (!cu) {
		while ((cu = dwfl_module_nextcu(b->mod, cu, &b->bias)))
			if (dwarf_haspc(cu, addr - b->bias) > 0)
				break;
	}
	if (!cu)
		return false;
	b->cu = *cu;
	return true;
}

/* Module, CU and line table position of addr; false if no module holds
 * it. */
static bool lookup_base_locked(uintptr_t addr, struct lookup_base *b)
{
	const char *file = NULL;
	Dwarf_Attribute a;
	Dwarf_Line *l;

	*b = (struct lookup_base){ .mod = module_at_locked(addr), .file = "?" };
	if (!b->mod)
		return false;
	b->has_cu = cu_find(b, addr);
	if (!b->has_cu)
		return true;
	b->comp_dir = dwarf_formstring(dwarf_attr(&b->cu, DW_AT_comp_dir, &a));
	l = dwarf_getsrc_die(&b->cu, addr - b->bias);
	if (l && dwarf_lineno(l, &b->line) == 0)
		file = dwarf_linesrc(l, NULL, NULL);
	if (file)
		file = intern_path_locked(b->comp_dir, file);
	b->file = file ? file : "?";
	if (!file)
		b->line = 0;
	return true;
}

/*
 * GCC names the copies it makes of a function after the function and a
 * suffix: wait_here.isra.0, parse.constprop.3, run.part.0, main.cold.
 * pprof users expect the source name, and DWARF gives that, so the ELF
 * symbol's name loses everything from the first such suffix on.  A C
 * identifier has no dot, so nothing real is cut.
 */
static size_t clone_name_len(const char *name)
{
	static const char *const suffixes[] = {
		".isra.", ".constprop.", ".part.", ".cold", ".lto_priv.",
		".localalias", ".llvm.",
	};
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		const char *p = strstr(name, suffixes[i]);
		if (p && p > name && (size_t)(p - name) < len)
			len = (size_t)(p - name);
	}
	return len;
}

/* The ELF symbol that holds addr as one frame, for code without DWARF
 * (stripped libraries); 0 if no symbol holds it.  dwfl_module_addrinfo
 * scans the whole symbol table, so it runs only when DWARF had nothing. */
static int resolve_elf_locked(uintptr_t addr, const struct lookup_base *b,
			      struct symbols_frame *f)
{
	const char *name;
	GElf_Sym sym;
	GElf_Off off;

	name = dwfl_module_addrinfo(b->mod, addr, &off, &sym, NULL, NULL,
				    NULL);
	if (!name)
		return 0;
	char plain[256];
	size_t len = clone_name_len(name);
	if (len < strlen(name) && len < sizeof(plain)) {
		memcpy(plain, name, len);
		plain[len] = '\0';
		name = plain;
	}
	if (!(name = intern_locked(name)))
		return 0;
	*f = (struct symbols_frame){
		.function = name, .file = b->file, .line = b->line,
		.function_start = addr - off,
	};
	return 1;
}

/* Symbolizes addr and caches the result; NULL if out of memory. */
static struct cache_entry *resolve_locked(uintptr_t addr)
{
	struct symbols_frame f[SYMBOLS_FRAMES_MAX];
	struct lookup_base b;
	int n = 0;

	if (!lookup_base_locked(addr, &b)) {
		/* Perhaps a library dlopened since the last refresh. */
		if (refresh_locked() < 0 || !lookup_base_locked(addr, &b))
			return cache_add_locked(addr, f, 0);
	}
	n = resolve_dwarf_locked(addr, &b, f);
	if (n == 0)
		n = resolve_elf_locked(addr, &b, f);
	return cache_add_locked(addr, f, n);
}
