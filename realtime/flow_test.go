package realtime

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// flowNamespaces has one flow-controlled namespace, room:, with a budget
// of 3 a tick, clients publishing without a rate limit.
func flowNamespaces() Namespaces {
	return Namespaces{
		"room": {Presence: PresenceCount, ClientPublish: true, SlowPolicy: PolicyDisconnect,
			FlowTick: 100 * time.Millisecond, FlowBudget: 3},
		"plain": {ClientPublish: true, SlowPolicy: PolicyDropOldest},
	}
}

// stallSub is a testSub whose socket the test stalls: while stalled it
// reports a backlog, as a connection whose queue holds unwritten frames.
type stallSub struct {
	*testSub
	stalled atomic.Bool
}

func (s *stallSub) Backlogged() bool { return s.stalled.Load() }

func ticksOf(msgs []protocol.ServerMessage) []protocol.ServerMessage {
	var out []protocol.ServerMessage
	for _, m := range msgs {
		if m.Tick != nil {
			out = append(out, m)
		}
	}
	return out
}

func subscribeFlow(t *testing.T, h *Hub, sub Subscriber, channel string) *Subscription {
	t.Helper()
	s, _, err := h.Subscribe(context.Background(), sub, channel, SubscribeOptions{Info: ClientInfo{Client: fmt.Sprint(sub.ID())}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unsubscribe(context.Background(), s) })
	return s
}

func publishN(t *testing.T, h *Hub, channel string, n int, sender string, priority bool) {
	t.Helper()
	for i := range n {
		var info *ClientInfo
		if sender != "" {
			info = &ClientInfo{Client: sender}
		}
		data := fmt.Appendf(nil, `{"from":%q,"n":%d}`, sender, i)
		if _, err := h.PublishWith(context.Background(), channel, data, info, PublishDetails{Priority: priority}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFlowTickOneFrameSameBytesExactCounts(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	a, b := newTestSub(1<<20), newTestSub(1<<20)
	subscribeFlow(t, h, a, "room:x")
	subscribeFlow(t, h, b, "room:x")
	a.Drain(t)
	b.Drain(t)

	publishN(t, h, "room:x", 7, "s1", false)
	publishN(t, h, "room:x", 2, "s2", false)
	if got := a.Drain(t); len(got) != 0 {
		t.Fatalf("publications went out before the tick: %+v", got)
	}
	if n := ticks.fire(); n != 1 {
		t.Fatalf("%d ticks ran, want 1", n)
	}
	a.mu.Lock()
	fa := a.queue
	a.mu.Unlock()
	b.mu.Lock()
	fb := b.queue
	b.mu.Unlock()
	if len(fa) != 1 || len(fb) != 1 || string(fa[0].b) != string(fb[0].b) {
		t.Fatalf("want one identical frame per viewer, got %d and %d", len(fa), len(fb))
	}
	if &fa[0].b[0] != &fb[0].b[0] {
		t.Error("the tick frame was encoded per viewer, not once")
	}
	msgs := ticksOf(a.Drain(t))
	if len(msgs) != 1 {
		t.Fatalf("want 1 tick frame, got %+v", msgs)
	}
	tk := msgs[0].Tick
	if tk.Total != 9 || tk.Shown != 3 || len(tk.Publications) != 3 || tk.Missed != 0 {
		t.Fatalf("tick = %+v, want total 9, shown 3", tk)
	}
	from := map[string]int{}
	for _, p := range tk.Publications {
		from[p.Info.Client]++
	}
	if from["s2"] == 0 {
		t.Errorf("round-robin skipped the quiet sender: %v", from)
	}
	// Nothing more was published: no further tick runs.
	if n := ticks.fire(); n != 0 {
		t.Errorf("%d ticks ran with nothing to send", n)
	}
}

func TestFlowPriorityFromTheAPIAlwaysShown(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	a := newTestSub(1 << 20)
	subscribeFlow(t, h, a, "room:x")
	a.Drain(t)
	publishN(t, h, "room:x", 20, "flooder", false)
	publishN(t, h, "room:x", 4, "", true) // more than the budget of 3
	ticks.fire()
	msgs := ticksOf(a.Drain(t))
	if len(msgs) != 1 {
		t.Fatalf("want 1 tick frame, got %d", len(msgs))
	}
	prio := 0
	for _, p := range msgs[0].Tick.Publications {
		if p.Priority {
			prio++
		}
	}
	if prio != 4 || msgs[0].Tick.Total != 24 || msgs[0].Tick.Shown != 7 {
		t.Fatalf("tick %+v: want all 4 priority and 3 others, total 24", msgs[0].Tick)
	}
}

func TestFlowSenderSeesOwnCommentAtOnce(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	c, cs := newClient(t, h, Identity{Name: "李旺"})
	send(t, c, cs, `{"id":1,"op":"subscribe","channel":"room:x"}`)
	// Others flood the tick: the sample will likely not show the sender.
	publishN(t, h, "room:x", 50, "other", false)
	msgs, _ := send(t, c, cs, `{"id":2,"op":"publish","channel":"room:x","data":{"text":"我的"}}`)
	if len(msgs) != 2 || msgs[0].Channel != "room:x" || dataOf(msgs[0]) != `{"text":"我的"}` || msgs[1].ID != 2 {
		t.Fatalf("want the own publication then the reply at once, before any tick; got %+v", msgs)
	}
	pr := decodeResult[protocol.PublishResult](t, msgs[1])
	if msgs[0].Offset != pr.Offset || msgs[0].Info == nil || msgs[0].Info.Client != c.Info().Client {
		t.Errorf("own publication %+v does not match the reply %+v", msgs[0], pr)
	}
	ticks.fire()
	tk := ticksOf(cs.Drain(t))
	if len(tk) != 1 || tk[0].Tick.Total != 51 {
		t.Fatalf("tick after the publish: %+v", tk)
	}
	// Not subscribed: no echo, only the reply.
	d, ds := newClient(t, h, Identity{})
	msgs, _ = send(t, d, ds, `{"id":1,"op":"publish","channel":"room:x","data":1}`)
	if len(msgs) != 1 || msgs[0].ID != 1 {
		t.Fatalf("publisher not subscribed got %+v", msgs)
	}
}

func TestFlowStalledViewerSkipsTicksAndIsToldWhatItMissed(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	fast := newTestSub(1 << 20)
	slow := &stallSub{testSub: newTestSub(1 << 20)}
	subscribeFlow(t, h, fast, "room:x")
	subscribeFlow(t, h, slow, "room:x")
	fast.Drain(t)
	slow.Drain(t)

	slow.stalled.Store(true)
	for range 3 {
		publishN(t, h, "room:x", 5, "s", false)
		publishN(t, h, "room:x", 1, "", true)
		ticks.fire()
	}
	if got := slow.Drain(t); len(got) != 0 {
		t.Fatalf("a stalled viewer was queued %d messages", len(got))
	}
	if got := ticksOf(fast.Drain(t)); len(got) != 3 {
		t.Fatalf("the reading viewer got %d ticks, want 3", len(got))
	}
	// The room goes quiet; the viewer recovers: the next tick is for it
	// alone, with the priority ones it skipped and the count of the rest.
	slow.stalled.Store(false)
	if n := ticks.fire(); n != 1 {
		t.Fatalf("no tick ran for the owed viewer (%d)", n)
	}
	got := ticksOf(slow.Drain(t))
	if len(got) != 1 {
		t.Fatalf("recovered viewer got %d ticks, want 1", len(got))
	}
	tk := got[0].Tick
	prio := 0
	for _, p := range tk.Publications {
		if p.Priority {
			prio++
		}
	}
	// Each tick showed 4 of 6: the priority one and 3 others.
	if prio != 3 || tk.Missed != 9 || tk.Total != 0 || tk.Shown != 3 {
		t.Fatalf("owed frame = %+v, want 3 priority carried, missed 6", tk)
	}
	if got := fast.Drain(t); len(got) != 0 {
		t.Fatalf("the owed frame went to the reading viewer too: %+v", got)
	}
	if n := ticks.fire(); n != 0 {
		t.Errorf("%d ticks ran with nobody owed anything", n)
	}
	// Then fresh ticks, shared again.
	publishN(t, h, "room:x", 1, "s", false)
	ticks.fire()
	if a, b := ticksOf(slow.Drain(t)), ticksOf(fast.Drain(t)); len(a) != 1 || len(b) != 1 || a[0].Tick.Missed != 0 {
		t.Fatalf("fresh tick: slow %+v fast %+v", a, b)
	}
}

func TestFlowOffNamespaceDeliversEachPublication(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	a := newTestSub(1 << 20)
	subscribeFlow(t, h, a, "plain:x")
	a.Drain(t)
	publishN(t, h, "plain:x", 3, "s", false)
	if got := pubs(a.Drain(t), "plain:x"); len(got) != 3 {
		t.Fatalf("without flow control want 3 pushes at once, got %d", len(got))
	}
	if ticks.waiting() != 0 {
		t.Error("a tick was started in a namespace without flow control")
	}
}

func TestFlowTickStopsWithTheChannel(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	a := newTestSub(1 << 20)
	s, _, err := h.Subscribe(context.Background(), a, "room:x", SubscribeOptions{Info: ClientInfo{Client: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, h, "room:x", 2, "s", false)
	h.Unsubscribe(context.Background(), s)
	if ticks.waiting() != 0 {
		t.Fatal("the tick outlived the channel")
	}
}

func TestFlowOptionsValidated(t *testing.T) {
	for _, o := range []NamespaceOptions{
		{FlowTick: time.Millisecond},
		{FlowTick: 11 * time.Second},
		{FlowTick: -1},
		{FlowTick: time.Second, FlowBudget: -1},
		{FlowTick: time.Second, FlowBudget: maxFlowBudget + 1},
	} {
		if err := (Namespaces{"x": o}).Validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
	}
	if err := (Namespaces{"x": {FlowTick: 100 * time.Millisecond}}).Validate(); err != nil {
		t.Error(err)
	}
}

// Over NATS each node ticks for its own viewers, and the priority flag
// travels with the publication: a priority publication made on node B
// is in node A's tick frame, marked, however flooded the tick.
func TestNATSFlowEachNodeTicksPriorityTravels(t *testing.T) {
	n := natstest.Start(t)
	nss := flowNamespaces()
	ha, hb := newNATSHub(t, n, nss, "a"), newNATSHub(t, n, nss, "b")
	ticksA, ticksB := useManualTicks(ha), useManualTicks(hb)
	const ch = "room:nodes"
	x, y := newTestSub(1<<20), newTestSub(1<<20)
	subscribeFlow(t, ha, x, ch)
	subscribeFlow(t, hb, y, ch)
	publishN(t, hb, ch, 10, "b-flooder", false)
	publishN(t, hb, ch, 1, "", true)
	for _, h := range []*Hub{ha, hb} {
		hc := h.lookup(ch)
		eventually(t, 5*time.Second, "the node to receive the publications", func() bool {
			hc.flow.mu.Lock()
			defer hc.flow.mu.Unlock()
			return len(hc.flow.pending) == 11
		})
	}
	ticksA.fire()
	ticksB.fire()
	for name, s := range map[string]*testSub{"A": x, "B": y} {
		tk := ticksOf(s.Drain(t))
		if len(tk) != 1 || tk[0].Tick.Total != 11 || tk[0].Tick.Shown != 4 {
			t.Fatalf("node %s: ticks %+v, want one of total 11 showing 4 (3 and the priority one)", name, tk)
		}
		last := tk[0].Tick.Publications[len(tk[0].Tick.Publications)-1]
		if !last.Priority {
			t.Errorf("node %s: the priority publication is not shown as such: %+v", name, tk[0].Tick.Publications)
		}
	}
}

// At shutdown the waiting ticks go out at once (FlushTicks), so accepted
// publications are not lost with the tick.
func TestFlowFlushTicksSendsWaitingTickNow(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	a := newTestSub(1 << 20)
	subscribeFlow(t, h, a, "room:x")
	a.Drain(t)
	publishN(t, h, "room:x", 2, "s", false)
	h.FlushTicks()
	if tk := ticksOf(a.Drain(t)); len(tk) != 1 || tk[0].Tick.Total != 2 {
		t.Fatalf("after FlushTicks: %+v", tk)
	}
	if n := ticks.fire(); n != 0 {
		t.Errorf("the flushed tick's timer still ran (%d)", n)
	}
}

// A room large enough for its tick to be split among the cores: every
// viewer gets the tick exactly once, the deliveries are counted once, and
// a stalled viewer in any part is owed its frame and gets it.
func TestFlowLargeRoomSplitFanout(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	const n = 2*flowFanoutChunk + 10
	subs := make([]*testSub, n)
	slow := &stallSub{testSub: newTestSub(1 << 16)}
	for i := range subs {
		subs[i] = newTestSub(1 << 16)
		subscribeFlow(t, h, subs[i], "room:big")
	}
	subscribeFlow(t, h, slow, "room:big")
	slow.stalled.Store(true)
	before := h.Stats().Deliveries
	publishN(t, h, "room:big", 5, "s", false)
	ticks.fire()
	if got := h.Stats().Deliveries - before; got != n {
		t.Errorf("%d deliveries counted, want %d", got, n)
	}
	for i, s := range subs {
		if tk := ticksOf(s.Drain(t)); len(tk) != 1 || tk[0].Tick.Total != 5 {
			t.Fatalf("viewer %d got %d ticks", i, len(tk))
		}
	}
	slow.stalled.Store(false)
	ticks.fire()
	if tk := ticksOf(slow.Drain(t)); len(tk) != 1 || tk[0].Tick.Missed != 3 {
		t.Fatalf("the stalled viewer got %+v, want one frame with missed 3", tk)
	}
}

// A flow-controlled channel's tick frame names the channel's previous
// one, as a publication does, so a transport can compress a flood's
// ticks against each other.
func TestFlowTicksFollowThePreviousTick(t *testing.T) {
	h := newTestHub(t, HubConfig{Namespaces: flowNamespaces()})
	ticks := useManualTicks(h)
	subs := make([]*recordingSub, followMinSubscribers)
	for i := range subs {
		subs[i] = &recordingSub{id: uint64(i + 1)}
		subscribeFlow(t, h, subs[i], "room:follow")
	}
	for range 3 {
		publishN(t, h, "room:follow", 2, "s1", false)
		if n := ticks.fire(); n != 1 {
			t.Fatalf("%d ticks ran, want 1", n)
		}
	}
	got := subs[0].frames
	if len(got) != 3 {
		t.Fatalf("%d frames, want 3 ticks", len(got))
	}
	for i := 1; i < len(got); i++ {
		if after, prev := got[i].Follows(); got[i].ID() == 0 || after != got[i-1].ID() || string(prev) != string(got[i-1].Data) {
			t.Fatalf("tick %d (id %d) follows %d, want %d", i, got[i].ID(), after, got[i-1].ID())
		}
	}
}
