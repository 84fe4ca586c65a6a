// SPDX-License-Identifier: MIT

// Command bufchan is the Go twin of bench/bufchan.c: a producer sends
// 0 .. N-1 as int64 into a channel of capacity 1024 and closes it; the main
// goroutine receives until it is closed and checks the count and the sum.
// GOMAXPROCS defaults to 2 here.
//
// Output: bufchan: <millions> Mmsg/s
package main

import (
	"time"

	"copperbench/benchutil"
)

const (
	n0       = 20000000 // messages
	capacity = 1024
)

var (
	ch chan int64
	n  int
)

func producer() {
	for i := int64(0); i < int64(n); i++ {
		ch <- i
	}
	close(ch)
}

func main() {
	benchutil.DefaultProcs(2)
	n = benchutil.Scaled(n0)
	ch = make(chan int64, capacity)

	var count, sum int64
	t0 := time.Now()
	go producer()
	for v := range ch {
		count++
		sum += v
	}
	elapsed := time.Since(t0)
	if count != int64(n) || sum != int64(n)*int64(n-1)/2 {
		benchutil.Fail("received %d messages summing to %d, want %d", count, sum, n)
	}
	benchutil.Report("bufchan", float64(n)*1e3/float64(elapsed.Nanoseconds()), "Mmsg/s")
}
