// SPDX-License-Identifier: MIT

// Command spawn is the Go twin of bench/spawn.c: spawn, run and exit in
// batches.  ROUNDS rounds of N goroutines that only call wg.Done; round 0 is
// the warm-up; the metric is the other rounds' time over their goroutines.
// GOMAXPROCS defaults to 2 here, as COPPER_PROCS does in the C version.
//
// Output: spawn: <ns> ns/op
package main

import (
	"sync"
	"time"

	"copperbench/benchutil"
)

const (
	n0     = 200000 // goroutines per round
	rounds = 11     // round 0 is the warm-up
)

var wg sync.WaitGroup

func child() {
	wg.Done()
}

func main() {
	benchutil.DefaultProcs(2)
	n := benchutil.Scaled(n0)
	var total time.Duration
	for round := 0; round < rounds; round++ {
		t0 := time.Now()
		wg.Add(n)
		for i := 0; i < n; i++ {
			go child()
		}
		wg.Wait()
		if round > 0 {
			total += time.Since(t0)
		}
	}
	benchutil.Report("spawn", float64(total.Nanoseconds())/(float64(rounds-1)*float64(n)), "ns/op")
}
