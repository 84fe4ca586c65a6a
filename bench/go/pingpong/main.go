// SPDX-License-Identifier: MIT

// Command pingpong is the Go twin of bench/pingpong.c: the main goroutine
// sends i on ping and waits for it back on pong; its partner echoes until
// ping is closed.  The metric is elapsed time over N round trips, named
// after GOMAXPROCS (bench/run sets 1 and 2).
//
// With COPPER_BLOCKPROFILERATE / COPPER_MUTEXPROFILEFRACTION set, Go's
// block and mutex profiles are on and the metric ends in _prof.
//
// With BENCH_TRACE=1, runtime/trace records into io.Discard and the
// metric ends in _trace (bench/pingpong.c does the same).
//
// Output: pingpong_p<procs>[_prof|_trace]: <ns> ns/op
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/trace"
	"sync"
	"time"

	"copperbench/benchutil"
)

const n0 = 1000000 // round trips

var (
	ping = make(chan int)
	pong = make(chan int)
	done sync.WaitGroup
)

func partner() {
	for v := range ping {
		pong <- v
	}
	done.Done()
}

func main() {
	n := benchutil.Scaled(n0)
	suffix := benchutil.ProfSuffix()
	tracing := os.Getenv("BENCH_TRACE") == "1"
	if tracing {
		if err := trace.Start(io.Discard); err != nil {
			benchutil.Fail("trace: %v", err)
		}
		suffix = "_trace"
	}
	done.Add(1)
	go partner()

	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if v := <-pong; v != i {
			benchutil.Fail("pong returned %d, want %d", v, i)
		}
	}
	elapsed := time.Since(t0)
	if tracing {
		trace.Stop()
	}

	close(ping)
	done.Wait()
	benchutil.Report(fmt.Sprintf("pingpong_p%d%s", benchutil.Procs(), suffix),
		float64(elapsed.Nanoseconds())/float64(n), "ns/op")
}
