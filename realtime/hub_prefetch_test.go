package realtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// prefetchSub is a testSub that is a Prefetcher and records, for every
// frame it is handed, whether a Prefetch came since the frame before.
type prefetchSub struct {
	*testSub
	mu         sync.Mutex
	prefetched bool
	unprepared int // frames enqueued without a Prefetch before them
	prefetches int
}

func (p *prefetchSub) Prefetch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prefetched = true
	p.prefetches++
}

func (p *prefetchSub) Enqueue(f *SharedFrame, policy SlowPolicy) (int, bool) {
	p.mu.Lock()
	if !p.prefetched {
		p.unprepared++
	}
	p.prefetched = false
	p.mu.Unlock()
	return p.testSub.Enqueue(f, policy)
}

// A fan-out reads ahead for each subscriber that is a Prefetcher before
// it enqueues to it, across groups of every size (the channel's count is
// not a multiple of prefetchGroup), and nothing for one that left; every
// subscriber, Prefetcher or not, still gets every publication in order.
func TestFanoutPrefetchesEachSubscriberBeforeItsDelivery(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	const channel, n, publications = "push:prefetch", 2*prefetchGroup + 5, 3
	var ahead []*prefetchSub
	var plain []*testSub
	var left *prefetchSub
	var leftSub *Subscription
	for i := range n {
		if i%4 == 3 {
			plain = append(plain, newTestSub(1<<20))
			subscribe(t, h, plain[len(plain)-1], channel)
			continue
		}
		p := &prefetchSub{testSub: newTestSub(1 << 20)}
		s := subscribe(t, h, p, channel)
		if i == prefetchGroup+1 {
			left, leftSub = p, s
			continue
		}
		ahead = append(ahead, p)
	}
	h.Unsubscribe(ctx, leftSub)
	// What the subscribe replies were enqueued with is not a fan-out.
	for _, p := range append(ahead, left) {
		p.Drain(t)
		p.mu.Lock()
		p.unprepared, p.prefetches = 0, 0
		p.mu.Unlock()
	}
	for i := 1; i <= publications; i++ {
		if _, err := h.Publish(ctx, channel, []byte(fmt.Sprintf(`{"n":%d}`, i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, s *testSub) {
		got := pubs(s.Drain(t), channel)
		if len(got) != publications {
			t.Fatalf("%s got %d publications, want %d", name, len(got), publications)
		}
		for i, m := range got {
			if m.Offset != uint64(i+1) {
				t.Fatalf("%s: publication %d has offset %d", name, i, m.Offset)
			}
		}
	}
	for i, p := range ahead {
		check(fmt.Sprint("prefetcher ", i), p.testSub)
		p.mu.Lock()
		unprepared, prefetches := p.unprepared, p.prefetches
		p.mu.Unlock()
		if unprepared != 0 || prefetches != publications {
			t.Errorf("prefetcher %d: %d of %d frames without a Prefetch first, %d prefetches", i, unprepared, publications, prefetches)
		}
	}
	for i, s := range plain {
		check(fmt.Sprint("plain subscriber ", i), s)
	}
	if got := len(left.Drain(t)); got != 0 || left.prefetches != 0 {
		t.Errorf("the subscriber that left got %d frames and %d prefetches", got, left.prefetches)
	}
}
