package realtime

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// recordingSub is a Subscriber that keeps every frame it is handed and,
// with encode, derives a form of its own from each, as wsconn's sessions
// that negotiated deflate do.
type recordingSub struct {
	id     uint64
	encode func([]byte) []byte
	mu     sync.Mutex
	frames []*SharedFrame
	got    [][]byte // encode's forms
}

func (s *recordingSub) ID() uint64 { return s.id }
func (s *recordingSub) Enqueue(f *SharedFrame, _ SlowPolicy) (int, bool) {
	var alt []byte
	if s.encode != nil {
		alt = f.Prepared(func(f *SharedFrame) any { return s.encode(f.Data) }).([]byte)
	}
	s.mu.Lock()
	s.frames = append(s.frames, f)
	if alt != nil {
		s.got = append(s.got, alt)
	}
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
	subs := make([]*recordingSub, n)
	for i := range subs {
		subs[i] = &recordingSub{id: uint64(i + 1), encode: encode}
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

// A channel's publication names the one fanned out before it, which a
// transport may compress it against; a channel of a few subscribers keeps
// nothing for that, and replies follow nothing.
func TestPublicationsFollowTheChannelsPreviousOne(t *testing.T) {
	h, err := NewHub(HubConfig{Namespaces: testNamespaces()})
	if err != nil {
		t.Fatal(err)
	}
	subscribe := func(channel string, n int) []*recordingSub {
		subs := make([]*recordingSub, n)
		for i := range subs {
			subs[i] = &recordingSub{id: uint64(len(channel)*1000 + i + 1)}
			if _, _, err := h.Subscribe(context.Background(), subs[i], channel, SubscribeOptions{Info: ClientInfo{Client: fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		return subs
	}
	large := subscribe("live:large", followMinSubscribers)
	small := subscribe("live:small", followMinSubscribers-1)
	for i := range 3 {
		for _, ch := range []string{"live:large", "live:small"} {
			if _, err := h.publish(context.Background(), ch, h.ns["live"], fmt.Appendf(nil, `{"n":%d}`, i), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.WaitFanouts(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := large[len(large)-1].frames
	if len(got) != 3 {
		t.Fatalf("large channel: %d frames", len(got))
	}
	for i, f := range got {
		after, prev := f.Follows()
		switch {
		case f.ID() == 0:
			t.Fatalf("publication %d of a large channel has no id", i)
		case i == 0 && (after != 0 || prev != nil):
			t.Fatalf("the first publication follows %d", after)
		case i > 0 && (after != got[i-1].ID() || !bytes.Equal(prev, got[i-1].Data)):
			t.Fatalf("publication %d follows %d (%q), want %d", i, after, prev, got[i-1].ID())
		}
	}
	for i, f := range small[0].frames {
		if after, prev := f.Follows(); f.ID() != 0 || after != 0 || prev != nil {
			t.Fatalf("small channel's publication %d: id %d, follows %d", i, f.ID(), after)
		}
	}
	if len(small[0].frames) != 3 {
		t.Fatalf("small channel: %d frames", len(small[0].frames))
	}
}
