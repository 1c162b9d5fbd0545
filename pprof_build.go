//go:build pprof

package main

// A profiling build (go build -tags pprof) serves net/http/pprof on
// DUPLEX_PPROF_ADDR (default 127.0.0.1:6060), apart from the server's own
// listener and never in a default build: it is how docs/benchmarks.md
// attributes idle memory per connection. It records every allocation
// (runtime.MemProfileRate 1), which costs CPU and memory: measure RSS on
// a default build. The listener lives as long as the process, which is
// what a profile of the process needs.

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"runtime"
)

// defaultPprofAddr is loopback only: profiles show what the process holds.
const defaultPprofAddr = "127.0.0.1:6060"

func init() {
	// Every allocation is recorded, so a heap profile divided by the
	// number of connections is exact, not sampled; DUPLEX_PPROF_SAMPLED=1
	// keeps the runtime's sampling (and its memory use) instead.
	if os.Getenv("DUPLEX_PPROF_SAMPLED") != "1" {
		runtime.MemProfileRate = 1
	}
	addr := os.Getenv("DUPLEX_PPROF_ADDR")
	if addr == "" {
		addr = defaultPprofAddr
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("pprof listener stopped", "addr", addr, "err", err)
		}
	}()
}
