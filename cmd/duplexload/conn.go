package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Connection helpers shared by every mode.

// dialParallelism bounds how many handshakes run at once at start-up.
const dialParallelism = 16

func newDialer(timeout time.Duration) *websocket.Dialer {
	nd := &net.Dialer{Timeout: timeout}
	return &websocket.Dialer{
		HandshakeTimeout: timeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		// A loopback benchmark must never go through a proxy from the environment.
		Proxy:          nil,
		NetDialContext: countingDial(nd.DialContext),
	}
}

// wireBytesRead counts every byte the tool's WebSocket connections read
// off their sockets, frame headers and compressed payloads as they are,
// so that a run can report the bytes on the wire per delivery.
var wireBytesRead atomic.Int64

// countingDial wraps dial so that its connections count what they read
// into wireBytesRead.
func countingDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c}, nil
	}
}

// countingConn is a connection that counts its reads into wireBytesRead.
type countingConn struct{ net.Conn }

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	wireBytesRead.Add(int64(n))
	return n, err
}

// withDeflate makes d offer permessage-deflate (and compress what it
// sends) when on: the offer browsers make.
func withDeflate(d *websocket.Dialer, on bool) *websocket.Dialer {
	d.EnableCompression = on
	return d
}

// errDeflateDeclined: -deflate was asked for, and the server answered
// without permessage-deflate, so the run would measure plain frames.
var errDeflateDeclined = errors.New("the server declined permessage-deflate (-deflate)")

// dial opens one connection, bounded by timeout. With a dialer that
// offers deflate, a server that declines it fails the dial.
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
	if d.EnableCompression && !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		c.Close()
		return nil, errDeflateDeclined
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
