package wsconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter is a StreamWriter that writes each message, heartbeat and
// close as one line into lines, the way a transport encodes them. While
// hold is open, Flush blocks (a client that reads nothing) until release
// or Abort.
type lineWriter struct {
	mu      sync.Mutex
	lines   []string
	batch   []string
	changed chan struct{}
	hold    chan struct{} // nil: never blocks
	aborted chan struct{}
	abort   sync.Once
}

var errAborted = errors.New("aborted")

func newLineWriter(blocked bool) *lineWriter {
	w := &lineWriter{changed: make(chan struct{}), aborted: make(chan struct{})}
	if blocked {
		w.hold = make(chan struct{})
	}
	return w
}

func (w *lineWriter) Message(data []byte) error { w.batch = append(w.batch, string(data)); return nil }
func (w *lineWriter) Heartbeat() error          { w.batch = append(w.batch, ":hb"); return nil }
func (w *lineWriter) Close(code CloseCode, reason string) error {
	w.batch = append(w.batch, fmt.Sprintf("close %d %s", code, reason))
	return nil
}

func (w *lineWriter) Flush() error {
	if w.hold != nil {
		select {
		case <-w.hold:
		case <-w.aborted:
			return errAborted
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, w.batch...)
	w.batch = w.batch[:0]
	close(w.changed)
	w.changed = make(chan struct{})
	return nil
}

func (w *lineWriter) Abort() { w.abort.Do(func() { close(w.aborted) }) }

func (w *lineWriter) release() { close(w.hold) }

// waitLines waits until the lines written satisfy cond.
func (w *lineWriter) waitLines(t *testing.T, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		w.mu.Lock()
		lines, ch := append([]string(nil), w.lines...), w.changed
		w.mu.Unlock()
		if cond(lines) {
			return lines
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; lines %q", what, lines)
		}
	}
}

// serveStream opens a stream on reg and serves it with w on a goroutine;
// done is closed when Serve returns.
func serveStream(t *testing.T, reg *Registry, lim Limits, w StreamWriter) (s *Stream, done chan struct{}) {
	t.Helper()
	s, why := reg.OpenStream("", lim)
	if why != Admitted {
		t.Fatalf("OpenStream: %v", why)
	}
	done = make(chan struct{})
	go func() { defer close(done); s.Serve(w) }()
	return s, done
}

func TestStreamWritesInOrderThenTheCloseAndEnds(t *testing.T) {
	reg := newTestRegistry(t, 10)
	w := newLineWriter(false)
	s, done := serveStream(t, reg, testLimits, w)
	for i := range 100 {
		if err := s.Send(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(CloseNormal, "done")
	<-done
	lines := w.waitLines(t, "the close", func(l []string) bool { return len(l) == 101 })
	for i := range 100 {
		if lines[i] != fmt.Sprintf("m%d", i) {
			t.Fatalf("line %d is %q", i, lines[i])
		}
	}
	if lines[100] != "close 1000 done" {
		t.Fatalf("last line %q", lines[100])
	}
	if err := s.Send([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after the end: %v", err)
	}
	if reg.Len() != 0 || reg.FindStream(s.ID()) != nil {
		t.Fatalf("the ended stream is still registered")
	}
}

func TestStreamHeartbeat(t *testing.T) {
	lim := testLimits
	lim.PingInterval = 20 * time.Millisecond
	w := newLineWriter(false)
	s, done := serveStream(t, newTestRegistry(t, 10), lim, w)
	w.waitLines(t, "two heartbeats", func(l []string) bool { return len(l) >= 2 && l[0] == ":hb" && l[1] == ":hb" })
	s.Close(CloseNormal, "")
	<-done
}

func TestStreamsCountAgainstTheCaps(t *testing.T) {
	reg := NewRegistry(RegistryConfig{MaxSessions: 2, MaxPerPeer: 1, Poller: testPollerMode(t)})
	a, why := reg.OpenStream("10.0.0.1", testLimits)
	if why != Admitted {
		t.Fatal(why)
	}
	if _, why := reg.OpenStream("10.0.0.1", testLimits); why != RefusedPeerCapacity {
		t.Fatalf("a second stream of one peer: %v", why)
	}
	if _, why := reg.OpenStream("10.0.0.2", testLimits); why != Admitted {
		t.Fatal(why)
	}
	if got := reg.Admitting("10.0.0.3"); got != RefusedCapacity {
		t.Fatalf("a third connection: %v, want capacity", got)
	}
	done := make(chan struct{})
	go func() { defer close(done); a.Serve(newLineWriter(false)) }()
	a.Close(CloseNormal, "")
	<-done
	if got := reg.Admitting("10.0.0.1"); got != Admitted {
		t.Fatalf("after one ended: %v", got)
	}
}

// A stalled stream's queue fills: Send closes it with 1013, and what was
// queued before still goes out ahead of the close once the client reads.
func TestStreamSlowConsumerIsClosedWithTryAgainLater(t *testing.T) {
	lim := testLimits
	lim.SendQueueBytes = 1000
	w := newLineWriter(true)
	s, done := serveStream(t, newTestRegistry(t, 10), lim, w)
	msg := []byte(strings.Repeat("x", 100))
	sent := 0
	for ; sent < 1000; sent++ {
		if err := s.Send(msg); err != nil {
			if !errors.Is(err, ErrSlowConsumer) {
				t.Fatal(err)
			}
			break
		}
	}
	if sent == 1000 {
		t.Fatal("the queue never filled")
	}
	w.release()
	<-done
	lines := w.waitLines(t, "the close", func(l []string) bool { return len(l) > 0 && strings.HasPrefix(l[len(l)-1], "close") })
	if got := lines[len(lines)-1]; got != "close 1013 slow consumer: send queue full" || len(lines)-1 != sent {
		t.Fatalf("%d messages then %q; want the %d sent, then 1013", len(lines)-1, got, sent)
	}
}

// Drop-oldest never closes: the writer tells how many were dropped
// ahead of the next message.
func TestStreamDropOldestTellsMissed(t *testing.T) {
	lim := testLimits
	lim.SendQueueBytes = 1000
	lim.MissedNotice = func(n int) []byte { return fmt.Appendf(nil, "missed %d", n) }
	w := newLineWriter(true)
	s, done := serveStream(t, newTestRegistry(t, 10), lim, w)
	dropped := 0
	for i := range 50 {
		n, err := s.SendDropOldest(fmt.Appendf(nil, "%03d%s", i, strings.Repeat("x", 97)))
		if err != nil {
			t.Fatal(err)
		}
		dropped += n
	}
	w.release()
	s.Close(CloseNormal, "")
	<-done
	lines := w.waitLines(t, "the close", func(l []string) bool { return len(l) > 0 && strings.HasPrefix(l[len(l)-1], "close") })
	told := 0
	for _, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "missed %d", &n); err == nil {
			told += n
		}
	}
	if dropped == 0 || told != dropped {
		t.Fatalf("dropped %d, told %d: %q", dropped, told, lines)
	}
	if !strings.HasPrefix(lines[len(lines)-2], "049") {
		t.Fatalf("the newest is not last: %q", lines)
	}
}

func TestShutdownClosesStreamsWithGoingAway(t *testing.T) {
	reg := newTestRegistry(t, 10)
	w := newLineWriter(false)
	_, done := serveStream(t, reg, testLimits, w)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := reg.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	w.waitLines(t, "1001", func(l []string) bool { return len(l) == 1 && l[0] == "close 1001 server shutting down" })
	if _, why := reg.OpenStream("", testLimits); why != RefusedShuttingDown {
		t.Fatalf("a stream after shutdown: %v", why)
	}
}

// A stream whose client reads nothing is dropped at the shutdown
// deadline: its blocked write is aborted.
func TestShutdownDeadlineAbortsABlockedStream(t *testing.T) {
	reg := newTestRegistry(t, 10)
	w := newLineWriter(true)
	s, done := serveStream(t, reg, testLimits, w)
	if err := s.Send([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := reg.Shutdown(ctx); !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("shutdown: %v, want ErrShutdownTimeout", err)
	}
	<-done
	if reg.Len() != 0 {
		t.Fatal("the aborted stream is still registered")
	}
}
