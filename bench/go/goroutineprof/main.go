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
// (run_delay in /proc/self/task/<tid>/schedstat; a reading from another
// thread than the last, after the goroutine moved, subtracts nothing).
// See bench/goroutineprof.c for why, and for the measurement window.
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"copperbench/benchutil"
)

var (
	never    chan int
	parked   int64
	stop     int32
	spinning int32

	// The measurement window, as in bench/goroutineprof.c.
	winStart, winEnd int64  // UnixNano
	winGen, seenGen  uint64 // bumped by the writer; the spinner's last look
	maxGap           int64  // longest gap inside the window
	maxOwn           int64  // ... less its run_delay
)

const (
	ownCheckGap   = 20000   // ns: gaps worth explaining
	ownCheckEvery = 2000000 // ns: keeps the run_delay reading fresh
)

// runDelay is how long thread tid has waited for a CPU while runnable
// (the second field of its schedstat), or -1, and tid, the calling thread.
func runDelay() (int64, int) {
	tid := syscall.Gettid()
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/schedstat")
	if err != nil {
		return -1, tid
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1, tid
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1, tid
	}
	return v, tid
}

// inWindow is the part of [from, to) inside the window.
func inWindow(from, to int64) int64 {
	if s := atomic.LoadInt64(&winStart); from < s {
		from = s
	}
	if e := atomic.LoadInt64(&winEnd); to > e {
		to = e
	}
	if to > from {
		return to - from
	}
	return 0
}

func keepMax(max *int64, v int64) {
	if v > atomic.LoadInt64(max) {
		atomic.StoreInt64(max, v)
	}
}

// windowSync waits until the spinner has finished a round that began
// after the window's last change.
func windowSync() {
	gen := atomic.AddUint64(&winGen, 1)
	for atomic.LoadUint64(&seenGen) != gen {
		runtime.Gosched()
	}
}

func windowOpen() {
	atomic.StoreInt64(&winEnd, math.MaxInt64)
	atomic.StoreInt64(&winStart, time.Now().UnixNano())
	windowSync()
	atomic.StoreInt64(&maxGap, 0)
	atomic.StoreInt64(&maxOwn, 0)
}

func windowClose(end int64) {
	atomic.StoreInt64(&winEnd, end)
	windowSync()
}

//go:noinline
func siteA() { atomic.AddInt64(&parked, 1); <-never }

//go:noinline
func siteB() { atomic.AddInt64(&parked, 1); <-never }

//go:noinline
func siteC() { atomic.AddInt64(&parked, 1); <-never }

func spinner() {
	last := time.Now().UnixNano()
	ownFrom, checked := last, last
	delay, tid := runDelay()
	atomic.StoreInt32(&spinning, 1)
	for atomic.LoadInt32(&stop) == 0 {
		gen := atomic.LoadUint64(&winGen)
		now := time.Now().UnixNano()
		keepMax(&maxGap, inWindow(last, now))
		if now-last <= ownCheckGap && now-checked < ownCheckEvery {
			keepMax(&maxOwn, inWindow(ownFrom, now))
			ownFrom = now
		} else {
			d, tid2 := runDelay()
			waited := int64(0)
			if delay >= 0 && d >= delay && tid2 == tid {
				waited = d - delay
			}
			own, in := now-ownFrom-waited, inWindow(ownFrom, now)
			if own < 0 {
				own = 0
			}
			if own > in {
				own = in
			}
			keepMax(&maxOwn, own)
			delay, tid = d, tid2
			checked = time.Now().UnixNano()
			ownFrom = checked
		}
		last = now
		atomic.StoreUint64(&seenGen, gen)
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
	end := time.Now()
	windowClose(end.UnixNano())
	ms = float64(end.Sub(start).Nanoseconds()) / 1e6
	stall = float64(atomic.LoadInt64(&maxGap)) / 1e6
	own = float64(atomic.LoadInt64(&maxOwn)) / 1e6
	return
}

// noiseFloor is the longest gap the spinner sees while this goroutine
// merely sleeps as long as a write took: the machine's own noise.
func noiseFloor(ms float64) float64 {
	windowOpen()
	time.Sleep(time.Duration(ms * 1e6))
	windowClose(time.Now().UnixNano())
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
