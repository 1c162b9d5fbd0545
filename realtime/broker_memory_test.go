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

func TestMemoryBrokerOffsetsAndHistory(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1000, 0)}
	b := NewMemoryBroker(WithClock(clock.Now))
	var epoch string
	for i := 1; i <= 5; i++ {
		pos, err := b.Publish(ctx, "chat:a", []byte(fmt.Sprint(i)), nil, hist3)
		if err != nil || pos.Offset != uint64(i) {
			t.Fatalf("publish %d: %+v %v", i, pos, err)
		}
		if epoch == "" {
			epoch = pos.Epoch
		} else if pos.Epoch != epoch {
			t.Fatalf("epoch changed: %s → %s", epoch, pos.Epoch)
		}
	}
	// Another channel has its own offsets and epoch.
	if pos, _ := b.Publish(ctx, "chat:b", []byte("1"), nil, hist3); pos.Offset != 1 || pos.Epoch == epoch {
		t.Errorf("chat:b: %+v", pos)
	}

	check := func(name string, req HistoryRequest, wantOffsets []uint64, wantRecovered bool) {
		t.Helper()
		res, err := b.History(ctx, "chat:a", req)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(offsets(res.Publications)) != fmt.Sprint(wantOffsets) || res.Recovered != wantRecovered {
			t.Errorf("%s: got %v recovered=%v, want %v recovered=%v", name, offsets(res.Publications), res.Recovered, wantOffsets, wantRecovered)
		}
		if res.Position != (StreamPosition{Offset: 5, Epoch: epoch}) {
			t.Errorf("%s: position %+v", name, res.Position)
		}
	}
	check("latest all", HistoryRequest{Limit: -1}, []uint64{3, 4, 5}, false)
	check("latest 2", HistoryRequest{Limit: 2}, []uint64{4, 5}, false)
	check("position only", HistoryRequest{}, nil, false)
	check("recover from 3", HistoryRequest{Since: &StreamPosition{Offset: 3, Epoch: epoch}, Limit: 10}, []uint64{4, 5}, true)
	check("recover from 2 (oldest kept is 3)", HistoryRequest{Since: &StreamPosition{Offset: 2, Epoch: epoch}, Limit: 10}, []uint64{3, 4, 5}, true)
	check("recover at top", HistoryRequest{Since: &StreamPosition{Offset: 5, Epoch: epoch}, Limit: 10}, nil, true)
	check("gap too old", HistoryRequest{Since: &StreamPosition{Offset: 1, Epoch: epoch}, Limit: 10}, nil, false)
	check("other epoch", HistoryRequest{Since: &StreamPosition{Offset: 4, Epoch: "zzz"}, Limit: 10}, nil, false)
	check("future", HistoryRequest{Since: &StreamPosition{Offset: 9, Epoch: epoch}, Limit: 10}, nil, false)
	check("over limit", HistoryRequest{Since: &StreamPosition{Offset: 2, Epoch: epoch}, Limit: 2}, []uint64{3, 4}, false)
	check("any epoch", HistoryRequest{Since: &StreamPosition{Offset: 3}, Limit: 10}, []uint64{4, 5}, true)

	// TTL: entries expire; the offset stays.
	clock.Add(2 * time.Minute)
	check("expired", HistoryRequest{Limit: -1}, nil, false)
	check("expired gap", HistoryRequest{Since: &StreamPosition{Offset: 4, Epoch: epoch}, Limit: 10}, nil, false)
	check("expired but nothing missed", HistoryRequest{Since: &StreamPosition{Offset: 5, Epoch: epoch}, Limit: 10}, nil, true)
	if pos, _ := b.Publish(ctx, "chat:a", []byte("6"), nil, hist3); pos.Offset != 6 || pos.Epoch != epoch {
		t.Errorf("after expiry: %+v", pos)
	}
}

func TestMemoryBrokerNoHistoryStillNumbers(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker()
	for i := 1; i <= 3; i++ {
		if pos, _ := b.Publish(ctx, "live:a", []byte("1"), nil, PublishOptions{}); pos.Offset != uint64(i) {
			t.Fatalf("offset %d", pos.Offset)
		}
	}
	res, _ := b.History(ctx, "live:a", HistoryRequest{Since: &StreamPosition{Offset: 2}, Limit: 10})
	if res.Recovered || len(res.Publications) != 0 {
		t.Errorf("no history must not recover: %+v", res)
	}
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

func TestMemoryBrokerDeliversOnlyWhenSubscribedInOrder(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker()
	h := &recordingHandler{}
	b.SetHandler(h)
	b.Publish(ctx, "chat:a", []byte("1"), nil, hist3)
	b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "1"})
	if len(h.pubs["chat:a"]) != 0 || len(h.events) != 0 {
		t.Fatalf("delivered without interest: %v %v", h.pubs, h.events)
	}
	b.Subscribe(ctx, "chat:a")
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				b.Publish(ctx, "chat:a", []byte("1"), nil, hist3)
			}
		}()
	}
	wg.Wait()
	got := h.pubs["chat:a"]
	if len(got) != writers*each {
		t.Fatalf("got %d deliveries", len(got))
	}
	for i, off := range got {
		if off != uint64(i+2) {
			t.Fatalf("delivery %d has offset %d: out of order", i, off)
		}
	}
	b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "1"})
	b.PublishLeave(ctx, "chat:a", ClientInfo{Client: "1"})
	b.Unsubscribe(ctx, "chat:a")
	b.Publish(ctx, "chat:a", []byte("1"), nil, hist3)
	if len(h.pubs["chat:a"]) != writers*each || fmt.Sprint(h.events) != "[join chat:a 1 leave chat:a 1]" {
		t.Errorf("after unsubscribe: %d %v", len(h.pubs["chat:a"]), h.events)
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
	stop := b.StartSweeper(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	stop()
	stop()
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
