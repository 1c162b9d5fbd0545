package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// Connection helpers shared by every mode.

// dialParallelism bounds how many handshakes run at once at start-up.
const dialParallelism = 16

func newDialer(timeout time.Duration) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: timeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		// A loopback benchmark must never go through a proxy from the environment.
		Proxy: nil,
	}
}

// dial opens one connection, bounded by timeout.
func dial(ctx context.Context, d *websocket.Dialer, url string, timeout time.Duration) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	return c, nil
}

// dialAll opens n connections with bounded parallelism. conns[i] is nil where
// errs[i] is not.
func dialAll(ctx context.Context, d *websocket.Dialer, url string, n int, timeout time.Duration) ([]*websocket.Conn, []error) {
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, dialParallelism)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			conns[i], errs[i] = dial(ctx, d, url, timeout)
		}()
	}
	wg.Wait()
	return conns, errs
}

// classify sorts a read or write error into timeout or io.
func classify(err error) errorKind {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errTimeout
	}
	return errIO
}

// closeGracefully sends a normal-closure frame, waits briefly for the peer's
// close (or anything else ending the read) and closes the socket.
func closeGracefully(c *websocket.Conn) {
	const grace = 500 * time.Millisecond
	deadline := time.Now().Add(grace)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := c.WriteControl(websocket.CloseMessage, msg, deadline); err == nil {
		_ = c.SetReadDeadline(deadline)
		// Drain until the peer's close frame (an error) or the deadline;
		// bounded in count too, and stop at the first error.
		for range 64 {
			_, r, err := c.NextReader()
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				break
			}
		}
	}
	_ = c.Close()
}
