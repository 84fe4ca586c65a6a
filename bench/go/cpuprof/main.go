// SPDX-License-Identifier: MIT

// Command cpuprof is the Go twin of bench/cpuprof.c: the same CPU-bound
// work (two goroutines hashing a 4 KiB buffer through a three-deep call
// chain) in rounds that alternate plain and under pprof.StartCPUProfile
// (100 Hz), measuring the process's CPU time (getrusage) per round.
//
// Output: cpuprof_plain: <ms> ms
//
//	cpuprof_profiled: <ms> ms
//	cpuprof_overhead: <pct> %
package main

import (
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"syscall"

	"copperbench/benchutil"
)

const (
	rounds = 7
	work0  = 30000
	tasks  = 2
)

var (
	work int
	buf  [4096]byte
	sink uint64
)

//go:noinline
func hashBlock(p []byte, h uint64) uint64 {
	for _, b := range p {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h
}

//go:noinline
func hashTwice(h uint64) uint64 {
	h = hashBlock(buf[:len(buf)/2], h)
	return hashBlock(buf[len(buf)/2:], h)
}

//go:noinline
func taskWork(seed uint64, wg *sync.WaitGroup) {
	h := seed
	for i := 0; i < work; i++ {
		h = hashTwice(h)
	}
	sink = h
	wg.Done()
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func roundRun() int64 {
	var wg sync.WaitGroup
	t0 := cpuNs()
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		go taskWork(uint64(i+1), &wg)
	}
	wg.Wait()
	return cpuNs() - t0
}

func median(v []int64) float64 {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return float64(v[len(v)/2])
}

func main() {
	benchutil.DefaultProcs(2)
	work = benchutil.Scaled(work0)
	null, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		benchutil.Fail("open /dev/null: %v", err)
	}
	roundRun()
	plain := make([]int64, rounds)
	prof := make([]int64, rounds)
	for r := 0; r < rounds; r++ {
		plain[r] = roundRun()
		if err := pprof.StartCPUProfile(null); err != nil {
			benchutil.Fail("StartCPUProfile: %v", err)
		}
		prof[r] = roundRun()
		pprof.StopCPUProfile()
	}
	a, b := median(plain), median(prof)
	benchutil.Report("cpuprof_plain", a/1e6, "ms")
	benchutil.Report("cpuprof_profiled", b/1e6, "ms")
	benchutil.Report("cpuprof_overhead", 100*(b-a)/a, "%")
}
