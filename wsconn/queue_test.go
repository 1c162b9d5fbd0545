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
		if dropped, _ := q.pushDropOldest(msg(fmt.Sprintf("m%d", i))); dropped != 0 { // 2 bytes each
			t.Fatal("dropped under the cap")
		}
	}
	if dropped, _ := q.pushDropOldest(msg("abcd")); dropped != 2 { // needs 4 bytes: drops m0, m1
		t.Fatalf("dropped %d, want 2", dropped)
	}
	w := q.take(work{})
	if got := texts(w.items); got != "[m2 m3 m4 abcd]" || w.missed != 2 {
		t.Fatalf("queue = %v, missed %d; want [m2 m3 m4 abcd], 2", got, w.missed)
	}
	if dropped, _ := q.pushDropOldest(msg("this is over ten bytes")); dropped != 1 {
		t.Fatalf("a message larger than the cap: dropped %d, want itself", dropped)
	}
	if w := q.take(w); len(w.items) != 0 || w.missed != 1 {
		t.Fatalf("took %v, missed %d; want nothing, 1", texts(w.items), w.missed)
	}
}

// What must not be dropped (replies, notices) never is: droppable
// messages make room for it, oldest first, wherever they are queued; and
// when droppable messages cannot fit beside it, they are the ones dropped.
// Every drop is counted as missed.
func TestQueueDropsOnlyDroppable(t *testing.T) {
	q := &sendQueue{maxBytes: 10}
	pushDroppable := func(s string) int { n, _ := q.pushDropOldest(msg(s)); return n }
	pushDroppable("d0")
	if !pushed(q, msg("R1")) {
		t.Fatal("reply refused")
	}
	pushDroppable("d1")
	pushDroppable("d2")
	pushDroppable("d3")           // 10 bytes: d0 R1 d1 d2 d3
	if !pushed(q, msg("REPLY")) { // 5 bytes: drops d0, d1, d2
		t.Fatal("reply refused although droppable messages could make room")
	}
	if n := pushDroppable("d4"); n != 1 { // 2 bytes: drops d3
		t.Fatalf("d4 dropped %d, want 1 (d3)", n)
	}
	if !pushed(q, msg("R")) { // R1 REPLY d4 R: 10 bytes, nothing dropped
		t.Fatal("one-byte reply refused")
	}
	if pushed(q, msg("TOOLONG")) { // R1 REPLY R are 8 bytes: no room for 7 more
		t.Fatal("a reply that cannot fit even after every drop was queued")
	}
	if n := pushDroppable("xyz"); n != 1 { // 8 + 3 > 10 even without d4: xyz itself
		t.Fatalf("xyz dropped %d, want itself", n)
	}
	w := q.take(work{})
	if got := texts(w.items); got != "[R1 REPLY d4 R]" || w.missed != 5 {
		t.Fatalf("queue %v, missed %d; want [R1 REPLY d4 R], 5 (d0 d1 d2 d3 xyz)", got, w.missed)
	}
}

func texts(items []outMessage) string {
	var got []string
	for _, m := range items {
		got = append(got, string(m.data))
	}
	return fmt.Sprint(got)
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
