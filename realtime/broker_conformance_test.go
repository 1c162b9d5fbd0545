package realtime

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// brokerConformance runs the behaviour every Broker must share (the rules
// of broker.go, as the MemoryBroker tests pin them) against brokers made
// by newBroker. Delivery may be asynchronous, so it waits for it.
func brokerConformance(t *testing.T, newBroker func(t *testing.T) Broker) {
	ctx := context.Background()
	long := PublishOptions{HistorySize: 3, HistoryTTL: time.Minute}

	t.Run("OffsetsAndHistory", func(t *testing.T) {
		b := newBroker(t)
		var epoch string
		for i := 1; i <= 5; i++ {
			pos, err := b.Publish(ctx, "chat:a.b@c-d_e", []byte(fmt.Sprint(i)), &ClientInfo{Client: "c1", Name: "n"}, long)
			if err != nil || pos.Offset != uint64(i) {
				t.Fatalf("publish %d: %+v %v", i, pos, err)
			}
			if epoch == "" {
				epoch = pos.Epoch
			} else if pos.Epoch != epoch {
				t.Fatalf("epoch changed: %s → %s", epoch, pos.Epoch)
			}
		}
		if epoch == "" {
			t.Fatal("empty epoch")
		}
		if pos, _ := b.Publish(ctx, "chat:b", []byte("1"), nil, long); pos.Offset != 1 || pos.Epoch == epoch {
			t.Errorf("chat:b: %+v", pos)
		}
		check := func(name string, req HistoryRequest, want []uint64, wantRecovered bool) {
			t.Helper()
			res, err := b.History(ctx, "chat:a.b@c-d_e", req)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(offsets(res.Publications)) != fmt.Sprint(want) || res.Recovered != wantRecovered {
				t.Errorf("%s: got %v recovered=%v, want %v recovered=%v", name, offsets(res.Publications), res.Recovered, want, wantRecovered)
			}
			if res.Position != (StreamPosition{Offset: 5, Epoch: epoch}) {
				t.Errorf("%s: position %+v", name, res.Position)
			}
			for _, p := range res.Publications {
				if string(p.Data) != fmt.Sprint(p.Offset) || p.Info == nil || p.Info.Client != "c1" {
					t.Errorf("%s: publication %d: %s %+v", name, p.Offset, p.Data, p.Info)
				}
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
	})

	t.Run("TTL", func(t *testing.T) {
		b := newBroker(t)
		short := PublishOptions{HistorySize: 3, HistoryTTL: 300 * time.Millisecond}
		var pos StreamPosition
		for range 3 {
			pos, _ = b.Publish(ctx, "push:ttl", []byte("1"), nil, short)
		}
		if res, _ := b.History(ctx, "push:ttl", HistoryRequest{Limit: -1}); len(res.Publications) != 3 {
			t.Fatalf("before expiry: %v", offsets(res.Publications))
		}
		time.Sleep(400 * time.Millisecond)
		res, err := b.History(ctx, "push:ttl", HistoryRequest{Limit: -1})
		if err != nil || len(res.Publications) != 0 || res.Position != pos {
			t.Errorf("expired: %+v %v", res, err)
		}
		if res, _ := b.History(ctx, "push:ttl", HistoryRequest{Since: &StreamPosition{Offset: 2, Epoch: pos.Epoch}, Limit: 10}); res.Recovered || len(res.Publications) != 0 {
			t.Errorf("expired gap: %+v", res)
		}
		if res, _ := b.History(ctx, "push:ttl", HistoryRequest{Since: &pos, Limit: 10}); !res.Recovered {
			t.Errorf("expired but nothing missed: %+v", res)
		}
		if p, _ := b.Publish(ctx, "push:ttl", []byte("1"), nil, short); p.Offset != 4 || p.Epoch != pos.Epoch {
			t.Errorf("after expiry: %+v", p)
		}
	})

	t.Run("NoHistoryStillNumbers", func(t *testing.T) {
		b := newBroker(t)
		for i := 1; i <= 3; i++ {
			if pos, err := b.Publish(ctx, "live:a", []byte("1"), nil, PublishOptions{}); err != nil || pos.Offset != uint64(i) {
				t.Fatalf("offset %d %v", pos.Offset, err)
			}
		}
		res, _ := b.History(ctx, "live:a", HistoryRequest{Since: &StreamPosition{Offset: 2}, Limit: 10})
		if res.Recovered || len(res.Publications) != 0 || res.Position.Offset != 3 {
			t.Errorf("no history must not recover: %+v", res)
		}
	})

	t.Run("Shrink", func(t *testing.T) {
		b := newBroker(t)
		for range 5 {
			b.Publish(ctx, "user:42", []byte("1"), nil, PublishOptions{HistorySize: 5, HistoryTTL: time.Hour})
		}
		b.Publish(ctx, "user:42", []byte("1"), nil, PublishOptions{HistorySize: 2, HistoryTTL: time.Hour})
		res, _ := b.History(ctx, "user:42", HistoryRequest{Limit: -1})
		if fmt.Sprint(offsets(res.Publications)) != "[5 6]" {
			t.Errorf("shrunk: %v", offsets(res.Publications))
		}
	})

	t.Run("NewChannelPositionIsStable", func(t *testing.T) {
		b := newBroker(t)
		res, err := b.History(ctx, "chat:new", HistoryRequest{})
		if err != nil || res.Position.Offset != 0 || res.Position.Epoch == "" {
			t.Fatalf("new channel: %+v %v", res, err)
		}
		pos, _ := b.Publish(ctx, "chat:new", []byte("1"), nil, long)
		if pos != (StreamPosition{Offset: 1, Epoch: res.Position.Epoch}) {
			t.Errorf("first publication %+v after position %+v", pos, res.Position)
		}
		rec, _ := b.History(ctx, "chat:new", HistoryRequest{Since: &res.Position, Limit: 10})
		if !rec.Recovered || fmt.Sprint(offsets(rec.Publications)) != "[1]" {
			t.Errorf("recover from the new channel's position: %+v", rec)
		}
	})

	t.Run("DeliversOnlyWhenSubscribedInOrder", func(t *testing.T) {
		b := newBroker(t)
		h := &recordingHandler{}
		b.SetHandler(h)
		snapshot := func() ([]uint64, []string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return slices.Clone(h.pubs["chat:a"]), slices.Clone(h.events)
		}
		// Made without interest: must never be delivered. The barrier is
		// a sentinel of each kind after subscribing (a broker keeps
		// publications in order, and events in order with events of the
		// same node): anything stray would arrive before it.
		b.Publish(ctx, "chat:a", []byte("1"), nil, long)
		b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "early"})
		if err := b.Subscribe(ctx, "chat:a"); err != nil {
			t.Fatal(err)
		}
		b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "sentinel1"})
		eventually(t, 5*time.Second, "the first sentinel", func() bool { _, e := snapshot(); return len(e) > 0 })
		if p, e := snapshot(); len(p) != 0 || fmt.Sprint(e) != "[join chat:a sentinel1]" {
			t.Fatalf("delivered without interest: %v %v", p, e)
		}
		const writers, each = 8, 50
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := b.Publish(ctx, "chat:a", []byte("1"), nil, long); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		eventually(t, 5*time.Second, "all deliveries", func() bool { p, _ := snapshot(); return len(p) >= writers*each })
		got, _ := snapshot()
		if len(got) != writers*each {
			t.Fatalf("got %d deliveries", len(got))
		}
		for i, off := range got { // offset 1 was published without interest
			if off != uint64(i+2) {
				t.Fatalf("delivery %d has offset %d: out of order", i, off)
			}
		}
		b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "1"})
		b.PublishLeave(ctx, "chat:a", ClientInfo{Client: "1"})
		eventually(t, 5*time.Second, "join and leave", func() bool { _, e := snapshot(); return len(e) == 3 })
		b.Unsubscribe(ctx, "chat:a")
		// Made after the unsubscribe: must not be delivered, not even once
		// the node subscribes again. Sentinels after the new subscribe
		// are the barrier.
		stray, _ := b.Publish(ctx, "chat:a", []byte("1"), nil, long)
		b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "2"})
		if err := b.Subscribe(ctx, "chat:a"); err != nil {
			t.Fatal(err)
		}
		sentinel, _ := b.Publish(ctx, "chat:a", []byte("1"), nil, long)
		b.PublishJoin(ctx, "chat:a", ClientInfo{Client: "sentinel2"})
		eventually(t, 5*time.Second, "the second sentinels", func() bool {
			p, e := snapshot()
			return len(p) > writers*each && len(e) > 3
		})
		p, e := snapshot()
		if len(p) != writers*each+1 || p[len(p)-1] != sentinel.Offset || sentinel.Offset != stray.Offset+1 {
			t.Errorf("after unsubscribe: %d deliveries ending %v, sentinel %d", len(p), p[len(p)-1:], sentinel.Offset)
		}
		if fmt.Sprint(e) != "[join chat:a sentinel1 join chat:a 1 leave chat:a 1 join chat:a sentinel2]" {
			t.Errorf("events after unsubscribe: %v", e)
		}
	})
}

func TestMemoryBrokerConformance(t *testing.T) {
	brokerConformance(t, func(*testing.T) Broker { return NewMemoryBroker() })
}
