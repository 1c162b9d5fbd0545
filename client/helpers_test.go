package client_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/client"
)

// waitTimeout bounds every wait of these tests for something that must
// happen.
const waitTimeout = 5 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// cable is a dialer whose connections the test can cut, and whose dials
// it can hold back, to play a network that fails while the server lives.
type cable struct {
	mu    sync.Mutex
	open  bool
	conns []net.Conn
	dials int
}

func newCable() *cable { return &cable{open: true} }

func (c *cable) dialer() *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: waitTimeout, NetDial: func(network, addr string) (net.Conn, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.dials++
		if !c.open {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errCableUnplugged}
		}
		conn, err := net.Dial(network, addr)
		if err == nil {
			c.conns = append(c.conns, conn)
		}
		return conn, err
	}}
}

type cableError struct{}

func (cableError) Error() string { return "cable unplugged by the test" }

var errCableUnplugged = cableError{}

// unplug cuts every connection and refuses new dials until plug.
func (c *cable) unplug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = false
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func (c *cable) plug() {
	c.mu.Lock()
	c.open = true
	c.mu.Unlock()
}

func (c *cable) dialCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dials
}

// recorder collects what handlers get, for the test goroutine to wait on.
type recorder[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{}
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{changed: make(chan struct{})} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// waitLen waits until n items came and returns them all.
func (r *recorder[T]) waitLen(t *testing.T, what string, n int) []T {
	t.Helper()
	return r.waitUntil(t, what, func(got []T) bool { return len(got) >= n },
		func(got []T) string { return fmt.Sprintf("%d within %s, want %d", len(got), waitTimeout, n) })
}

// waitFor waits until an item matching match came and returns all so far.
func (r *recorder[T]) waitFor(t *testing.T, what string, match func(T) bool) []T {
	t.Helper()
	return r.waitUntil(t, what, func(got []T) bool { return slices.ContainsFunc(got, match) },
		func([]T) string { return "not within " + waitTimeout.String() })
}

// waitUntil waits until done holds for the items so far and returns them;
// at the deadline the test fails with what, miss's account and the items.
func (r *recorder[T]) waitUntil(t *testing.T, what string, done func([]T) bool, miss func([]T) string) []T {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, ch := append([]T(nil), r.items...), r.changed
		r.mu.Unlock()
		if done(got) {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %s: %+v", what, miss(got), got)
		}
	}
}

// connect makes a client of url with opts, connects it and closes it when
// the test ends.
func connect(t *testing.T, url string, opts client.Options) *client.Client {
	t.Helper()
	c := client.New(url, opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}
