package realtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// discardSub is a Subscriber whose writer keeps up perfectly: it keeps
// nothing, so the benchmark measures the hub alone.
type discardSub struct{ id uint64 }

func (s *discardSub) ID() uint64                                       { return s.id }
func (s *discardSub) Enqueue(_ *SharedFrame, _ SlowPolicy) (int, bool) { return 0, true }

// lockedSub is closer to a real connection: a mutex-guarded queue that a
// writer empties now and then (here: when it reaches 1024 frames).
type lockedSub struct {
	id    uint64
	mu    sync.Mutex
	queue [][]byte
}

func (s *lockedSub) ID() uint64 { return s.id }
func (s *lockedSub) Enqueue(frame *SharedFrame, _ SlowPolicy) (int, bool) {
	s.mu.Lock()
	if len(s.queue) == 1024 {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	s.queue = append(s.queue, frame.Data)
	s.mu.Unlock()
	return 0, true
}

// BenchmarkHubFanout publishes to one channel with N local subscribers.
// It reports ns and allocations per delivery (one publication reaching one
// subscriber) besides the usual per-publication figures.
func BenchmarkHubFanout(b *testing.B) {
	for _, kind := range []string{"discard", "locked"} {
		for _, n := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("sub=%s/subs=%d", kind, n), func(b *testing.B) { benchFanout(b, kind, n) })
		}
	}
}

func benchFanout(b *testing.B, kind string, n int) {
	ctx := context.Background()
	h, err := NewHub(HubConfig{Namespaces: testNamespaces()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var s Subscriber = &discardSub{id: uint64(i + 1)}
		if kind == "locked" {
			s = &lockedSub{id: uint64(i + 1)}
		}
		if _, _, err := h.Subscribe(ctx, s, "live:bench", SubscribeOptions{Info: ClientInfo{Client: fmt.Sprint(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	data := []byte(`{"text":"这是一条弹幕 bullet comment","color":"#fff"}`)
	info := &ClientInfo{Client: "1", Name: "李旺"}
	opts := h.ns["live"]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.publish(ctx, "live:bench", opts, data, info); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	deliveries := float64(b.N) * float64(n)
	if got := h.Stats().Deliveries; got != uint64(b.N)*uint64(n) {
		b.Fatalf("%d deliveries, want %d", got, b.N*n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
	allocs := testing.AllocsPerRun(20, func() { _, _ = h.publish(ctx, "live:bench", opts, data, info) })
	b.ReportMetric(allocs/float64(n), "allocs/delivery")
}

// BenchmarkClientPresence answers one client's presence command on a
// room of 1,000 members (the "presence is expensive" case).
func BenchmarkClientPresence(b *testing.B) {
	ctx := context.Background()
	p := NewMemoryPresence()
	h, _ := NewHub(HubConfig{Namespaces: testNamespaces(), Presence: p})
	owner := NewClient(h, &discardSub{id: 1}, Identity{Name: "o"}, ClientLimits{})
	defer owner.Close()
	owner.HandleFrame([]byte(`{"id":1,"op":"subscribe","channel":"chat:room"}`))
	for i := range 1000 {
		p.Add(ctx, "chat:room", ClientInfo{Client: fmt.Sprintf("node-%d", i), Name: "访客" + fmt.Sprint(i)})
	}
	c := NewClient(h, &discardSub{id: 2}, Identity{Name: "b"}, ClientLimits{CommandRate: 1e9, CommandBurst: 1 << 30})
	defer c.Close()
	cmd := []byte(`{"id":2,"op":"presence","channel":"chat:room"}`)
	b.ReportAllocs()
	for b.Loop() {
		c.HandleFrame(cmd)
	}
}
