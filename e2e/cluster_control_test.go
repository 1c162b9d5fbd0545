package e2e

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// closeFrame waits until the server closes c and returns the close
// frame's code and reason.
func closeFrame(t *testing.T, c *rttest.Conn, what string) (int, string) {
	t.Helper()
	c.WaitClose(clusterReplyTimeout)
	var ce *client.CloseError
	if !errors.As(c.ReadErr(), &ce) {
		t.Fatalf("%s: ended without a close frame: %v", what, c.ReadErr())
	}
	return ce.Code, ce.Text
}

// waitUnsubscribed waits for the server's unsubscribed push on channel.
func waitUnsubscribed(c *rttest.Conn, what, channel string) protocol.Unsubscribed {
	m := c.WaitPush(what+": unsubscribed push on "+channel, func(m protocol.ServerMessage) bool {
		return m.Channel == channel && m.Unsubscribed != nil
	})
	return *m.Unsubscribed
}

// connectResult is the connection's connect result (who it is).
func connectResult(c *rttest.Conn) protocol.ConnectResult {
	var cr protocol.ConnectResult
	c.OK(protocol.Command{Op: protocol.OpConnect}, &cr)
	return cr
}

// TestClusterServerAPIControlsConnections: three nodes over a three-server
// NATS cluster. GET /api/info on any node lists the three with their
// connections; POST /api/unsubscribe through one node takes a user out
// of a channel on the others; POST /api/disconnect through one node
// closes a client id on another, and a user's connections everywhere.
func TestClusterServerAPIControlsConnections(t *testing.T) {
	c := startCluster(t)
	const room = "chat:cluster-control"
	var tok struct {
		Token string `json:"token"`
	}
	apiOK(t, c.nodeURL(0), "POST", "/api/token", map[string]string{"user": "42"}, &tok)
	q := "token=" + url.QueryEscape(tok.Token)
	user0, user2 := mustDialRT(t, c.nodeURL(0), q), mustDialRT(t, c.nodeURL(2), q)
	guest1 := mustDialRT(t, c.nodeURL(1), "name=旁观")
	guestID := connectResult(guest1).Client
	nodeOf := func(client string) string { return client[:strings.LastIndexByte(client, '-')] }
	nodes := []string{nodeOf(connectResult(user0).Client), nodeOf(guestID), nodeOf(connectResult(user2).Client)}
	for _, cl := range []*rttest.Conn{user0, user2, guest1} {
		cl.Subscribe(room)
	}

	// Every node answers for the three.
	for i := range c.nodes {
		var info struct {
			Nodes []realtime.NodeInfo `json:"nodes"`
		}
		apiOK(t, c.nodeURL(i), "GET", "/api/info", nil, &info)
		if len(info.Nodes) != 3 {
			t.Fatalf("info from node %d: %+v, want three nodes", i, info)
		}
		for k, nd := range info.Nodes {
			// Sorted by node id; every node has one connection here.
			if k > 0 && info.Nodes[k-1].Node >= nd.Node {
				t.Fatalf("info from node %d is not sorted by node: %+v", i, info.Nodes)
			}
			if nd.Connections != 1 || nd.Channels != 1 || nd.Version == "" || nd.UptimeSeconds < 0 {
				t.Fatalf("info from node %d: node %+v, want 1 connection in 1 channel", i, nd)
			}
		}
		listed := map[string]bool{}
		for _, nd := range info.Nodes {
			listed[nd.Node] = true
		}
		for _, want := range nodes {
			if !listed[want] {
				t.Fatalf("info from node %d lacks node %s: %+v", i, want, info.Nodes)
			}
		}
	}

	// Unsubscribe through node 1, where the user has no connection.
	apiOK(t, c.nodeURL(1), "POST", "/api/unsubscribe", map[string]string{"user": "42", "channel": room, "reason": "移出房间"}, nil)
	for what, cl := range map[string]*rttest.Conn{"user on node 0": user0, "user on node 2": user2} {
		if got := waitUnsubscribed(cl, what, room); got.Reason != "移出房间" {
			t.Fatalf("%s: unsubscribed %+v", what, got)
		}
	}

	// Disconnect node 1's guest by client id, through node 0.
	apiOK(t, c.nodeURL(0), "POST", "/api/disconnect", map[string]any{"client": guestID, "code": 4100, "reason": "kicked"}, nil)
	if code, reason := closeFrame(t, guest1, "guest on node 1"); code != 4100 || reason != "kicked" {
		t.Fatalf("guest on node 1 closed with %d %q, want 4100 kicked", code, reason)
	}
	// And the user everywhere, through node 1.
	apiOK(t, c.nodeURL(1), "POST", "/api/disconnect", map[string]any{"user": "42", "code": 4500, "reason": "banned"}, nil)
	for what, cl := range map[string]*rttest.Conn{"user on node 0": user0, "user on node 2": user2} {
		if code, reason := closeFrame(t, cl, what); code != 4500 || reason != "banned" {
			t.Fatalf("%s closed with %d %q, want 4500 banned", what, code, reason)
		}
	}
	status, body := api(c.nodeURL(2), "POST", "/api/disconnect", map[string]any{"user": "42", "code": 1001})
	if status != 400 {
		t.Fatalf("disconnect with 1001: %d %s, want 400", status, body)
	}
}

// TestClusterTokenRefreshAndExpiry: a real node closes a connection whose
// token expired with 4001, and keeps one that refreshed it.
func TestClusterTokenRefreshAndExpiry(t *testing.T) {
	c := startCluster(t)
	secret := []byte(clusterTokenSecret)
	// Expired 2 s ago, accepted within the 5 s leeway: closed 2 to 3 s
	// from now (a token's exp is in whole seconds). Closer to the leeway's
	// end, a loaded CI machine's dials, connects and refresh through three
	// processes outlasted what was left, and the connection meant to be
	// kept was closed before its refresh.
	old, err := realtime.MintToken(secret, "7", "", -2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := realtime.MintToken(secret, "7", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// One node, and kept armed first: with the same due time its timer
	// would fire first, so the barrier below cannot overtake it.
	kept, expiring := mustDialRT(t, c.nodeURL(0), ""), mustDialRT(t, c.nodeURL(0), "")
	for _, cl := range []*rttest.Conn{kept, expiring} {
		cl.OK(protocol.Command{Op: protocol.OpConnect, Token: old}, nil)
	}
	var rr protocol.RefreshResult
	kept.OK(protocol.Command{Op: protocol.OpRefresh, Token: fresh}, &rr)
	if rr.ExpiresIn < 3600 {
		t.Fatalf("refresh result %+v", rr)
	}
	if code, reason := closeFrame(t, expiring, "the connection that did not refresh"); code != protocol.CloseTokenExpired || reason != "token expired" {
		t.Fatalf("closed with %d %q, want 4001 token expired", code, reason)
	}
	// Its token's close time has passed: the refreshed one still answers.
	kept.OK(protocol.Command{Op: protocol.OpPing}, nil)
}
