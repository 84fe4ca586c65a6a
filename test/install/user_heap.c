/* SPDX-License-Identifier: MIT */
/*
 * user_heap.c - a program built as users build it (user_build.sh step 7):
 * it retains about 24 MiB at one known call site, keep_buffers, and frees
 * as much again from another, drop_buffers, all with the default sampling
 * rate and no code that mentions profiling but the profile write, then
 * prints the heap profile at debug=1 (and writes debug=0 to argv[1] when
 * given).  Nothing here calls Copper before main: the allocator is
 * replaced by linking with `pkg-config --libs copper` alone.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <copper.h>

#define NBUF 1536

static char *kept[NBUF];

__attribute__((noinline)) static void keep_buffers(void)
{
	for (int i = 0; i < NBUF; i++) {
		kept[i] = malloc(16384);
		memset(kept[i], i, 16384);
	}
}

__attribute__((noinline)) static void drop_buffers(void)
{
	for (int i = 0; i < NBUF; i++) {
		char *p = malloc(16384 + 16);
		memset(p, i, 64);
		__asm__ volatile("" : : "r"(p) : "memory"); /* kept */
		free(p);
	}
}

static void task_main(void *arg)
{
	const char *path = arg;

	drop_buffers();
	keep_buffers();
	co_profile_write(co_profile_lookup("heap"), STDOUT_FILENO, 1);
	if (path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			co_profile_write(co_profile_lookup("heap"), fd, 0);
			close(fd);
		}
	}
}

int main(int argc, char **argv)
{
	int err = co_run(task_main, argc > 1 ? argv[1] : NULL);

	for (int i = 0; i < NBUF; i++)
		free(kept[i]);
	return err == 0 ? 0 : 1;
}
