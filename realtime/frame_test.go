package realtime

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// encodingSub is a Subscriber whose transport derives a form of its own
// from every frame, as wsconn's sessions that negotiated deflate do.
type encodingSub struct {
	id     uint64
	encode func([]byte) []byte
	mu     sync.Mutex
	got    [][]byte
}

func (s *encodingSub) ID() uint64 { return s.id }
func (s *encodingSub) Enqueue(f *SharedFrame, _ SlowPolicy) (int, bool) {
	alt := f.Alternate(s.encode)
	s.mu.Lock()
	s.got = append(s.got, alt)
	s.mu.Unlock()
	return 0, true
}

// A publication is encoded once for its whole fan-out, however many
// subscribers derive the same form of it, the parallel fan-out of a large
// channel included.
func TestFanoutDerivesEachFrameOnce(t *testing.T) {
	h, err := NewHub(HubConfig{Namespaces: testNamespaces()})
	if err != nil {
		t.Fatal(err)
	}
	var encodes atomic.Int64
	encode := func(b []byte) []byte { encodes.Add(1); return bytes.ToUpper(b) }
	const n = 2*fanoutChunk + 1
	subs := make([]*encodingSub, n)
	for i := range subs {
		subs[i] = &encodingSub{id: uint64(i + 1), encode: encode}
		if _, _, err := h.Subscribe(context.Background(), subs[i], "live:once", SubscribeOptions{Info: ClientInfo{Client: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	const pubs = 3
	for i := range pubs {
		if _, err := h.publish(context.Background(), "live:once", h.ns["live"], fmt.Appendf(nil, `{"n":%d}`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A channel this large is fanned out on its own goroutine.
	if err := h.WaitFanouts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := encodes.Load(); got != pubs {
		t.Fatalf("%d publications to %d subscribers were encoded %d times, want once each", pubs, n, got)
	}
	for _, s := range subs {
		if len(s.got) != pubs || !bytes.Contains(s.got[pubs-1], []byte(`{"N":2}`)) {
			t.Fatalf("subscriber %d got %q", s.id, s.got)
		}
	}
}
