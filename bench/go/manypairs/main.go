// SPDX-License-Identifier: MIT

// Command manypairs is the Go twin of bench/manypairs.c: 2000 independent
// pairs; in each, a pinger sends i on its own unbuffered ping channel and
// waits for it back on pong, rounds times, then closes ping; the ponger
// echoes until ping is closed.  The main goroutine starts the pairs, waits
// for them and reports round trips per second, spawning included.
//
// Output: manypairs_p<procs>: <millions> Mrt/s
package main

import (
	"fmt"
	"sync"
	"time"

	"copperbench/benchutil"
)

const (
	pairs   = 2000
	rounds0 = 2000 // round trips per pair
)

var (
	done   sync.WaitGroup
	rounds int
)

func ponger(ping <-chan int, pong chan<- int) {
	for v := range ping {
		pong <- v
	}
	done.Done()
}

func pinger(ping chan<- int, pong <-chan int) {
	for i := 0; i < rounds; i++ {
		ping <- i
		if v := <-pong; v != i {
			benchutil.Fail("pong returned %d, want %d", v, i)
		}
	}
	close(ping)
	done.Done()
}

func main() {
	rounds = benchutil.Scaled(rounds0)
	pings := make([]chan int, pairs)
	pongs := make([]chan int, pairs)
	for i := range pings {
		pings[i] = make(chan int)
		pongs[i] = make(chan int)
	}
	done.Add(2 * pairs)

	t0 := time.Now()
	for i := 0; i < pairs; i++ {
		go ponger(pings[i], pongs[i])
		go pinger(pings[i], pongs[i])
	}
	done.Wait()
	elapsed := time.Since(t0)
	benchutil.Report(fmt.Sprintf("manypairs_p%d", benchutil.Procs()),
		float64(pairs)*float64(rounds)*1e3/float64(elapsed.Nanoseconds()),
		"Mrt/s")
}
