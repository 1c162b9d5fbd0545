package client_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
	"github.com/duplex/duplex/realtime/protocol"
)

// Conn speaks the protocol as written: raw frames, batches, replies by id,
// and everything else to OnMessage in arrival order.
func TestConnRawFramesBatchesAndPushes(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	msgs := newRecorder[protocol.ServerMessage]()
	c, err := client.Dial(ctx, s.RealtimeURL()+"?name=raw", client.ConnOptions{OnMessage: msgs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// An id the server cannot read: an error without id, to OnMessage.
	if err := c.WriteText(ctx, []byte(`{"op":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if m := msgs.waitLen(t, "anonymous error", 1)[0]; m.ID != 0 || m.Error == nil || m.Error.Code != protocol.CodeBadRequest {
		t.Fatalf("anonymous error: %+v", m)
	}

	// A batch: replies in order, each to its command.
	var mu sync.Mutex
	order := []int{}
	replies := map[int]protocol.ServerMessage{}
	done := make(chan struct{}, 3)
	ids, err := c.Go(ctx, []protocol.Command{
		{Op: protocol.OpSubscribe, Channel: "chat:conn"},
		{Op: protocol.OpPublish, Channel: "chat:conn", Data: json.RawMessage(`{"n":1}`)},
		{Op: protocol.OpSubscribe, Channel: "nope:x"},
	}, func(i int, m protocol.ServerMessage, err error) {
		mu.Lock()
		order = append(order, i)
		replies[i] = m
		mu.Unlock()
		done <- struct{}{}
	})
	if err != nil || len(ids) != 3 || ids[0] >= ids[1] {
		t.Fatalf("Go: %v %v", ids, err)
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Fatal("a batch reply never came")
		}
	}
	mu.Lock()
	if order[0] != 0 || order[1] != 1 || order[2] != 2 || replies[2].Error == nil || replies[2].Error.Code != protocol.CodeBadChannel {
		t.Errorf("batch replies %v %+v", order, replies)
	}
	mu.Unlock()
	// The publication pushed to this subscriber went to OnMessage.
	var pub protocol.ServerMessage
	deadline := time.Now().Add(waitTimeout)
	for pub.Channel == "" {
		for _, m := range msgs.all() {
			if client.IsPublication(m) {
				pub = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publication among %+v", msgs.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pub.Offset != 1 || string(pub.Data) != `{"n":1}` {
		t.Errorf("publication %+v", pub)
	}

	// Call: a typed error.
	if _, err := c.Call(ctx, protocol.Command{Op: protocol.OpPublish, Channel: "push:x", Data: json.RawMessage(`1`)}); !client.HasCode(err, protocol.CodeForbidden) {
		t.Errorf("publish to push: %v", err)
	}
}

// BeforeRead can stall the reader: the server's queue fills and a
// disconnect-policy channel closes the connection with 1013.
func TestConnStalledReaderIsClosedWith1013(t *testing.T) {
	s := testserver.Start(t, map[string]string{"WS_SEND_QUEUE_BYTES": "65536"})
	ctx := testCtx(t)
	var stalled sync.Mutex // held: the reader waits
	c, err := client.Dial(ctx, s.RealtimeURL()+"?name=slow", client.ConnOptions{BeforeRead: func() { stalled.Lock(); stalled.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(ctx, protocol.Command{Op: protocol.OpSubscribe, Channel: "push:flood"}); err != nil {
		t.Fatal(err)
	}
	stalled.Lock()
	released := false
	defer func() { // before c.Close, which waits for the reader
		if !released {
			stalled.Unlock()
		}
	}()
	// 15 KB publications until the server drops the stalled subscriber
	// (it leaves the channel): far more than the socket buffers hold,
	// which loopback grows to tens of MB (tcp_rmem's maximum is 32 MB
	// here), so up to 80 MB.
	pad := strings.Repeat("x", 15000)
	gone := false
	for n := 0; n < 5000 && !gone; n++ {
		s.API(t, "POST", "/api/publish", map[string]any{"channel": "push:flood", "data": map[string]any{"n": n, "pad": pad}}, nil)
		if n%20 == 19 {
			var r struct{ Channels []struct{ Channel string } }
			s.API(t, "GET", "/api/channels", nil, &r)
			gone = len(r.Channels) == 0
		}
	}
	if !gone {
		t.Fatal("the stalled subscriber is still subscribed after 5000 publications")
	}
	released = true
	stalled.Unlock()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("still open after the queue overflowed")
	}
	if code := client.CloseCode(c.Err()); code != 1013 {
		t.Errorf("close code %d (%v), want 1013", code, c.Err())
	}
}

func TestIsPublication(t *testing.T) {
	info := &protocol.ClientInfo{Client: "1"}
	for _, tc := range []struct {
		m    protocol.ServerMessage
		want bool
	}{
		{protocol.ServerMessage{Channel: "chat:a", Offset: 1, Data: json.RawMessage(`1`)}, true},
		{protocol.ServerMessage{Channel: "chat:a", Join: info}, false},
		{protocol.ServerMessage{Channel: "chat:a", Leave: info}, false},
		{protocol.ServerMessage{Channel: "chat:a", PresenceCount: 300}, false},
		{protocol.ServerMessage{Missed: 3}, false},
		{protocol.ServerMessage{ID: 2, Result: json.RawMessage(`{}`)}, false},
		{protocol.ServerMessage{Error: &protocol.Error{Code: protocol.CodeBadRequest}}, false},
		{protocol.ServerMessage{Channel: "live:a"}, false}, // a push kind without data
	} {
		if got := client.IsPublication(tc.m); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.m, got, tc.want)
		}
	}
}
