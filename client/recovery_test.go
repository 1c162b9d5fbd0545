package client_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
	"github.com/duplex/duplex/realtime/protocol"
)

// fastRetry reconnects within tens of milliseconds.
func fastRetry(o client.Options) client.Options {
	o.BackoffMin, o.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	return o
}

func apiPublish(t *testing.T, s *testserver.Server, channel string, n int) protocol.PublishResult {
	t.Helper()
	var r protocol.PublishResult
	s.API(t, "POST", "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"n": n}}, &r)
	return r
}

func dataN(t *testing.T, p client.Publication) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(p.Data, &v); err != nil {
		t.Fatalf("publication %s: %v", p.Data, err)
	}
	return v.N
}

// A lost connection (the server lives on) is recovered: the missed
// publications come in order, marked recovered, none twice, and no reload.
func TestReconnectRecoversMissedPublications(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	cab := newCable()
	states := newRecorder[client.StateChange]()
	c := connect(t, s.RealtimeURL(), fastRetry(client.Options{Name: "follower", Dialer: cab.dialer(), OnState: states.add}))
	got := newRecorder[client.Publication]()
	subscribed := newRecorder[client.Subscribed]()
	reloads := newRecorder[client.Reload]()
	sub, err := c.Subscribe(ctx, "chat:recover", client.SubscribeOptions{
		OnPublication: got.add, OnSubscribed: subscribed.add, OnReload: reloads.add})
	if err != nil {
		t.Fatal(err)
	}
	apiPublish(t, s, "chat:recover", 1)
	got.waitLen(t, "live publication", 1)

	cab.unplug()
	waitState(t, c, client.Disconnected)
	for n := 2; n <= 4; n++ {
		apiPublish(t, s, "chat:recover", n)
	}
	cab.plug()
	evs := subscribed.waitLen(t, "resubscribe", 2)
	if re := evs[1]; !re.Resubscribed || re.Recovered == nil || !*re.Recovered || re.Result.Offset != 4 {
		t.Fatalf("resubscribe: %+v", re)
	}
	apiPublish(t, s, "chat:recover", 5)
	pubs := got.waitLen(t, "publications", 5)
	for i, p := range pubs {
		if p.Offset != uint64(i+1) || dataN(t, p) != i+1 {
			t.Errorf("publication %d: offset %d n %d", i, p.Offset, dataN(t, p))
		}
		if wantRecovered := i >= 1 && i <= 3; p.Recovered != wantRecovered {
			t.Errorf("publication %d: recovered %v, want %v", i+1, p.Recovered, wantRecovered)
		}
	}
	if len(got.all()) != 5 {
		t.Errorf("%d publications, want 5 (none twice)", len(got.all()))
	}
	if r := reloads.all(); len(r) != 0 {
		t.Errorf("reload after a recovered gap: %+v", r)
	}
	if pos, _ := sub.Position(); pos.Offset != 5 {
		t.Errorf("position %+v", pos)
	}
	sawDisconnect := false
	for _, st := range states.all() {
		if st.State == client.Disconnected && st.Err != nil && st.Delay >= 0 && st.Delay < 100*time.Millisecond {
			sawDisconnect = true
		}
	}
	if !sawDisconnect {
		t.Errorf("no Disconnected state with a reason and a backoff delay: %+v", states.all())
	}
}

// Across a server restart (the in-memory broker starts every channel in a
// new epoch) recovery is impossible: a plain subscription gets Reload, a
// subscription with latest gets the new stream's latest instead.
func TestServerRestartReloadsOrDeliversLatest(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	cab := newCable()
	states := newRecorder[client.StateChange]()
	c := connect(t, s.RealtimeURL(), fastRetry(client.Options{Name: "restarts", Dialer: cab.dialer(), OnState: states.add}))

	reloads := newRecorder[client.Reload]()
	chat, err := c.Subscribe(ctx, "chat:restart", client.SubscribeOptions{OnReload: reloads.add})
	if err != nil {
		t.Fatal(err)
	}
	prices := newRecorder[client.Publication]()
	priceReloads := newRecorder[client.Reload]()
	for n := 1; n <= 3; n++ {
		apiPublish(t, s, "push:prices", n)
	}
	if _, err := c.Subscribe(ctx, "push:prices", client.SubscribeOptions{Latest: 2, OnPublication: prices.add, OnReload: priceReloads.add}); err != nil {
		t.Fatal(err)
	}
	prices.waitLen(t, "latest 2", 2)
	oldEpoch := chat.FirstResult().Epoch

	// Restart with dials held back, so the new server has a publication
	// before the client is back.
	cab.unplug()
	s.Restart()
	waitState(t, c, client.Disconnected)
	newPos := apiPublish(t, s, "push:prices", 10)
	cab.plug()

	rl := reloads.waitLen(t, "reload of chat:restart", 1)
	if rl[0].Channel != "chat:restart" || rl[0].Position.Epoch == "" || rl[0].Position.Epoch == oldEpoch {
		t.Errorf("reload %+v (old epoch %s)", rl[0], oldEpoch)
	}
	pubs := prices.waitLen(t, "the new stream's latest", 3)
	if p := pubs[2]; !p.Latest || p.Offset != 1 || p.Epoch != newPos.Epoch || dataN(t, p) != 10 {
		t.Errorf("after the restart: %+v (n %d)", p, dataN(t, p))
	}
	for i, p := range pubs[:2] {
		if !p.Latest || p.Offset != uint64(i+2) || dataN(t, p) != i+2 {
			t.Errorf("first latest %d: %+v", i, p)
		}
	}
	if r := priceReloads.all(); len(r) != 0 {
		t.Errorf("a latest subscription got reload: %+v", r)
	}
	// Live publications continue after the latest, none twice.
	apiPublish(t, s, "push:prices", 11)
	pubs = prices.waitLen(t, "live after latest", 4)
	if p := pubs[3]; p.Latest || p.Offset != 2 || dataN(t, p) != 11 || len(prices.all()) != 4 {
		t.Errorf("live after latest: %+v, %d publications", p, len(prices.all()))
	}
}

// A graceful restart closes with 1001, which the state change carries.
func TestServerShutdownIsACloseCode1001(t *testing.T) {
	s := testserver.Start(t, nil)
	states := newRecorder[client.StateChange]()
	c := connect(t, s.RealtimeURL(), fastRetry(client.Options{Name: "1001", OnState: states.add}))
	s.Restart()
	deadline := time.Now().Add(waitTimeout)
	for {
		for _, st := range states.all() {
			if st.State == client.Disconnected && client.CloseCode(st.Err) == 1001 {
				waitState(t, c, client.Connected)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Disconnected with close code 1001: %+v", states.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// latest: n delivers the newest n first, then live ones, with no gap or
// duplicate; Publications (a channel) gets what OnPublication gets.
func TestSubscribeWithLatest(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	for n := 1; n <= 5; n++ {
		apiPublish(t, s, "push:ticker", n)
	}
	c := connect(t, s.RealtimeURL(), client.Options{Name: "ticker"})
	ch := make(chan client.Publication, 8)
	sub, err := c.Subscribe(ctx, "push:ticker", client.SubscribeOptions{Latest: 3, Publications: ch})
	if err != nil {
		t.Fatal(err)
	}
	if r := sub.FirstResult(); r.Offset != 5 || len(r.Publications) != 3 {
		t.Fatalf("first result %+v", r)
	}
	apiPublish(t, s, "push:ticker", 6)
	for want := 3; want <= 6; want++ {
		select {
		case p := <-ch:
			if p.Offset != uint64(want) || dataN(t, p) != want || p.Latest != (want <= 5) {
				t.Errorf("publication %+v, want offset %d (latest %v)", p, want, want <= 5)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("publication %d never came", want)
		}
	}
	// On a channel with nothing kept, latest is an empty list.
	empty, err := c.Subscribe(ctx, "push:fresh", client.SubscribeOptions{Latest: 1})
	if err != nil || empty.FirstResult().Publications == nil || len(empty.FirstResult().Publications) != 0 {
		t.Errorf("latest on a fresh channel: %+v %v", empty, err)
	}
	_, err = c.Subscribe(ctx, "push:toomany", client.SubscribeOptions{Latest: 21})
	if !client.HasCode(err, protocol.CodeBadRequest) {
		t.Errorf("latest past the history size: %v", err)
	}
}
