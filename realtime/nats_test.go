package realtime

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
)

func newTestNATSBroker(t testing.TB, n *natstest.Server, mod func(*NATSOptions)) *NATSBroker {
	t.Helper()
	opts := NATSOptions{URLs: []string{n.URL()}, ReconnectWait: 50 * time.Millisecond, GapWait: 50 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := NewNATSBroker(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// newNATSHub makes a hub on its own NATS broker and NATS presence store
// (entries named after node), as one node of a cluster on n.
func newNATSHub(t testing.TB, n *natstest.Server, nss Namespaces, node string) *Hub {
	t.Helper()
	br := newTestNATSBroker(t, n, func(o *NATSOptions) { o.Namespaces = nss })
	pr, err := NewNATSPresence(context.Background(), br, NATSPresenceOptions{TTL: 5 * time.Second, NodeID: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	return newTestHub(t, HubConfig{Namespaces: nss, Broker: br, Presence: pr})
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuf collects log output from several goroutines.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// Servers before v2.9.21 can acknowledge two publications at one offset
// in a clustered stream (nats-server issue 4320): the node warns.
func TestServerKeepsOffsets(t *testing.T) {
	for v, want := range map[string]bool{
		"2.9.10": false, "2.9.20": false, "2.8.4": false, "1.4.1": false,
		"2.9.21": true, "2.9.22": true, "2.10.0": true, "2.15.2": true, "3.0.0": true,
		"v2.9.10": false, "2.9.21-beta.1": true, "nonsense": true, "": true,
	} {
		if got := serverKeepsOffsets(v); got != want {
			t.Errorf("serverKeepsOffsets(%q) = %v, want %v", v, got, want)
		}
	}
}
