package realtime

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// manualTicks stands in for a hub's join/leave timers: a tick runs only
// when the test calls fire, so what a tick sends is exact.
type manualTicks struct {
	mu  sync.Mutex
	due []*manualTick
}

type manualTick struct {
	f       func()
	stopped bool
}

func useManualTicks(h *Hub) *manualTicks {
	m := &manualTicks{}
	h.after = func(_ time.Duration, f func()) func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		tk := &manualTick{f: f}
		m.due = append(m.due, tk)
		return func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			was := !tk.stopped
			tk.stopped = true
			return was
		}
	}
	return m
}

// fire runs every tick started so far (ticks they start wait for the next
// fire) and returns how many ran.
func (m *manualTicks) fire() int {
	m.mu.Lock()
	due := m.due
	m.due = nil
	m.mu.Unlock()
	n := 0
	for _, tk := range due {
		m.mu.Lock()
		run := !tk.stopped
		tk.stopped = true
		m.mu.Unlock()
		if run {
			tk.f()
			n++
		}
	}
	return n
}

// waiting is the number of ticks started and neither run nor stopped.
func (m *manualTicks) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, tk := range m.due {
		if !tk.stopped {
			n++
		}
	}
	return n
}

// frames is how many frames are queued (before Drain splits them).
func (s *testSub) frames() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.queue))
	for i, f := range s.queue {
		out[i] = f.b
	}
	return out
}

type seen struct{ joins, leaves []string }

func eventsOf(msgs []protocol.ServerMessage) (s seen, counts []int) {
	for _, m := range msgs {
		switch {
		case m.Join != nil:
			s.joins = append(s.joins, m.Join.Client)
		case m.Leave != nil:
			s.leaves = append(s.leaves, m.Leave.Client)
		case m.PresenceCount != 0:
			counts = append(counts, m.PresenceCount)
		}
	}
	return s, counts
}

// A tick's events reach every subscriber as one frame, the same bytes for
// all; a client that came and went within the tick is not told of.
func TestJoinLeaveOneFramePerTick(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	ticks := useManualTicks(h)
	a, b, c := newTestSub(1<<20), newTestSub(1<<20), newTestSub(1<<20)
	subscribe(t, h, a, "chat:room")
	sb := subscribe(t, h, b, "chat:room")
	subscribe(t, h, c, "chat:room")
	a.Drain(t) // the subscribe replies are the caller's; nothing else yet
	if got := a.frames(); len(got) != 0 {
		t.Fatalf("events went out before their tick: %q", got)
	}
	if n := ticks.fire(); n != 1 {
		t.Fatalf("%d ticks ran for one channel, want 1", n)
	}
	fa, fb, fc := a.frames(), b.frames(), c.frames()
	if len(fa) != 1 || len(fb) != 1 || len(fc) != 1 {
		t.Fatalf("frames per subscriber: %d %d %d, want 1 each", len(fa), len(fb), len(fc))
	}
	if !bytes.Equal(fa[0], fb[0]) || &fa[0][0] != &fc[0][0] {
		t.Error("subscribers got different frames for one tick: it must be encoded once")
	}
	want := seen{joins: []string{testClientID(a), testClientID(b), testClientID(c)}}
	if got, _ := eventsOf(a.Drain(t)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("a saw %v, want %v", got, want)
	}
	b.Drain(t)
	c.Drain(t)

	// Next tick: b leaves, d joins, e joins and leaves again.
	d, e := newTestSub(1<<20), newTestSub(1<<20)
	h.Unsubscribe(ctx, sb)
	subscribe(t, h, d, "chat:room")
	h.Unsubscribe(ctx, subscribe(t, h, e, "chat:room"))
	ticks.fire()
	want = seen{joins: []string{testClientID(d)}, leaves: []string{testClientID(b)}}
	for name, s := range map[string]*testSub{"a": a, "c": c, "d": d} {
		if got, _ := eventsOf(s.Drain(t)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s saw %v, want %v", name, got, want)
		}
	}
	if got := b.Drain(t); len(got) != 0 {
		t.Errorf("b, gone, still got %+v", got)
	}
	// A tick with nothing in it sends nothing and starts no other.
	if ticks.waiting() != 0 {
		t.Errorf("%d ticks wait with no event pending", ticks.waiting())
	}
}

// Above JoinLeaveMaxMembers a tick sends only the member count, when it
// changed or someone joined; back at or below it, events resume.
func TestJoinLeaveCountOnlyAboveMaxMembers(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{Namespaces: chatWith(func(o *NamespaceOptions) { o.JoinLeaveMaxMembers = 2 })})
	ticks := useManualTicks(h)
	a := newTestSub(1 << 20)
	subscribe(t, h, a, "chat:big")
	subs := make([]*Subscription, 3)
	for i := range subs {
		subs[i] = subscribe(t, h, newTestSub(1<<20), "chat:big")
	}
	ticks.fire()
	if ev, counts := eventsOf(a.Drain(t)); len(ev.joins)+len(ev.leaves) != 0 || fmt.Sprint(counts) != "[4]" {
		t.Fatalf("4 members: a saw %v and counts %v, want count 4 alone", ev, counts)
	}
	// One joins and one leaves: the count stays, but the newcomer must
	// learn it.
	late := newTestSub(1 << 20)
	subscribe(t, h, late, "chat:big")
	h.Unsubscribe(ctx, subs[0])
	ticks.fire()
	for name, s := range map[string]*testSub{"a": a, "late": late} {
		if _, counts := eventsOf(s.Drain(t)); fmt.Sprint(counts) != "[4]" {
			t.Errorf("%s saw counts %v, want [4]", name, counts)
		}
	}
	// Down to 2 members: the leave is an event again.
	h.Unsubscribe(ctx, subs[1])
	h.Unsubscribe(ctx, subs[2])
	ticks.fire()
	ev, counts := eventsOf(a.Drain(t))
	if len(counts) != 0 || fmt.Sprint(ev.leaves) != fmt.Sprint([]string{subs[1].info.Client, subs[2].info.Client}) {
		t.Errorf("back to 2 members: a saw %v and counts %v, want the two leaves", ev, counts)
	}
}

// Issue 10's join storm on the hub, with real subscribers: 500 joins into
// one chat room, a tick after every 50 (a storm of 250 joins/s at the
// 200 ms tick). One frame per join per member cost n(n-1)/2 = 124,750
// deliveries; per tick it is at most 10% of that, and every member still
// learns the room's size.
func TestJoinStormOnTheHub(t *testing.T) {
	const n, perTick = 500, 50
	h := newTestHub(t, HubConfig{})
	ticks := useManualTicks(h)
	subs := make([]*testSub, n)
	for i := range subs {
		subs[i] = newTestSub(1 << 20)
		subscribe(t, h, subs[i], "chat:storm")
		if (i+1)%perTick == 0 {
			ticks.fire()
		}
	}
	got := h.Stats().Deliveries
	square := uint64(n * (n - 1) / 2)
	t.Logf("%d joins: %d deliveries (%.1f%% of %d)", n, got, 100*float64(got)/float64(square), square)
	if got*10 > square {
		t.Errorf("%d joins cost %d deliveries, more than 10%% of %d", n, got, square)
	}
	// The first member saw each of the first 200 join, then counts.
	ev, counts := eventsOf(subs[0].Drain(t))
	if len(ev.joins) != DefaultJoinLeaveMaxMembers || ev.joins[0] != testClientID(subs[0]) {
		t.Errorf("first member saw %d joins, want %d starting with its own", len(ev.joins), DefaultJoinLeaveMaxMembers)
	}
	if fmt.Sprint(counts) != "[250 300 350 400 450 500]" {
		t.Errorf("first member saw counts %v", counts)
	}
	// The last member learnt the size from its only event.
	if _, counts := eventsOf(subs[n-1].Drain(t)); fmt.Sprint(counts) != "["+strconv.Itoa(n)+"]" {
		t.Errorf("last member saw counts %v, want [%d]", counts, n)
	}
}

// A channel's pending tick is stopped when its last subscriber goes, so
// nothing is left running for a room nobody is in.
func TestJoinLeaveTickStopsWithTheChannel(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	ticks := useManualTicks(h)
	s := subscribe(t, h, newTestSub(1<<20), "chat:brief")
	if ticks.waiting() != 1 {
		t.Fatalf("%d ticks wait after a join, want 1", ticks.waiting())
	}
	h.Unsubscribe(context.Background(), s)
	if ticks.waiting() != 0 {
		t.Errorf("%d ticks still wait for a channel with no subscriber", ticks.waiting())
	}
}

// The real timer: the join arrives by itself after the tick.
func TestJoinLeaveTickFires(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: chatWith(func(o *NamespaceOptions) { o.JoinLeaveTick = 5 * time.Millisecond })})
	a := newTestSub(1 << 20)
	subscribe(t, h, a, "chat:t")
	a.WaitFor(t, func(m []protocol.ServerMessage) bool {
		ev, _ := eventsOf(m)
		return len(ev.joins) == 1 && ev.joins[0] == testClientID(a)
	})
}

// Over NATS, joins made on another node are gathered on the node that
// fans them out: five joins on node B reach node A's subscriber as one
// frame.
func TestNATSJoinsFromAnotherNodeAreCoalesced(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	nss := testNamespaces()
	ha, hb := newNATSHub(t, n, nss, "a"), newNATSHub(t, n, nss, "b")
	ticksA := useManualTicks(ha)
	const ch = "chat:nodes"
	x := newTestSub(1 << 20)
	if _, _, err := ha.Subscribe(ctx, x, ch, SubscribeOptions{Info: ClientInfo{Client: "a-x"}}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		id := "b-" + strconv.Itoa(i)
		want = append(want, id)
		if _, _, err := hb.Subscribe(ctx, newTestSub(1<<20), ch, SubscribeOptions{Info: ClientInfo{Client: id}}); err != nil {
			t.Fatal(err)
		}
	}
	// Barrier: node A has all six events waiting (its own and B's five).
	hc := ha.lookup(ch)
	eventually(t, 5*time.Second, "node A to receive the joins", func() bool {
		hc.events.mu.Lock()
		defer hc.events.mu.Unlock()
		return len(hc.events.pending) == 6
	})
	ticksA.fire()
	if f := x.frames(); len(f) != 1 {
		t.Fatalf("A's subscriber got %d frames for one tick, want 1", len(f))
	}
	ev, _ := eventsOf(x.Drain(t))
	if fmt.Sprint(ev.joins) != fmt.Sprint(append([]string{"a-x"}, want...)) {
		t.Errorf("A's subscriber saw joins %v", ev.joins)
	}
}

// A tick with more events than fit in one frame (a room allowed many
// members) sends them in several frames of at most 32 KiB, none lost.
func TestJoinLeaveLargeTickIsSplit(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: chatWith(func(o *NamespaceOptions) { o.JoinLeaveMaxMembers = 10000 })})
	ticks := useManualTicks(h)
	const n = 600
	a := newTestSub(1 << 22)
	name := string(bytes.Repeat([]byte("名"), 30))
	for i := range n {
		sub := a
		if i > 0 {
			sub = newTestSub(1 << 22)
		}
		if _, _, err := h.Subscribe(context.Background(), sub, "chat:wide", SubscribeOptions{Info: ClientInfo{Client: testClientID(sub), Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	ticks.fire()
	frames := a.frames()
	if len(frames) < 2 {
		t.Fatalf("%d joins with 90-byte names came in %d frame(s), want them split", n, len(frames))
	}
	for i, f := range frames {
		if len(f) > joinLeaveFrameBytes {
			t.Errorf("frame %d is %d bytes, over %d", i, len(f), joinLeaveFrameBytes)
		}
	}
	if ev, _ := eventsOf(a.Drain(t)); len(ev.joins) != n {
		t.Errorf("a saw %d joins, want %d", len(ev.joins), n)
	}
}
