package realtime

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// gatedSub is a subscriber whose Enqueue waits until the test opens its
// gate, like a fan-out stuck behind one slow write. Frames it takes go to
// its testSub.
type gatedSub struct {
	*testSub
	entered chan struct{} // one value per Enqueue that reached the gate
	gate    chan struct{} // closed: every Enqueue goes through
}

func newGatedSub() *gatedSub {
	return &gatedSub{testSub: newTestSub(1 << 20), entered: make(chan struct{}, 1024), gate: make(chan struct{})}
}

func (g *gatedSub) Enqueue(frame *SharedFrame, policy SlowPolicy) (int, bool) {
	g.entered <- struct{}{}
	<-g.gate
	return g.testSub.Enqueue(frame, policy)
}

// liveness bounds how long a test waits for something that must happen;
// reaching it is a failure, not a measurement.
const liveness = 10 * time.Second

// subscribeMany subscribes n test subscribers to channel, plus extra.
func subscribeMany(t *testing.T, h *Hub, channel string, n int, extra ...Subscriber) []*testSub {
	t.Helper()
	ctx := context.Background()
	subs := make([]*testSub, n)
	for i := range subs {
		subs[i] = newTestSub(1 << 20)
		if _, _, err := h.Subscribe(ctx, subs[i], channel, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range extra {
		if _, _, err := h.Subscribe(ctx, s, channel, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return subs
}

// A large channel's publish is answered before its fan-out ends: with one
// subscriber's delivery stuck, Publish still returns, and every
// subscriber then gets every publication once, in offset order, including
// those published while the fan-out was stuck (the publisher waited for
// each fan-out before them to end).
func TestLargeChannelPublishDoesNotWaitForFanout(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	ctx := context.Background()
	const channel = "push:large"
	stuck := newGatedSub()
	subs := subscribeMany(t, h, channel, fanoutAsyncMin, stuck)

	published := make(chan error, 1)
	go func() {
		_, err := h.Publish(ctx, channel, []byte(`0`), nil)
		published <- err
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(liveness):
		close(stuck.gate)
		t.Fatal("Publish waited for the fan-out of a large channel")
	}
	<-stuck.entered // the fan-out is under way and stuck

	const more = 5
	rest := make(chan error, 1)
	go func() {
		for i := 1; i <= more; i++ {
			if _, err := h.Publish(ctx, channel, []byte(strconv.Itoa(i)), nil); err != nil {
				rest <- err
				return
			}
		}
		rest <- nil
	}()
	close(stuck.gate)
	if err := <-rest; err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	if err := h.WaitFanouts(wctx); err != nil {
		t.Fatalf("WaitFanouts: %v", err)
	}
	// WaitFanouts returned: everything is enqueued, so Drain sees it all.
	for i, s := range append(subs, stuck.testSub) {
		got := pubs(s.Drain(t), channel)
		if len(got) != more+1 {
			t.Fatalf("subscriber %d got %d publications, want %d", i, len(got), more+1)
		}
		for j, m := range got {
			if m.Offset != uint64(j+1) || dataOf(m) != strconv.Itoa(j) {
				t.Fatalf("subscriber %d: publication %d is offset %d data %s, want offset %d data %d", i, j, m.Offset, dataOf(m), j+1, j)
			}
		}
	}
}

// WaitFanouts gives up with ctx's error while a fan-out is stuck.
func TestWaitFanoutsEndsWithContext(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	ctx := context.Background()
	stuck := newGatedSub()
	subscribeMany(t, h, "push:large", fanoutAsyncMin, stuck)
	published := make(chan error, 1)
	go func() {
		_, err := h.Publish(ctx, "push:large", []byte(`1`), nil)
		published <- err
	}()
	<-stuck.entered
	defer func() {
		close(stuck.gate)
		if err := <-published; err != nil {
			t.Error(err)
		}
	}()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.WaitFanouts(cctx); err != context.Canceled {
		t.Fatalf("WaitFanouts = %v, want context.Canceled", err)
	}
}

// A small channel is still fanned out before Publish returns, so a
// publisher subscribed to it gets its push ahead of its reply.
func TestSmallChannelFansOutInline(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	subs := subscribeMany(t, h, "push:small", fanoutAsyncMin-1)
	if _, err := h.Publish(context.Background(), "push:small", []byte(`1`), nil); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		if got := pubs(s.Drain(t), "push:small"); len(got) != 1 {
			t.Fatalf("subscriber %d has %d publications when Publish returned, want 1", i, len(got))
		}
	}
}

// A publication is handed over, not queued behind a fan-out: while the
// fan-out of publication 1 is stuck, Publish of publication 2 waits (its
// fan-out has not begun), and once it returns, every subscriber has
// publication 1. A queued publication would have been answered at once and
// aged, unseen, by the whole stuck fan-out.
func TestLargeChannelPublishWaitsForTheFanoutBefore(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	ctx := context.Background()
	const channel = "push:large"
	stuck := newGatedSub()
	// stuck is subscribed last, so it is the last delivery of each fan-out.
	subs := subscribeMany(t, h, channel, fanoutAsyncMin, stuck)
	if _, err := h.Publish(ctx, channel, []byte(`1`), nil); err != nil {
		close(stuck.gate)
		t.Fatal(err)
	}
	<-stuck.entered // publication 1's fan-out is under way and stuck

	second := make(chan error, 1)
	go func() {
		_, err := h.Publish(ctx, channel, []byte(`2`), nil)
		second <- err
	}()
	for deadline := time.Now().Add(liveness); !waitingInFanout(); {
		select {
		case err := <-second:
			close(stuck.gate)
			t.Fatalf("Publish of publication 2 returned (%v) while the fan-out of publication 1 was stuck", err)
		default:
		}
		if time.Now().After(deadline) {
			close(stuck.gate)
			t.Fatal("Publish of publication 2 neither returned nor waited in Hub.fanout")
		}
		runtime.Gosched()
	}
	close(stuck.gate)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	for i, s := range append(subs, stuck.testSub) {
		got := pubs(s.Drain(t), channel)
		if len(got) == 0 || got[0].Offset != 1 {
			t.Fatalf("subscriber %d has %d publications (first %+v) when publication 2 was answered, want publication 1 first", i, len(got), got)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	if err := h.WaitFanouts(wctx); err != nil {
		t.Fatalf("WaitFanouts: %v", err)
	}
}

// waitingInFanout reports whether some goroutine waits in Hub.fanout for
// the hand-over (a condition variable wait under it), as the goroutines'
// stacks show.
func waitingInFanout() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
		if bytes.Contains(g, []byte("sync.(*Cond).Wait")) && bytes.Contains(g, []byte("realtime.(*Hub).fanout(")) {
			return true
		}
	}
	return false
}

// A split fan-out's parts never overtake one another across publications:
// every subscriber of a channel large enough to be split among the cores
// gets many publications, published back to back, in offset order. Only
// the order is asserted (each subscriber is waited for until it has them
// all), so a part still running when the next publication's parts start
// shows here as a subscriber that got two publications the wrong way round.
func TestSplitFanoutPartsKeepOrderAcrossPublications(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: a fan-out is not split")
	}
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	subs := subscribeMany(t, h, "push:big", 2*fanoutChunk)
	const n = 100
	for i := range n {
		if _, err := h.Publish(ctx, "push:big", []byte(strconv.Itoa(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		got := pubs(s.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, "push:big")) >= n }), "push:big")
		for i, m := range got {
			if dataOf(m) != strconv.Itoa(i) {
				t.Fatalf("sub %d: publication %d is %s", s.id, i, dataOf(m))
			}
		}
	}
}
