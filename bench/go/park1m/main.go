// SPDX-License-Identifier: MIT

// Command park1m is the Go twin of bench/park1m.c: N goroutines each bump a
// counter and park in `<-ch` on one unbuffered channel; the main goroutine
// yields until the counter reaches N, reads the clock, VmHWM (reset through
// /proc/self/clear_refs before the round), VmPTE and the minor fault count,
// then closes the channel and waits for them to exit.  Two rounds: park1m
// (cold) and park1m_warm (Go reuses the exited goroutines and their
// stacks).  GOMAXPROCS defaults to 2 here.
//
// Output: park1m_{create,rss,minflt,pte}, then park1m_warm_{...}.
package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"copperbench/benchutil"
)

const n0 = 1000000 // goroutines per round

type mem struct {
	hwmKB  int64 // VmHWM: peak resident set
	pteKB  int64 // VmPTE: page tables
	minflt int64 // minor faults so far
}

var (
	ch     chan int
	exited sync.WaitGroup
	parked int64
)

func parkedTask() {
	atomic.AddInt64(&parked, 1)
	if _, ok := <-ch; ok {
		benchutil.Fail("received a value, want a closed channel")
	}
	exited.Done()
}

// statusKB reads one "Name:   123 kB" line of /proc/self/status.
func statusKB(text, key string) int64 {
	i := strings.Index(text, key)
	if i < 0 {
		benchutil.Fail("/proc/self/status has no %s", key)
	}
	fields := strings.Fields(text[i+len(key):])
	v, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		benchutil.Fail("/proc/self/status: %s %v", key, err)
	}
	return v
}

func memRead() mem {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		benchutil.Fail("%v", err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		benchutil.Fail("getrusage: %v", err)
	}
	text := string(buf)
	return mem{statusKB(text, "VmHWM:"), statusKB(text, "VmPTE:"), ru.Minflt}
}

// hwmReset resets VmHWM to the current RSS (Linux 4.0+).
func hwmReset() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		benchutil.Fail("%v", err)
	}
}

func roundRun(name string, n int) {
	ch = make(chan int)
	atomic.StoreInt64(&parked, 0)
	exited.Add(n)
	hwmReset()
	before := memRead()

	t0 := time.Now()
	for i := 0; i < n; i++ {
		go parkedTask()
	}
	for atomic.LoadInt64(&parked) < int64(n) {
		runtime.Gosched()
	}
	elapsed := time.Since(t0)
	after := memRead()

	fn := float64(n)
	benchutil.Report(name+"_create", float64(elapsed.Nanoseconds())/1e3/fn, "us/task")
	benchutil.Report(name+"_rss", float64(after.hwmKB-before.hwmKB)/fn, "KB/task")
	benchutil.Report(name+"_minflt", float64(after.minflt-before.minflt)/fn, "faults/task")
	benchutil.Report(name+"_pte", float64(after.pteKB-before.pteKB)/fn, "KB/task")

	close(ch)
	exited.Wait()
}

func main() {
	benchutil.DefaultProcs(2)
	n := benchutil.Scaled(n0)
	roundRun("park1m", n)
	roundRun("park1m_warm", n)
}
