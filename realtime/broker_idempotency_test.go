package realtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
)

// idempotencyConformance is what every Broker's PublishOnce must do: a
// key repeated on a channel within the window returns the first
// publication's position and stores and delivers nothing new.
func idempotencyConformance(t *testing.T, newBroker func(t *testing.T) Broker) {
	ctx := context.Background()
	opts := PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}

	t.Run("RepeatReturnsTheFirstResult", func(t *testing.T) {
		b := newBroker(t)
		h := &syncHandler{}
		b.SetHandler(h)
		const ch = "push:idem"
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		first, replayed, err := b.PublishOnce(ctx, ch, []byte(`"a"`), nil, opts, "key-1")
		if err != nil || replayed || first.Offset != 1 {
			t.Fatalf("first publish: %+v replayed=%v %v", first, replayed, err)
		}
		for range 2 {
			again, replayed, err := b.PublishOnce(ctx, ch, []byte(`"a"`), nil, opts, "key-1")
			if err != nil || !replayed || again != first {
				t.Fatalf("repeat: %+v replayed=%v %v, want %+v replayed", again, replayed, err, first)
			}
		}
		if p, replayed, err := b.PublishOnce(ctx, ch, []byte(`"b"`), nil, opts, "key-2"); err != nil || replayed || p.Offset != 2 {
			t.Fatalf("another key: %+v replayed=%v %v", p, replayed, err)
		}
		// A key names a publication of one channel: elsewhere it is new.
		if p, replayed, err := b.PublishOnce(ctx, "push:idem-other", []byte(`"a"`), nil, opts, "key-1"); err != nil || replayed || p.Offset != 1 {
			t.Fatalf("same key, other channel: %+v replayed=%v %v", p, replayed, err)
		}
		// The broker keeps order, so once the sentinel is delivered every
		// earlier delivery has been made.
		if p, err := b.Publish(ctx, ch, []byte(`"end"`), nil, opts); err != nil || p.Offset != 3 {
			t.Fatalf("sentinel: %+v %v", p, err)
		}
		eventually(t, 5*time.Second, "the sentinel", func() bool {
			offs := h.offsets(ch)
			return len(offs) > 0 && offs[len(offs)-1] == 3
		})
		if got := h.offsets(ch); !contiguous(got, 1, 3) {
			t.Errorf("deliveries %v, want 1 2 3 (a repeat delivers nothing)", got)
		}
		res, err := b.History(ctx, ch, HistoryRequest{Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		var data []string
		for _, p := range res.Publications {
			data = append(data, string(p.Data))
		}
		if fmt.Sprint(data) != `["a" "b" "end"]` {
			t.Errorf("history %v", data)
		}
	})

	t.Run("ConcurrentRepeatsPublishOnce", func(t *testing.T) {
		b := newBroker(t)
		b.SetHandler(&syncHandler{})
		const ch, callers = "push:idem-race", 8
		var wg sync.WaitGroup
		pos := make([]StreamPosition, callers)
		fresh := make([]bool, callers)
		for i := range callers {
			wg.Go(func() {
				p, replayed, err := b.PublishOnce(ctx, ch, []byte(`1`), nil, opts, "same")
				if err != nil {
					t.Error(err)
				}
				pos[i], fresh[i] = p, !replayed
			})
		}
		wg.Wait()
		n := 0
		for i := range callers {
			if fresh[i] {
				n++
			}
			if pos[i] != pos[0] || pos[i].Offset != 1 {
				t.Errorf("caller %d got %+v, caller 0 %+v", i, pos[i], pos[0])
			}
		}
		if n != 1 {
			t.Errorf("%d of %d concurrent calls with one key published, want 1", n, callers)
		}
		if p, _ := b.Publish(ctx, ch, []byte(`2`), nil, opts); p.Offset != 2 {
			t.Errorf("next publication at %d, want 2", p.Offset)
		}
	})
}

func TestMemoryBrokerIdempotency(t *testing.T) {
	idempotencyConformance(t, func(t *testing.T) Broker { return NewMemoryBroker() })
}

func TestNATSBrokerIdempotency(t *testing.T) {
	n := natstest.Start(t)
	idempotencyConformance(t, func(t *testing.T) Broker {
		prefix := fmt.Sprintf("idem%d", testPrefixes.Add(1))
		return newTestNATSBroker(t, n, func(o *NATSOptions) { o.Prefix = prefix })
	})
}

// The memory broker's window is bounded in time and in count: past
// either a key is new again.
func TestMemoryBrokerIdempotencyWindowIsBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	b := NewMemoryBroker(WithClock(func() time.Time { return now }), WithIdempotencyWindow(time.Minute, 3))
	opts := PublishOptions{HistorySize: 10, HistoryTTL: time.Hour}
	publish := func(key string) (uint64, bool) {
		t.Helper()
		p, replayed, err := b.PublishOnce(ctx, "push:w", []byte(`1`), nil, opts, key)
		if err != nil {
			t.Fatal(err)
		}
		return p.Offset, replayed
	}
	if off, replayed := publish("a"); off != 1 || replayed {
		t.Fatalf("a: %d %v", off, replayed)
	}
	now = now.Add(59 * time.Second)
	if off, replayed := publish("a"); off != 1 || !replayed {
		t.Fatalf("a within the window: %d %v", off, replayed)
	}
	now = now.Add(2 * time.Second)
	if off, replayed := publish("a"); off != 2 || replayed {
		t.Fatalf("a past the window: %d %v, want a new publication", off, replayed)
	}
	// Count: with room for 3 keys, the oldest goes when a 4th comes.
	publish("b")
	publish("c")
	publish("d") // a (offset 2) is forgotten
	if off, replayed := publish("b"); off != 3 || !replayed {
		t.Fatalf("b: %d %v", off, replayed)
	}
	if off, replayed := publish("a"); off != 6 || replayed {
		t.Fatalf("a after 3 newer keys: %d %v, want a new publication", off, replayed)
	}
}

// Over NATS the window is JetStream's (the stream's Duplicates): a
// repeat on another node is caught too, and in a namespace that keeps no
// history a repeat whose first publication is gone still publishes
// nothing (its position is no longer known).
func TestNATSBrokerIdempotencyAcrossNodes(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	a := newTestNATSBroker(t, n, nil)
	b := newTestNATSBroker(t, n, nil)
	first, _, err := a.PublishOnce(ctx, "push:nodes", []byte(`1`), nil, hist100, "k")
	if err != nil {
		t.Fatal(err)
	}
	if p, replayed, err := b.PublishOnce(ctx, "push:nodes", []byte(`1`), nil, hist100, "k"); err != nil || !replayed || p != first {
		t.Fatalf("repeat on node B: %+v replayed=%v %v, want %+v", p, replayed, err, first)
	}

	none := PublishOptions{}
	if _, _, err := a.PublishOnce(ctx, "live:nodes", []byte(`1`), nil, none, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "live:nodes", []byte(`2`), nil, none); err != nil {
		t.Fatal(err)
	}
	p, replayed, err := b.PublishOnce(ctx, "live:nodes", []byte(`1`), nil, none, "k")
	if err != nil || !replayed || p != (StreamPosition{}) {
		t.Fatalf("repeat of a publication no longer kept: %+v replayed=%v %v, want a zero position, replayed", p, replayed, err)
	}
	if p, err := a.Publish(ctx, "live:nodes", []byte(`3`), nil, none); err != nil || p.Offset != 3 {
		t.Fatalf("next publication at %+v %v, want offset 3", p, err)
	}
}
