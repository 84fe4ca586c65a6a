/* SPDX-License-Identifier: MIT */
/*
 * testing.h - the one door from tests into the runtime's internals (Go's
 * export_test.go).  testing.c is a static library of its own that only
 * the test programs link (runtime_testing_lib); the installed library
 * never carries these symbols.
 */
#ifndef COPPER_RUNTIME_TESTING_H
#define COPPER_RUNTIME_TESTING_H

#include <stddef.h>
#include <stdint.h>

#define TESTING_API __attribute__((visibility("default")))

/* Live tasks counted by walking the task table (not the counters). */
TESTING_API size_t testing_table_count(void);
/* Fills the state text ("sleep", "chan receive", "runnable", ...),
 * creator id and name of task id; -ENOENT if it is not live. */
TESTING_API int testing_task_status(uint64_t id, char *status, size_t len,
				    uint64_t *creator, char *name,
				    size_t name_len);
/* "guard pages (MADV_GUARD_INSTALL)", "guard pages (mprotect)", "canary". */
TESTING_API const char *testing_guard_mode(void);
/* Slots ever carved from stack regions, and dead slots in the global pool
 * (stack.c); either pointer may be NULL. */
TESTING_API void testing_stack_counts(size_t *carved, size_t *pooled);
/* Number of worker threads in the running runtime. */
TESTING_API int testing_nprocs(void);
/* Worker index running the calling task, -1 outside tasks. */
TESTING_API int testing_worker_id(void);
/* introspect_self_stack from the caller's frame (return addresses), and
 * introspect_thread_register for the calling thread. */
TESTING_API int testing_self_stack(uintptr_t *pcs, int max);
TESTING_API void testing_thread_register(void);

#endif /* COPPER_RUNTIME_TESTING_H */
