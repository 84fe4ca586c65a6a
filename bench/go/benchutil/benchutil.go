// SPDX-License-Identifier: MIT

// Package benchutil holds the helpers every Go twin shares; it is the Go
// side of bench/bench.h and must stay in step with it: the same
// COPPER_BENCH_SCALE rule, the same default worker counts, the same
// `<metric>: <value> <unit>` line (bench/run parses it).
package benchutil

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

// Fail prints "bench: <message>" on stderr and exits with status 1.
func Fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// Scaled multiplies n by COPPER_BENCH_SCALE (default 1); at least 1.
func Scaled(n int) int {
	s := os.Getenv("COPPER_BENCH_SCALE")
	if s == "" {
		return n
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || v > 1000 {
		Fail("invalid COPPER_BENCH_SCALE=%q: want a number in (0, 1000]", s)
	}
	r := float64(n)*v + 0.5
	if r < 2 {
		return 1
	}
	return int(r)
}

// DefaultProcs sets GOMAXPROCS to procs unless the environment sets it
// (bench_default_procs in C).
func DefaultProcs(procs int) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procs)
	}
}

// ProfSuffix turns on Go's block and mutex profiles from the variables
// Copper reads (COPPER_BLOCKPROFILERATE: runtime.SetBlockProfileRate;
// COPPER_MUTEXPROFILEFRACTION: runtime.SetMutexProfileFraction) and
// returns "_prof" when either is on, else "" (bench_prof_suffix in C).
func ProfSuffix() string {
	suffix := ""
	if v, err := strconv.Atoi(os.Getenv("COPPER_BLOCKPROFILERATE")); err == nil && v > 0 {
		runtime.SetBlockProfileRate(v)
		suffix = "_prof"
	}
	if v, err := strconv.Atoi(os.Getenv("COPPER_MUTEXPROFILEFRACTION")); err == nil && v > 0 {
		runtime.SetMutexProfileFraction(v)
		suffix = "_prof"
	}
	return suffix
}

// Procs is the number of Ps in use (bench_procs in C).
func Procs() int {
	return runtime.GOMAXPROCS(0)
}

// Report prints one metric line: two decimals, four below 1 (bench_report
// in C).
func Report(metric string, value float64, unit string) {
	prec := 2
	if value < 1 && value > -1 {
		prec = 4
	}
	fmt.Printf("%s: %.*f %s\n", metric, prec, value, unit)
}
