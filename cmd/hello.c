/* SPDX-License-Identifier: MIT */
/* hello.c - the smallest Copper program: main spawns workers and sleeps. */
#include <copper.h>
#include <stdio.h>

static void task_hello(void *arg)
{
	co_sleep(CO_MILLISECOND * (int64_t)(uintptr_t)arg);
	printf("hello from task %llu after %d ms\n",
	       (unsigned long long)co_self(), (int)(uintptr_t)arg);
}

static void main_task(void *arg)
{
	(void)arg;
	for (uintptr_t i = 1; i <= 3; i++)
		co_go(task_hello, (void *)i);
	co_sleep(10 * CO_MILLISECOND);
	printf("%zu tasks left\n", co_num_tasks());
}

int main(void)
{
	int err = co_run(main_task, NULL);
	if (err)
		fprintf(stderr, "co_run: %s\n", co_strerror(err));
	return err ? 1 : 0;
}
