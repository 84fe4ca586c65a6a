// SPDX-License-Identifier: MIT
//
// user_prog.cpp - copper.h from C++ (11 to 20), built as a user would
// (test/install/user_build.sh): tasks, a channel, a mutex, a wait group,
// and co_yield, which C++20 spells co_yield_now (co_yield is a keyword).
//
// Output: "sum=5050 yields=<n>"; exit 0.
#include <copper.h>

#include <atomic>
#include <cstdio>

namespace {

co_mutex mu;
co_wg wg;
long total = 0;
std::atomic<int> yields{0};

void yield_once()
{
#if __cplusplus >= 202002L
	co_yield_now();
#else
	co_yield();
#endif
	yields++;
}

void adder(void *arg)
{
	co_chan *c = static_cast<co_chan *>(arg);
	int v;

	while (co_chan_recv(c, &v) == 0) {
		co_mutex_lock(&mu);
		total += v;
		co_mutex_unlock(&mu);
		yield_once();
	}
	co_wg_done(&wg);
}

void main_task(void *)
{
	co_chan *c = co_chan_new(sizeof(int), 0);

	co_mutex_init(&mu);
	co_wg_init(&wg);
	co_wg_add(&wg, 2);
	co_go(adder, c);
	co_go(adder, c);
	for (int i = 1; i <= 100; i++)
		co_chan_send(c, &i);
	co_chan_close(c);
	co_wg_wait(&wg);
	co_chan_free(c);
	std::printf("sum=%ld yields=%d\n", total, yields.load());
}

} // namespace

int main()
{
	return co_run(main_task, nullptr) == 0 ? 0 : 1;
}
