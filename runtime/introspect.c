/* SPDX-License-Identifier: MIT */
/*
 * introspect.c - the profiler's gateway (protocol in introspect.h): copies
 * task records out of the task table, which is the set of stack slots
 * (stack.c explains why).
 */
#include "introspect.h"

#include "copper.h"
#include "runtime.h"

struct walk {
	void (*fn)(const struct task_info *, void *);
	void *arg;
	size_t visited;
};

static void visit_slot(struct task *t, void *arg)
{
	struct walk *wk = arg;
	struct task_info info;
	enum task_state s = atomic_load_explicit(&t->state, memory_order_acquire);

	if (s == TASK_DEAD)
		return;
	info.id = t->id;
	info.state = s;
	info.status = task_status_text(
		s, atomic_load_explicit(&t->wait_reason, memory_order_relaxed));
	info.wait_since = t->wait_since;
	info.creator_id = t->creator_id;
	info.creator_pc = t->creator_pc;
	info.name = t->name;
	info.labels = t->labels;
	info.frame = s == TASK_RUNNING
			     ? 0
			     : (uintptr_t)t->ctx.sp + SWITCH_FRAME_OFFSET;
	info.stack_lo = t->stack_lo;
	info.stack_hi = t->stack_hi;
	info.worker = t->worker ? t->worker->id : -1;
	wk->fn(&info, wk->arg);
	wk->visited++;
}

size_t introspect_each_task(void (*fn)(const struct task_info *, void *),
			    void *arg)
{
	struct walk wk = {fn, arg, 0};

	if (!sched_running())
		return 0;
	stack_each_slot(visit_slot, &wk);
	return wk.visited;
}

size_t introspect_num_tasks(void)
{
	return co_num_tasks();
}

const char *introspect_guard_mode(void)
{
	return stack_guard_mode_names[stack_guard_mode()];
}

struct runtime_hooks *introspect_hooks(void)
{
	return &runtime_hooks;
}
