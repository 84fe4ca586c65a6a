// SPDX-License-Identifier: MIT

// Command spawnstorm is the Go twin of bench/spawnstorm.c: a spawn storm.
// The main goroutine adds N plus the spawners to one WaitGroup, then starts
// SPAWNERS spawner goroutines per P; between them they start N goroutines,
// each spawner looping `go child()` its share of times without blocking,
// then calling wg.Done.  Each child only calls wg.Done.  rate is N over the
// time from just before the first spawner starts to wg.Wait returning; rss
// is the process's peak RSS (getrusage ru_maxrss), one run per process.
// GOMAXPROCS defaults to 2 here.
//
// Output: spawnstorm_rate: <M> M/s, spawnstorm_rss: <MB> MB
package main

import (
	"sync"
	"syscall"
	"time"

	"copperbench/benchutil"
)

const (
	n0       = 1000000 // goroutines, over all the spawners
	spawners = 4       // spawners per P
)

var wg sync.WaitGroup

func child() {
	wg.Done()
}

// spawner starts share children back to back, then reports itself done.
func spawner(share int) {
	for i := 0; i < share; i++ {
		go child()
	}
	wg.Done()
}

func main() {
	benchutil.DefaultProcs(2)
	n := benchutil.Scaled(n0)
	ns := spawners * benchutil.Procs()
	wg.Add(n + ns)

	t0 := time.Now()
	for s := 0; s < ns; s++ {
		share := n / ns
		if s < n%ns {
			share++
		}
		go spawner(share)
	}
	wg.Wait()
	elapsed := time.Since(t0)

	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		benchutil.Fail("getrusage: %v", err)
	}
	benchutil.Report("spawnstorm_rate", float64(n)*1e3/float64(elapsed.Nanoseconds()), "M/s")
	benchutil.Report("spawnstorm_rss", float64(ru.Maxrss)/1024, "MB")
}
