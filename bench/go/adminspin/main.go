// SPDX-License-Identifier: MIT

// Command adminspin is the Go twin of bench/adminspin.c: with 10,000
// goroutines parked on a channel and one goroutine per P spinning
// without a function call, how long GET /debug/pprof/goroutine?debug=1
// takes from net/http/pprof (Go preempts the spinners asynchronously).
// REQUESTS requests, one at a time, each on a new connection.
//
// Output: admin_spin_ms: <median> ms
//         admin_spin_max_ms: <max> ms
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"copperbench/benchutil"
)

const tasks = 10000
const requests = 20

var stop int32

func spin(wg *sync.WaitGroup) {
	n := 0
	for atomic.LoadInt32(&stop) == 0 {
		n++
	}
	_ = n
	wg.Done()
}

func oneRequest(addr string) float64 {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		benchutil.Fail("dial: %v", err)
	}
	fmt.Fprintf(c, "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	n, _ := io.Copy(io.Discard, c)
	c.Close()
	if n < 200 {
		benchutil.Fail("short answer (%d bytes)", n)
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e6
}

func main() {
	benchutil.DefaultProcs(2)
	never := make(chan int)
	for i := 0; i < tasks; i++ {
		go func() { <-never }()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		benchutil.Fail("listen: %v", err)
	}
	go http.Serve(l, nil)
	time.Sleep(10 * time.Millisecond)
	procs := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	wg.Add(procs)
	for i := 0; i < procs; i++ {
		go spin(&wg)
	}
	time.Sleep(50 * time.Millisecond)
	ms := make([]float64, requests)
	for i := range ms {
		ms[i] = oneRequest(l.Addr().String())
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	sort.Float64s(ms)
	fmt.Printf("admin_spin_ms: %.3f ms\n", (ms[requests/2-1]+ms[requests/2])/2)
	fmt.Printf("admin_spin_max_ms: %.3f ms\n", ms[requests-1])
}
