// SPDX-License-Identifier: MIT

// Command http_raw is the Go twin of bench/http_hello.c (default mode):
// a keep-alive "Hello, World!" server on the raw net package, one
// goroutine per connection, a 4 KiB read buffer, every "\r\n\r\n" taken
// as the end of a request (the same minimal parsing), the answers to all
// complete requests in the buffer written in one Write.
//
// Usage: http_raw [ADDRESS]   (default 127.0.0.1:8080); prints
// "listening <address>" once ready; runs until killed.  With ADMIN_ADDR
// set, net/http/pprof serves there too (bench/http_run --admin).
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

var response = []byte("HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/plain\r\n" +
	"Content-Length: 13\r\n" +
	"\r\n" +
	"Hello, World!")

var sep = []byte("\r\n\r\n")

func serve(c net.Conn) {
	defer c.Close()
	in := make([]byte, 4096)
	out := make([]byte, 0, 4096*8)
	n := 0
	for {
		m, err := c.Read(in[n:])
		if m <= 0 || err != nil {
			return
		}
		n += m
		used := 0
		out = out[:0]
		for {
			i := bytes.Index(in[used:n], sep)
			if i < 0 {
				break
			}
			used += i + 4
			if len(out)+len(response) <= cap(out) {
				out = append(out, response...)
			}
		}
		copy(in, in[used:n])
		n -= used
		if n == len(in) {
			return
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_raw:", err)
		os.Exit(1)
	}
	// ADMIN_ADDR: net/http/pprof there, as Copper's COPPER_ADMIN
	// (bench/http_run --admin).
	if a := os.Getenv("ADMIN_ADDR"); a != "" {
		al, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "http_raw:", err)
			os.Exit(1)
		}
		go http.Serve(al, nil)
	}
	fmt.Println("listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
