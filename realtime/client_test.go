package realtime

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/duplex/duplex/realtime/protocol"
)

// send feeds one frame and returns everything queued for the client since.
func send(t *testing.T, c *Client, s *testSub, frame string) ([]protocol.ServerMessage, Action) {
	t.Helper()
	a := c.HandleFrame([]byte(frame))
	return s.Drain(t), a
}

func newClient(t *testing.T, h *Hub, id Identity) (*Client, *testSub) {
	t.Helper()
	s := newTestSub(1 << 20)
	c := NewClient(h, s, id, ClientLimits{})
	t.Cleanup(c.Close)
	return c, s
}

func TestClientFlow(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	ticks := useManualTicks(h)
	alice, as := newClient(t, h, Identity{Name: "李旺"})
	bob, bs := newClient(t, h, Identity{})

	msgs, _ := send(t, alice, as, `{"id":1,"op":"ping"}`)
	if len(msgs) != 1 || string(msgs[0].Result) != `{}` {
		t.Fatalf("ping: %+v", msgs)
	}
	msgs, _ = send(t, bob, bs, `{"id":1,"op":"connect","name":"  小明 "}`)
	if r := decodeResult[protocol.ConnectResult](t, msgs[0]); r.Name != "小明" || r.User != "" || r.Client != h.clientID(bs) {
		t.Errorf("connect: %+v", r)
	}

	msgs, _ = send(t, alice, as, `{"id":2,"op":"subscribe","channel":"chat:lobby"}`)
	sub := decodeResult[protocol.SubscribeResult](t, msgs[0])
	if sub.Epoch == "" || sub.Offset != 0 || sub.Recovered != nil {
		t.Errorf("subscribe: %+v", sub)
	}
	// Several commands in one frame, answered in order.
	msgs, _ = send(t, bob, bs, `{"id":2,"op":"subscribe","channel":"chat:lobby"}`+"\n"+`{"id":3,"op":"publish","channel":"chat:lobby","data":{"text":"你好"}}`)
	if msgs[0].ID != 2 {
		t.Fatalf("first message is not the subscribe reply: %+v", msgs[0])
	}
	pr := decodeResult[protocol.PublishResult](t, replyTo(t, msgs, 3))
	if pr.Offset != 1 || pr.Epoch != sub.Epoch {
		t.Errorf("publish: %+v", pr)
	}
	ticks.fire()
	got := alice.sub.(*testSub).Drain(t)
	var sawJoin, sawPub bool
	for _, m := range got {
		if m.Join != nil && m.Join.Name == "小明" {
			sawJoin = true
		}
		if m.Data != nil {
			sawPub = m.Offset == 1 && dataOf(m) == `{"text":"你好"}` && m.Info.Name == "小明" && m.Info.Client == h.clientID(bs)
		}
	}
	if !sawJoin || !sawPub {
		t.Errorf("alice saw %+v", got)
	}

	msgs, _ = send(t, alice, as, `{"id":3,"op":"presence","channel":"chat:lobby"}`)
	if p := decodeResult[protocol.PresenceResult](t, msgs[0]); p.Count != 2 || p.Clients[h.clientID(as)].Name != "李旺" {
		t.Errorf("presence: %+v", p)
	}
	msgs, _ = send(t, alice, as, `{"id":4,"op":"history","channel":"chat:lobby","limit":10}`)
	if hr := decodeResult[protocol.HistoryResult](t, msgs[0]); len(hr.Publications) != 1 || hr.Offset != 1 {
		t.Errorf("history: %+v", hr)
	}
	msgs, _ = send(t, bob, bs, `{"id":5,"op":"unsubscribe","channel":"chat:lobby"}`)
	if msgs[len(msgs)-1].ID != 5 || msgs[len(msgs)-1].Error != nil {
		t.Errorf("unsubscribe: %+v", msgs)
	}
	if fmt.Sprint(bob.Channels()) != "[]" || fmt.Sprint(alice.Channels()) != "[chat:lobby]" {
		t.Errorf("channels: %v %v", bob.Channels(), alice.Channels())
	}
	ticks.fire()
	got = as.Drain(t)
	if len(got) != 1 || got[0].Leave == nil || got[0].Leave.Client != h.clientID(bs) {
		t.Errorf("alice did not see bob leave: %+v", got)
	}

	// Close unsubscribes everything and pushes leave.
	bob.HandleFrame([]byte(`{"id":6,"op":"subscribe","channel":"chat:lobby"}`))
	ticks.fire()
	as.Drain(t)
	bs.Drain(t)
	bob.Close()
	bob.Close()
	ticks.fire()
	if got := as.Drain(t); len(got) != 1 || got[0].Leave == nil {
		t.Errorf("close: %+v", got)
	}
	if h.Subscribers("chat:lobby") != 1 {
		t.Errorf("subscribers %d", h.Subscribers("chat:lobby"))
	}
	if a := bob.HandleFrame([]byte(`{"id":7,"op":"ping"}`)); a.Close || len(bs.Drain(t)) != 0 {
		t.Error("closed client answered")
	}
}

func TestClientRecover(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	c, s := newClient(t, h, Identity{Name: "a"})
	msgs, _ := send(t, c, s, `{"id":1,"op":"subscribe","channel":"chat:r"}`)
	pos := decodeResult[protocol.SubscribeResult](t, msgs[0])
	c.Close()
	for i := 0; i < 3; i++ {
		h.Publish(ctx, "chat:r", []byte(fmt.Sprint(i)), nil)
	}
	c2, s2 := newClient(t, h, Identity{Name: "a"})
	msgs, _ = send(t, c2, s2, fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"chat:r","recover":{"offset":%d,"epoch":%q}}`, pos.Offset, pos.Epoch))
	r := decodeResult[protocol.SubscribeResult](t, msgs[0])
	if r.Recovered == nil || !*r.Recovered || len(r.Publications) != 3 || r.Publications[2].Offset != 3 || r.Offset != 3 {
		t.Errorf("recovered: %+v", r)
	}
	c3, s3 := newClient(t, h, Identity{Name: "a"})
	msgs, _ = send(t, c3, s3, `{"id":1,"op":"subscribe","channel":"chat:r","recover":{"offset":1,"epoch":"old"}}`)
	r = decodeResult[protocol.SubscribeResult](t, msgs[0])
	if r.Recovered == nil || *r.Recovered || len(r.Publications) != 0 || !strings.Contains(string(msgs[0].Result), `"recovered":false`) {
		t.Errorf("epoch differs: %s", msgs[0].Result)
	}
}

type panicPresence struct{ *MemoryPresence }

func (panicPresence) Get(context.Context, string) (map[string]ClientInfo, error) { panic("boom") }

// members is how the hub reads a MemoryPresence's list: it panics too.
func (panicPresence) members(string) ([]ClientInfo, uint64) { panic("boom") }

func TestClientErrorCodes(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	verify, _ := TokenVerifierHS256(secret)
	spy := newSpyBroker()
	h := newTestHub(t, HubConfig{Broker: spy, VerifyToken: verify, Presence: panicPresence{NewMemoryPresence()}})
	expired, _ := MintToken(secret, "42", "", -time.Hour)
	otherKey, _ := MintToken([]byte(strings.Repeat("x", 32)), "42", "", time.Hour)

	tests := []struct {
		name  string
		ident Identity
		setup string
		cmd   string
		code  protocol.Code
	}{
		{"malformed", Identity{}, "", `{"id":1,`, protocol.CodeBadRequest},
		{"unknown op", Identity{}, "", `{"id":1,"op":"fly"}`, protocol.CodeBadRequest},
		{"missing channel", Identity{}, "", `{"id":1,"op":"subscribe"}`, protocol.CodeBadRequest},
		{"missing data", Identity{}, "", `{"id":1,"op":"publish","channel":"chat:a"}`, protocol.CodeBadRequest},
		{"already subscribed", Identity{}, `{"id":9,"op":"subscribe","channel":"chat:a"}`, `{"id":1,"op":"subscribe","channel":"chat:a"}`, protocol.CodeBadRequest},
		{"connect after subscribe", Identity{}, `{"id":9,"op":"subscribe","channel":"chat:a"}`, `{"id":1,"op":"connect","name":"x"}`, protocol.CodeBadRequest},
		{"bad name", Identity{}, "", `{"id":1,"op":"connect","name":"a\u0007"}`, protocol.CodeBadRequest},
		{"bad channel charset", Identity{}, "", `{"id":1,"op":"subscribe","channel":"chat:a b"}`, protocol.CodeBadChannel},
		{"bad channel long", Identity{}, "", `{"id":1,"op":"subscribe","channel":"chat:` + strings.Repeat("a", 300) + `"}`, protocol.CodeBadChannel},
		{"unknown namespace", Identity{}, "", `{"id":1,"op":"publish","channel":"x:a","data":1}`, protocol.CodeBadChannel},
		{"unsubscribe bad", Identity{}, "", `{"id":1,"op":"unsubscribe","channel":"##"}`, protocol.CodeBadChannel},
		{"publish push", Identity{}, "", `{"id":1,"op":"publish","channel":"push:news","data":1}`, protocol.CodeForbidden},
		{"publish user", Identity{User: "42"}, "", `{"id":1,"op":"publish","channel":"user:42","data":1}`, protocol.CodeForbidden},
		{"other user's channel", Identity{User: "7"}, "", `{"id":1,"op":"subscribe","channel":"user:42"}`, protocol.CodeForbidden},
		{"other user's history", Identity{User: "7"}, "", `{"id":1,"op":"history","channel":"user:42"}`, protocol.CodeForbidden},
		{"guest on user channel", Identity{}, "", `{"id":1,"op":"subscribe","channel":"user:42"}`, protocol.CodeUnauthorized},
		{"guest presence user channel", Identity{}, "", `{"id":1,"op":"presence","channel":"user:42"}`, protocol.CodeUnauthorized},
		{"expired token", Identity{}, "", `{"id":1,"op":"connect","token":"` + expired + `"}`, protocol.CodeUnauthorized},
		{"wrong key", Identity{}, "", `{"id":1,"op":"connect","token":"` + otherKey + `"}`, protocol.CodeUnauthorized},
		{"garbage token", Identity{}, "", `{"id":1,"op":"connect","token":"x.y.z"}`, protocol.CodeUnauthorized},
		{"data too big", Identity{}, "", `{"id":1,"op":"publish","channel":"chat:a","data":"` + strings.Repeat("a", 17<<10) + `"}`, protocol.CodeLimitExceeded},
		{"not subscribed", Identity{}, "", `{"id":1,"op":"unsubscribe","channel":"chat:a"}`, protocol.CodeNotFound},
		{"history off", Identity{}, "", `{"id":1,"op":"history","channel":"live:a"}`, protocol.CodeNotFound},
		{"presence off", Identity{}, "", `{"id":1,"op":"presence","channel":"push:a"}`, protocol.CodeNotFound},
		{"history gone", Identity{}, "", `{"id":1,"op":"history","channel":"chat:a","since":{"offset":99,"epoch":"x"}}`, protocol.CodeNotFound},
		{"backend panic", Identity{}, "", `{"id":1,"op":"presence","channel":"chat:a"}`, protocol.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := newClient(t, h, tt.ident)
			if tt.setup != "" {
				c.HandleFrame([]byte(tt.setup))
				s.Drain(t)
			}
			msgs, a := send(t, c, s, tt.cmd)
			if a.Close || len(msgs) != 1 || msgs[0].Error == nil {
				t.Fatalf("got %+v, action %+v", msgs, a)
			}
			if msgs[0].Error.Code != tt.code || msgs[0].Error.Message == "" {
				t.Errorf("got %v, want %s", msgs[0].Error, tt.code)
			}
			wantID := uint64(1)
			if tt.name == "malformed" {
				wantID = 0
			}
			if msgs[0].ID != wantID {
				t.Errorf("reply id %d", msgs[0].ID)
			}
			// The connection survives.
			if msgs, _ := send(t, c, s, `{"id":2,"op":"ping"}`); len(msgs) != 1 || msgs[0].Error != nil {
				t.Errorf("ping after error: %+v", msgs)
			}
		})
	}

	t.Run("subscription limit", func(t *testing.T) {
		s := newTestSub(1 << 20)
		c := NewClient(h, s, Identity{}, ClientLimits{MaxSubscriptions: 2})
		defer c.Close()
		msgs, _ := send(t, c, s, `{"id":1,"op":"subscribe","channel":"push:a"}`+"\n"+`{"id":2,"op":"subscribe","channel":"push:b"}`+"\n"+`{"id":3,"op":"subscribe","channel":"push:c"}`)
		if e := replyTo(t, msgs, 3).Error; e == nil || e.Code != protocol.CodeLimitExceeded {
			t.Errorf("third subscribe: %+v", e)
		}
		if len(c.Channels()) != 2 {
			t.Errorf("channels %v", c.Channels())
		}
	})
	t.Run("default subscription limit is 128", func(t *testing.T) {
		s := newTestSub(1 << 20)
		c := NewClient(h, s, Identity{}, ClientLimits{CommandRate: 1000, CommandBurst: 1000})
		defer c.Close()
		var b strings.Builder
		for i := 1; i <= 129; i++ {
			fmt.Fprintf(&b, `{"id":%d,"op":"subscribe","channel":"push:n%d"}`+"\n", i, i)
		}
		msgs, _ := send(t, c, s, b.String())
		if e := replyTo(t, msgs, 129).Error; e == nil || e.Code != protocol.CodeLimitExceeded {
			t.Errorf("129th subscribe: %+v", e)
		}
	})
	t.Run("broker down", func(t *testing.T) {
		c, s := newClient(t, h, Identity{})
		spy.mu.Lock()
		spy.fail = fmt.Errorf("connection refused")
		spy.mu.Unlock()
		defer func() { spy.mu.Lock(); spy.fail = nil; spy.mu.Unlock() }()
		msgs, _ := send(t, c, s, `{"id":1,"op":"subscribe","channel":"chat:down"}`+"\n"+`{"id":2,"op":"publish","channel":"chat:down","data":1}`)
		for _, m := range msgs {
			if m.Error == nil || m.Error.Code != protocol.CodeUnavailable {
				t.Errorf("got %+v", m)
			}
		}
	})
}

func TestClientUserChannelWithToken(t *testing.T) {
	secret := []byte(strings.Repeat("s", 40))
	verify, err := TokenVerifierHS256(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, HubConfig{VerifyToken: verify})
	tok, _ := MintToken(secret, "42", "李旺", time.Hour)
	c, s := newClient(t, h, Identity{})
	msgs, _ := send(t, c, s, `{"id":1,"op":"connect","token":"`+tok+`"}`+"\n"+`{"id":2,"op":"subscribe","channel":"user:42"}`)
	if r := decodeResult[protocol.ConnectResult](t, msgs[0]); r.User != "42" || r.Name != "李旺" {
		t.Errorf("connect: %+v", r)
	}
	decodeResult[protocol.SubscribeResult](t, msgs[1])
	h.Publish(context.Background(), "user:42", []byte(`{"notice":"hi"}`), nil)
	if got := pubs(s.Drain(t), "user:42"); len(got) != 1 {
		t.Errorf("push: %+v", got)
	}
	// Without a verifier, tokens are refused.
	h2 := newTestHub(t, HubConfig{})
	c2, s2 := newClient(t, h2, Identity{})
	if msgs, _ := send(t, c2, s2, `{"id":1,"op":"connect","token":"`+tok+`"}`); msgs[0].Error.Code != protocol.CodeUnauthorized {
		t.Errorf("no verifier: %+v", msgs[0])
	}
	// An identity given by the transport works directly.
	c3, s3 := newClient(t, h, Identity{User: "42"})
	if msgs, _ := send(t, c3, s3, `{"id":1,"op":"subscribe","channel":"user:42"}`); msgs[0].Error != nil {
		t.Errorf("transport identity: %+v", msgs[0].Error)
	}
	if c3.Info().Name != DefaultUserNamePrefix+strconv.FormatUint(s3.ID(), 10) {
		t.Errorf("default name %q", c3.Info().Name)
	}
}

func TestClientRateLimits(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	// chat: 10/s burst 20 per connection.
	c, s := newClient(t, h, Identity{})
	var b strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&b, `{"id":%d,"op":"publish","channel":"chat:rl","data":%d}`+"\n", i, i)
	}
	msgs, a := send(t, c, s, b.String())
	ok, limited := 0, 0
	for _, m := range msgs {
		switch {
		case m.ID == 0:
		case m.Error == nil:
			ok++
		case m.Error.Code == protocol.CodeRateLimited:
			limited++
		}
	}
	if ok != 20 || limited != 5 || a.Close {
		t.Errorf("ok=%d limited=%d action=%+v", ok, limited, a)
	}
	// Other namespaces have their own budget: live is 3/s burst 5.
	msgs, _ = send(t, c, s, strings.Repeat(`{"id":100,"op":"publish","channel":"live:rl","data":1}`+"\n", 6))
	if msgs[4].Error != nil || msgs[5].Error == nil || msgs[5].Error.Code != protocol.CodeRateLimited {
		t.Errorf("live: %+v", msgs)
	}
}

func TestClientAbuseCloses1008(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	c, s := newClient(t, h, Identity{})
	// Command limiter: 50/s burst 100; abuse bucket: burst 10.
	var a Action
	var msgs []protocol.ServerMessage
	for i := 0; i < 200 && !a.Close; i++ {
		var m []protocol.ServerMessage
		m, a = send(t, c, s, `{"id":1,"op":"ping"}`)
		msgs = append(msgs, m...)
	}
	if !a.Close || a.Code != ClosePolicyViolation || a.Reason == "" {
		t.Fatalf("no 1008 after flooding: %+v", a)
	}
	limited := 0
	for _, m := range msgs {
		if m.Error != nil && m.Error.Code == protocol.CodeRateLimited {
			limited++
		}
	}
	if limited < 10 || limited > 12 {
		t.Errorf("%d rate_limited replies before the close", limited)
	}
	// Once abusive, always abusive: nothing more is handled.
	if a := c.HandleFrame([]byte(`{"id":2,"op":"ping"}`)); !a.Close || len(s.Drain(t)) != 0 {
		t.Errorf("after abuse: %+v", a)
	}

	// A client that stays under the limit is never closed, even with
	// occasional violations spread out.
	lim := ClientLimits{CommandRate: 1000, CommandBurst: 1, AbuseRate: 1000, AbuseBurst: 2}
	s2 := newTestSub(1 << 20)
	c2 := NewClient(h, s2, Identity{}, lim)
	defer c2.Close()
	for i := 0; i < 20; i++ {
		if a := c2.HandleFrame([]byte(`{"id":1,"op":"ping"}`)); a.Close {
			t.Fatal("closed a client within limits")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestClientLiveDropOldestReplies(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	s := newTestSub(600)
	c := NewClient(h, s, Identity{}, ClientLimits{})
	defer c.Close()
	c.HandleFrame([]byte(`{"id":1,"op":"subscribe","channel":"live:flood"}`))
	for i := 0; i < 50; i++ {
		h.Publish(context.Background(), "live:flood", []byte(`{"text":"弹幕弹幕弹幕"}`), nil)
	}
	// The queue is full of droppable pushes; a reply must not disconnect.
	c.HandleFrame([]byte(`{"id":2,"op":"ping"}`))
	if s.isClosed() {
		t.Fatal("reply on a full drop-oldest connection disconnected it")
	}
	msgs := s.Drain(t)
	if m := msgs[len(msgs)-1]; m.ID != 2 && (len(msgs) < 2 || msgs[len(msgs)-2].ID != 2) {
		t.Errorf("ping reply missing at the end: %+v", msgs[len(msgs)-2:])
	}
}

// A guest without a name is called the guest prefix and its connection
// id, and its client id is the node id and the connection id; both are
// cut from one string (clientIDAndName), and naming the guest later
// keeps the client id.
func TestGuestClientIDAndDefaultName(t *testing.T) {
	h := newTestHub(t, HubConfig{NodeID: "n1"})
	c, s := newClient(t, h, Identity{})
	n := strconv.FormatUint(s.ID(), 10)
	if info := c.Info(); info.Client != "n1-"+n || info.Name != DefaultGuestNamePrefix+n {
		t.Fatalf("client %q name %q, want %q %q", info.Client, info.Name, "n1-"+n, DefaultGuestNamePrefix+n)
	}
	if msgs, _ := send(t, c, s, `{"id":1,"op":"connect","name":"ann"}`); msgs[0].Error != nil {
		t.Fatalf("connect: %+v", msgs[0].Error)
	}
	if info := c.Info(); info.Client != "n1-"+n || info.Name != "ann" {
		t.Fatalf("after connect: client %q name %q", info.Client, info.Name)
	}
}

// A name of the client's own lets the default name it replaced go: the
// id, cut from one string with the default name (clientIDAndName), must
// not keep that string alive for the connection's life.
func TestClientIDLetsTheReplacedDefaultNameGo(t *testing.T) {
	h := newTestHub(t, HubConfig{NodeID: "n1"})
	c, s := newClient(t, h, Identity{})
	first := c.Info()
	if msgs, _ := send(t, c, s, `{"id":1,"op":"connect","name":"ann"}`); msgs[0].Error != nil {
		t.Fatalf("connect: %+v", msgs[0].Error)
	}
	info := c.Info()
	if info.Client != first.Client {
		t.Fatalf("client id %q changed to %q", first.Client, info.Client)
	}
	if unsafe.StringData(info.Client) == unsafe.StringData(first.Client) {
		t.Fatal("the client id still points into the string it shares with the replaced default name")
	}
}

// The client id and the default name of a connection cost one
// allocation between them: an idle connection keeps each object it
// allocated alive (docs/benchmarks.md, idle memory).
func TestClientIDAndNameIsOneAllocation(t *testing.T) {
	h := newTestHub(t, HubConfig{NodeID: "0123abcd"})
	_, s := newClient(t, h, Identity{})
	if n := testing.AllocsPerRun(100, func() { h.clientIDAndName(s, DefaultGuestNamePrefix) }); n != 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}
