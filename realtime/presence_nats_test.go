package realtime

import (
	"context"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
)

func TestNATSPresence(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	const ttl, refresh = 1500 * time.Millisecond, 300 * time.Millisecond
	mk := func(node string) *NATSPresence {
		b := newTestNATSBroker(t, n, nil)
		p, err := NewNATSPresence(ctx, b, NATSPresenceOptions{TTL: ttl, RefreshInterval: refresh, NodeID: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	pa, pb := mk("a"), mk("b")
	const ch = "chat:room.1"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(pa.Add(ctx, ch, ClientInfo{Client: "a1", Name: "ann"}))
	must(pa.Add(ctx, ch, ClientInfo{Client: "a2", Name: "al"}))
	must(pa.Add(ctx, ch, ClientInfo{Client: "a2", Name: "al2"})) // replaces
	must(pb.Add(ctx, ch, ClientInfo{Client: "b1", Name: "bob"}))
	must(pb.Add(ctx, "chat:room.10", ClientInfo{Client: "b9"})) // another channel, similar name
	for _, p := range []*NATSPresence{pa, pb} {
		m, err := p.Get(ctx, ch)
		if err != nil || len(m) != 3 || m["a2"].Name != "al2" || m["b1"].Name != "bob" {
			t.Errorf("get on %s: %v %v", p.NodeID(), m, err)
		}
		if c, err := p.Count(ctx, ch); err != nil || c != 3 {
			t.Errorf("count on %s: %d %v", p.NodeID(), c, err)
		}
	}
	must(pa.Remove(ctx, ch, "a1"))
	must(pa.Remove(ctx, ch, "nobody"))
	if c, _ := pb.Count(ctx, ch); c != 2 {
		t.Errorf("after remove: %d", c)
	}
	if m, err := pb.Get(ctx, "chat:empty"); err != nil || m == nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}

	// Refreshing keeps entries past the TTL.
	time.Sleep(ttl + 500*time.Millisecond)
	if c, _ := pb.Count(ctx, ch); c != 2 {
		t.Fatalf("refreshed entries expired: %d", c)
	}
	// A removed entry is not brought back by a refresh.
	must(pb.Remove(ctx, ch, "b1"))
	time.Sleep(2 * refresh)
	if m, _ := pa.Get(ctx, ch); len(m) != 1 || m["a2"].Name != "al2" {
		t.Errorf("after remove and refreshes: %v", m)
	}

	// Node A "crashes": it stops refreshing without removing. Its entries
	// disappear within the documented bound (TTL after the last refresh,
	// so at most TTL after the crash), plus the server's expiry slack.
	must(pb.Add(ctx, ch, ClientInfo{Client: "b2"}))
	pa.Close()
	crashed := time.Now()
	eventually(t, ttl+time.Second, "crashed node's entries to expire", func() bool {
		m, err := pb.Get(ctx, ch)
		return err == nil && len(m) == 1 && m["b2"].Client == "b2"
	})
	t.Logf("crashed node's entries gone after %s (TTL %s)", time.Since(crashed).Round(10*time.Millisecond), ttl)
	if c, _ := pb.Count(ctx, ch); c != 1 {
		t.Errorf("count after expiry: %d", c)
	}
}

func TestNATSPresenceOptions(t *testing.T) {
	n := natstest.Start(t)
	b := newTestNATSBroker(t, n, nil)
	for _, o := range []NATSPresenceOptions{
		{TTL: time.Second, RefreshInterval: time.Second},
		{NodeID: "a.b"},
	} {
		if _, err := NewNATSPresence(context.Background(), b, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
