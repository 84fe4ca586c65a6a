// SPDX-License-Identifier: MIT

// Command mutex is the Go twin of bench/mutex.c: four goroutines each run
// M lock / increment / unlock rounds on one sync.Mutex; the main goroutine
// waits on a WaitGroup and checks the counter.  The metric is elapsed time
// over all operations.  GOMAXPROCS defaults to 2 here.
//
// With COPPER_BLOCKPROFILERATE / COPPER_MUTEXPROFILEFRACTION set, Go's
// block and mutex profiles are on and the metric ends in _prof.
//
// Output: mutex[_prof]: <ns> ns/op
package main

import (
	"sync"
	"time"

	"copperbench/benchutil"
)

const (
	tasks = 4
	m0    = 2500000 // operations per goroutine
)

var (
	mu      sync.Mutex
	done    sync.WaitGroup
	m       int
	counter int // guarded by mu
)

func locker() {
	for i := 0; i < m; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	done.Done()
}

func main() {
	benchutil.DefaultProcs(2)
	m = benchutil.Scaled(m0)
	suffix := benchutil.ProfSuffix()
	done.Add(tasks)

	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		go locker()
	}
	done.Wait()
	elapsed := time.Since(t0)

	if counter != tasks*m {
		benchutil.Fail("counter is %d, want %d", counter, tasks*m)
	}
	benchutil.Report("mutex"+suffix, float64(elapsed.Nanoseconds())/float64(tasks*m), "ns/op")
}
