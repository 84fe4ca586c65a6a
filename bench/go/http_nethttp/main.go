// SPDX-License-Identifier: MIT

// Command http_nethttp is the reference twin of bench/http_hello.c: the
// same "Hello, World!" answer from Go's net/http (full parsing, Date
// header, keep-alive), as the reference point.
//
// Usage: http_nethttp [ADDRESS]   (default 127.0.0.1:8080); prints
// "listening <address>" once ready; runs until killed.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

var hello = []byte("Hello, World!")

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_nethttp:", err)
		os.Exit(1)
	}
	fmt.Println("listening", l.Addr())
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	}))
}
