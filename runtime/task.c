/* SPDX-License-Identifier: MIT */
/*
 * task.c - the task state and wait-reason tables, and the debug checker of
 * the state machine drawn in runtime.h.
 *
 * The strings are Go's, byte for byte, because debug=2 dumps print them and
 * tools that parse Go dumps match on them.  Indexed tables with designated
 * initialisers make a missing string a compile-visible hole (checked by the
 * static asserts below), not a silent "(null)" in a dump.
 */
#include <assert.h>

#include "runtime.h"

const char *const task_state_names[TASK_NSTATES] = {
	[TASK_DEAD] = "dead",
	[TASK_RUNNABLE] = "runnable",
	[TASK_RUNNING] = "running",
	[TASK_WAITING] = "waiting",
	[TASK_SYSCALL] = "syscall",
};

/* Keep in sync with enum wait_reason and with docs/guide.md's table. */
const char *const wait_reason_names[WAIT_NREASONS] = {
	[WAIT_NONE] = "",
	[WAIT_CHAN_RECV] = "chan receive",
	[WAIT_CHAN_SEND] = "chan send",
	[WAIT_SELECT] = "select",
	[WAIT_SELECT_NO_CASES] = "select (no cases)",
	[WAIT_CHAN_RECV_NIL] = "chan receive (nil chan)",
	[WAIT_CHAN_SEND_NIL] = "chan send (nil chan)",
	[WAIT_SLEEP] = "sleep",
	[WAIT_IO] = "IO wait",
	[WAIT_SYSCALL] = "syscall",
	[WAIT_MUTEX_LOCK] = "co_mutex_lock",
	[WAIT_RWMUTEX_RLOCK] = "co_rwmutex_rlock",
	[WAIT_RWMUTEX_LOCK] = "co_rwmutex_lock",
	[WAIT_COND_WAIT] = "co_cond_wait",
	[WAIT_WG_WAIT] = "co_wg_wait",
	[WAIT_ONCE] = "co_once_do",
};

struct runtime_hooks runtime_hooks;

_Static_assert(sizeof(wait_reason_names) / sizeof(wait_reason_names[0]) ==
		       WAIT_NREASONS,
	       "every wait reason needs its string");

const char *task_status_text(enum task_state s, enum wait_reason r)
{
	if (s == TASK_WAITING && r > WAIT_NONE && r < WAIT_NREASONS)
		return wait_reason_names[r];
	if (s < TASK_NSTATES)
		return task_state_names[s];
	return "unknown";
}

bool task_check(const struct task *t)
{
	enum task_state s = atomic_load_explicit(&t->state, memory_order_relaxed);
	enum wait_reason r =
		atomic_load_explicit(&t->wait_reason, memory_order_relaxed);

	if (s >= TASK_NSTATES || r >= WAIT_NREASONS)
		return false;
	if ((uintptr_t)t != t->stack_hi || t->stack_lo >= t->stack_hi)
		return false;
	switch (s) {
	case TASK_DEAD:
		return t->id == 0;
	case TASK_WAITING:
		return t->id != 0 && r != WAIT_NONE;
	case TASK_SYSCALL:
	case TASK_RUNNABLE:
		return t->id != 0 && t->ctx.sp != NULL &&
		       (uintptr_t)t->ctx.sp > t->stack_lo &&
		       (uintptr_t)t->ctx.sp < t->stack_hi;
	case TASK_RUNNING:
		return t->id != 0 && t->worker != NULL;
	default:
		return false;
	}
}
