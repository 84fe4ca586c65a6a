// SPDX-License-Identifier: MIT

// Command workerpool is the Go twin of bench/workerpool.c: a producer
// sends 0 .. N-1 into jobs (capacity 256) and closes it; 4 pool goroutines
// per P receive a job, hash it (jobHash, the same chain as job_hash in C)
// and send {job, hash} into results (capacity 256); the main goroutine
// receives N results, checks the sum of the job numbers and reports jobs
// per second, spawning included.
//
// With BENCH_PARKS=1 the block profile records every wait (rate 1) and a
// second line gives the parks per 1,000 jobs, the sum of its records'
// counts, as bench/workerpool.c does with Copper's.
//
// Output: workerpool_p<procs>: <millions> Mjobs/s; with BENCH_PARKS=1
// workerpool_p<procs>_prof (the rate with the profile on) and
// workerpool_p<procs>_parks: <n> parks/kjob.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"copperbench/benchutil"
)

const (
	n0             = 2000000 // jobs
	jobsCap        = 256     // capacity of the job channel
	resultsCap     = 256     // capacity of the result channel
	tasksPerWorker = 4
	hashRounds     = 128 // about 0.3 us of work per job
)

type result struct {
	job  uint64
	hash uint64
}

var (
	jobs    = make(chan uint64, jobsCap)
	results = make(chan result, resultsCap)
	done    sync.WaitGroup
	n       int
)

// jobHash is the job: keep in step with job_hash in bench/workerpool.c.
func jobHash(x uint64) uint64 {
	for i := 0; i < hashRounds; i++ {
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
	}
	return x
}

func producer() {
	for i := uint64(0); i < uint64(n); i++ {
		jobs <- i
	}
	close(jobs)
}

func pool() {
	for job := range jobs {
		results <- result{job, jobHash(job)}
	}
	done.Done()
}

func main() {
	n = benchutil.Scaled(n0)
	parks := os.Getenv("BENCH_PARKS") == "1"
	if parks {
		runtime.SetBlockProfileRate(1)
	}
	tasks := tasksPerWorker * benchutil.Procs()
	done.Add(tasks)

	var sum uint64
	t0 := time.Now()
	go producer()
	for i := 0; i < tasks; i++ {
		go pool()
	}
	for i := 0; i < n; i++ {
		r := <-results
		sum += r.job
	}
	elapsed := time.Since(t0)
	if want := uint64(n) * uint64(n-1) / 2; sum != want {
		benchutil.Fail("results sum to %d, want %d", sum, want)
	}
	done.Wait()
	suffix := ""
	if parks {
		suffix = "_prof"
	}
	benchutil.Report(fmt.Sprintf("workerpool_p%d%s", benchutil.Procs(), suffix),
		float64(n)*1e3/float64(elapsed.Nanoseconds()), "Mjobs/s")
	if parks {
		var sum int64
		records := make([]runtime.BlockProfileRecord, 64)
		for {
			k, ok := runtime.BlockProfile(records)
			if ok {
				for _, r := range records[:k] {
					sum += r.Count
				}
				break
			}
			records = make([]runtime.BlockProfileRecord, 2*k)
		}
		benchutil.Report(fmt.Sprintf("workerpool_p%d_parks", benchutil.Procs()),
			float64(sum)*1e3/float64(n), "parks/kjob")
	}
}
