package app

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// dialUser opens /realtime signed in as user with an hour's token, and
// returns once the server has filed the connection under the user.
func dialUser(t *testing.T, s *testServer, user string) *rtClient {
	t.Helper()
	tok, _ := testToken(t, user, time.Hour)
	c := rttest.MustDial(t, realtimeURL(s, "token="+url.QueryEscape(tok)), rttest.Options{Name: "user " + user})
	// The upgrade's answer comes before the server has set the
	// connection up; one round trip later the hub knows its user.
	c.Ping()
	return c
}

// clientID is the connection's client id, from connect.
func clientID(c *rtClient) string {
	var cr protocol.ConnectResult
	c.OK(protocol.Command{Op: protocol.OpConnect}, &cr)
	return cr.Client
}

// apiEmptyOK posts body to path and requires 200 {}.
func apiEmptyOK(t *testing.T, s *testServer, path, body string) {
	t.Helper()
	var out map[string]any
	apiJSON(t, s, "POST", path, body, &out)
	if len(out) != 0 {
		t.Fatalf("POST %s %s: got %v, want {}", path, body, out)
	}
}

// publicationsOf is c's publications on channel: its pushes with data
// (not join, leave or unsubscribed).
func publicationsOf(c *rtClient, channel string) []protocol.ServerMessage {
	var out []protocol.ServerMessage
	for _, m := range c.Pubs(channel) {
		if m.Data != nil {
			out = append(out, m)
		}
	}
	return out
}

// unsubscribedPush waits for the server's unsubscribed push on channel.
func unsubscribedPush(c *rtClient, channel string) protocol.Unsubscribed {
	m := c.WaitPush("unsubscribed from "+channel, func(m protocol.ServerMessage) bool {
		return m.Channel == channel && m.Unsubscribed != nil
	})
	return *m.Unsubscribed
}

func TestAPIDisconnectUser(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	first, second := dialUser(t, s, "42"), dialUser(t, s, "42")
	other := dialUser(t, s, "43")
	guest := dialRT(t, s, "name=旁观者")

	apiEmptyOK(t, s, "/api/disconnect", `{"user":"42","code":4500,"reason":"封禁 banned"}`)
	for _, c := range []*rtClient{first, second} {
		if code, reason := closeFrame(t, c, replyTimeout); code != 4500 || reason != "封禁 banned" {
			t.Fatalf("%s: closed with %d %q, want 4500 \"封禁 banned\"", c.Name(), code, reason)
		}
	}
	other.Ping()
	guest.Ping()

	// Without a code and reason: 4000 and the default reason.
	apiEmptyOK(t, s, "/api/disconnect", `{"user":"43"}`)
	if code, reason := closeFrame(t, other, replyTimeout); code != protocol.CloseDisconnected || reason != "disconnected by the server" {
		t.Fatalf("closed with %d %q, want 4000 and the default reason", code, reason)
	}
	// A user with no connection: nothing to do, still 200.
	apiEmptyOK(t, s, "/api/disconnect", `{"user":"nobody"}`)
	guest.Ping()
}

func TestAPIDisconnectClient(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	spammer, bystander := dialRT(t, s, "name=刷屏"), dialRT(t, s, "name=路人")
	id := clientID(spammer)

	apiEmptyOK(t, s, "/api/disconnect", fmt.Sprintf(`{"client":%q,"code":1008,"reason":"spam"}`, id))
	if code, reason := closeFrame(t, spammer, replyTimeout); code != 1008 || reason != "spam" {
		t.Fatalf("closed with %d %q, want 1008 spam", code, reason)
	}
	// Ids of connections gone, or of another node, name nothing here.
	apiEmptyOK(t, s, "/api/disconnect", fmt.Sprintf(`{"client":%q}`, id))
	apiEmptyOK(t, s, "/api/disconnect", `{"client":"othernode-1"}`)
	bystander.Ping()
}

func TestAPIDisconnectValidation(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	c := dialUser(t, s, "42")
	long := strings.Repeat("长", 41) // 123 bytes: the most a reason may have
	for _, tc := range []struct{ body, why string }{
		{`{}`, "neither user nor client"},
		{`{"user":"42","client":"a-1"}`, "both user and client"},
		{`{"user":"42","code":1001}`, "1001 is the server's own"},
		{`{"user":"42","code":3000}`, "3000 is below the application range"},
		{`{"user":"42","code":5000}`, "5000 is above it"},
		{`{"user":"42","code":1011}`, "1011 is not allowed"},
		{`{"user":"42","reason":"` + long + `x"}`, "124 bytes of reason"},
		{`{"user":"a b"}`, "a user id with a space"},
		{`{"client":"nonode"}`, "a client id without a number"},
		{`{"user":"42","code":"4000"}`, "a code that is a string"},
	} {
		status, _, body := apiRequest(t, s, "POST", "/api/disconnect", testAPIKey, tc.body)
		if status != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s (%s): %d %s, want 400", tc.why, tc.body, status, body)
		}
	}
	c.Ping() // none of them closed anything

	apiEmptyOK(t, s, "/api/disconnect", `{"user":"42","code":4999,"reason":"`+long+`"}`)
	if code, reason := closeFrame(t, c, replyTimeout); code != 4999 || reason != long {
		t.Fatalf("closed with %d %q, want 4999 and the 123-byte reason", code, reason)
	}
}

func TestAPIUnsubscribeUser(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const room, other = "chat:control-room", "chat:control-other"
	u, u2 := dialUser(t, s, "42"), dialUser(t, s, "42")
	watcher := dialRT(t, s, "name=看客")
	uID := clientID(u)
	for _, c := range []*rtClient{u, u2, watcher} {
		c.Subscribe(room)
	}
	u.Subscribe(other)
	// Joins and leaves within one tick cancel out: the join comes first.
	watcher.WaitPush("the user's join", func(m protocol.ServerMessage) bool {
		return m.Channel == room && m.Join != nil && m.Join.Client == uID
	})

	apiEmptyOK(t, s, "/api/unsubscribe", `{"user":"42","channel":"`+room+`"}`)
	for _, c := range []*rtClient{u, u2} {
		if got := unsubscribedPush(c, room); got.Reason != "unsubscribed by the server" {
			t.Fatalf("%s: unsubscribed push %+v", c.Name(), got)
		}
		c.Fails(protocol.Command{Op: protocol.OpUnsubscribe, Channel: room}, protocol.CodeNotFound)
	}
	watcher.WaitPush("the user's leave", func(m protocol.ServerMessage) bool {
		return m.Channel == room && m.Leave != nil && m.Leave.Client == uID
	})

	// A publication after the unsubscribe reaches the watcher, not the
	// user; the user's new subscription then gets the next one (the
	// barrier: had the first reached the old subscription, it would be
	// there before it).
	apiPublish(t, s, room, `{"n":1}`)
	watcher.WaitPubs(room, 1, replyTimeout)
	u.Subscribe(room)
	apiPublish(t, s, room, `{"n":2}`)
	u.WaitOffset(room, 2, replyTimeout)
	if got := publicationsOf(u, room); len(got) != 1 || pubN(t, got[0]) != 2 {
		t.Fatalf("user got %s on %s, want only n=2", describePushes(got), room)
	}
	// The user's other channel was left alone.
	apiPublish(t, s, other, `{"n":3}`)
	u.WaitPubs(other, 1, replyTimeout)

	// With a reason.
	apiEmptyOK(t, s, "/api/unsubscribe", `{"user":"42","channel":"`+other+`","reason":"房间已关闭"}`)
	if got := unsubscribedPush(u, other); got.Reason != "房间已关闭" {
		t.Fatalf("unsubscribed push %+v, want the reason given", got)
	}

	for _, body := range []string{`{"channel":"` + room + `"}`, `{"user":"42"}`, `{"user":"42","channel":"nonamespace"}`, `{"user":"42","channel":"zz:x"}`} {
		status, _, resp := apiRequest(t, s, "POST", "/api/unsubscribe", testAPIKey, body)
		if status != 400 {
			t.Errorf("unsubscribe %s: %d %s, want 400", body, status, resp)
		}
	}
}

// infoBody is GET /api/info's answer, decoded strictly.
type infoBody struct {
	Nodes []realtime.NodeInfo `json:"nodes"`
}

func TestAPIInfo(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	a, b := dialUser(t, s, "42"), dialUser(t, s, "42")
	g := dialRT(t, s, "")
	aID := clientID(a)
	a.Subscribe("chat:info-1")
	b.Subscribe("chat:info-1")
	g.Subscribe("live:info-2")

	var info infoBody
	apiJSON(t, s, "GET", "/api/info", "", &info)
	if len(info.Nodes) != 1 {
		t.Fatalf("info %+v, want one node", info)
	}
	n := info.Nodes[0]
	if n.Node == "" || !strings.HasPrefix(aID, n.Node+"-") || n.Version != "test" ||
		n.Connections != 3 || n.Users != 1 || n.Channels != 2 || n.UptimeSeconds < 0 {
		t.Fatalf("node %+v, want 3 connections of 1 user in 2 channels, version test", n)
	}

	g.Close()
	waitFor(t, "the node's figures without the guest", replyTimeout, func() bool {
		apiJSON(t, s, "GET", "/api/info", "", &info)
		return info.Nodes[0].Connections == 2 && info.Nodes[0].Channels == 1
	})
	a.Close()
	b.Close()
	waitFor(t, "the node's figures without the user", replyTimeout, func() bool {
		apiJSON(t, s, "GET", "/api/info", "", &info)
		return info.Nodes[0].Connections == 0 && info.Nodes[0].Users == 0 && info.Nodes[0].Channels == 0
	})
}

func TestClusterControlThroughNATS(t *testing.T) {
	n := natstest.Start(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	b := startServer(t, natsEnv(n.URL(), nil))
	const room = "chat:cluster-control"

	onA, onB := dialUser(t, a, "42"), dialUser(t, b, "42")
	watcherA, guestB := dialRT(t, a, "name=甲"), dialRT(t, b, "name=乙")
	idA, idB := clientID(watcherA), clientID(guestB)
	for _, c := range []*rtClient{onA, onB, watcherA} {
		c.Subscribe(room)
	}

	// Info from either node lists both.
	var info infoBody
	apiJSON(t, b, "GET", "/api/info", "", &info)
	if len(info.Nodes) != 2 {
		t.Fatalf("info %+v, want both nodes", info)
	}
	byNode := map[string]realtime.NodeInfo{}
	for _, nd := range info.Nodes {
		byNode[nd.Node] = nd
	}
	nodeA, nodeB := idA[:strings.LastIndexByte(idA, '-')], idB[:strings.LastIndexByte(idB, '-')]
	if got := byNode[nodeA]; got.Connections != 2 || got.Users != 1 || got.Channels != 1 || got.Version != "test" {
		t.Fatalf("node A %+v, want 2 connections, 1 user, 1 channel", got)
	}
	if got := byNode[nodeB]; got.Connections != 2 || got.Users != 1 || got.Channels != 1 {
		t.Fatalf("node B %+v, want 2 connections, 1 user, 1 channel", got)
	}

	// Unsubscribe through node A reaches the user on B too.
	apiEmptyOK(t, a, "/api/unsubscribe", `{"user":"42","channel":"`+room+`"}`)
	unsubscribedPush(onA, room)
	unsubscribedPush(onB, room)

	// Disconnect one client of B through A, then the user everywhere
	// through B.
	apiEmptyOK(t, a, "/api/disconnect", fmt.Sprintf(`{"client":%q,"code":4100,"reason":"by id"}`, idB))
	if code, reason := closeFrame(t, guestB, replyTimeout); code != 4100 || reason != "by id" {
		t.Fatalf("guest on B closed with %d %q", code, reason)
	}
	apiEmptyOK(t, b, "/api/disconnect", `{"user":"42","code":4501}`)
	for _, c := range []*rtClient{onA, onB} {
		if code, _ := closeFrame(t, c, replyTimeout); code != 4501 {
			t.Fatalf("%s closed with %d, want 4501", c.Name(), code)
		}
	}
	watcherA.Ping()
}

// TestControlPushShape pins the unsubscribed push on the wire.
func TestControlPushShape(t *testing.T) {
	got := string(protocol.EncodeUnsubscribed("chat:a", "房间已关闭"))
	if want := `{"channel":"chat:a","unsubscribed":{"reason":"房间已关闭"}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var m protocol.ServerMessage
	if err := json.Unmarshal([]byte(got), &m); err != nil || m.Unsubscribed == nil || m.Unsubscribed.Reason != "房间已关闭" {
		t.Fatalf("decoded %+v (%v)", m, err)
	}
}
