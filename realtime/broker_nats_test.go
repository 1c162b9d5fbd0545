package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

var testPrefixes atomic.Uint64

func TestNATSBrokerConformance(t *testing.T) {
	n := natstest.Start(t)
	brokerConformance(t, func(t *testing.T) Broker {
		prefix := fmt.Sprintf("conf%d", testPrefixes.Add(1))
		return newTestNATSBroker(t, n, func(o *NATSOptions) { o.Prefix, o.Namespaces = prefix, testNamespaces() })
	})
}

// syncHandler records deliveries per channel and checks the handler is
// never called concurrently for one channel.
type syncHandler struct {
	recordingHandler
	busy    sync.Map // channel → *atomic.Bool
	overlap atomic.Bool
}

func (s *syncHandler) enter(ch string) func() {
	v, _ := s.busy.LoadOrStore(ch, &atomic.Bool{})
	b := v.(*atomic.Bool)
	if !b.CompareAndSwap(false, true) {
		s.overlap.Store(true)
	}
	return func() { b.Store(false) }
}

func (s *syncHandler) HandlePublication(ch string, p Publication) {
	defer s.enter(ch)()
	s.recordingHandler.HandlePublication(ch, p)
}

func (s *syncHandler) HandleJoin(ch string, i ClientInfo) {
	defer s.enter(ch)()
	s.recordingHandler.HandleJoin(ch, i)
}

func (s *syncHandler) offsets(ch string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pubs[ch])
}

func (s *syncHandler) eventList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func contiguous(offs []uint64, from, to uint64) bool {
	if uint64(len(offs)) != to-from+1 {
		return false
	}
	for i, o := range offs {
		if o != from+uint64(i) {
			return false
		}
	}
	return true
}

var hist100 = PublishOptions{HistorySize: 100, HistoryTTL: time.Minute}

// Two nodes on one server: concurrent publishers on both get contiguous
// offsets; each node's handler sees every offset once, in order; history
// and recovery agree on both.
func TestNATSBrokerTwoNodes(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	a := newTestNATSBroker(t, n, nil)
	b := newTestNATSBroker(t, n, nil)
	ha, hb := &syncHandler{}, &syncHandler{}
	a.SetHandler(ha)
	b.SetHandler(hb)
	const ch = "chat:two.nodes"
	for _, br := range []*NATSBroker{a, b} {
		if err := br.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	// One publication from A reaches B.
	pos, err := a.Publish(ctx, ch, []byte(`"hello"`), &ClientInfo{Client: "a1"}, hist100)
	if err != nil || pos.Offset != 1 {
		t.Fatalf("%+v %v", pos, err)
	}
	eventually(t, 5*time.Second, "B gets A's publication", func() bool { return len(hb.offsets(ch)) == 1 })

	const writers, each = 4, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for _, br := range []*NATSBroker{a, b} {
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					p, err := br.Publish(ctx, ch, []byte("1"), nil, hist100)
					if err != nil {
						t.Error(err)
						return
					}
					if p.Epoch != pos.Epoch {
						t.Errorf("epoch %s != %s", p.Epoch, pos.Epoch)
					}
					mu.Lock()
					if seen[p.Offset] {
						t.Errorf("offset %d given twice", p.Offset)
					}
					seen[p.Offset] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	total := uint64(1 + 2*writers*each)
	for name, h := range map[string]*syncHandler{"A": ha, "B": hb} {
		eventually(t, 10*time.Second, name+" deliveries", func() bool { return uint64(len(h.offsets(ch))) >= total })
		if got := h.offsets(ch); !contiguous(got, 1, total) {
			t.Errorf("%s: deliveries not 1..%d in order: %v", name, total, got)
		}
		if h.overlap.Load() {
			t.Errorf("%s: handler called concurrently for one channel", name)
		}
	}
	// History and recovery agree.
	since := &StreamPosition{Offset: total - 10, Epoch: pos.Epoch}
	ra, err1 := a.History(ctx, ch, HistoryRequest{Since: since, Limit: 300})
	rb, err2 := b.History(ctx, ch, HistoryRequest{Since: since, Limit: 300})
	if err1 != nil || err2 != nil || !ra.Recovered || !rb.Recovered || fmt.Sprint(offsets(ra.Publications)) != fmt.Sprint(offsets(rb.Publications)) || ra.Position != rb.Position || len(ra.Publications) != 10 {
		t.Errorf("history differs: %+v %v / %+v %v", ra, err1, rb, err2)
	}
	// A long range (read with a consumer) agrees with the stream limits.
	la, _ := a.History(ctx, ch, HistoryRequest{Limit: -1})
	lb, _ := b.History(ctx, ch, HistoryRequest{Limit: -1})
	if !contiguous(offsets(la.Publications), total-99, total) || fmt.Sprint(offsets(la.Publications)) != fmt.Sprint(offsets(lb.Publications)) {
		t.Errorf("latest 100: %v / %v", offsets(la.Publications), offsets(lb.Publications))
	}
	if p := la.Publications[len(la.Publications)-1]; string(p.Data) != "1" {
		t.Errorf("data %s", p.Data)
	}
	old, _ := b.History(ctx, ch, HistoryRequest{Since: &StreamPosition{Offset: 1, Epoch: pos.Epoch}, Limit: 300})
	if old.Recovered {
		t.Errorf("recovered past history size: %+v", old.Position)
	}
	// Join/leave reach both nodes.
	if err := b.PublishJoin(ctx, ch, ClientInfo{Client: "b1", Name: "bee"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "join on A", func() bool { return slices.Contains(ha.eventList(), "join "+ch+" b1") })
}

// The node holds a live subscription only while it has local
// subscribers.
func TestNATSBrokerInterestOnlyWhileSubscribed(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	a := newTestNATSBroker(t, n, nil)
	a.SetHandler(&syncHandler{})
	base := a.nc.NumSubscriptions()
	if err := a.Subscribe(ctx, "chat:x"); err != nil {
		t.Fatal(err)
	}
	if got := a.nc.NumSubscriptions(); got != base+1 || fmt.Sprint(a.subscribedChannels()) != "[chat:x]" {
		t.Errorf("after subscribe: %d subscriptions (base %d), %v", got, base, a.subscribedChannels())
	}
	if err := a.Unsubscribe(ctx, "chat:x"); err != nil {
		t.Fatal(err)
	}
	if got := a.nc.NumSubscriptions(); got != base || len(a.subscribedChannels()) != 0 {
		t.Errorf("after unsubscribe: %d subscriptions (base %d)", got, base)
	}
	// Server side: no interest in the live subject any more.
	a.nc.Flush()
	probe, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	msg := nats.NewMsg(a.liveSubject("chat", "chat:x"))
	if _, err := probe.RequestMsg(msg, 200*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("live subject still has interest: %v", err)
	}
}

// Out-of-order and missing live messages: a gap is filled from the
// stream, every offset delivered once.
func TestNATSBrokerGapFill(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	a := newTestNATSBroker(t, n, nil)
	b := newTestNATSBroker(t, n, nil)
	h := &syncHandler{}
	a.SetHandler(h)
	b.SetHandler(&syncHandler{})
	const ch = "chat:gap"
	if err := a.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	b.Publish(ctx, ch, []byte("1"), nil, hist100)
	eventually(t, 5*time.Second, "offset 1", func() bool { return len(h.offsets(ch)) == 1 })
	// Cut A's live subscription behind its back (like a lost message).
	a.subsMu.Lock()
	s := a.subs[ch]
	a.subsMu.Unlock()
	s.sub.Unsubscribe()
	for range 3 {
		b.Publish(ctx, ch, []byte("1"), nil, hist100)
	}
	s.mu.Lock()
	var err error
	s.sub, err = a.nc.Subscribe(a.liveSubject("chat", ch), s.onMsg)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	a.nc.Flush()
	b.Publish(ctx, ch, []byte("1"), nil, hist100) // offset 5: 2-4 are missing
	eventually(t, 5*time.Second, "gap filled", func() bool { return len(h.offsets(ch)) >= 5 })
	// Nothing more may come for 1-5 (no duplicate from the gap fill): a
	// sentinel publication is the barrier, as deliveries are in order.
	b.Publish(ctx, ch, []byte("1"), nil, hist100)
	eventually(t, 5*time.Second, "the sentinel", func() bool { return slices.Contains(h.offsets(ch), 6) })
	if got := h.offsets(ch); !contiguous(got, 1, 6) {
		t.Errorf("deliveries %v", got)
	}
	// Out of order: offsets fed 8, 7 are delivered as 7, 8.
	mk := func(off uint64) *nats.Msg {
		m := nats.NewMsg("x")
		m.Header.Set(hdrOffset, fmt.Sprint(off))
		m.Header.Set(hdrEpoch, s.epoch)
		m.Data = []byte("1")
		return m
	}
	s.onMsg(mk(8))
	s.onMsg(mk(7))
	s.onMsg(mk(7))
	if got := h.offsets(ch); !contiguous(got, 1, 8) {
		t.Errorf("reordered deliveries %v", got)
	}
}

// NATS goes away: publish fails fast with an error; it comes back on the
// same store: the broker reconnects, offsets continue, live delivery
// resumes, and what was published while a node was still reconnecting is
// filled from the stream.
func TestNATSBrokerOutageAndRestart(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	a := newTestNATSBroker(t, n, func(o *NATSOptions) { o.ReconnectWait = 1500 * time.Millisecond })
	b := newTestNATSBroker(t, n, nil)
	ha := &syncHandler{}
	a.SetHandler(ha)
	b.SetHandler(&syncHandler{})
	const ch = "chat:restart"
	if err := a.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	p1, err := b.Publish(ctx, ch, []byte("1"), nil, hist100)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "first delivery", func() bool { return len(ha.offsets(ch)) == 1 })
	if !a.Healthy() || a.State() != "connected" {
		t.Fatalf("state %s", a.State())
	}

	n.Shutdown()
	eventually(t, 5*time.Second, "disconnected", func() bool { return !b.Healthy() })
	if st := b.State(); st != "reconnecting" {
		t.Errorf("state %q", st)
	}
	start := time.Now()
	_, err = b.Publish(ctx, ch, []byte("2"), nil, hist100)
	if err == nil || !errors.Is(err, ErrBrokerUnavailable) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("publish while down: %v after %s", err, time.Since(start))
	}
	var pe *Error
	if herr := (&Hub{log: slog.New(slog.DiscardHandler)}).unavailable("publish", ch, err); !errors.As(herr, &pe) || pe.Code != protocol.CodeUnavailable || !errors.Is(herr, ErrBrokerUnavailable) {
		t.Errorf("hub error %v", herr)
	}
	if _, err := b.History(ctx, ch, HistoryRequest{}); err == nil {
		t.Error("history while down succeeded")
	}

	n.Restart()
	eventually(t, 10*time.Second, "B reconnected", b.Healthy)
	// B publishes while A may still be reconnecting (its retry is slow).
	var last StreamPosition
	for range 3 {
		if last, err = b.Publish(ctx, ch, []byte("3"), nil, hist100); err != nil {
			t.Fatal(err)
		}
	}
	if last.Offset != 4 || last.Epoch != p1.Epoch {
		t.Errorf("offsets did not continue: %+v after %+v", last, p1)
	}
	eventually(t, 10*time.Second, "A reconnected", a.Healthy)
	eventually(t, 5*time.Second, "A caught up", func() bool { return len(ha.offsets(ch)) >= 4 })
	if p, err := a.Publish(ctx, ch, []byte("4"), nil, hist100); err != nil || p.Offset != 5 {
		t.Fatalf("A publish after restart: %+v %v", p, err)
	}
	eventually(t, 5*time.Second, "live delivery resumed", func() bool { return len(ha.offsets(ch)) >= 5 })
	if got := ha.offsets(ch); !contiguous(got, 1, 5) {
		t.Errorf("deliveries %v", got)
	}
}

func TestNATSBrokerStartup(t *testing.T) {
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	start := time.Now()
	_, err := NewNATSBroker(context.Background(), NATSOptions{URLs: []string{url}, ConnectWait: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") || time.Since(start) > 3*time.Second {
		t.Fatalf("fail mode: %v after %s", err, time.Since(start))
	}
	// Wait mode: retries until the server shows up.
	var logs syncBuf
	done := make(chan error, 1)
	var b *NATSBroker
	go func() {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		b, err = NewNATSBroker(ctx, NATSOptions{URLs: []string{url}, WaitForNATS: true, ReconnectWait: 100 * time.Millisecond, Logger: logs.logger()})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	natstest.StartOn(t, port)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.Contains(logs.String(), "NATS unreachable at start-up; retrying") {
		t.Errorf("no retry log line: %q", logs.String())
	}
	// Close stops everything; a second Close does nothing.
	b.Close()
	b.Close()
	if b.State() != "closed" {
		t.Errorf("state after close %s", b.State())
	}
}

func TestNATSOptionsValidate(t *testing.T) {
	for _, o := range []NATSOptions{
		{Prefix: "a.b"},
		{CertFile: "x"},
		{Token: "t", User: "u"},
	} {
		if _, err := NewNATSBroker(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o := NATSOptions{URLs: []string{"nats://u:secret@h1:4222, nats://h2"}}
	if got := o.redactedURL(); got != "nats://***@h1:4222,nats://h2" {
		t.Errorf("redacted %q", got)
	}
}

// Two hubs (nodes) over NATS with real subscribers: fan-out, presence and
// recovery across nodes.
func TestNATSHubsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	nss := testNamespaces()
	ha, hb := newNATSHub(t, n, nss, "a"), newNATSHub(t, n, nss, "b")
	const ch = "chat:lobby"
	subA, subB := newTestSub(1<<20), newTestSub(1<<20)
	sa, _, err := ha.Subscribe(ctx, subA, ch, SubscribeOptions{Info: ClientInfo{Client: "a-1", Name: "ann"}})
	if err != nil {
		t.Fatal(err)
	}
	sb, resB, err := hb.Subscribe(ctx, subB, ch, SubscribeOptions{Info: ClientInfo{Client: "b-1", Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := ha.Publish(ctx, ch, []byte(fmt.Sprint(i)), &ClientInfo{Client: "a-1"}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := subB.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, ch)) == 5 })
	for i, m := range pubs(msgs, ch) {
		if dataOf(m) != fmt.Sprint(i+1) || m.Offset != uint64(i+1) {
			t.Errorf("B got %s at %d", dataOf(m), m.Offset)
		}
	}
	subA.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, ch)) == 5 })
	for _, h := range []*Hub{ha, hb} {
		pr, err := h.Presence(ctx, ch)
		if err != nil || pr.Count != 2 || pr.Clients["a-1"].Name != "ann" || pr.Clients["b-1"].Name != "bob" {
			t.Errorf("presence: %+v %v", pr, err)
		}
	}
	// B's client leaves and recovers through node A.
	hb.Unsubscribe(ctx, sb)
	hb.Publish(ctx, ch, []byte(`"missed"`), nil)
	subC := newTestSub(1 << 20)
	_, res, err := ha.Subscribe(ctx, subC, ch, SubscribeOptions{Info: ClientInfo{Client: "a-2"}, Recover: &StreamPosition{Offset: 5, Epoch: resB.Position.Epoch}})
	if err != nil || !res.Recovered || len(res.Publications) != 1 || string(res.Publications[0].Data) != `"missed"` {
		t.Fatalf("recover across nodes: %+v %v", res, err)
	}
	ha.Unsubscribe(ctx, sa)
}

// Subscribers come and go on node B while node A publishes: no deadlock
// between the hub's channel lock (held around broker Unsubscribe) and
// deliveries, and a steady subscriber gets every publication in order.
func TestNATSHubChurn(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	nss := testNamespaces()
	mk := func() *Hub {
		br := newTestNATSBroker(t, n, func(o *NATSOptions) { o.Namespaces = nss })
		return newTestHub(t, HubConfig{Namespaces: nss, Broker: br})
	}
	ha, hb := mk(), mk()
	const ch, total = "push:churn", 300
	steady := newTestSub(1 << 22)
	if _, _, err := hb.Subscribe(ctx, steady, ch, SubscribeOptions{Info: ClientInfo{Client: "steady"}}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := fmt.Sprintf("push:churn%d", w%2) // shares channels, so the last one leaving unsubscribes the node
				if i%2 == 0 {
					c = ch
				}
				s, _, err := hb.Subscribe(ctx, newTestSub(1<<20), c, SubscribeOptions{Info: ClientInfo{Client: fmt.Sprintf("w%d-%d", w, i)}})
				if err != nil {
					t.Error(err)
					return
				}
				hb.Unsubscribe(ctx, s)
			}
		}()
	}
	for i := 1; i <= total; i++ {
		c := ch
		if i%3 == 0 {
			c = fmt.Sprintf("push:churn%d", i%2)
		}
		if _, err := ha.Publish(ctx, c, []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	msgs := steady.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, ch)) == total-total/3 })
	for i, m := range pubs(msgs, ch) {
		if m.Offset != uint64(i+1) {
			t.Fatalf("steady subscriber: delivery %d has offset %d", i, m.Offset)
		}
	}
}

func TestNATSBrokerWaitsForJetStreamAtStartup(t *testing.T) {
	// A server without JetStream stands for a cluster still electing its
	// JetStream leader: with WaitForNATS the broker keeps trying until its
	// ctx ends instead of giving up on the first error.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := srv.ClientURL()

	start := time.Now()
	_, err = NewNATSBroker(context.Background(), NATSOptions{URLs: []string{url}, ConnectWait: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "JetStream is not available") {
		t.Fatalf("fail mode: %v", err)
	}

	var logs syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = NewNATSBroker(ctx, NATSOptions{URLs: []string{url}, WaitForNATS: true, ConnectWait: 200 * time.Millisecond,
		ReconnectWait: 100 * time.Millisecond, Logger: logs.logger()})
	if err == nil || !strings.Contains(err.Error(), "gave up waiting for JetStream") {
		t.Fatalf("wait mode: %v", err)
	}
	if waited := time.Since(start); waited < 1500*time.Millisecond {
		t.Fatalf("wait mode gave up after %s, before its ctx ended", waited)
	}
	if !strings.Contains(logs.String(), "JetStream not ready at start-up; retrying") {
		t.Fatalf("no retry logged:\n%s", logs.String())
	}
}
