// SPDX-License-Identifier: MIT

// Command goroutineprof is the Go twin of bench/goroutineprof.c: GPROF_TASKS
// goroutines (default 100000, scaled) park on one channel from three call
// sites; a spinner goroutine reads the clock in a loop and keeps the
// longest gap it saw; the goroutine profile is written at debug 0, 1 and
// 2 to /dev/null, once to warm up and once measured.  GOMAXPROCS defaults
// to 2.
//
// Output: gprof<n>k_d{0,1,2} in ms, then gprof<n>k_d{0,1,2}_stall in ms,
// then gprof<n>k_d{0,1,2}_noise: the spinner's longest gap while the writer
// only sleeps as long as the write took (the machine's own floor), then
// gprof<n>k_d{0,1,2}_stall_own: the longest gap during the write less the
// time the kernel kept the spinner's thread waiting for a CPU meanwhile
// (run_delay in /proc/thread-self/schedstat; the spinner is locked to its
// thread).  See bench/goroutineprof.c for why.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"copperbench/benchutil"
)

var (
	never    chan int
	parked   int64
	stop     int32
	maxGap   int64
	spinning int32
	maxOwn   int64 // longest gap less its run_delay
	window   int64 // when the current measurement began (UnixNano)
)

const (
	ownCheckGap   = 50000   // ns: gaps worth explaining
	ownCheckEvery = 5000000 // ns: keeps the run_delay reading fresh
)

// runDelay is how long this thread has waited for a CPU while runnable
// (the second field of /proc/thread-self/schedstat), or -1.
func runDelay() int64 {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// keepMax keeps the longest gap, counting only its part after the
// measurement window opened (a gap that began before belongs to the last
// one).
func keepMax(max *int64, v, end int64) {
	if in := end - atomic.LoadInt64(&window); v > in {
		v = in
	}
	if v > atomic.LoadInt64(max) {
		atomic.StoreInt64(max, v)
	}
}

func windowOpen() {
	atomic.StoreInt64(&window, time.Now().UnixNano())
	atomic.StoreInt64(&maxGap, 0)
	atomic.StoreInt64(&maxOwn, 0)
}

//go:noinline
func siteA() { atomic.AddInt64(&parked, 1); <-never }

//go:noinline
func siteB() { atomic.AddInt64(&parked, 1); <-never }

//go:noinline
func siteC() { atomic.AddInt64(&parked, 1); <-never }

func spinner() {
	runtime.LockOSThread()
	last := time.Now().UnixNano()
	checked, delay := last, runDelay()
	atomic.StoreInt32(&spinning, 1)
	for atomic.LoadInt32(&stop) == 0 {
		now := time.Now().UnixNano()
		gap := now - last
		keepMax(&maxGap, gap, now)
		if gap <= ownCheckGap && now-checked < ownCheckEvery {
			keepMax(&maxOwn, gap, now)
			last = now
			continue
		}
		d := runDelay()
		waited := int64(0)
		if delay >= 0 && d >= delay {
			waited = d - delay
		}
		if gap > waited {
			keepMax(&maxOwn, gap-waited, now)
		}
		delay = d
		last = time.Now().UnixNano()
		checked = last
	}
}

func writeLevel(p *pprof.Profile, debug int) (ms, stall, own float64) {
	f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		benchutil.Fail("open /dev/null: %v", err)
	}
	defer f.Close()
	windowOpen()
	start := time.Now()
	if err := p.WriteTo(f, debug); err != nil {
		benchutil.Fail("WriteTo: %v", err)
	}
	ms = float64(time.Since(start).Nanoseconds()) / 1e6
	stall = float64(atomic.LoadInt64(&maxGap)) / 1e6
	own = float64(atomic.LoadInt64(&maxOwn)) / 1e6
	return
}

// noiseFloor is the longest gap the spinner sees while this goroutine
// merely sleeps as long as a write took: the machine's own noise.
func noiseFloor(ms float64) float64 {
	windowOpen()
	time.Sleep(time.Duration(ms * 1e6))
	return float64(atomic.LoadInt64(&maxGap)) / 1e6
}

func main() {
	benchutil.DefaultProcs(2)
	n := 100000
	if v := os.Getenv("GPROF_TASKS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			benchutil.Fail("GPROF_TASKS: %v", err)
		}
	}
	n = benchutil.Scaled(n)
	never = make(chan int)
	sites := []func(){siteA, siteB, siteC}
	for i := 0; i < n; i++ {
		go sites[i%3]()
	}
	go spinner()
	for atomic.LoadInt64(&parked) < int64(n) || atomic.LoadInt32(&spinning) == 0 {
		time.Sleep(time.Millisecond)
	}
	p := pprof.Lookup("goroutine")
	var ms, stall, noise, own [3]float64
	for d := 0; d <= 2; d++ {
		writeLevel(p, d)
	}
	for d := 0; d <= 2; d++ {
		ms[d], stall[d], own[d] = writeLevel(p, d)
		noise[d] = noiseFloor(ms[d])
	}
	for d := 0; d <= 2; d++ {
		benchutil.Report(fmt.Sprintf("gprof%dk_d%d", n/1000, d), ms[d], "ms")
	}
	for d := 0; d <= 2; d++ {
		benchutil.Report(fmt.Sprintf("gprof%dk_d%d_stall", n/1000, d), stall[d], "ms")
	}
	for d := 0; d <= 2; d++ {
		benchutil.Report(fmt.Sprintf("gprof%dk_d%d_noise", n/1000, d), noise[d], "ms")
	}
	for d := 0; d <= 2; d++ {
		benchutil.Report(fmt.Sprintf("gprof%dk_d%d_stall_own", n/1000, d), own[d], "ms")
	}
	atomic.StoreInt32(&stop, 1)
	os.Exit(0)
}
