// SPDX-License-Identifier: MIT

// Command heapalloc is the Go twin of bench/heapalloc.c: two goroutines
// each run N/2 rounds of picking a slot of a 64-entry ring (xorshift),
// dropping what it holds and allocating 16..256 bytes into it
// (make([]byte, n), which escapes to the heap through the ring), writing
// its first byte.  The garbage collector runs with GOGC at its default.
// runtime.MemProfileRate stays at its default (512 KiB) unless
// COPPER_MEMPROFILERATE is set, as bench/run sets it for heapalloc_off
// (0 turns sampling off); it is set first thing in main, before the
// loop allocates.  The loop runs twice and the faster run is reported,
// in ns per allocation of wall time over both goroutines.
//
// Output: heapalloc: <ns> ns/op  (heapalloc_off when the rate is 0)
package main

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"copperbench/benchutil"
)

const (
	n0    = 10000000 // allocations over both goroutines
	tasks = 2
	ring  = 64
)

var sink [tasks][ring][]byte

func loop(id int, rounds int, seed uint32, wg *sync.WaitGroup) {
	r := &sink[id]
	x := seed
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		k := x % ring
		p := make([]byte, 16+(x>>8)%241)
		p[0] = byte(i)
		r[k] = p
	}
	for k := range r {
		r[k] = nil
	}
	wg.Done()
}

func run(n int) float64 {
	var wg sync.WaitGroup
	wg.Add(tasks)
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		go loop(i, n/tasks, 0x9e3779b9*uint32(i+1), &wg)
	}
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func main() {
	off := false
	if s := os.Getenv("COPPER_MEMPROFILERATE"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			benchutil.Fail("invalid COPPER_MEMPROFILERATE=%q", s)
		}
		runtime.MemProfileRate = v
		off = v == 0
	}
	benchutil.DefaultProcs(2)
	n := benchutil.Scaled(n0)
	best := run(n)
	if t := run(n); t < best {
		best = t
	}
	name := "heapalloc"
	if off {
		name = "heapalloc_off"
	}
	benchutil.Report(name, best, "ns/op")
}
