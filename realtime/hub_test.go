package realtime

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// spyBroker wraps a MemoryBroker, counts interest calls and can fail.
type spyBroker struct {
	*MemoryBroker
	mu          sync.Mutex
	subscribe   map[string]int
	unsubscribe map[string]int
	fail        error
}

func newSpyBroker() *spyBroker {
	return &spyBroker{MemoryBroker: NewMemoryBroker(), subscribe: map[string]int{}, unsubscribe: map[string]int{}}
}

func (b *spyBroker) failing() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail
}

func (b *spyBroker) Subscribe(ctx context.Context, ch string) error {
	if err := b.failing(); err != nil {
		return err
	}
	b.mu.Lock()
	b.subscribe[ch]++
	b.mu.Unlock()
	return b.MemoryBroker.Subscribe(ctx, ch)
}

func (b *spyBroker) Unsubscribe(ctx context.Context, ch string) error {
	b.mu.Lock()
	b.unsubscribe[ch]++
	b.mu.Unlock()
	return b.MemoryBroker.Unsubscribe(ctx, ch)
}

func (b *spyBroker) Publish(ctx context.Context, ch string, data []byte, info *ClientInfo, o PublishOptions) (StreamPosition, error) {
	if err := b.failing(); err != nil {
		return StreamPosition{}, err
	}
	return b.MemoryBroker.Publish(ctx, ch, data, info, o)
}

func (b *spyBroker) PublishOnce(ctx context.Context, ch string, data []byte, info *ClientInfo, o PublishOptions, key string) (StreamPosition, bool, error) {
	if err := b.failing(); err != nil {
		return StreamPosition{}, false, err
	}
	return b.MemoryBroker.PublishOnce(ctx, ch, data, info, o, key)
}

func (b *spyBroker) counts(ch string) (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribe[ch], b.unsubscribe[ch]
}

func subscribe(t testing.TB, h *Hub, sub Subscriber, ch string) *Subscription {
	t.Helper()
	s, _, err := h.Subscribe(context.Background(), sub, ch, SubscribeOptions{Info: ClientInfo{Client: testClientID(sub), Name: "n" + testClientID(sub)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHubFanoutToAll(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	subs := make([]*testSub, 50)
	for i := range subs {
		subs[i] = newTestSub(1 << 20)
		subscribe(t, h, subs[i], "push:news")
	}
	other := newTestSub(1 << 20)
	subscribe(t, h, other, "push:other")
	for i := 1; i <= 10; i++ {
		pos, err := h.Publish(ctx, "push:news", []byte(fmt.Sprintf(`{"n": %d}`, i)), &ClientInfo{Name: "李旺", User: "7"})
		if err != nil || pos.Offset != uint64(i) {
			t.Fatalf("publish: %+v %v", pos, err)
		}
	}
	for _, s := range subs {
		got := pubs(s.Drain(t), "push:news")
		if len(got) != 10 {
			t.Fatalf("sub %d got %d publications", s.id, len(got))
		}
		for i, m := range got {
			if m.Offset != uint64(i+1) || dataOf(m) != fmt.Sprintf(`{"n":%d}`, i+1) || m.Info.Name != "李旺" {
				t.Fatalf("publication %d: %+v %s", i, m, m.Data)
			}
		}
	}
	if n := len(other.Drain(t)); n != 0 {
		t.Errorf("other channel got %d messages", n)
	}
	st := h.Stats()
	if st.Publications != 10 || st.Deliveries != 500 {
		t.Errorf("stats %+v", st)
	}
}

func TestHubEncodesOnce(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	a, b := newTestSub(1<<20), newTestSub(1<<20)
	subscribe(t, h, a, "push:x")
	subscribe(t, h, b, "push:x")
	h.Publish(context.Background(), "push:x", []byte(`1`), nil)
	if &a.queue[0].b[0] != &b.queue[0].b[0] {
		t.Error("subscribers got different byte slices: the publication was encoded twice")
	}
}

func TestHubOrderUnderConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	const subsN, writers, each = 20, 8, 250
	subs := make([]*testSub, subsN)
	for i := range subs {
		subs[i] = newTestSub(64 << 20)
		subscribe(t, h, subs[i], "chat:race")
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := h.Publish(ctx, "chat:race", []byte(`{"w":1}`), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range subs {
		got := pubs(s.Drain(t), "chat:race")
		if len(got) != writers*each {
			t.Fatalf("got %d", len(got))
		}
		for i, m := range got {
			if m.Offset != uint64(i+1) {
				t.Fatalf("sub %d: message %d has offset %d", s.id, i, m.Offset)
			}
		}
	}
}

// A channel large enough for its fan-out to be split among goroutines
// still gets every publication to every subscriber, in order, counted once.
func TestHubSplitFanoutKeepsOrder(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	subs := make([]*testSub, 2*fanoutChunk+1)
	for i := range subs {
		subs[i] = newTestSub(1 << 20)
		if _, _, err := h.Subscribe(ctx, subs[i], "push:big", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("one core: the fan-out is not split here")
	}
	before := h.Stats().Deliveries
	const n = 10
	for i := 0; i < n; i++ {
		if _, err := h.Publish(ctx, "push:big", []byte(strconv.Itoa(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A channel this large is fanned out on its own goroutine.
	if err := h.WaitFanouts(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.Stats().Deliveries - before; got != uint64(n*len(subs)) {
		t.Fatalf("%d deliveries counted, want %d", got, n*len(subs))
	}
	for _, s := range subs {
		got := pubs(s.Drain(t), "push:big")
		if len(got) != n {
			t.Fatalf("sub %d got %d publications, want %d", s.id, len(got), n)
		}
		for i, m := range got {
			if dataOf(m) != strconv.Itoa(i) {
				t.Fatalf("sub %d: publication %d is %s", s.id, i, dataOf(m))
			}
		}
	}
}

// A subscriber that subscribes (with recovery) while publications flow
// must see every offset exactly once: recovered ones in the reply, the
// rest as pushes, none missing or duplicated.
func TestHubSubscribeDuringPublishNoGapNoDup(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	anchor := newTestSub(64 << 20)
	subscribe(t, h, anchor, "chat:flow")
	first, _ := h.Publish(ctx, "chat:flow", []byte(`0`), nil)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				h.Publish(ctx, "chat:flow", []byte(`1`), nil)
			}
		}
	}()
	for round := 0; round < 30; round++ {
		s := newTestSub(64 << 20)
		var recovered []Publication
		var replyPos StreamPosition
		sub, res, err := h.Subscribe(ctx, s, "chat:flow", SubscribeOptions{
			Info:    ClientInfo{Client: testClientID(s)},
			Recover: &first,
			OnReady: func(r SubscribeResult) {
				// Mark the reply's place in the queue.
				s.Enqueue(NewSharedFrame([]byte(`{"id":1,"result":{}}`)), PolicyDisconnect)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		recovered, replyPos = res.Publications, res.Position
		if !res.Recovered && replyPos.Offset-first.Offset <= 100 { // chat keeps 100
			t.Fatalf("round %d: not recovered", round)
		}
		time.Sleep(time.Millisecond)
		h.Unsubscribe(ctx, sub)
		msgs := s.Drain(t)
		if len(msgs) == 0 || msgs[0].ID != 1 {
			t.Fatalf("round %d: a push came before the subscribe reply", round)
		}
		want := first.Offset + 1
		if !res.Recovered {
			want = replyPos.Offset + 1 // too far behind: pushes start after the position
		}
		for _, p := range recovered {
			if p.Offset != want {
				t.Fatalf("round %d: recovered offset %d, want %d", round, p.Offset, want)
			}
			want++
		}
		if want != replyPos.Offset+1 {
			t.Fatalf("round %d: recovered up to %d, position %d", round, want-1, replyPos.Offset)
		}
		for _, m := range pubs(msgs, "chat:flow") {
			if m.Offset != want {
				t.Fatalf("round %d: push offset %d, want %d", round, m.Offset, want)
			}
			want++
		}
		first = StreamPosition{Offset: want - 1, Epoch: first.Epoch}
	}
	close(stop)
	<-done
}

func TestHubBrokerInterestFirstAndLast(t *testing.T) {
	ctx := context.Background()
	b := newSpyBroker()
	h := newTestHub(t, HubConfig{Broker: b})
	a, c := newTestSub(1<<20), newTestSub(1<<20)
	sa := subscribe(t, h, a, "push:t")
	sc := subscribe(t, h, c, "push:t")
	if s, u := b.counts("push:t"); s != 1 || u != 0 {
		t.Fatalf("after two subscribes: subscribe=%d unsubscribe=%d", s, u)
	}
	h.Unsubscribe(ctx, sa)
	h.Unsubscribe(ctx, sa) // idempotent
	if s, u := b.counts("push:t"); s != 1 || u != 0 {
		t.Fatalf("after first unsubscribe: %d %d", s, u)
	}
	h.Unsubscribe(ctx, sc)
	if s, u := b.counts("push:t"); s != 1 || u != 1 {
		t.Fatalf("after last unsubscribe: %d %d", s, u)
	}
	if len(h.Channels()) != 0 {
		t.Errorf("channels left: %v", h.Channels())
	}
	subscribe(t, h, a, "push:t")
	if s, _ := b.counts("push:t"); s != 2 {
		t.Errorf("resubscribe: %d", s)
	}

	// Concurrent churn: interest calls alternate and end balanced.
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				s := newTestSub(1 << 16)
				sub := subscribe(t, h, s, "push:churn")
				h.Unsubscribe(ctx, sub)
			}
		}()
	}
	wg.Wait()
	if s, u := b.counts("push:churn"); s != u || s == 0 {
		t.Errorf("churn: subscribe=%d unsubscribe=%d", s, u)
	}
	if h.Subscribers("push:churn") != 0 {
		t.Error("churn left subscribers")
	}
}

// codeOf is the code a client or API caller would be told for err.
func codeOf(err error) protocol.Code {
	var pe *Error
	if !errors.As(err, &pe) {
		return ""
	}
	return pe.Code
}

func TestHubBrokerFailureIsUnavailable(t *testing.T) {
	b := newSpyBroker()
	h := newTestHub(t, HubConfig{Broker: b})
	b.fail = errors.New("nats down")
	_, _, err := h.Subscribe(context.Background(), newTestSub(100), "chat:a", SubscribeOptions{})
	if codeOf(err) != protocol.CodeUnavailable {
		t.Errorf("subscribe: %v", err)
	}
	if _, err := h.Publish(context.Background(), "chat:a", []byte(`1`), nil); codeOf(err) != protocol.CodeUnavailable {
		t.Errorf("publish: %v", err)
	}
	if len(h.Channels()) != 0 {
		t.Error("failed subscribe left a channel")
	}
}

func TestHubPresenceJoinLeave(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	ticks := useManualTicks(h)
	a, b := newTestSub(1<<20), newTestSub(1<<20)
	sa := subscribe(t, h, a, "chat:room")
	sb := subscribe(t, h, b, "chat:room")
	ticks.fire()
	p, err := h.Presence(ctx, "chat:room")
	if err != nil || p.Count != 2 || p.Clients[testClientID(a)].Name != "n"+testClientID(a) {
		t.Fatalf("presence: %+v %v", p, err)
	}
	msgs := a.Drain(t)
	var joins []string
	for _, m := range msgs {
		if m.Join != nil {
			joins = append(joins, m.Join.Client)
		}
	}
	if fmt.Sprint(joins) != fmt.Sprint([]string{testClientID(a), testClientID(b)}) {
		t.Errorf("a saw joins %v", joins)
	}
	h.Unsubscribe(ctx, sb)
	ticks.fire()
	msgs = a.Drain(t)
	if len(msgs) != 1 || msgs[0].Leave == nil || msgs[0].Leave.Client != testClientID(b) || msgs[0].Channel != "chat:room" {
		t.Errorf("a saw %+v", msgs)
	}
	if p, _ := h.Presence(ctx, "chat:room"); p.Count != 1 {
		t.Errorf("after leave: %+v", p)
	}
	h.Unsubscribe(ctx, sa)

	// live: count only, no join/leave.
	l1, l2 := newTestSub(1<<20), newTestSub(1<<20)
	subscribe(t, h, l1, "live:show")
	subscribe(t, h, l2, "live:show")
	ticks.fire() // the barrier: a tick would have sent any event by now
	if msgs := l1.Drain(t); len(msgs) != 0 {
		t.Errorf("live sent events: %+v", msgs)
	}
	if p, _ := h.Presence(ctx, "live:show"); p.Count != 2 || p.Clients != nil {
		t.Errorf("live presence: %+v", p)
	}
	if _, err := h.Presence(ctx, "push:x"); err.(*Error).Code != protocol.CodeNotFound {
		t.Errorf("push presence: %v", err)
	}
	if _, err := h.Presence(ctx, "bad channel"); err.(*Error).Code != protocol.CodeBadChannel {
		t.Errorf("bad presence: %v", err)
	}
}

func TestHubRecovery(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{Namespaces: chatWith(func(o *NamespaceOptions) { o.HistorySize = 5 }), MaxRecover: 3})
	var last StreamPosition
	for i := 1; i <= 8; i++ {
		last, _ = h.Publish(ctx, "chat:r", []byte(fmt.Sprint(i)), nil)
	}
	try := func(since StreamPosition) SubscribeResult {
		s := newTestSub(1 << 20)
		sub, res, err := h.Subscribe(ctx, s, "chat:r", SubscribeOptions{Info: ClientInfo{Client: testClientID(s)}, Recover: &since})
		if err != nil {
			t.Fatal(err)
		}
		h.Unsubscribe(ctx, sub)
		return res
	}
	if r := try(StreamPosition{Offset: 6, Epoch: last.Epoch}); !r.Recovered || fmt.Sprint(offsets(r.Publications)) != "[7 8]" || r.Position != last {
		t.Errorf("recent: %+v", r)
	}
	if r := try(StreamPosition{Offset: 4, Epoch: last.Epoch}); r.Recovered || r.Publications != nil {
		t.Errorf("more than MaxRecover: %+v", r)
	}
	if r := try(StreamPosition{Offset: 1, Epoch: last.Epoch}); r.Recovered {
		t.Errorf("too old: %+v", r)
	}
	if r := try(StreamPosition{Offset: 7, Epoch: "other"}); r.Recovered {
		t.Errorf("other epoch: %+v", r)
	}
	if r := try(last); !r.Recovered || len(r.Publications) != 0 {
		t.Errorf("nothing missed: %+v", r)
	}

	// The history API.
	hr, err := h.History(ctx, "chat:r", nil, 2)
	if err != nil || len(hr.Publications) != 2 || hr.Publications[1].Offset != 8 || hr.Offset != 8 {
		t.Errorf("history: %+v %v", hr, err)
	}
	if hr, _ := h.History(ctx, "chat:r", &StreamPosition{Offset: 6}, 0); len(hr.Publications) != 2 {
		t.Errorf("history since: %+v", hr)
	}
	if _, err := h.History(ctx, "chat:r", &StreamPosition{Offset: 1}, 0); err.(*Error).Code != protocol.CodeNotFound {
		t.Errorf("history since too old: %v", err)
	}
	if _, err := h.History(ctx, "live:x", nil, 0); err.(*Error).Code != protocol.CodeNotFound {
		t.Errorf("history off: %v", err)
	}
	if hr, _ := h.History(ctx, "chat:empty", nil, 0); hr.Publications == nil || hr.Epoch == "" {
		t.Errorf("empty history: %+v", hr)
	}
}

func TestHubSlowConsumerDisconnect(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	slow := newTestSub(300) // fills after a few publications
	fast := make([]*testSub, 5)
	for i := range fast {
		fast[i] = newTestSub(1 << 20)
		subscribe(t, h, fast[i], "push:s")
	}
	subscribe(t, h, slow, "push:s")
	for i := 0; i < 100; i++ {
		h.Publish(ctx, "push:s", []byte(`{"text":"hello world"}`), nil)
	}
	if !slow.isClosed() {
		t.Fatal("slow subscriber not disconnected")
	}
	for _, f := range fast {
		if got := len(pubs(f.Drain(t), "push:s")); got != 100 {
			t.Errorf("fast subscriber got %d of 100", got)
		}
	}
	if h.Stats().Refused == 0 {
		t.Error("refusal not counted")
	}
}

func TestHubSlowConsumerDropOldest(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	slow := newTestSub(400)
	fast := newTestSub(1 << 20)
	subscribe(t, h, slow, "live:d")
	subscribe(t, h, fast, "live:d")
	for i := 0; i < 100; i++ {
		h.Publish(ctx, "live:d", []byte(`{"text":"弹幕弹幕"}`), nil)
	}
	if slow.isClosed() {
		t.Fatal("drop-oldest subscriber was disconnected")
	}
	msgs := slow.Drain(t)
	missed, got := 0, 0
	var last uint64
	for _, m := range msgs {
		missed += m.Missed
		if m.Data != nil {
			if m.Offset <= last {
				t.Errorf("offsets not increasing: %d after %d", m.Offset, last)
			}
			last = m.Offset
			got++
		}
	}
	if missed == 0 || missed != 100-got || last != 100 {
		t.Errorf("missed=%d, got %d of 100, last offset=%d: the count told must be what was lost", missed, got, last)
	}
	if got := len(pubs(fast.Drain(t), "live:d")); got != 100 {
		t.Errorf("fast subscriber got %d of 100", got)
	}
	if h.Stats().Dropped == 0 {
		t.Error("drops not counted")
	}
}

func TestHubPublishBroadcastChannels(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	a := newTestSub(1 << 20)
	subscribe(t, h, a, "push:a")
	subscribe(t, h, a, "user:1")
	subscribe(t, h, newTestSub(1<<20), "push:a")

	if _, err := h.Publish(ctx, "push:a", []byte(`{"x":`), nil); err.(*Error).Code != protocol.CodeBadRequest {
		t.Errorf("bad data: %v", err)
	}
	if _, err := h.Publish(ctx, "push:a", nil, nil); err.(*Error).Code != protocol.CodeBadRequest {
		t.Errorf("no data: %v", err)
	}
	if _, err := h.Publish(ctx, "nope:a", []byte(`1`), nil); err.(*Error).Code != protocol.CodeBadChannel {
		t.Errorf("bad channel: %v", err)
	}
	if _, err := h.Broadcast(ctx, []string{"push:a", "bad"}, []byte(`1`), nil); err.(*Error).Code != protocol.CodeBadChannel {
		t.Errorf("broadcast bad channel: %v", err)
	}
	if _, err := h.Broadcast(ctx, nil, []byte(`1`), nil); err.(*Error).Code != protocol.CodeBadRequest {
		t.Errorf("broadcast none: %v", err)
	}
	if len(a.Drain(t)) != 0 {
		t.Fatal("a failed publish was delivered")
	}
	pos, err := h.Broadcast(ctx, []string{"push:a", "user:1", "push:b"}, []byte("{\n \"n\": 1\n}"), nil)
	if err != nil || len(pos) != 3 || pos[0].Offset != 1 {
		t.Fatalf("broadcast: %v %v", pos, err)
	}
	msgs := a.Drain(t)
	if len(msgs) != 2 || dataOf(msgs[0]) != `{"n":1}` {
		t.Errorf("a got %+v", msgs)
	}
	want := `[{push:a 2} {user:1 1}]`
	if got := fmt.Sprint(h.Channels()); got != want {
		t.Errorf("channels %s, want %s", got, want)
	}
}

func TestHubNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newTestHub(t, HubConfig{})
	for i := 0; i < 1000; i++ {
		s := newTestSub(1 << 16)
		c := NewClient(h, s, Identity{Name: "g"}, ClientLimits{})
		c.HandleFrame([]byte(`{"id":1,"op":"subscribe","channel":"chat:leak"}` + "\n" + `{"id":2,"op":"publish","channel":"chat:leak","data":1}`))
		c.Close()
	}
	if len(h.Channels()) != 0 {
		t.Errorf("channels left: %v", h.Channels())
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// testClientID names a test subscriber in the Info the tests pass to
// Subscribe themselves.
// chatWith is DefaultNamespaces with chat's options changed by mod.
func chatWith(mod func(*NamespaceOptions)) Namespaces {
	ns := testNamespaces()
	o := ns["chat"]
	mod(&o)
	ns["chat"] = o
	return ns
}

func testClientID(sub Subscriber) string { return strconv.FormatUint(sub.ID(), 10) }
