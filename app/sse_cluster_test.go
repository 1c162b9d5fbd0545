package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestSSEEmitIsRoutedToTheOwningNode: behind a balancer without sticky
// sessions an emit may land on another node than the stream. Two nodes
// share an embedded NATS server: emits posted to B for a stream on A are
// routed to A, handled there in order, and their replies and pushes come
// on A's stream; B refuses what A would refuse (identity, a closed
// stream), a node that does not exist is 404, and once A is gone its
// sessions are 404 on B.
func TestSSEEmitIsRoutedToTheOwningNode(t *testing.T) {
	n := natstest.Start(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	b := startServer(t, natsEnv(n.URL(), nil))
	onB := "http://" + b.addr
	const ch = "chat:sse-routed"

	c := openSSE(t, a, "", sseOptions{Token: mintToken(t, "alice", "Alice")})
	emitOnB := func(body, token string) (int, string) {
		t.Helper()
		return postEmit(t, onB, c.session, body, token, nil)
	}
	sub := `{"id":1,"op":"subscribe","channel":"` + ch + `"}`
	pub := `{"id":2,"op":"publish","channel":"` + ch + `","data":{"n":1}}`
	if status, body := emitOnB(sub+"\n"+pub, c.token); status != http.StatusNoContent {
		t.Fatalf("emit through B: %d %s", status, body)
	}
	if m := c.reply(1); m.Error != nil {
		t.Fatalf("subscribe through B: %+v", m.Error)
	}
	if m := c.reply(2); m.Error != nil {
		t.Fatalf("publish through B: %+v", m.Error)
	}
	c.waitMsg("the publication", func(m protocol.ServerMessage) bool { return m.Channel == ch && m.Offset == 1 })
	if msgs := c.messages(); msgs[0].ID != 1 {
		t.Fatalf("first message on the stream %+v, want the subscribe reply", msgs[0])
	}
	// B answers what A decides.
	if status, body := emitOnB(`{"id":3,"op":"ping"}`, mintToken(t, "bob", "Bob")); status != http.StatusForbidden ||
		!strings.Contains(body, "identity does not match the session") {
		t.Fatalf("emit through B with another user's token: %d %s", status, body)
	}
	node, _, _ := strings.Cut(c.session, ".")
	if status, _ := postEmit(t, onB, node+"."+strings.Repeat("B", 22), `{"id":4,"op":"ping"}`, "", nil); status != http.StatusNotFound {
		t.Fatalf("unknown session on A through B: %d, want 404", status)
	}
	if status, _ := postEmit(t, onB, "feedf00d."+strings.Repeat("B", 22), `{"id":4,"op":"ping"}`, "", nil); status != http.StatusNotFound {
		t.Fatalf("a node that does not exist: %d, want 404", status)
	}

	// A stream that ended on A is 410 through B.
	apiEmptyOK(t, a, "/api/disconnect", `{"user":"alice"}`)
	c.waitClose(replyTimeout)
	waitFor(t, "A to drop the stream", replyTimeout, func() bool { return a.app.Connections() == 0 })
	if status, _ := emitOnB(`{"id":5,"op":"ping"}`, c.token); status != http.StatusGone {
		t.Fatalf("closed stream through B: %d, want 410", status)
	}

	// Once A is gone, nothing answers for its sessions: 404, and the
	// client opens a new stream.
	d := openSSE(t, a, "name=d", sseOptions{})
	if err := a.shutdown(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	d.waitClose(replyTimeout)
	if status, body := postEmit(t, onB, d.session, `{"id":1,"op":"ping"}`, "", nil); status != http.StatusNotFound {
		t.Fatalf("session of a node that shut down: %d %s, want 404", status, body)
	}
}

// TestSSEEmitToAnUnreachableOwnerIs503: when NATS is down, an emit for
// another node's stream cannot be routed: 503, and the client retries.
func TestSSEEmitToAnUnreachableOwnerIs503(t *testing.T) {
	n := natstest.Start(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	b := startServer(t, natsEnv(n.URL(), nil))
	c := openSSE(t, a, "name=c", sseOptions{})
	n.Shutdown()
	waitFor(t, "B to notice NATS is down", 5*time.Second, func() bool {
		status, _ := readyz(t, b)
		return status == 503
	})
	status, body := postEmit(t, "http://"+b.addr, c.session, `{"id":1,"op":"ping"}`, "", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "retry later") {
		t.Fatalf("emit while the owner is unreachable: %d %s, want 503", status, body)
	}
	// On its own node the stream still works.
	c.call(protocol.Command{Op: protocol.OpPing}, nil)
}
