package realtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recordingHandler records what a broker delivers.
type recordingHandler struct {
	mu     sync.Mutex
	pubs   map[string][]uint64
	events []string
}

func (r *recordingHandler) HandlePublication(ch string, p Publication) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pubs == nil {
		r.pubs = map[string][]uint64{}
	}
	r.pubs[ch] = append(r.pubs[ch], p.Offset)
}
func (r *recordingHandler) HandleJoin(ch string, i ClientInfo) {
	r.mu.Lock()
	r.events = append(r.events, "join "+ch+" "+i.Client)
	r.mu.Unlock()
}
func (r *recordingHandler) HandleLeave(ch string, i ClientInfo) {
	r.mu.Lock()
	r.events = append(r.events, "leave "+ch+" "+i.Client)
	r.mu.Unlock()
}

var hist3 = PublishOptions{HistorySize: 3, HistoryTTL: time.Minute}

func offsets(ps []Publication) []uint64 {
	var out []uint64
	for _, p := range ps {
		out = append(out, p.Offset)
	}
	return out
}

func TestMemoryBrokerResize(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker()
	for i := 0; i < 5; i++ {
		b.Publish(ctx, "c:a", []byte("1"), nil, PublishOptions{HistorySize: 5, HistoryTTL: time.Hour})
	}
	b.Publish(ctx, "c:a", []byte("1"), nil, PublishOptions{HistorySize: 2, HistoryTTL: time.Hour})
	res, _ := b.History(ctx, "c:a", HistoryRequest{Limit: -1})
	if fmt.Sprint(offsets(res.Publications)) != "[5 6]" {
		t.Errorf("shrunk: %v", offsets(res.Publications))
	}
	b.Publish(ctx, "c:a", []byte("1"), nil, PublishOptions{HistorySize: 4, HistoryTTL: time.Hour})
	res, _ = b.History(ctx, "c:a", HistoryRequest{Limit: -1})
	if fmt.Sprint(offsets(res.Publications)) != "[5 6 7]" {
		t.Errorf("grown: %v", offsets(res.Publications))
	}
}

func TestMemoryBrokerSweep(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	b := NewMemoryBroker(WithClock(clock.Now), WithIdleTTL(time.Minute))
	p1, _ := b.Publish(ctx, "chat:a", []byte("1"), nil, hist3)
	b.Subscribe(ctx, "chat:s")
	b.Publish(ctx, "chat:s", []byte("1"), nil, hist3)
	clock.Add(30 * time.Second)
	b.Sweep()
	if b.Len() != 2 {
		t.Fatalf("swept too early: %d", b.Len())
	}
	clock.Add(2 * time.Minute) // history expired and idle
	b.Sweep()
	if b.Len() != 1 {
		t.Fatalf("want only the subscribed stream left, have %d", b.Len())
	}
	p2, _ := b.Publish(ctx, "chat:a", []byte("1"), nil, hist3)
	if p2.Epoch == p1.Epoch || p2.Offset != 1 {
		t.Errorf("recreated stream must have a new epoch: %+v %+v", p1, p2)
	}
}

// The sweeper sweeps on each tick, by the broker's clock: a channel idle
// for less than the idle TTL survives a tick, one idle for longer does
// not, and after stop nothing sweeps any more. The ticks are the test's
// own; a tick's send returns only once the sweeper is back waiting, so
// the next send is the barrier for the previous sweep.
func TestMemoryBrokerSweeper(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	b := NewMemoryBroker(WithClock(clock.Now), WithIdleTTL(time.Minute))
	ticks := make(chan time.Time)
	stopped := false
	b.newTicker = func(d time.Duration) (<-chan time.Time, func()) {
		if d != time.Second {
			t.Errorf("ticker interval %s", d)
		}
		return ticks, func() { stopped = true }
	}
	tick := func() { ticks <- clock.Now() }
	b.Publish(ctx, "chat:idle", []byte("1"), nil, PublishOptions{}) // nothing kept
	stop := b.StartSweeper(time.Second)

	clock.Add(59 * time.Second)
	tick()
	tick()
	if b.Len() != 1 {
		t.Fatalf("swept before the idle TTL: %d streams", b.Len())
	}
	clock.Add(time.Second)
	tick()
	tick()
	if b.Len() != 0 {
		t.Fatalf("not swept at the idle TTL: %d streams", b.Len())
	}
	b.Publish(ctx, "chat:idle", []byte("1"), nil, PublishOptions{})
	stop()
	stop()
	if !stopped {
		t.Error("the ticker was not stopped")
	}
	clock.Add(time.Hour)
	select {
	case ticks <- clock.Now():
		t.Error("a tick was taken after stop")
	default:
	}
	if b.Len() != 1 {
		t.Errorf("swept after stop: %d streams", b.Len())
	}
}

func TestMemoryPresence(t *testing.T) {
	ctx := context.Background()
	p := NewMemoryPresence()
	p.Add(ctx, "chat:a", ClientInfo{Client: "1", Name: "a"})
	p.Add(ctx, "chat:a", ClientInfo{Client: "2", Name: "b"})
	p.Add(ctx, "chat:a", ClientInfo{Client: "2", Name: "b2"})
	if n, _ := p.Count(ctx, "chat:a"); n != 2 {
		t.Errorf("count %d", n)
	}
	m, _ := p.Get(ctx, "chat:a")
	m["3"] = ClientInfo{}
	if m2, _ := p.Get(ctx, "chat:a"); len(m2) != 2 || m2["2"].Name != "b2" {
		t.Errorf("get: %v", m2)
	}
	p.Remove(ctx, "chat:a", "1")
	p.Remove(ctx, "chat:a", "2")
	p.Remove(ctx, "chat:a", "9")
	if n, _ := p.Count(ctx, "chat:a"); n != 0 || p.Channels() != 0 {
		t.Errorf("after remove: %d, %d channels", n, p.Channels())
	}
	if m, _ := p.Get(ctx, "chat:none"); m == nil || len(m) != 0 {
		t.Errorf("empty get: %v", m)
	}
}

// Reading a channel that has nothing (history, presence, a recovery
// position) creates nothing: thousands of reads of never-seen channels
// leave the broker and the presence store as empty as they were, while a
// position read that way still holds once the channel comes to life.
func TestReadsOfUnknownChannelsCreateNothing(t *testing.T) {
	ctx := context.Background()
	b, p := NewMemoryBroker(), NewMemoryPresence()
	h := newTestHub(t, HubConfig{Broker: b, Presence: p})
	s := newTestSub(1 << 20)
	c := NewClient(h, s, Identity{Name: "reader"}, ClientLimits{CommandRate: 1e6, CommandBurst: 1 << 20})
	defer c.Close()
	for i := range 2000 {
		ch := fmt.Sprintf("chat:never-%d", i)
		c.HandleFrame([]byte(fmt.Sprintf(`{"id":1,"op":"history","channel":%q,"limit":10}`+"\n"+`{"id":2,"op":"presence","channel":%q}`, ch, ch)))
		if msgs := s.Drain(t); len(msgs) != 2 || msgs[0].Error != nil || msgs[1].Error != nil {
			t.Fatalf("%s: %+v", ch, msgs)
		}
		if _, err := h.History(ctx, ch, &StreamPosition{Offset: 0}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 0 || p.Channels() != 0 || len(h.Channels()) != 0 {
		t.Errorf("reads left %d streams, %d presence channels, %d hub channels", b.Len(), p.Channels(), len(h.Channels()))
	}

	res, err := h.History(ctx, "chat:never-1", nil, 0)
	if err != nil || res.Offset != 0 || res.Epoch == "" {
		t.Fatalf("position of a never-seen channel: %+v %v", res, err)
	}
	pos, _ := h.Publish(ctx, "chat:never-1", []byte(`1`), nil)
	if pos.Epoch != res.Epoch || pos.Offset != 1 {
		t.Errorf("first publication %+v after position %d/%s", pos, res.Offset, res.Epoch)
	}
}
