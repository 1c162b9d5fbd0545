package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/wsclient"
	"github.com/duplex/duplex/internal/wstest"
	"github.com/duplex/duplex/realtime/protocol"
	"github.com/duplex/duplex/wsconn"
)

// chromeOffer is the Sec-WebSocket-Extensions offer Chrome sends.
const chromeOffer = "permessage-deflate; client_max_window_bits"

// contextClient is a /realtime client that negotiates deflate as Chrome
// does and inflates with context takeover (internal/wsclient), strict
// about what it reads, counting the bytes it reads.
type contextClient struct {
	t    *testing.T
	c    *wsclient.Conn
	wire atomic.Int64
	next uint64
}

func dialContextClient(t *testing.T, s *testServer, query string) *contextClient {
	t.Helper()
	cc := &contextClient{t: t}
	c, err := wsclient.Dial(context.Background(), realtimeURL(s, query), wsclient.Options{
		Extensions: chromeOffer,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			return wstest.CountingConn{Conn: nc, N: &cc.wire}, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cc.c = c
	return cc
}

// read returns the next message, decoded.
func (cc *contextClient) read() protocol.ServerMessage {
	cc.t.Helper()
	_ = cc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := cc.c.ReadMessage()
	if err != nil {
		cc.t.Fatalf("read: %v", err)
	}
	m, err := protocol.DecodeServerMessage(data)
	if err != nil {
		cc.t.Fatalf("decode %.100q: %v", data, err)
	}
	return m
}

// subscribe subscribes and reads the answer.
func (cc *contextClient) subscribe(channel string) {
	cc.t.Helper()
	cc.next++
	cmd := fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":%q}`, cc.next, channel)
	if err := cc.c.WriteMessage(wsclient.TextMessage, []byte(cmd)); err != nil {
		cc.t.Fatal(err)
	}
	if m := cc.read(); m.ID != cc.next || m.Error != nil {
		cc.t.Fatalf("subscribe %s: %+v", channel, m)
	}
}

// chatData is about 1 KB of a room's chat as a backend pushes it,
// different for every i.
func chatData(i int) string {
	users := []string{"李旺", "王芳", "张伟", "alice", "bob_42", "夜猫子"}
	texts := []string{"大家好", "今天的比赛太精彩了", "主播加油!", "good game", "前方高能", "这波不亏", "see you tomorrow"}
	var msgs []string
	for k := 0; len(strings.Join(msgs, ",")) < 900; k++ {
		u := (i*5 + k*7) % len(users)
		msgs = append(msgs, fmt.Sprintf(`{"uid":%d,"name":%q,"avatar":"https://cdn.example.com/a/%d.png","text":%q,"ts":%d}`,
			100000+u, users[u], 100000+u, texts[(i+k*3)%len(texts)], 1_700_000_000_000+int64(i*1000+k)))
	}
	return `{"msgs":[` + strings.Join(msgs, ",") + `]}`
}

// A strict client that lets the server keep its context, as browsers do,
// inflates every publication exactly, whether it came compressed against
// the channel's previous one or on its own: across another channel's
// publications in between, and for a client that subscribed mid-stream.
// The one that got them all in a row read far fewer bytes than compressing
// each alone would cost.
func TestRealtimeContextClientInflatesEveryPublication(t *testing.T) {
	s := startServer(t, map[string]string{"API_KEY": testAPIKey})
	// Enough subscribers for the channel to keep its last publication
	// (realtime's followMinSubscribers), the clients below included.
	for i := range 6 {
		dialRT(t, s, fmt.Sprintf("name=pad%d", i)).Subscribe("push:ctx")
	}
	steady := dialContextClient(t, s, "name=steady")
	if !steady.c.ContextTakeover() || steady.c.Extensions() != "permessage-deflate; client_no_context_takeover" {
		t.Fatalf("negotiated %q (context takeover %v)", steady.c.Extensions(), steady.c.ContextTakeover())
	}
	steady.subscribe("push:ctx")
	mixed := dialContextClient(t, s, "name=mixed")
	mixed.subscribe("push:ctx")
	mixed.subscribe("push:other")

	const pubs = 16
	want := map[string]string{} // channel|offset -> data
	var late *contextClient
	wire0 := steady.wire.Load()
	for i := range pubs {
		r := apiPublish(t, s, "push:ctx", chatData(i))
		want[fmt.Sprintf("push:ctx|%d", r.Offset)] = chatData(i)
		if i%3 == 1 { // between two of push:ctx's, one of push:other's
			r := apiPublish(t, s, "push:other", chatData(100+i))
			want[fmt.Sprintf("push:other|%d", r.Offset)] = chatData(100 + i)
		}
		if i == pubs/2 {
			late = dialContextClient(t, s, "name=late")
			late.subscribe("push:ctx")
		}
	}
	check := func(cc *contextClient, name string, n int) {
		t.Helper()
		for range n {
			m := cc.read()
			key := fmt.Sprintf("%s|%d", m.Channel, m.Offset)
			var compact bytes.Buffer
			_ = json.Compact(&compact, []byte(want[key]))
			if w, ok := want[key]; !ok || string(m.Data) != compact.String() {
				t.Fatalf("%s: %s got %.80q, want %.80q", name, key, m.Data, w)
			}
		}
	}
	check(steady, "steady", pubs)
	check(mixed, "mixed", pubs+pubs/3)
	check(late, "late", pubs-pubs/2-1)

	var plain, alone int
	for i := range pubs {
		frame := fmt.Sprintf(`{"channel":"push:ctx","offset":%d,"data":%s}`, i+1, chatData(i))
		plain += len(frame)
		alone += len(wsconn.DeflateMessage([]byte(frame)))
	}
	read := int(steady.wire.Load() - wire0)
	t.Logf("%d publications: %d bytes plain, %d compressed alone; the steady client read %d", pubs, plain, alone, read)
	if read*4 > alone*3 {
		t.Fatalf("the steady client read %d bytes, at least 3/4 of compressing each alone (%d): not compressed against the previous ones", read, alone)
	}
}

// With WS_COMPRESSION_CONTEXT=off the same offer is answered with
// server_no_context_takeover, and every message is compressed alone.
func TestRealtimeContextOffAnswersNoContextTakeover(t *testing.T) {
	s := startServer(t, map[string]string{"API_KEY": testAPIKey, "WS_COMPRESSION_CONTEXT": "off"})
	cc := dialContextClient(t, s, "name=x")
	if cc.c.ContextTakeover() || cc.c.Extensions() != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("negotiated %q (context takeover %v)", cc.c.Extensions(), cc.c.ContextTakeover())
	}
	cc.subscribe("push:ctx")
	apiPublish(t, s, "push:ctx", chatData(1))
	if m := cc.read(); m.Channel != "push:ctx" {
		t.Fatalf("got %+v", m)
	}
}
