package wsconn

import (
	"fmt"
	"testing"
)

func msg(s string) outMessage { return outMessage{kind: 1, data: []byte(s)} }

func pushed(q *sendQueue, m outMessage) bool {
	ok, _ := q.push(m)
	return ok
}

func TestQueueCapsBytes(t *testing.T) {
	q := &sendQueue{maxBytes: 10}
	if !pushed(q, msg("12345")) || !pushed(q, msg("12345")) {
		t.Fatal("pushes under the cap refused")
	}
	if pushed(q, msg("x")) {
		t.Fatal("push over the cap accepted")
	}
	got := q.take(work{})
	if len(got.items) != 2 || q.bytes != 0 {
		t.Fatalf("took %d, %d bytes left", len(got.items), q.bytes)
	}
	if !pushed(q, msg("1234567890")) {
		t.Fatal("queue not emptied by take")
	}
}

func TestQueueDropOldestKeepsNewestInOrder(t *testing.T) {
	q := &sendQueue{maxBytes: 10}
	for i := 0; i < 5; i++ {
		if _, ok, _ := q.pushDropOldest(msg(fmt.Sprintf("m%d", i))); !ok { // 2 bytes each
			t.Fatal("refused")
		}
	}
	dropped, ok, _ := q.pushDropOldest(msg("abcd")) // needs 4 bytes: drops m0, m1
	if !ok || dropped != 2 {
		t.Fatalf("dropped %d ok=%v, want 2 true", dropped, ok)
	}
	var got []string
	for _, m := range q.take(work{}).items {
		got = append(got, string(m.data))
	}
	if fmt.Sprint(got) != "[m2 m3 m4 abcd]" {
		t.Fatalf("queue = %v", got)
	}
	if _, ok, _ := q.pushDropOldest(msg("this is over ten bytes")); ok {
		t.Fatal("a message larger than the cap was queued")
	}
}

// One writer at a time, started by whoever queues first, gone once the
// queue is empty, and none after stop.
func TestQueueWriterLifecycle(t *testing.T) {
	q := &sendQueue{maxBytes: 100}
	if !q.idle() {
		t.Fatal("new queue not idle")
	}
	if ok, start := q.push(msg("a")); !ok || !start {
		t.Fatalf("first push: ok %v start %v, want a writer started", ok, start)
	}
	if _, start := q.push(msg("b")); start {
		t.Fatal("second writer started while one runs")
	}
	if q.pushPing() || q.pushPong([]byte("p")) || q.kick() {
		t.Fatal("control frame started a second writer")
	}
	if q.idle() {
		t.Fatal("idle with a writer running")
	}
	w := q.take(work{})
	if len(w.items) != 2 || !w.ping || !w.pongDue || string(w.pong) != "p" {
		t.Fatalf("took %+v", w)
	}
	if q.writerDone(func() bool { return true }) {
		t.Fatal("writer let go with a close frame still due")
	}
	if !q.writerDone(func() bool { return false }) || !q.idle() {
		t.Fatal("writer not let go with nothing left")
	}
	q.writers.Done() // what writeLoop's defer does

	// An empty pong payload is still a pong due.
	if !q.pushPong(nil) {
		t.Fatal("pong did not start a writer")
	}
	if w := q.take(w); !w.pongDue || len(w.pong) != 0 {
		t.Fatalf("empty pong lost: %+v", w)
	}
	q.writerQuit()
	q.writers.Done()

	q.stop()
	if _, start := q.push(msg("late")); start || q.kick() || q.idle() {
		t.Fatal("a writer may start, or a write go inline, after stop")
	}
}
