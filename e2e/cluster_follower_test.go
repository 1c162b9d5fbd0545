package e2e

// The follower of the cluster tests: a client that stays subscribed to a
// channel through disconnects by recovering its position, and checks the
// server's promises as it goes.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/realtime/protocol"
)

// follower is a client that stays subscribed to channel through
// disconnects, like the browser client: it connects through base(),
// subscribes (with recover from its last position after the first time),
// and on a lost connection reconnects, every 100 ms, while its gate is
// open. Every publication it receives, live or recovered, is recorded;
// what the server promises (recovered:true, one epoch, each offset once
// and in order) is checked as it goes, and violations are collected.
type follower struct {
	name    string
	channel string
	base    func() string

	mu         sync.Mutex
	changed    chan struct{}
	gate       bool // reconnects allowed
	conn       *client.Conn
	connects   int
	epoch      string
	last       uint64
	got        []recvd
	recoveries []recoveryResult
	problems   []string

	stop chan struct{}
	done chan struct{}
}

type recvd struct {
	offset    uint64
	n         int
	recovered bool
}

type recoveryResult struct {
	from, to  uint64 // the position asked for; the subscribe result's offset
	recovered bool
	count     int
}

// whereChannel is the push: channel a follower also subscribes to, so
// that /api/channels of each node tells where it is connected.
func (f *follower) whereChannel() string { return "push:where-" + f.name }

// startFollower starts a follower and waits for its first subscription.
func startFollower(t *testing.T, name, channel string, base func() string) *follower {
	t.Helper()
	f := &follower{name: name, channel: channel, base: base, changed: make(chan struct{}), gate: true,
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.close)
	if !f.waitFor(10*time.Second, func() bool { return f.connects >= 1 && f.conn != nil }) {
		t.Fatalf("%s: not subscribed within 10s: %v", name, f.problemList())
	}
	return f
}

func (f *follower) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *follower) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problemLocked(format, args...)
}

func (f *follower) problemLocked(format string, args ...any) {
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
	f.notifyLocked()
}

// record handles a publication (under f.mu).
func (f *follower) recordLocked(off uint64, data json.RawMessage, recovered bool) {
	if off <= f.last {
		f.problemLocked("offset %d again (or out of order) after %d", off, f.last)
		return
	}
	if f.last != 0 && off != f.last+1 {
		f.problemLocked("gap: offset %d after %d", off, f.last)
	}
	f.last = off
	f.got = append(f.got, recvd{offset: off, n: dataN(data), recovered: recovered})
	f.notifyLocked()
}

func (f *follower) run() {
	defer close(f.done)
	for attempt := 0; ; attempt++ {
		select {
		case <-f.stop:
			return
		default:
		}
		f.mu.Lock()
		open := f.gate
		ch := f.changed
		f.mu.Unlock()
		if !open {
			select {
			case <-f.stop:
				return
			case <-ch:
			}
			continue
		}
		if err := f.session(); err != nil {
			f.mu.Lock()
			f.conn = nil
			f.notifyLocked()
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// session runs one connection until it ends.
func (f *follower) session() error {
	onMessage := func(m protocol.ServerMessage) {
		if m.Channel == f.channel && client.IsPublication(m) {
			f.mu.Lock()
			f.recordLocked(m.Offset, m.Data, false)
			f.mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReplyTimeout)
	defer cancel()
	c, err := client.Dial(ctx, realtimeURL(f.base())+"?name="+f.name, client.ConnOptions{OnMessage: onMessage})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Call(ctx, protocol.Command{Op: protocol.OpSubscribe, Channel: f.whereChannel()}); err != nil {
		return fmt.Errorf("subscribe %s: %w", f.whereChannel(), err)
	}
	cmd := protocol.Command{Op: protocol.OpSubscribe, Channel: f.channel}
	var asked uint64
	f.mu.Lock()
	if f.epoch != "" {
		cmd.Recover = &protocol.Position{Offset: f.last, Epoch: f.epoch}
		asked = f.last
	}
	f.mu.Unlock()
	// The reply is handled as it is read, before the pushes after it.
	_, err = c.Go(ctx, []protocol.Command{cmd}, func(_ int, m protocol.ServerMessage, err error) {
		if err != nil {
			return // the connection ended first: the next session tries again
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if m.Error != nil {
			f.problemLocked("subscribe %s: %s %s", f.channel, m.Error.Code, m.Error.Message)
			return
		}
		var r protocol.SubscribeResult
		if err := json.Unmarshal(m.Result, &r); err != nil {
			f.problemLocked("subscribe result %s: %v", m.Result, err)
			return
		}
		if f.epoch == "" {
			f.epoch = r.Epoch
			f.last = r.Offset
		} else {
			if r.Epoch != f.epoch {
				f.problemLocked("epoch changed from %s to %s", f.epoch, r.Epoch)
			}
			rec := r.Recovered != nil && *r.Recovered
			f.recoveries = append(f.recoveries, recoveryResult{from: asked, to: r.Offset, recovered: rec, count: len(r.Publications)})
			if !rec {
				f.problemLocked("recover from offset %d: recovered=%v (result %s)", asked, r.Recovered, m.Result)
			}
			for _, p := range r.Publications {
				f.recordLocked(p.Offset, p.Data, true)
			}
		}
		f.connects++
		f.conn = c
		f.notifyLocked()
	})
	if err != nil {
		return err
	}
	select {
	case <-c.Done():
	case <-f.stop:
	}
	return c.Err()
}

// waitFor waits until cond (called with f.mu held) holds.
func (f *follower) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// waitOffset waits until the follower has received offset off.
func (f *follower) waitOffset(t *testing.T, off uint64, timeout time.Duration) {
	t.Helper()
	if !f.waitFor(timeout, func() bool { return f.last >= off }) {
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Fatalf("%s: reached offset %d, want %d within %s (connects %d, problems %v)", f.name, f.last, off, timeout, f.connects, f.problems)
	}
}

// setGate opens or closes the follower's reconnects.
func (f *follower) setGate(open bool) {
	f.mu.Lock()
	f.gate = open
	f.notifyLocked()
	f.mu.Unlock()
}

// disconnected reports whether its connection is gone.
func (f *follower) disconnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn == nil
}

func (f *follower) problemList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

func (f *follower) snapshot() (got []recvd, recoveries []recoveryResult, connects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recvd(nil), f.got...), append([]recoveryResult(nil), f.recoveries...), f.connects
}

// node is the index of the node whose /api/channels lists the follower,
// or -1.
func (f *follower) node(c *cluster) int {
	for i := range c.nodes {
		if localChannels(c.nodeURL(i))[f.whereChannel()] > 0 {
			return i
		}
	}
	return -1
}

func (f *follower) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
	}
}

// checkFollower requires that f saw every acknowledged publication exactly
// once with its data, and broke none of the server's promises.
func checkFollower(t *testing.T, f *follower, acks []acked) {
	t.Helper()
	if p := f.problemList(); len(p) > 0 {
		t.Errorf("%s: %s", f.name, strings.Join(p, "; "))
	}
	got, _, _ := f.snapshot()
	byOffset := map[uint64]recvd{}
	for _, r := range got {
		if _, dup := byOffset[r.offset]; dup {
			t.Errorf("%s: offset %d received twice", f.name, r.offset)
		}
		byOffset[r.offset] = r
	}
	for _, a := range acks {
		r, ok := byOffset[a.offset]
		switch {
		case !ok:
			t.Errorf("%s: acknowledged publication n=%d offset %d never arrived", f.name, a.n, a.offset)
		case r.n != a.n:
			t.Errorf("%s: offset %d carried n=%d, the API acknowledged n=%d there", f.name, a.offset, r.n, a.n)
		}
	}
}
