package wstest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// relayBuffer is what each direction of a relayed connection copies at a
// time.
const relayBuffer = 32 << 10

// Relay forwards the TCP connections made to a loopback port of its own to
// target, byte for byte: a second address in front of the same server (a
// cluster's second node), or a place to count a connection's bytes. conns
// counts the connections it carried. For each one, count, if not nil, is
// given the first bytes the client sent (its request line, for HTTP) and
// returns the counter to which the bytes target sends back on it are
// added, or nil not to count them. Every connection is closed, and every
// goroutine ended, when t ends.
//
// Concurrency: count is called from the relay's goroutines, one call per
// connection; the counters are atomic.
func Relay(t testing.TB, target string, count func(first []byte) *atomic.Int64) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	closed := false // under mu: connections accepted from now on are closed at once
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			out, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				in.Close()
				out.Close()
				return
			}
			open = append(open, in, out)
			mu.Unlock()
			// The client speaks first, so its connection's counter is
			// known before the first byte back is copied.
			var back atomic.Pointer[atomic.Int64]
			wg.Go(func() {
				relayCopy(out, in, func(first []byte) {
					if count != nil {
						back.Store(count(first))
					}
				}, nil)
			})
			wg.Go(func() { relayCopy(in, out, nil, &back) })
		}
	})
	return ln.Addr().String(), conns
}

// relayCopy copies src to dst until either fails, then closes dst. first,
// if not nil, sees the first bytes read; what is copied is added to the
// counter counted holds, if any, when it is read.
func relayCopy(dst, src net.Conn, first func([]byte), counted *atomic.Pointer[atomic.Int64]) {
	defer dst.Close()
	buf := make([]byte, relayBuffer)
	for {
		n, err := src.Read(buf)
		if first != nil && n > 0 {
			first(buf[:n])
			first = nil
		}
		if counted != nil {
			if c := counted.Load(); c != nil {
				c.Add(int64(n))
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
