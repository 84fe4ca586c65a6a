// SPDX-License-Identifier: MIT

// Command pingpong is the Go twin of bench/pingpong.c: the main goroutine
// sends i on ping and waits for it back on pong; its partner echoes until
// ping is closed.  The metric is elapsed time over N round trips, named
// after GOMAXPROCS (bench/run sets 1 and 2).
//
// With COPPER_BLOCKPROFILERATE / COPPER_MUTEXPROFILEFRACTION set, Go's
// block and mutex profiles are on and the metric ends in _prof.
//
// With BENCH_TRACE=1 the run is cut into traceSegments pairs of segments,
// the first of each pair plain, the second with runtime/trace recording
// into io.Discard; the metric ends in _trace (the traced segments' time
// per round trip) and pingpong_p<procs>_trace_cost is traced time over
// plain time (bench/pingpong.c does the same).
//
// Output: pingpong_p<procs>[_prof|_trace]: <ns> ns/op, and with
// BENCH_TRACE=1 pingpong_p<procs>_trace_cost: <x> x.
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

const (
	n0            = 1000000 // round trips
	traceSegments = 4
)

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

// roundTrips makes n round trips and returns their time.
func roundTrips(n int) time.Duration {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if v := <-pong; v != i {
			benchutil.Fail("pong returned %d, want %d", v, i)
		}
	}
	return time.Since(t0)
}

func main() {
	n := benchutil.Scaled(n0)
	suffix := benchutil.ProfSuffix()
	tracing := os.Getenv("BENCH_TRACE") == "1"
	done.Add(1)
	go partner()

	var elapsed, plain time.Duration
	if tracing {
		suffix = "_trace"
		n -= n % traceSegments
		for k := 0; k < traceSegments; k++ {
			plain += roundTrips(n / traceSegments)
			if err := trace.Start(io.Discard); err != nil {
				benchutil.Fail("trace: %v", err)
			}
			elapsed += roundTrips(n / traceSegments)
			trace.Stop()
		}
	} else {
		elapsed = roundTrips(n)
	}

	close(ping)
	done.Wait()
	benchutil.Report(fmt.Sprintf("pingpong_p%d%s", benchutil.Procs(), suffix),
		float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	if tracing {
		benchutil.Report(fmt.Sprintf("pingpong_p%d_trace_cost", benchutil.Procs()),
			float64(elapsed)/float64(plain), "x")
	}
}
