package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
	"github.com/duplex/duplex/realtime/protocol"
)

func TestConnectWithNameTokenAndTokenFunc(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)

	guest := connect(t, s.RealtimeURL(), client.Options{Name: "李旺"})
	if info, ok := guest.Info(); !ok || info.Name != "李旺" || info.User != "" || info.Client == "" {
		t.Errorf("guest: %+v %v", info, ok)
	}

	user := connect(t, s.RealtimeURL(), client.Options{Token: s.Token(t, "42", "张三", "")})
	if info, _ := user.Info(); info.User != "42" || info.Name != "张三" {
		t.Errorf("user: %+v", info)
	}

	calls := 0
	viaFunc := connect(t, s.RealtimeURL(), client.Options{TokenFunc: func(context.Context) (string, error) {
		calls++
		return s.Token(t, "7", "", ""), nil
	}})
	if info, _ := viaFunc.Info(); info.User != "7" || calls != 1 {
		t.Errorf("TokenFunc user: %+v after %d calls", info, calls)
	}

	// A refused token: Connect says so, and the client is a guest.
	errs := newRecorder[error]()
	bad := client.New(s.RealtimeURL(), client.Options{Token: "not-a-jwt", OnError: errs.add})
	defer bad.Close()
	err := bad.Connect(ctx)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != protocol.CodeUnauthorized || e.Op != protocol.OpConnect {
		t.Fatalf("connect with a bad token: %v, want unauthorized", err)
	}
	if info, ok := bad.Info(); !ok || info.User != "" {
		t.Errorf("after a refused token: %+v %v, want a connected guest", info, ok)
	}
	if got := errs.waitLen(t, "OnError", 1); !client.HasCode(got[0], protocol.CodeUnauthorized) {
		t.Errorf("OnError got %v", got[0])
	}
	if err := bad.Ping(ctx); err != nil {
		t.Errorf("ping as the guest: %v", err)
	}
}

func TestPublishPresenceHistory(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	alice := connect(t, s.RealtimeURL(), client.Options{Name: "alice"})
	bob := connect(t, s.RealtimeURL(), client.Options{Name: "bob"})

	got := newRecorder[client.Publication]()
	joins := newRecorder[protocol.ClientInfo]()
	sub, err := bob.Subscribe(ctx, "chat:room", client.SubscribeOptions{OnPublication: got.add, OnJoin: joins.add})
	if err != nil {
		t.Fatal(err)
	}
	if r := sub.FirstResult(); r.Epoch == "" || r.Offset != 0 {
		t.Fatalf("first result %+v", r)
	}
	joins.waitLen(t, "bob's own join", 1)

	// The data comes byte for byte, HTML characters included.
	const data = `{"text":"<b>你好</b> & bye"}`
	pos, err := alice.Publish(ctx, "chat:room", json.RawMessage(data))
	if err != nil || pos.Offset != 1 || pos.Epoch != sub.FirstResult().Epoch {
		t.Fatalf("publish: %+v %v", pos, err)
	}
	if _, err := alice.Publish(ctx, "chat:room", map[string]string{"text": "<i>二</i>"}); err != nil {
		t.Fatal(err)
	}
	pubs := got.waitLen(t, "publications", 2)
	if string(pubs[0].Data) != data || pubs[0].Offset != 1 || pubs[0].Info == nil || pubs[0].Info.Name != "alice" ||
		pubs[0].Recovered || pubs[0].Latest || pubs[0].Epoch != pos.Epoch {
		t.Errorf("first publication %+v", pubs[0])
	}
	if string(pubs[1].Data) != `{"text":"<i>二</i>"}` || pubs[1].Offset != 2 {
		t.Errorf("second publication %+v (%s)", pubs[1], pubs[1].Data)
	}
	if p, ok := sub.Position(); !ok || p.Offset != 2 {
		t.Errorf("position %+v", p)
	}

	if _, err := alice.Subscribe(ctx, "chat:room", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	pr, err := bob.Presence(ctx, "chat:room")
	if err != nil || pr.Count != 2 || len(pr.Clients) != 2 {
		t.Fatalf("presence: %+v %v", pr, err)
	}
	names := map[string]bool{}
	for _, c := range pr.Clients {
		names[c.Name] = true
	}
	if !names["alice"] || !names["bob"] {
		t.Errorf("presence names %v", names)
	}

	h, err := bob.History(ctx, "chat:room", client.HistoryOptions{Limit: 10})
	if err != nil || len(h.Publications) != 2 || h.Offset != 2 || string(h.Publications[0].Data) != data {
		t.Fatalf("history: %+v %v", h, err)
	}
	since, err := bob.History(ctx, "chat:room", client.HistoryOptions{Since: &protocol.Position{Offset: 1, Epoch: h.Epoch}})
	if err != nil || len(since.Publications) != 1 || since.Publications[0].Offset != 2 {
		t.Fatalf("history since 1: %+v %v", since, err)
	}

	// Unsubscribe ends the subscription: no more publications.
	ended := newRecorder[error]()
	sub2, err := bob.Subscribe(ctx, "chat:other", client.SubscribeOptions{OnUnsubscribed: ended.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub2.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if r := ended.waitLen(t, "OnUnsubscribed", 1); r[0] != nil {
		t.Errorf("unsubscribed with %v, want nil", r[0])
	}
	select {
	case <-sub2.Done():
	default:
		t.Error("Done not closed after Unsubscribe")
	}
	if _, err := bob.Subscribe(ctx, "chat:other", client.SubscribeOptions{}); err != nil {
		t.Errorf("subscribe again after unsubscribe: %v", err)
	}
}

func TestTypedErrors(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	c := connect(t, s.RealtimeURL(), client.Options{Name: "errs"})

	check := func(what string, err error, code protocol.Code, op protocol.Op) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: %v (%T), want *client.Error", what, err, err)
			return
		}
		if e.Code != code || e.Op != op || e.Message == "" {
			t.Errorf("%s: %+v, want code %s op %s with a message", what, e, code, op)
		}
	}
	_, err := c.Publish(ctx, "push:news", "hi")
	check("publish to push:", err, protocol.CodeForbidden, protocol.OpPublish)
	_, err = c.Subscribe(ctx, "nope:x", client.SubscribeOptions{})
	check("unknown namespace", err, protocol.CodeBadChannel, protocol.OpSubscribe)
	_, err = c.Subscribe(ctx, "live:main", client.SubscribeOptions{Latest: 1})
	check("latest without history", err, protocol.CodeBadRequest, protocol.OpSubscribe)
	_, err = c.History(ctx, "live:main", client.HistoryOptions{})
	check("history of live:", err, protocol.CodeNotFound, protocol.OpHistory)
	_, err = c.Subscribe(ctx, "user:1", client.SubscribeOptions{})
	check("a guest on user:", err, protocol.CodeUnauthorized, protocol.OpSubscribe)
	if _, err := c.Subscribe(ctx, "chat:twice", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(ctx, "chat:twice", client.SubscribeOptions{})
	check("subscribe twice", err, protocol.CodeBadRequest, protocol.OpSubscribe)
	// A raw call of an op the server does not know.
	_, err = c.Call(ctx, protocol.Command{Op: "explode"})
	check("unknown op", err, protocol.CodeBadRequest, "explode")

	// The rate limit of chat (10/s, burst 20) is reached with typed errors.
	limited := false
	for i := 0; i < 40 && !limited; i++ {
		_, err := c.Publish(ctx, "chat:twice", i)
		limited = client.HasCode(err, protocol.CodeRateLimited)
		if err != nil && !limited {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if !limited {
		t.Error("40 publishes at once were never rate_limited")
	}

	// A refused upgrade is a HandshakeError with the status.
	_, err = client.Dial(ctx, s.RealtimeURL()+"?token=bad", client.ConnOptions{})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 || he.Body == "" {
		t.Errorf("dial with a bad token: %v, want HandshakeError 401", err)
	}

	// Closed: every call says so.
	c.Close()
	if err := c.Ping(ctx); !errors.Is(err, client.ErrClosed) {
		t.Errorf("ping after Close: %v", err)
	}
	if _, err := c.Subscribe(ctx, "chat:later", client.SubscribeOptions{}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("subscribe after Close: %v", err)
	}
	if err := c.Connect(ctx); !errors.Is(err, client.ErrClosed) {
		t.Errorf("connect after Close: %v", err)
	}
}

func TestCallsWaitForTheConnectionWithinTheirContext(t *testing.T) {
	s := testserver.Start(t, nil)
	cab := newCable()
	c := connect(t, s.RealtimeURL(), client.Options{Name: "waiter", Dialer: cab.dialer(), BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	cab.unplug()
	waitState(t, c, client.Disconnected)

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping while disconnected: %v, want the context's deadline", err)
	}
	// A call made while disconnected goes out once connected again.
	done := make(chan error, 1)
	go func() {
		_, err := c.Publish(testCtx(t), "chat:later", "sent after the reconnect")
		done <- err
	}()
	cab.plug()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish across the reconnect: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("publish never went out after the reconnect")
	}
	if cab.dialCount() < 2 {
		t.Errorf("%d dials, want a reconnect", cab.dialCount())
	}
}

// waitState waits until c is in state want.
func waitState(t *testing.T, c *client.Client, want client.State) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", c.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
