/* SPDX-License-Identifier: MIT */
/*
 * cpuprof_unwind.c - the CPU profile's stack walk, in the SIGPROF handler:
 * frame pointers, plus the call frame information (.eh_frame) of code
 * that keeps no frame pointer.
 *
 * Why.  A frame-pointer walk starts at the interrupted frame pointer, so
 * it never sees the caller of a function that has not set up a frame of
 * its own: a leaf that needs no stack (GCC omits the frame of such leaves
 * even with -fno-omit-frame-pointer), glibc's memcpy, any function of a
 * library built without frame pointers (Debian builds libc, libuv, ...
 * that way), where the frame pointer register may even hold data.  The
 * sample would lose exactly the frame the user wrote: the function that
 * called memcpy, or the one that called qsort whose comparator is running.
 *
 * How.  Before a profile starts, cpuprof_unwind_prepare turns the
 * .eh_frame of every loaded module (libdw's dwfl_module_eh_cfi and
 * dwarf_cfi_addrframe, one call per CFI row, walking each FDE that the
 * module's .eh_frame_hdr lists) into a flat, sorted array of rows, each
 * saying for a range of pcs: CFA = sp or fp + offset; return address at
 * CFA + offset (or, on aarch64, still in the link register); caller's
 * frame pointer at CFA + offset, or unchanged.  The handler then steps
 * frame by frame: where the pc has such a row, by the row (two bounded
 * loads); elsewhere (no FDE, or a rule the table does not keep: a CFA
 * expression, as in PLT stubs) by the frame-pointer record.  Every load
 * is bounded by the stack the interrupted sp lies on
 * (introspect_sig_self), so a wrong row or a broken chain ends the walk,
 * never faults.  The tables are built once and kept; a later profile
 * rebuilds them only when the executable mappings changed (dlopen).
 *
 * Rejected: libunwind or libdw's dwfl_frame in the handler (they lock,
 * allocate and read files); copying the top of the stack in the handler
 * to unwind later with libdw (kilobytes per sample, and still a guess at
 * how much to copy); only reading [sp] as the return address when the
 * leaf lies in a library (right for memcpy, wrong as soon as the function
 * has pushed a register, and no help for qsort's comparator, whose caller
 * chain runs through libc's frames); building the tables in the handler
 * on a miss.
 *
 * What stays invisible (docs/profiles.md): code with neither a frame
 * pointer nor CFI (hand-written assembly without .cfi directives, JIT
 * code), CFA rules given as DWARF expressions, and a leaf interrupted
 * inside a PLT stub: there the walk falls back to the frame pointer and
 * the leaf's caller is lost.
 *
 * Invariants: U.set is replaced only while no handler of a profile can run
 * (before P.active is set, see cpuprof.c); rows of a module are sorted by
 * start and do not overlap; a row's range ends where the next row
 * starts, or at its module's end.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profiler.h"
#include "runtime/introspect.h"

#if defined(__x86_64__)
#define REG_FP 6
#define REG_SP 7
#elif defined(__aarch64__)
#define REG_FP 29
#define REG_SP 31
#define REG_LR 30
#endif

/* ------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------- */

enum { CFA_NONE = 0, CFA_SP, CFA_FP };
enum { RULE_UNDEF = 0, RULE_OFFSET, RULE_SAME, RULE_LR };

/* One CFI row: from start to the next row's start. */
struct urow {
	uintptr_t start;       /* first pc (run-time address) */
	int32_t cfa_off;       /* CFA = cfa_reg + cfa_off */
	int16_t ra_off;        /* return address at CFA + ra_off */
	int16_t fp_off;        /* caller's fp at CFA + fp_off */
	uint8_t cfa_reg;       /* CFA_*; CFA_NONE: no usable rule here */
	uint8_t ra_rule;       /* RULE_* */
	uint8_t fp_rule;       /* RULE_* */
};

struct umodule {
	uintptr_t lo, hi;      /* its code, run-time addresses */
	struct urow *rows;
	size_t n;
};

struct uset {
	struct umodule *m;     /* sorted by lo */
	size_t n;
	char *maps_key;        /* the executable mappings it was built for */
};

static struct {
	_Atomic(struct uset *) set;  /* read by handlers */
} U;

/* ------------------------------------------------------------------------
 * The walk (in the handler)
 * ---------------------------------------------------------------------- */

static const struct urow *row_find(const struct uset *s, uintptr_t pc)
{
	size_t lo = 0, hi = s->n;
	const struct umodule *m = NULL;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc < s->m[mid].lo) {
			hi = mid;
		} else if (pc >= s->m[mid].hi) {
			lo = mid + 1;
		} else {
			m = &s->m[mid];
			break;
		}
	}
	if (!m || m->n == 0 || pc < m->rows[0].start)
		return NULL;
	lo = 0;
	hi = m->n;
	while (hi - lo > 1) { /* the last row starting at or before pc */
		size_t mid = lo + (hi - lo) / 2;
		if (m->rows[mid].start <= pc)
			lo = mid;
		else
			hi = mid;
	}
	return m->rows[lo].cfa_reg != CFA_NONE ? &m->rows[lo] : NULL;
}

/* A word of the stack at addr, if it lies within [lo, hi).  The walk
 * reads other frames' slots, which AddressSanitizer may hold poisoned. */
__attribute__((no_sanitize_address)) static bool load(uintptr_t addr, uintptr_t lo, uintptr_t hi, uintptr_t *out)
{
	if (addr < lo || addr > hi - sizeof(uintptr_t) ||
	    (addr & (sizeof(uintptr_t) - 1)))
		return false;
	*out = *(const uintptr_t *)addr;
	return true;
}

int cpuprof_unwind(const struct introspect_sig_self *ss, uintptr_t *pcs,
		   int max)
{
	const struct uset *set = atomic_load_explicit(&U.set,
						      memory_order_acquire);
	uintptr_t pc = ss->pc, sp = ss->sp, fp = ss->fp;
	uintptr_t lo = ss->stack_lo, hi = ss->stack_hi;
	int n = 0;

	if (max <= 0)
		return 0;
	pcs[n++] = pc;
	if (!hi)
		return n;
	for (bool leaf = true; n < max; leaf = false) {
		const struct urow *r = set ? row_find(set, leaf ? pc : pc - 1)
					   : NULL;
		uintptr_t ra = 0;

		if (r) {
			uintptr_t cfa = (r->cfa_reg == CFA_SP ? sp : fp) +
					(intptr_t)r->cfa_off;
			if (cfa <= sp || cfa > hi)
				break;
			if (r->ra_rule == RULE_OFFSET) {
				if (!load(cfa + r->ra_off, lo, hi, &ra))
					break;
			} else if (r->ra_rule == RULE_LR && leaf && ss->lr) {
				ra = ss->lr;
			} else {
				break;
			}
			if (r->fp_rule == RULE_OFFSET &&
			    !load(cfa + r->fp_off, lo, hi, &fp))
				break;
			sp = cfa;
		} else {
			/* The frame record [saved fp][return address]. */
			uintptr_t next;
			if (fp < sp || !load(fp, lo, hi, &next) ||
			    !load(fp + sizeof(uintptr_t), lo, hi, &ra))
				break;
			sp = fp + 2 * sizeof(uintptr_t);
			fp = next > fp ? next : 0; /* must grow upward */
		}
		if (ra == 0)
			break;
		pcs[n++] = ra;
		pc = ra;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Building the tables (outside handlers)
 * ---------------------------------------------------------------------- */

/* Reads a register rule libdw gives as a location description. */
static int rule_of(Dwarf_Frame *f, int reg, int16_t *off)
{
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 0;

	if (dwarf_frame_register(f, reg, mem, &ops, &nops) != 0)
		return RULE_UNDEF;
	if (nops == 0)
		return ops == NULL ? RULE_SAME : RULE_UNDEF;
	if (ops[0].atom != DW_OP_call_frame_cfa)
		return RULE_UNDEF;
	int64_t v = 0;
	if (nops == 1) {
		v = 0;
	} else if (nops == 2 && ops[1].atom == DW_OP_plus_uconst) {
		v = (int64_t)ops[1].number;
	} else if (nops == 3 && ops[1].atom == DW_OP_consts &&
		   ops[2].atom == DW_OP_plus) {
		v = (int64_t)ops[1].number;
	} else {
		return RULE_UNDEF; /* a value rule or an expression */
	}
	if (v < INT16_MIN || v > INT16_MAX)
		return RULE_UNDEF;
	*off = (int16_t)v;
	return RULE_OFFSET;
}

static void row_decode(Dwarf_Frame *f, int ra_reg, struct urow *r)
{
	Dwarf_Op *ops = NULL;
	size_t nops = 0;

	r->cfa_reg = CFA_NONE;
	int reg;
	int64_t off;

	/* libdw writes "register + offset" as DW_OP_bregx reg, off (or
	 * DW_OP_breg<reg> off); anything longer is an expression. */
	if (dwarf_frame_cfa(f, &ops, &nops) != 0 || nops != 1)
		return;
	if (ops[0].atom == DW_OP_bregx) {
		reg = (int)ops[0].number;
		off = (int64_t)ops[0].number2;
	} else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
		reg = ops[0].atom - DW_OP_breg0;
		off = (int64_t)ops[0].number;
	} else {
		return;
	}
	if ((reg != REG_SP && reg != REG_FP) || off < INT32_MIN ||
	    off > INT32_MAX)
		return;
	r->ra_rule = (uint8_t)rule_of(f, ra_reg, &r->ra_off);
#if defined(REG_LR)
	if (r->ra_rule == RULE_SAME)
		r->ra_rule = RULE_LR;
#endif
	if (r->ra_rule == RULE_UNDEF || r->ra_rule == RULE_SAME)
		return;
	r->fp_rule = (uint8_t)rule_of(f, REG_FP, &r->fp_off);
	if (r->fp_rule == RULE_UNDEF)
		r->fp_rule = RULE_SAME; /* not restored: keep the guess */
	r->cfa_off = (int32_t)off;
	r->cfa_reg = reg == REG_SP ? CFA_SP : CFA_FP;
}

struct rows {
	struct urow *v;
	size_t n, cap;
};

static int rows_push(struct rows *rs, const struct urow *r)
{
	if (rs->n && rs->v[rs->n - 1].start == r->start)
		return 0;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 1024;
		struct urow *v = realloc(rs->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = *r;
	return 0;
}

/* .eh_frame_hdr's sorted table of FDE starts, run-time addresses. */
struct hdr_find {
	uintptr_t bias;
	const uint8_t *hdr;    /* found: the header in memory */
};

static int hdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct hdr_find *h = arg;
	(void)size;

	if (info->dlpi_addr != h->bias)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME) {
			h->hdr = (const uint8_t *)(info->dlpi_addr +
						   info->dlpi_phdr[i].p_vaddr);
			return 1;
		}
	return 0;
}

/* Rows of one module: every FDE the header lists, row by row. */
static int module_rows(Dwarf_CFI *cfi, Dwarf_Addr bias, uintptr_t hi,
		       const uint8_t *hdr, struct rows *rs)
{
	/* version 1, eh_frame_ptr (pcrel sdata4), fde_count (udata4), the
	 * table (datarel sdata4 pairs): what every linker writes. */
	if (hdr[0] != 1 || hdr[1] != 0x1b || hdr[2] != 0x03 || hdr[3] != 0x3b)
		return 0;
	uint32_t count;
	memcpy(&count, hdr + 8, 4);
	const uint8_t *tab = hdr + 12;
	for (uint32_t i = 0; i < count; i++) {
		int32_t rel, next_rel = 0;
		memcpy(&rel, tab + 8 * i, 4);
		if (i + 1 < count)
			memcpy(&next_rel, tab + 8 * (i + 1), 4);
		uintptr_t a = (uintptr_t)hdr + rel;
		uintptr_t stop = i + 1 < count ? (uintptr_t)hdr + next_rel : hi;
		while (a < stop) {
			Dwarf_Frame *f = NULL;
			Dwarf_Addr s, e;
			struct urow r = {0};
			if (dwarf_cfi_addrframe(cfi, a - bias, &f) != 0)
				break;
			int ra = dwarf_frame_info(f, &s, &e, NULL);
			row_decode(f, ra, &r);
			free(f);
			r.start = a;
			if (rows_push(rs, &r) < 0)
				return -ENOMEM;
			if (e + bias <= a)
				break;
			a = e + bias;
		}
		/* The gap up to the next FDE: no rule. */
		struct urow gap = {.start = a};
		if (a < stop && rows_push(rs, &gap) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int no_debuginfo(Dwfl_Module *mod, void **userdata,
			const char *modname, Dwarf_Addr base,
			const char *file, const char *debuglink,
			GElf_Word crc, char **debuginfo_file_name)
{
	(void)mod; (void)userdata; (void)modname; (void)base; (void)file;
	(void)debuglink; (void)crc; (void)debuginfo_file_name;
	return -1; /* .eh_frame is in the loaded file itself */
}

static const Dwfl_Callbacks callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = no_debuginfo,
};

struct build {
	struct uset *set;
	size_t cap;
	int err;
};

static int module_cb(Dwfl_Module *mod, void **userdata, const char *name,
		     Dwarf_Addr start, void *arg)
{
	struct build *b = arg;
	Dwarf_Addr bias, end;
	struct rows rs = {0};
	struct hdr_find h;
	(void)userdata;
	(void)name;

	dwfl_module_info(mod, NULL, NULL, &end, NULL, NULL, NULL, NULL);
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	if (!cfi)
		return DWARF_CB_OK;
	h = (struct hdr_find){(uintptr_t)bias, NULL};
	if (!dl_iterate_phdr(hdr_cb, &h) || !h.hdr)
		return DWARF_CB_OK; /* the vdso has none dl_iterate sees */
	if (module_rows(cfi, bias, end, h.hdr, &rs) < 0 || rs.n == 0) {
		free(rs.v);
		return DWARF_CB_OK;
	}
	if (b->set->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		struct umodule *m = realloc(b->set->m, cap * sizeof(*m));
		if (!m) {
			free(rs.v);
			b->err = -ENOMEM;
			return DWARF_CB_ABORT;
		}
		b->set->m = m;
		b->cap = cap;
	}
	b->set->m[b->set->n++] = (struct umodule){start, end, rs.v, rs.n};
	return DWARF_CB_OK;
}

static int cmp_module(const void *a, const void *b)
{
	const struct umodule *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void set_free(struct uset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->m[i].rows);
	free(s->m);
	free(s->maps_key);
	free(s);
}

/* The executable lines of /proc/self/maps: what the tables depend on. */
static char *maps_key(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], *key = NULL;
	size_t len = 0;
	FILE *out;

	if (!f)
		return NULL;
	out = open_memstream(&key, &len);
	if (!out) {
		fclose(f);
		return NULL;
	}
	while (fgets(line, sizeof(line), f)) {
		char perm[8];
		if (sscanf(line, "%*s %7s", perm) == 1 && perm[2] == 'x')
			fputs(line, out);
	}
	fclose(f);
	fclose(out);
	return key;
}

static struct uset *set_build(char *key)
{
	struct build b = {calloc(1, sizeof(struct uset)), 0, 0};
	Dwfl *dwfl;

	if (!b.set) {
		free(key);
		return NULL;
	}
	b.set->maps_key = key;
	if (!(dwfl = dwfl_begin(&callbacks)))
		goto fail;
	if (dwfl_linux_proc_report(dwfl, getpid()) != 0 ||
	    dwfl_report_end(dwfl, NULL, NULL) != 0) {
		dwfl_end(dwfl);
		goto fail;
	}
	dwfl_getmodules(dwfl, module_cb, &b, 0);
	dwfl_end(dwfl);
	if (b.err)
		goto fail;
	qsort(b.set->m, b.set->n, sizeof(*b.set->m), cmp_module);
	return b.set;
fail:
	set_free(b.set);
	return NULL;
}

void cpuprof_unwind_prepare(void)
{
	struct uset *old = atomic_load(&U.set);
	char *key = maps_key();

	if (old && key && old->maps_key && strcmp(old->maps_key, key) == 0) {
		free(key);
		return;
	}
	struct uset *s = set_build(key);
	if (!s)
		return; /* frame pointers only */
	atomic_store_explicit(&U.set, s, memory_order_release);
	set_free(old); /* no handler runs between profiles */
}
