/* SPDX-License-Identifier: MIT */
/*
 * sanitizer.h - tells AddressSanitizer about every stack switch, and
 * compiles to nothing in other builds.
 *
 * ASan keeps per-thread knowledge of "the" stack; a coroutine switch moves
 * the thread to another stack, so each switch is bracketed by
 * __sanitizer_start_switch_fiber (before: the stack we go to) and
 * __sanitizer_finish_switch_fiber (after: on the stack we arrived at, with
 * the fake-stack handle that context saved when it last left).  A dying
 * task passes NULL so ASan frees its fake stack.
 */
#ifndef COPPER_RUNTIME_SANITIZER_H
#define COPPER_RUNTIME_SANITIZER_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define COPPER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COPPER_ASAN 1
#endif
#endif

#ifdef COPPER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

static inline void san_switch_start(void **fake_save, bool dying,
				    const void *bottom, size_t size)
{
	__sanitizer_start_switch_fiber(dying ? NULL : fake_save, bottom, size);
}

static inline void san_switch_finish(void *fake_save)
{
	__sanitizer_finish_switch_fiber(fake_save, NULL, NULL);
}

/* A task that exits leaves its live frames poisoned; the next task on the
 * slot must not trip over them.  Only the frames from here up are live:
 * deeper ones returned and cleaned up after themselves. */
#define san_unpoison_stack(t)                                              \
	do {                                                               \
		char *sp_ = (char *)__builtin_frame_address(0) - 512;      \
		__asan_unpoison_memory_region(sp_, (t)->stack_hi -         \
							   (uintptr_t)sp_); \
	} while (0)
static inline void san_unpoison_range(void *p, size_t len)
{
	__asan_unpoison_memory_region(p, len);
}
#else
static inline void san_unpoison_range(void *p, size_t len)
{
	(void)p, (void)len;
}
static inline void san_switch_start(void **fake_save, bool dying,
				    const void *bottom, size_t size)
{
	(void)fake_save, (void)dying, (void)bottom, (void)size;
}
static inline void san_switch_finish(void *fake_save) { (void)fake_save; }
#define san_unpoison_stack(t) ((void)(t))
#endif /* COPPER_ASAN */

#endif /* COPPER_RUNTIME_SANITIZER_H */
