package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/realtime/protocol"
)

// sessionIDPattern is the contract's session id: the node, a dot, and 22
// base64url characters (16 random bytes).
var sessionIDPattern = regexp.MustCompile(`^[0-9a-f]+\.[A-Za-z0-9_-]{22}$`)

// TestSSEStreamCarriesRepliesAndPushes: over SSE a client subscribes and
// publishes with emits, and the stream carries the replies and the pushes
// in order, exactly the socket's JSON; a WebSocket client in the same
// channel sees the SSE client's publication and the other way round; an
// idle stream gets a heartbeat comment every ping interval.
func TestSSEStreamCarriesRepliesAndPushes(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"WS_PING_INTERVAL": "200ms"}))
	const ch = "chat:sse"
	c := openSSE(t, s, "name=流", sseOptions{})
	if !sessionIDPattern.MatchString(c.session) {
		t.Fatalf("session id %q is not <node>.<22 base64url>", c.session)
	}
	if c.ping != 0.2 {
		t.Fatalf("session event ping %v, want 0.2 (WS_PING_INTERVAL)", c.ping)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	ws := dialRT(t, s, "name=socket")
	ws.Subscribe(ch)

	// Subscribe and publish in one emit: the reply to the subscribe, then
	// the publication and the publish's reply.
	ids := c.send(protocol.Command{Op: protocol.OpSubscribe, Channel: ch},
		protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"n":1}`)})
	sub, pub := c.reply(ids[0]), c.reply(ids[1])
	if sub.Error != nil || pub.Error != nil {
		t.Fatalf("subscribe %+v, publish %+v", sub.Error, pub.Error)
	}
	own := c.waitMsg("its own publication", func(m protocol.ServerMessage) bool { return m.Channel == ch && m.Offset == 1 })
	if own.Info == nil || own.Info.Name != "流" {
		t.Fatalf("own publication %+v", own)
	}
	if got := ws.WaitPubs(ch, 1, replyTimeout); pubN(t, got[0]) != 1 {
		t.Fatalf("socket client got %s", describePushes(got))
	}
	ws.Publish(ch, `{"n":2}`)
	apiPublish(t, s, ch, `{"n":3}`)
	c.waitMsg("publication 3", func(m protocol.ServerMessage) bool { return m.Channel == ch && m.Offset == 3 })
	wantContiguous(t, "sse client", c.pubs(ch), 1)

	// Order: a reply comes after everything queued before its command.
	msgs := c.messages()
	if msgs[0].ID != ids[0] {
		t.Fatalf("first message %+v, want the subscribe reply", msgs[0])
	}
	c.mu.Lock()
	beats := c.heartbeats
	c.mu.Unlock()
	if !c.waitState(5*time.Second, func() bool { return c.heartbeats >= beats+2 }) {
		t.Fatalf("no heartbeat comments on an idle stream in 5 s (ping 200ms)")
	}
}

// TestSSERecoveryOnResubscribe: a client that was away recovers what it
// missed by subscribing again with its position, over a new stream.
func TestSSERecoveryOnResubscribe(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:sse-recover"
	first := openSSE(t, s, "name=a", sseOptions{})
	r := first.subscribe(ch)
	for n := 1; n <= 3; n++ {
		apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d}`, n))
	}
	first.waitMsg("publication 3", func(m protocol.ServerMessage) bool { return m.Channel == ch && m.Offset == 3 })
	first.resp.Body.Close() // the client leaves
	for n := 4; n <= 6; n++ {
		apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d}`, n))
	}
	second := openSSE(t, s, "name=a", sseOptions{})
	var res protocol.SubscribeResult
	second.call(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Recover: &protocol.Position{Offset: 3, Epoch: r.Epoch}}, &res)
	if res.Recovered == nil || !*res.Recovered || res.Offset != 6 || len(res.Publications) != 3 || res.Publications[0].Offset != 4 {
		t.Fatalf("recover over SSE: %+v", res)
	}
	apiPublish(t, s, ch, `{"n":7}`)
	second.waitMsg("live publication 7", func(m protocol.ServerMessage) bool { return m.Channel == ch && m.Offset == 7 })
}

// TestSSEEmitErrors: every refusal of an emit has its status and JSON
// error, and the stream is not hurt by any of them: a ping afterwards is
// answered on it.
func TestSSEEmitErrors(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"WS_MAX_MESSAGE_BYTES": "8192"}))
	base := "http://" + s.addr
	alice := openSSE(t, s, "", sseOptions{Token: mintToken(t, "alice", "Alice")})
	guest := openSSE(t, s, "name=guest", sseOptions{})
	node, _, _ := strings.Cut(alice.session, ".")
	ping := `{"id":99,"op":"ping"}`

	cases := []struct {
		name   string
		sid    string
		body   string
		token  string
		header http.Header
		status int
		error  string
	}{
		{"unknown session", node + ".AAAAAAAAAAAAAAAAAAAAAA", ping, "", nil, 404, "unknown session"},
		{"no session", "", ping, "", nil, 404, "unknown session"},
		{"malformed session", "not-a-session", ping, "", nil, 404, "unknown session"},
		{"session with a short secret", node + ".abc", ping, "", nil, 404, "unknown session"},
		{"session of a node that is not here (memory broker)", "0badc0de." + strings.Repeat("A", 22), ping, "", nil, 404, "unknown session"},
		{"token of another user", alice.session, ping, mintToken(t, "bob", "Bob"), nil, 403, "identity does not match the session"},
		{"no token on a user's stream", alice.session, ping, "", nil, 403, "identity does not match the session"},
		{"a forged token", alice.session, ping, mintWith(t, "another-secret-0123456789abcdef0123", "alice", "A", time.Hour), nil, 403, "identity does not match the session"},
		{"token on a guest stream", guest.session, ping, mintToken(t, "alice", "Alice"), nil, 403, "identity does not match the session"},
		{"oversized body", guest.session, strings.Repeat(" ", 8193), "", nil, 413, "body over the largest message (WS_MAX_MESSAGE_BYTES)"},
		{"oversized body, up to twice the limit", guest.session, strings.Repeat(" ", 16384), "", nil, 413, "body over the largest message (WS_MAX_MESSAGE_BYTES)"},
		{"foreign Origin", guest.session, ping, "", http.Header{"Origin": {"http://evil.example"}}, 403, "origin not allowed: http://evil.example (add it to ALLOWED_ORIGINS)"},
		{"empty body", guest.session, "", "", nil, 400, "the body must be one or more JSON commands in UTF-8"},
		{"body not UTF-8", guest.session, "{\"id\":1,\"op\":\"ping\"}\xff", "", nil, 400, "the body must be one or more JSON commands in UTF-8"},
	}
	for _, tc := range cases {
		status, body := postEmit(t, base, tc.sid, tc.body, tc.token, tc.header)
		var got struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &got)
		if status != tc.status || got.Error == "" || (tc.error != "" && got.Error != tc.error) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, status, body, tc.status, tc.error)
		}
	}

	// Far over the limit the server answers from the headers and closes
	// the connection: 413, or a reset for a client still sending.
	if status, body, err := tryPostEmit(base, guest.session, strings.Repeat(" ", 1<<20)); err == nil &&
		(status != 413 || !strings.Contains(body, "WS_MAX_MESSAGE_BYTES")) {
		t.Errorf("a 1 MiB emit: %d %s, want 413 or a closed connection", status, body)
	}

	// What is allowed: the user's own token, a refreshed one of the same
	// user, the page's own Origin, a body over the API's 4 KiB limit for
	// requests without the key (one socket message may be 8 KiB here).
	fresh := mintWith(t, testTokenSecret, "alice", "Alice again", 2*time.Hour)
	for i, token := range []string{alice.token, fresh} {
		if status, body := alice.emitAs(fmt.Sprintf(`{"id":%d,"op":"ping"}`, 1000+i), token, nil); status != 204 {
			t.Fatalf("alice's emit with token %d: %d %s", i, status, body)
		}
		alice.reply(uint64(1000 + i))
	}
	own := http.Header{"Origin": {"http://" + s.addr}}
	big := `{"id":2000,"op":"ping"}` + strings.Repeat(" ", 6000)
	for _, body := range []string{`{"id":1999,"op":"ping"}`, big} {
		if status, resp := guest.emitAs(body, "", own); status != 204 {
			t.Fatalf("guest emit of %d bytes with its own Origin: %d %s", len(body), status, resp)
		}
	}
	guest.reply(1999)
	guest.reply(2000)
	// A bad command is the protocol's error reply on the stream, not an
	// emit error.
	if status, _ := guest.emitAs(`{"id":3000,"op":"nonsense"}`, "", nil); status != 204 {
		t.Fatalf("bad command: %d, want 204 and an error reply", status)
	}
	if m := guest.reply(3000); m.Error == nil || m.Error.Code != protocol.CodeBadRequest {
		t.Fatalf("bad command reply %+v", m)
	}

	// A closed stream: 410 while the node remembers it.
	apiEmptyOK(t, s, "/api/disconnect", `{"user":"alice","code":4100,"reason":"bye"}`)
	if ev := alice.waitClose(replyTimeout); ev.Code != 4100 || ev.Reason != "bye" {
		t.Fatalf("disconnect API: close %+v, want 4100 bye", ev)
	}
	waitFor(t, "the stream to be gone", replyTimeout, func() bool { return s.app.Connections() == 1 })
	if status, body := alice.emitAs(ping, alice.token, nil); status != 410 || !strings.Contains(body, "session closed") {
		t.Fatalf("emit to a closed stream: %d %s, want 410", status, body)
	}
	// The stream a client left: the same once the server notices.
	guest.resp.Body.Close()
	waitFor(t, "the left stream to be gone", 3*replyTimeout, func() bool {
		status, _ := guest.emitAs(ping, "", nil)
		return status == 410
	})
}

// TestSSEStreamRefusals: the stream is refused before it starts with the
// socket's statuses and JSON errors.
func TestSSEStreamRefusals(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"MAX_CONNECTIONS": "2"}))
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{"bad token", "token=nonsense", nil, 401},
		{"foreign Origin", "name=x", http.Header{"Origin": {"http://evil.example"}}, 403},
		{"bad name", "name=" + strings.Repeat("x", 200), nil, 400},
	} {
		c, status, body := tryOpenSSE(t, s, tc.query, sseOptions{Header: tc.header})
		var got struct {
			Error string `json:"error"`
		}
		if c != nil || status != tc.status || json.Unmarshal([]byte(body), &got) != nil || got.Error == "" {
			t.Errorf("%s: %d %s, want %d with a JSON error", tc.name, status, body, tc.status)
		}
	}
	// SSE streams count against MAX_CONNECTIONS with sockets.
	openSSE(t, s, "name=one", sseOptions{})
	// Answered: registered (the 101 reaches the client before the
	// session is, so a third request right after it could still get in).
	dialRT(t, s, "name=two").Ping()
	if _, status, _ := tryOpenSSE(t, s, "name=three", sseOptions{}); status != 503 {
		t.Fatalf("a third connection over SSE: %d, want 503", status)
	}
	_, resp, err := websocket.DefaultDialer.Dial(s.wsURL("/realtime?name=three"), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("a third connection over a socket: %v, want 503", err)
	}
}

// TestSSEAbuseClosesWith1008: rate limits and abuse are the socket's:
// past the burst commands are answered rate_limited, and sustained
// violations end the stream with close 1008.
func TestSSEAbuseClosesWith1008(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	c := openSSE(t, s, "name=flood", sseOptions{})
	lines := make([]string, 200)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":%d,"op":"ping"}`, i+1)
	}
	if status, body := c.emitAs(strings.Join(lines, "\n"), "", nil); status != 204 {
		t.Fatalf("flood emit: %d %s", status, body)
	}
	if ev := c.waitClose(replyTimeout); ev.Code != 1008 {
		t.Fatalf("close %+v, want 1008", ev)
	}
	limited := 0
	for _, m := range c.messages() {
		if m.Error != nil && m.Error.Code == protocol.CodeRateLimited {
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("no rate_limited replies before the close")
	}
}

// TestSSETokenExpiryClosesWith4001: a stream opened with a token closes
// with 4001 when the token expires, like a socket.
func TestSSETokenExpiryClosesWith4001(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	// Expired 4 s ago: still accepted (5 s leeway), closed within a second.
	tok, _ := testToken(t, "42", -4*time.Second)
	c := openSSE(t, s, "", sseOptions{Token: tok})
	if ev := c.waitClose(10 * time.Second); ev.Code != protocol.CloseTokenExpired || ev.Reason != "token expired" {
		t.Fatalf("close %+v, want 4001 token expired", ev)
	}
}

// TestSSEDisconnectByClientID: POST /api/disconnect by client id finds a
// stream as it finds a socket, and closes it with the code and reason.
func TestSSEDisconnectByClientID(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	c := openSSE(t, s, "name=x", sseOptions{})
	var cr protocol.ConnectResult
	c.call(protocol.Command{Op: protocol.OpConnect}, &cr)
	other := openSSE(t, s, "name=y", sseOptions{})
	apiEmptyOK(t, s, "/api/disconnect", `{"client":"`+cr.Client+`","code":4321,"reason":"just you"}`)
	if ev := c.waitClose(replyTimeout); ev.Code != 4321 || ev.Reason != "just you" {
		t.Fatalf("close %+v, want 4321 just you", ev)
	}
	other.call(protocol.Command{Op: protocol.OpPing}, nil) // the other stream is untouched
}

// TestSSEShutdownSendsGoingAway: at shutdown a stream gets what was
// queued, then the close event 1001, then it ends; the shutdown does not
// wait for its deadline.
func TestSSEShutdownSendsGoingAway(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const ch = "chat:sse-bye"
	c := openSSE(t, s, "name=last", sseOptions{})
	c.subscribe(ch)
	apiPublish(t, s, ch, `{"n":1}`)
	start := time.Now()
	if err := s.shutdown(t, 10*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("shutdown took %s: it waited for the stream", took)
	}
	if ev := c.waitClose(replyTimeout); ev.Code != 1001 {
		t.Fatalf("close %+v, want 1001", ev)
	}
	if got := c.pubs(ch); len(got) != 1 {
		t.Fatalf("publications before the close: %s", describePushes(got))
	}
}

// TestSSEWithAConnectHook: with a connect hook the backend judges the
// stream's token (at its first command, as on a socket), and the emits
// prove their identity with that same token.
func TestSSEWithAConnectHook(t *testing.T) {
	s, _ := startHookedServer(t, moderatingBackend(t), "1s")
	c := openSSE(t, s, "", sseOptions{Token: "tok-42"})
	var cr protocol.ConnectResult
	c.call(protocol.Command{Op: protocol.OpConnect}, &cr)
	if cr.User != "42" || cr.Name != "李旺" {
		t.Fatalf("connect through the hook: %+v, want user 42 李旺", cr)
	}
	for _, token := range []string{"", "tok-43", mintToken(t, "43", "other")} {
		if status, body := c.emitAs(`{"id":50,"op":"ping"}`, token, nil); status != http.StatusForbidden {
			t.Fatalf("emit with token %q: %d %s, want 403", token, status, body)
		}
	}
	// A token of the same user that TOKEN_SECRET verifies is the user too.
	if status, body := c.emitAs(`{"id":51,"op":"ping"}`, mintToken(t, "42", "李旺"), nil); status != http.StatusNoContent {
		t.Fatalf("emit with another token of user 42: %d %s", status, body)
	}
	c.reply(51)
	// A guest of the hook's sends no token.
	g := openSSE(t, s, "name=游客", sseOptions{})
	g.call(protocol.Command{Op: protocol.OpPing}, nil)
}

// TestSSEEmitPreflight: the preflight of a signed-in emit (Authorization
// is not a CORS-simple header) is allowed only for an origin the policy
// allows, and names nothing for another; the browser test
// TestSSEFromAnAllowedOrigin shows the allowed one at work.
func TestSSEEmitPreflight(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"ALLOWED_ORIGINS": "https://app.example"}))
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, "http://"+s.addr+"/realtime/emit?session=x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := preflight("https://app.example")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("allowed origin's preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp = preflight("http://evil.example")
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin's preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestSSEClientThatLeavesIsGoneAtOnce: a client that drops its stream
// (a page closed or reloaded, a fetch aborted) leaves its channels when
// the connection closes, as a socket's does, not at the next heartbeat
// (WS_PING_INTERVAL, 25 s here) that finds the connection gone; until
// then it stayed a member for the others and held its connection slot.
func TestSSEClientThatLeavesIsGoneAtOnce(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	const room = "chat:sse-left"
	ws := dialRT(t, s, "name=watcher")
	ws.Subscribe(room)
	c := openSSE(t, s, "name=leaver", sseOptions{})
	var cr protocol.ConnectResult
	c.call(protocol.Command{Op: protocol.OpConnect}, &cr)
	c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: room}, nil)
	ws.WaitPush("the stream's join", func(m protocol.ServerMessage) bool {
		return m.Channel == room && m.Join != nil && m.Join.Client == cr.Client
	})
	c.resp.Body.Close() // the client goes; its connection closes
	ws.WaitPush("the stream's leave, well before a heartbeat", func(m protocol.ServerMessage) bool {
		return m.Channel == room && m.Leave != nil && m.Leave.Client == cr.Client
	})
}
