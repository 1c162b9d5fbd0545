package realtime

import (
	"bytes"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

var testSubIDs atomic.Uint64

// testSub is a real in-memory Subscriber: a byte-capped FIFO with both
// slow-consumer policies as Subscriber documents them (wsconn's queue
// keeps the same contract), like a connection whose writer has stopped.
// Drain plays the writer, and tells of what was dropped first.
type testSub struct {
	id uint64

	mu      sync.Mutex
	queue   []testFrame
	bytes   int
	max     int
	closed  bool
	dropped int // in all
	missed  int // since the last Drain
	wake    chan struct{}
}

type testFrame struct {
	b         []byte
	droppable bool
}

func newTestSub(maxBytes int) *testSub {
	return &testSub{id: testSubIDs.Add(1), max: maxBytes, wake: make(chan struct{}, 1)}
}

func (s *testSub) ID() uint64 { return s.id }

func (s *testSub) Enqueue(shared *SharedFrame, policy SlowPolicy) (int, bool) {
	frame := shared.Data
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	droppable := policy == PolicyDropOldest
	keep := 0 // bytes that cannot be dropped
	for _, f := range s.queue {
		if !f.droppable {
			keep += len(f.b)
		}
	}
	if keep+len(frame) > s.max {
		if droppable {
			s.dropped++
			s.missed++
			return 1, true
		}
		s.closed = true
		return 0, false
	}
	dropped := 0
	kept := s.queue[:0]
	for _, f := range s.queue {
		if f.droppable && s.bytes+len(frame) > s.max {
			s.bytes -= len(f.b)
			dropped++
			continue
		}
		kept = append(kept, f)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.dropped += dropped
	s.missed += dropped
	s.queue = append(s.queue, testFrame{frame, droppable})
	s.bytes += len(frame)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return dropped, true
}

func (s *testSub) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Drain takes every queued frame and splits it into messages.
func (s *testSub) Drain(t testing.TB) []protocol.ServerMessage {
	t.Helper()
	s.mu.Lock()
	q := s.queue
	if s.missed > 0 {
		q = append([]testFrame{{b: protocol.EncodeMissed(s.missed)}}, q...)
	}
	s.queue, s.bytes, s.missed = nil, 0, 0
	s.mu.Unlock()
	var out []protocol.ServerMessage
	for _, f := range q {
		protocol.SplitLines(f.b, func(line []byte) bool {
			m, err := protocol.DecodeServerMessage(line)
			if err != nil {
				t.Fatalf("server sent invalid JSON %q: %v", line, err)
			}
			out = append(out, m)
			return true
		})
	}
	return out
}

// WaitFor drains until pred holds for the collected messages or times out.
func (s *testSub) WaitFor(t testing.TB, pred func([]protocol.ServerMessage) bool) []protocol.ServerMessage {
	t.Helper()
	var got []protocol.ServerMessage
	deadline := time.After(5 * time.Second)
	for {
		got = append(got, s.Drain(t)...)
		if pred(got) {
			return got
		}
		select {
		case <-s.wake:
		case <-deadline:
			t.Fatalf("timed out; got %d messages", len(got))
		}
	}
}

func pubs(msgs []protocol.ServerMessage, channel string) []protocol.ServerMessage {
	var out []protocol.ServerMessage
	for _, m := range msgs {
		if m.Channel == channel && m.Data != nil {
			out = append(out, m)
		}
	}
	return out
}

func replyTo(t testing.TB, msgs []protocol.ServerMessage, id uint64) protocol.ServerMessage {
	t.Helper()
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("no reply to id %d in %d messages", id, len(msgs))
	return protocol.ServerMessage{}
}

func decodeResult[T any](t testing.TB, m protocol.ServerMessage) T {
	t.Helper()
	var v T
	if m.Error != nil {
		t.Fatalf("reply %d is an error: %v", m.ID, m.Error)
	}
	if err := json.Unmarshal(m.Result, &v); err != nil {
		t.Fatalf("reply %d: %v (%s)", m.ID, err, m.Result)
	}
	return v
}

// newTestHub is NewHub with testNamespaces unless cfg names its own.
func newTestHub(t testing.TB, cfg HubConfig) *Hub {
	t.Helper()
	if cfg.Namespaces == nil {
		cfg.Namespaces = testNamespaces()
	}
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func cmdLine(t testing.TB, s string) []byte {
	t.Helper()
	if !json.Valid([]byte(s)) {
		t.Fatalf("test command is not JSON: %s", s)
	}
	return []byte(s)
}

func dataOf(m protocol.ServerMessage) string { return string(bytes.TrimSpace(m.Data)) }
