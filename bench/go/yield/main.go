// SPDX-License-Identifier: MIT

// Command yield is the Go twin of bench/yield.c: two goroutines on one P
// calling runtime.Gosched N times each; the main goroutine is one of them
// and keeps yielding until its partner is done.  The metric is the elapsed
// time over the 2N yields.  GOMAXPROCS defaults to 1 here.
//
// Output: yield: <ns> ns/op
package main

import (
	"runtime"
	"sync/atomic"
	"time"

	"copperbench/benchutil"
)

const n0 = 5000000 // yields per goroutine

var (
	n           int
	partnerDone int32
)

func partner() {
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	atomic.StoreInt32(&partnerDone, 1)
}

func main() {
	benchutil.DefaultProcs(1)
	n = benchutil.Scaled(n0)
	t0 := time.Now()
	go partner()
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	for atomic.LoadInt32(&partnerDone) == 0 {
		runtime.Gosched()
	}
	benchutil.Report("yield", float64(time.Since(t0).Nanoseconds())/(2*float64(n)), "ns/op")
}
