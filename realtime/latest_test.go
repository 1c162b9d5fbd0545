package realtime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// brokerCase is one broker a latest test runs on: subscribers on sub,
// publications made through pub.
type brokerCase struct {
	sub, pub *Hub
	// exactUnderLoad: a history read is atomic, so latest n gives exactly
	// n (of n or more kept) however fast the channel moves. The NATS
	// broker walks history back one message at a time, and a channel
	// publishing faster than that walk discards the oldest of the n
	// before they are read: the reply then holds fewer, still ending at
	// its position (at least the newest one).
	exactUnderLoad bool
}

// onBothBrokers runs test on one hub on the memory broker, and on two
// nodes (hubs) on one NATS JetStream server.
func onBothBrokers(t *testing.T, test func(t *testing.T, bc brokerCase)) {
	t.Run("memory", func(t *testing.T) {
		h := newTestHub(t, HubConfig{})
		test(t, brokerCase{sub: h, pub: h, exactUnderLoad: true})
	})
	t.Run("nats", func(t *testing.T) {
		n := natstest.Start(t)
		nss := testNamespaces()
		test(t, brokerCase{sub: newNATSHub(t, n, nss, "a"), pub: newNATSHub(t, n, nss, "b")})
	})
}

// newLatestClient is a client whose queue holds everything a busy
// channel pushes while the test reads (disconnect policy: a full queue
// would close it and fail the test).
func newLatestClient(t *testing.T, h *Hub) (*Client, *testSub) {
	t.Helper()
	s := newTestSub(64 << 20)
	c := NewClient(h, s, Identity{}, ClientLimits{})
	t.Cleanup(c.Close)
	return c, s
}

// untilOffset waits for a publication of channel at or past offset: the
// sentinel that proves everything before it was delivered.
func untilOffset(t *testing.T, s *testSub, channel string, offset uint64) []protocol.ServerMessage {
	t.Helper()
	return s.WaitFor(t, func(ms []protocol.ServerMessage) bool {
		p := pubs(ms, channel)
		return len(p) > 0 && p[len(p)-1].Offset >= offset
	})
}

// wantLatestThenPushes checks what a client that subscribed with latest
// saw, up to the sentinel: the reply holds the newest latest
// publications up to its position (exact: exactly that many, else at
// least the newest one), and wantReplyThenPushes holds. It returns how
// many pushes came before the sentinel.
func wantLatestThenPushes(t *testing.T, msgs []protocol.ServerMessage, id uint64, channel string, latest int, exact bool, sentinel uint64) (before int) {
	t.Helper()
	r, before := wantReplyThenPushes(t, msgs, id, channel, sentinel)
	want, got := min(latest, int(r.Offset)), len(r.Publications)
	if got > want || exact && got != want || got == 0 && want > 0 {
		t.Fatalf("reply at %d holds %d publications %v, want the newest %d", r.Offset, got, pubOffsets(r.Publications), want)
	}
	return before
}

// wantReplyThenPushes checks that the subscribe reply came first, that
// its publications run up to its position with no gap, and that the
// pushes continue from the next offset, each offset once, up to the
// sentinel. It returns the reply and how many pushes came before the
// sentinel.
func wantReplyThenPushes(t *testing.T, msgs []protocol.ServerMessage, id uint64, channel string, sentinel uint64) (r protocol.SubscribeResult, before int) {
	t.Helper()
	if len(msgs) == 0 || msgs[0].ID != id {
		t.Fatalf("the first message is not the subscribe reply: %+v", msgs)
	}
	r = decodeResult[protocol.SubscribeResult](t, msgs[0])
	next := r.Offset - uint64(len(r.Publications)) + 1
	for _, p := range r.Publications {
		if p.Offset != next {
			t.Fatalf("reply at %d: publications %v do not run up to it", r.Offset, pubOffsets(r.Publications))
		}
		next++
	}
	for _, m := range pubs(msgs, channel) {
		if m.Offset != next {
			t.Fatalf("reply at %d: push at %d, want %d (a gap or a duplicate)", r.Offset, m.Offset, next)
		}
		if m.Offset == sentinel {
			return r, before
		}
		before++
		next++
	}
	t.Fatalf("no sentinel at %d", sentinel)
	return r, before
}

// A client subscribing with latest while another node publishes as fast
// as it can sees, across the reply and the pushes after it, a contiguous
// run of offsets: no gap, no duplicate. Half the rounds are the node's
// first subscriber of the channel (the broker subscribe path), half join
// an anchor already there.
func TestSubscribeLatestUnderConcurrentPublishes(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, bc brokerCase) {
		ctx, sub, pub := context.Background(), bc.sub, bc.pub
		const ch, latest, rounds = "push:ticker", 5, 20
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var published atomic.Int64
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := pub.Publish(ctx, ch, []byte(`"tick"`), nil); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				published.Add(1)
			}
		})
		defer func() { close(stop); wg.Wait() }()
		eventually(t, 5*time.Second, "the publisher is under way", func() bool { return published.Load() > latest })

		overlapped := 0
		for round := range rounds {
			if round == rounds/2 {
				anchor, _ := newLatestClient(t, sub)
				anchor.HandleFrame([]byte(`{"id":1,"op":"subscribe","channel":"` + ch + `"}`))
			}
			c, s := newLatestClient(t, sub)
			c.HandleFrame(fmt.Appendf(nil, `{"id":7,"op":"subscribe","channel":%q,"latest":%d}`, ch, latest))
			// The sentinel waits for the publisher to have published once
			// more after the subscribe: under -race on two busy cores the
			// publisher goroutine can otherwise go unscheduled for the
			// whole round, and no push would test the seam after the reply.
			since := published.Load()
			eventually(t, 5*time.Second, "the publisher went on after the subscribe", func() bool { return published.Load() > since })
			sentinel, err := pub.Publish(ctx, ch, []byte(`"sentinel"`), nil)
			if err != nil {
				t.Fatal(err)
			}
			msgs := untilOffset(t, s, ch, sentinel.Offset)
			if wantLatestThenPushes(t, msgs, 7, ch, latest, bc.exactUnderLoad, sentinel.Offset) > 0 {
				overlapped++
			}
			c.Close()
		}
		t.Logf("%d of %d rounds got pushes between the reply and the sentinel", overlapped, rounds)
		if overlapped == 0 {
			t.Fatal("no round saw a publication between its reply and the sentinel: the publisher never overlapped a subscribe")
		}
	})
}

// A channel with nothing published yet: an empty list, then the live
// pushes from offset 1.
func TestSubscribeLatestEmptyChannel(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, bc brokerCase) {
		const ch = "push:fresh"
		sub, pub := bc.sub, bc.pub
		c, s := newLatestClient(t, sub)
		c.HandleFrame([]byte(`{"id":3,"op":"subscribe","channel":"` + ch + `","latest":3}`))
		msgs := s.Drain(t)
		reply := replyTo(t, msgs, 3)
		if !strings.Contains(string(reply.Result), `"publications":[]`) {
			t.Fatalf("reply %s has no empty publications list", reply.Result)
		}
		for i := 1; i <= 2; i++ {
			if _, err := pub.Publish(context.Background(), ch, []byte(fmt.Sprint(i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		got := append(msgs, untilOffset(t, s, ch, 2)...)
		wantLatestThenPushes(t, got, 3, ch, 3, true, 2)
	})
}

// latest past the namespace's history size, in a namespace without
// history, or below 1 is a bad_request with a fixed message, and leaves
// no subscription behind: the same channel can be subscribed right after.
func TestSubscribeLatestRefused(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, bc brokerCase) {
		sub := bc.sub
		c, s := newLatestClient(t, sub)
		size := sub.Namespaces()["push"].HistorySize
		cases := []struct{ cmd, msg string }{
			{fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"push:a","latest":%d}`, size+1), errLatestTooMany.Message},
			{fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"push:a","latest":%d,"recover":{"offset":0,"epoch":"e"}}`, size+1), errLatestTooMany.Message},
			{`{"id":1,"op":"subscribe","channel":"live:a","latest":1}`, errLatestNoHistory.Message},
			{`{"id":1,"op":"subscribe","channel":"push:a","latest":0}`, errLatestTooFew.Message},
		}
		for _, tc := range cases {
			c.HandleFrame([]byte(tc.cmd))
			msgs := s.Drain(t)
			if len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != protocol.CodeBadRequest || msgs[0].Error.Message != tc.msg {
				t.Fatalf("%s: got %+v, want bad_request %q", tc.cmd, msgs, tc.msg)
			}
		}
		if got := c.Channels(); len(got) != 0 {
			t.Fatalf("refused subscribes left %v", got)
		}
		c.HandleFrame(fmt.Appendf(nil, `{"id":2,"op":"subscribe","channel":"push:a","latest":%d}`, size))
		decodeResult[protocol.SubscribeResult](t, replyTo(t, s.Drain(t), 2))
		if _, _, err := sub.Subscribe(context.Background(), newTestSub(1<<10), "push:b", SubscribeOptions{Latest: -1}); codeOf(err) != protocol.CodeBadRequest {
			t.Fatalf("Hub.Subscribe with Latest -1: %v", err)
		}
	})
}

func pubOffsets(ps []protocol.Publication) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Offset
	}
	return out
}

// latest with recover: a gap that can be recovered is (every missed
// publication, however many latest asked for); one that cannot gives
// recovered:false with the latest ones instead, and the pushes continue
// after them.
func TestSubscribeLatestWithRecover(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, bc brokerCase) {
		ctx, sub, pub := context.Background(), bc.sub, bc.pub
		const ch = "push:rl"
		var top StreamPosition
		for i := 1; i <= 30; i++ { // push keeps 20
			var err error
			if top, err = pub.Publish(ctx, ch, []byte(fmt.Sprint(i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		try := func(recover string) protocol.SubscribeResult {
			t.Helper()
			c, s := newLatestClient(t, sub)
			c.HandleFrame(fmt.Appendf(nil, `{"id":4,"op":"subscribe","channel":%q,"latest":2,"recover":%s}`, ch, recover))
			msgs := s.Drain(t)
			next, err := pub.Publish(ctx, ch, []byte(`"next"`), nil)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := wantReplyThenPushes(t, append(msgs, untilOffset(t, s, ch, next.Offset)...), 4, ch, next.Offset)
			c.Close()
			top = next
			return r
		}
		if r := try(fmt.Sprintf(`{"offset":%d,"epoch":%q}`, top.Offset-5, top.Epoch)); r.Recovered == nil || !*r.Recovered || len(r.Publications) != 5 {
			t.Errorf("recoverable gap of 5: %+v", r)
		}
		if r := try(fmt.Sprintf(`{"offset":%d,"epoch":%q}`, top.Offset, top.Epoch)); r.Recovered == nil || !*r.Recovered || r.Publications == nil || len(r.Publications) != 0 {
			t.Errorf("nothing missed: %+v", r)
		}
		for _, lost := range []string{
			fmt.Sprintf(`{"offset":%d,"epoch":"0ther"}`, top.Offset), // another epoch
			fmt.Sprintf(`{"offset":%d,"epoch":%q}`, 2, top.Epoch),    // older than kept
			fmt.Sprintf(`{"offset":%d,"epoch":%q}`, 9999, top.Epoch), // from the future
		} {
			r := try(lost)
			if r.Recovered == nil || *r.Recovered || fmt.Sprint(pubOffsets(r.Publications)) != fmt.Sprint([]uint64{r.Offset - 1, r.Offset}) {
				t.Errorf("recover %s: %+v, want recovered:false with the latest 2", lost, r)
			}
		}
	})
}

// A latest reply stays within the client's reply bound: of 20 kept
// publications of 16 KiB (320 KiB, over 256 KiB), it holds the newest
// that fit, ending at its position. A recoverable gap too large for one
// reply falls back to the same.
func TestSubscribeLatestIsBounded(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	fillHistory(t, h, "push:big", 20, 16<<10)
	c, s := newClient(t, h, Identity{})
	check := func(cmd string, recovered *bool) {
		t.Helper()
		r := decodeResult[protocol.SubscribeResult](t, oneReply(t, c, s, 1, cmd))
		n := len(r.Publications)
		if n < 10 || n >= 20 || r.Publications[n-1].Offset != 20 || r.Publications[0].Offset != uint64(21-n) {
			t.Errorf("%s: offsets %v, want the newest that fit, up to 20", cmd, pubOffsets(r.Publications))
		}
		if (r.Recovered == nil) != (recovered == nil) || recovered != nil && *r.Recovered != *recovered {
			t.Errorf("%s: recovered %v", cmd, r.Recovered)
		}
		c.HandleFrame([]byte(`{"id":2,"op":"unsubscribe","channel":"push:big"}`))
		s.Drain(t)
	}
	check(`{"id":1,"op":"subscribe","channel":"push:big","latest":20}`, nil)
	epoch := h.broker.(*MemoryBroker).epochFor("push:big")
	notRecovered := false
	check(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"push:big","latest":20,"recover":{"offset":0,"epoch":%q}}`, epoch), &notRecovered)
}
