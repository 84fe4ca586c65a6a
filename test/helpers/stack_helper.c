/* SPDX-License-Identifier: MIT */
/*
 * stack_helper.c - a program that test_stack.c and test_config.c run as a
 * subprocess, because what they test ends the process: a task that
 * overflows its stack.
 *
 * Usage: stack_helper overflow
 *        stack_helper overflow-yield <bytes>
 *        stack_helper recurse <bytes>
 *
 * Task 1 starts a task named "parent", which starts the task named "deep"
 * that does the work, so that the overflow message must name a creator
 * other than task 1.  Before it dives, "deep" prints to stdout:
 *
 *     guard=<testing_guard_mode()>
 *     id=<its id> creator=<parent's id>
 *
 * overflow        recurses without bound, in frames of a few hundred bytes
 *                 (less than the guard page, so the first byte below the
 *                 stack lands in it): guard-page modes die in the fault.
 * overflow-yield  writes every byte of one block that reaches from its
 *                 frame to 1.5 KiB past the foot of a <bytes> stack, i.e.
 *                 into the page under the stack but not beyond it, frees
 *                 it, prints "after-dive", then co_yield()s while task 1 is
 *                 runnable (so the yield really switches), prints
 *                 "after-yield", sleeps 1 ms, prints "after-sleep".  Canary
 *                 mode must die at that yield's switch.  One contiguous
 *                 block, not recursion: frames leave bytes unwritten
 *                 (padding, AddressSanitizer's redzones), and the canary is
 *                 one word that such a gap could skip.
 * recurse         recurses <bytes> deep, unwinds and prints "ok": exits 0
 *                 when the stack is big enough.
 *
 * Exit status: 2 from the runtime's fatal error, 0 when the task came
 * back, 1 for a usage or co_run error.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <copper.h>

#include "runtime/testing.h"

enum mode { MODE_OVERFLOW, MODE_OVERFLOW_YIELD, MODE_RECURSE };

static enum mode mode;
static size_t bytes;              /* the <bytes> argument */
static uintptr_t top;             /* frame address where "deep" began */
static _Atomic int deep_done;     /* set when "deep" returns */

/* One frame of a few hundred bytes, all written, so that each frame
 * touches every page it spans.  Stops (limit != 0) once the frame is
 * limit bytes below top. */
__attribute__((noinline)) static unsigned dive(size_t limit, unsigned depth)
{
	volatile unsigned char buf[256];
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(depth + i);
	if (limit && top - here >= limit)
		return buf[depth % sizeof(buf)];
	return dive(limit, depth + 1) + buf[(depth * 7) % sizeof(buf)];
}

/* Writes, lowest address first, one block from just below this frame
 * down to `bottom`: the first write below the stack's foot faults in a
 * guard page, or overwrites the canary there. */
__attribute__((noinline)) static unsigned smash(uintptr_t bottom)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	size_t len = here - 256 - bottom;
	volatile unsigned char *block = __builtin_alloca(len);
	unsigned sum = 0;

	for (size_t i = 0; i < len; i++)
		block[i] = (unsigned char)i;
	for (size_t i = 0; i < len; i += 4096)
		sum += block[i];
	return sum;
}

static void say(const char *line)
{
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void task_deep(void *arg)
{
	uint64_t creator = 0;

	(void)arg;
	testing_task_status(co_self(), NULL, 0, &creator, NULL, 0);
	printf("guard=%s\nid=%llu creator=%llu\n", testing_guard_mode(),
	       (unsigned long long)co_self(), (unsigned long long)creator);
	fflush(stdout);
	top = (uintptr_t)__builtin_frame_address(0);
	switch (mode) {
	case MODE_OVERFLOW:
		dive(0, 0);
		say("after-dive");
		break;
	case MODE_OVERFLOW_YIELD:
		smash(top - bytes - 1536);
		say("after-dive");
		co_yield();
		say("after-yield");
		co_sleep(1000000);
		say("after-sleep");
		break;
	case MODE_RECURSE:
		dive(bytes, 0);
		say("ok");
		break;
	}
	atomic_store(&deep_done, 1);
}

static void task_parent(void *arg)
{
	(void)arg;
	if (!co_go_named("deep", task_deep, NULL))
		say("co_go failed");
}

/* Stays runnable (co_yield) until "deep" is done, so that a co_yield in
 * "deep" has somebody to switch to on one worker. */
static void task_main(void *arg)
{
	(void)arg;
	if (!co_go_named("parent", task_parent, NULL)) {
		say("co_go failed");
		return;
	}
	int64_t end = co_now() + 20 * (int64_t)1000000000;
	while (!atomic_load(&deep_done) && co_now() < end)
		co_yield();
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "overflow") == 0) {
		mode = MODE_OVERFLOW;
	} else if (argc == 3 && strcmp(argv[1], "overflow-yield") == 0) {
		mode = MODE_OVERFLOW_YIELD;
		bytes = strtoul(argv[2], NULL, 0);
	} else if (argc == 3 && strcmp(argv[1], "recurse") == 0) {
		mode = MODE_RECURSE;
		bytes = strtoul(argv[2], NULL, 0);
	} else {
		fprintf(stderr, "usage: %s overflow | overflow-yield <bytes> | "
				"recurse <bytes>\n",
			argv[0]);
		return 1;
	}
	int err = co_run(task_main, NULL);
	if (err) {
		fprintf(stderr, "co_run: %s\n", co_strerror(err));
		return 1;
	}
	return atomic_load(&deep_done) ? 0 : 1;
}
