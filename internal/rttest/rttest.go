// Package rttest is the testing.TB side of the Go client: a /realtime
// connection (client.Conn underneath) that records every reply and push,
// with Must-style commands that fail the test, waits on what arrived, and
// a reader that can be paused to play a client that stops reading. The
// suites of app and e2e share it; what counts as a publication is
// client.IsPublication, here as everywhere.
package rttest

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/fasthttp/websocket"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/realtime/protocol"
)

// ReplyTimeout bounds how long a test waits for one reply or push.
const ReplyTimeout = 5 * time.Second

// Conn is a recording /realtime connection.
//
// Concurrency: every method may be called from any goroutine (the Must
// forms fail the test, so from the test's goroutine only, as testing.TB
// requires for Fatal).
type Conn struct {
	t    testing.TB
	name string
	conn *client.Conn

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever something arrives
	replies  map[uint64]protocol.ServerMessage
	anonErrs []protocol.Error
	pushes   []protocol.ServerMessage // every message without an id, in order
	hook     func(protocol.ServerMessage)
	gate     ReadGate
}

// Options are what Dial passes on.
type Options struct {
	// Name labels the connection in failure messages.
	Name string
	// Header is sent with the upgrade request (cookies, forwarded headers).
	Header http.Header
	// Hook, when set, sees every message in arrival order on the reader
	// goroutine, replies included, before the Conn records it.
	Hook func(protocol.ServerMessage)
	// Dialer, when set, makes the connection (a small receive buffer, say).
	Dialer *websocket.Dialer
}

// Dial opens url (ws://host:port/realtime?query) and records what comes;
// the error is client.Dial's (a *client.HandshakeError for a refused
// upgrade). The connection is closed when t ends.
func Dial(t testing.TB, url string, opts Options) (*Conn, error) {
	c := &Conn{t: t, name: opts.Name, changed: make(chan struct{}),
		replies: map[uint64]protocol.ServerMessage{}, hook: opts.Hook}
	if c.name == "" {
		c.name = url
	}
	ctx, cancel := context.WithTimeout(context.Background(), ReplyTimeout)
	defer cancel()
	conn, err := client.Dial(ctx, url, client.ConnOptions{Header: opts.Header, Dialer: opts.Dialer, OnMessage: c.record, BeforeRead: c.gate.Wait})
	if err != nil {
		return nil, err
	}
	c.conn = conn
	t.Cleanup(c.Close)
	return c, nil
}

// MustDial is Dial that fails t.
func MustDial(t testing.TB, url string, opts Options) *Conn {
	t.Helper()
	c, err := Dial(t, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func (c *Conn) record(m protocol.ServerMessage) {
	if c.hook != nil {
		c.hook(m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case m.ID != 0:
		c.replies[m.ID] = m
	case m.Error != nil:
		c.anonErrs = append(c.anonErrs, *m.Error)
	default:
		c.pushes = append(c.pushes, m)
	}
	c.notifyLocked()
}

func (c *Conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// PauseReading makes the reader stop before its next read (a read already
// waiting for a frame still takes that one frame).
func (c *Conn) PauseReading() { c.gate.Pause() }

// ResumeReading lets a paused reader go on.
func (c *Conn) ResumeReading() { c.gate.Resume() }

// Client is the underlying connection.
func (c *Conn) Client() *client.Conn { return c.conn }

// WaitState calls cond (without the Conn's lock: it may call the Conn)
// whenever something arrives, until it holds, the connection ends, or
// timeout passes; it reports whether cond held.
func (c *Conn) WaitState(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-c.conn.Done():
			return cond()
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func (c *Conn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), ReplyTimeout)
}

// SendRaw writes one raw text frame; replies to its ids are recorded.
func (c *Conn) SendRaw(frame string) {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.conn.WriteText(ctx, []byte(frame)); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// Send writes cmd with a fresh id and returns it; Await gets the reply.
func (c *Conn) Send(cmd protocol.Command) uint64 {
	c.t.Helper()
	return c.SendBatch([]protocol.Command{cmd})[0]
}

// TrySend is Send that returns the write's error instead of failing.
func (c *Conn) TrySend(cmd protocol.Command) (uint64, error) {
	ids, err := c.trySendBatch([]protocol.Command{cmd})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// SendBatch writes several commands in one newline-separated frame and
// returns their ids in order.
func (c *Conn) SendBatch(cmds []protocol.Command) []uint64 {
	c.t.Helper()
	ids, err := c.trySendBatch(cmds)
	if err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
	return ids
}

func (c *Conn) trySendBatch(cmds []protocol.Command) ([]uint64, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	return c.conn.Go(ctx, cmds, func(_ int, m protocol.ServerMessage, err error) {
		if err == nil {
			c.record(m)
		}
	})
}

// Reply returns the reply to id if it came.
func (c *Conn) Reply(id uint64) (protocol.ServerMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.replies[id]
	return m, ok
}

// TryAwait waits up to timeout for the reply to id.
func (c *Conn) TryAwait(id uint64, timeout time.Duration) (protocol.ServerMessage, error) {
	var m protocol.ServerMessage
	if !c.WaitState(timeout, func() bool {
		var ok bool
		m, ok = c.Reply(id)
		return ok
	}) {
		return m, fmt.Errorf("%s: no reply to command %d (connection: %v)", c.name, id, c.ReadErr())
	}
	return m, nil
}

// Await returns the reply to id, failing the test after ReplyTimeout.
func (c *Conn) Await(id uint64) protocol.ServerMessage {
	c.t.Helper()
	m, err := c.TryAwait(id, ReplyTimeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// TryCall sends cmd and waits for its reply (which may be an error reply).
func (c *Conn) TryCall(cmd protocol.Command) (protocol.ServerMessage, error) {
	id, err := c.TrySend(cmd)
	if err != nil {
		return protocol.ServerMessage{}, fmt.Errorf("send %s: %w", cmd.Op, err)
	}
	m, err := c.TryAwait(id, ReplyTimeout)
	if err != nil {
		return m, fmt.Errorf("%s %s: %w", cmd.Op, cmd.Channel, err)
	}
	return m, nil
}

// Call sends cmd and awaits its reply.
func (c *Conn) Call(cmd protocol.Command) protocol.ServerMessage {
	c.t.Helper()
	return c.Await(c.Send(cmd))
}

// OK sends cmd, requires a result and decodes it into out (may be nil).
func (c *Conn) OK(cmd protocol.Command, out any) {
	c.t.Helper()
	m := c.Call(cmd)
	if m.Error != nil {
		c.t.Fatalf("%s: %s %s: error %s: %s", c.name, cmd.Op, cmd.Channel, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			c.t.Fatalf("%s: %s result %s: %v", c.name, cmd.Op, m.Result, err)
		}
	}
}

// Fails sends cmd and requires an error reply with code and a message.
func (c *Conn) Fails(cmd protocol.Command, code protocol.Code) protocol.Error {
	c.t.Helper()
	return c.WantErr(c.Call(cmd), code, string(cmd.Op)+" "+cmd.Channel)
}

// WantErr requires m to be an error reply with code and a message.
func (c *Conn) WantErr(m protocol.ServerMessage, code protocol.Code, what string) protocol.Error {
	c.t.Helper()
	if m.Error == nil {
		c.t.Fatalf("%s: %s: got result %s, want error %s", c.name, what, m.Result, code)
	}
	if m.Error.Code != code {
		c.t.Fatalf("%s: %s: got error %s (%s), want %s", c.name, what, m.Error.Code, m.Error.Message, code)
	}
	if m.Error.Message == "" {
		c.t.Errorf("%s: %s: error %s has no message", c.name, what, code)
	}
	return *m.Error
}

// Subscribe subscribes and returns the result, which must have an epoch.
func (c *Conn) Subscribe(channel string) protocol.SubscribeResult {
	c.t.Helper()
	var r protocol.SubscribeResult
	c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: channel}, &r)
	if r.Epoch == "" {
		c.t.Fatalf("%s: subscribe %s: no epoch in result", c.name, channel)
	}
	return r
}

// Publish publishes data (JSON) as this client and returns the position.
func (c *Conn) Publish(channel, data string) protocol.PublishResult {
	c.t.Helper()
	var r protocol.PublishResult
	c.OK(protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: json.RawMessage(data)}, &r)
	return r
}

// Ping proves the connection still works.
func (c *Conn) Ping() {
	c.t.Helper()
	m := c.Call(protocol.Command{Op: protocol.OpPing})
	if m.Error != nil || string(m.Result) != "{}" {
		c.t.Fatalf("%s: ping: %+v", c.name, m)
	}
}

// Pubs returns the publications pushed on channel so far, in order: the
// publication pushes, and those a flow-controlled channel's tick frames
// show (as pushes of their own, Offset, Data, Info and Priority set), but
// for those already pushed at once (the connection's own, which a tick
// may show again).
func (c *Conn) Pubs(channel string) []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.ServerMessage
	pushed := map[uint64]bool{}
	for _, m := range c.pushes {
		switch {
		case m.Channel != channel:
		case client.IsPublication(m):
			out = append(out, m)
			pushed[m.Offset] = true
		case m.Tick != nil:
			for _, p := range m.Tick.Publications {
				if !pushed[p.Offset] {
					out = append(out, protocol.ServerMessage{Channel: channel, Offset: p.Offset, Data: p.Data, Info: p.Info, Priority: p.Priority})
				}
			}
		}
	}
	return out
}

// AllPushes returns a copy of every message without an id so far.
func (c *Conn) AllPushes() []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.ServerMessage(nil), c.pushes...)
}

// TryWaitPubs waits until n publications of channel have arrived and
// returns them all; ok is false after timeout or the connection's end.
func (c *Conn) TryWaitPubs(channel string, n int, timeout time.Duration) (pubs []protocol.ServerMessage, ok bool) {
	ok = c.WaitState(timeout, func() bool { return len(c.Pubs(channel)) >= n })
	return c.Pubs(channel), ok
}

// WaitPubs is TryWaitPubs that fails the test.
func (c *Conn) WaitPubs(channel string, n int, timeout time.Duration) []protocol.ServerMessage {
	c.t.Helper()
	pubs, ok := c.TryWaitPubs(channel, n, timeout)
	if !ok {
		c.t.Fatalf("%s: got %d publications on %s, want %d (reader: %v)", c.name, len(pubs), channel, n, c.ReadErr())
	}
	return pubs
}

// WaitOffset waits until a publication of channel with offset >= off arrives.
func (c *Conn) WaitOffset(channel string, off uint64, timeout time.Duration) bool {
	return c.WaitState(timeout, func() bool {
		for _, m := range c.Pubs(channel) {
			if m.Offset >= off {
				return true
			}
		}
		return false
	})
}

// WaitPush waits for a push matching match and returns it.
func (c *Conn) WaitPush(what string, match func(protocol.ServerMessage) bool) protocol.ServerMessage {
	c.t.Helper()
	var found protocol.ServerMessage
	if !c.WaitState(ReplyTimeout, func() bool {
		for _, m := range c.AllPushes() {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	}) {
		c.t.Fatalf("%s: no push: %s (reader: %v)", c.name, what, c.ReadErr())
	}
	return found
}

// AnonErrors returns the error replies that carried no id.
func (c *Conn) AnonErrors() []protocol.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.Error(nil), c.anonErrs...)
}

// ReadErr is why the connection ended, nil while it is open.
func (c *Conn) ReadErr() error { return c.conn.Err() }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.conn.Done() }

// WaitClose waits for the server to close the connection and returns the
// close code (-1 when it ended without a close frame).
func (c *Conn) WaitClose(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.conn.Done():
	case <-time.After(timeout):
		c.t.Fatalf("%s: connection still open after %v", c.name, timeout)
	}
	return client.CloseCode(c.ReadErr())
}

// Close sends a normal close frame, drops the socket and waits for the
// reader (a paused one is resumed first). Later calls return at once.
func (c *Conn) Close() {
	c.ResumeReading()
	_ = c.conn.Close()
}

// DataN is the n of {"n":N,…} publication data; ok is false without one.
func DataN(data json.RawMessage) (n int, ok bool) {
	var v struct {
		N *int `json:"n"`
	}
	if json.Unmarshal(data, &v) != nil || v.N == nil {
		return 0, false
	}
	return *v.N, true
}

// Name labels the connection in failure messages (Options.Name).
func (c *Conn) Name() string { return c.name }
