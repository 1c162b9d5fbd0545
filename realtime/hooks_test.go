package realtime

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/hooktest"
	"github.com/duplex/duplex/realtime/protocol"
)

// testHookSecret signs the hook calls of these tests.
var testHookSecret = []byte("hook-secret-0123456789abcdef0123456789")

// hookNamespaces: "mod" has both hooks, "open" and "user" none.
func hookNamespaces() Namespaces {
	ns := unhookedNamespaces()
	ns["mod"] = NamespaceOptions{
		HistorySize: 10, HistoryTTL: time.Minute,
		Presence: PresenceMembers, JoinLeave: true,
		ClientPublish: true, SubscribeHook: true, PublishHook: true,
	}
	return ns
}

// unhookedNamespaces are hookNamespaces without mod, for hubs with only
// a connect hook.
func unhookedNamespaces() Namespaces {
	return Namespaces{
		"user": {HistorySize: 10, HistoryTTL: time.Minute, UserChannel: true},
		"open": {HistorySize: 10, HistoryTTL: time.Minute, Presence: PresenceMembers, ClientPublish: true},
	}
}

// hookedHub is a hub whose three hooks call backend, signed with
// testHookSecret, and its debug log.
func hookedHub(t *testing.T, backend *hooktest.Backend, timeout time.Duration) (*Hub, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	hooks := NewHTTPHooks(HTTPHooksConfig{
		ConnectURL:   backend.URL(hooktest.ConnectPath),
		SubscribeURL: backend.URL(hooktest.SubscribePath),
		PublishURL:   backend.URL(hooktest.PublishPath),
		Timeout:      timeout, Secret: testHookSecret,
	})
	h := newTestHub(t, HubConfig{
		Namespaces: hookNamespaces(), Hooks: hooks.Hooks(), HookTimeout: timeout,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return h, logs
}

func TestConnectHookAllowsWithIdentity(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.AnswerJSON(hooktest.ConnectPath, `{"result":{"user":"42","name":" 李旺 ","info":{"vip":true, "level": 3}}}`)
	h, _ := hookedHub(t, backend, time.Second)
	c, s := newClient(t, h, Identity{})
	c.SetHandshake(Handshake{IP: "203.0.113.5", Headers: map[string]string{"User-Agent": "test/1"}, Cookies: map[string]string{"session": "s3"}})

	msgs, _ := send(t, c, s, `{"id":1,"op":"connect","token":"opaque-backend-token"}`)
	r := decodeResult[protocol.ConnectResult](t, replyTo(t, msgs, 1))
	if r.User != "42" || r.Name != "李旺" || r.Client != h.clientID(s) {
		t.Errorf("connect result %+v, want user 42 named 李旺", r)
	}
	call := backend.Last(t, hooktest.ConnectPath)
	var req struct {
		Client, Token, Name, IP string
		Headers, Cookies        map[string]string
	}
	if err := json.Unmarshal(call.Body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Client != r.Client || req.Token != "opaque-backend-token" || req.Name != "" || req.IP != "203.0.113.5" ||
		req.Headers["User-Agent"] != "test/1" || req.Cookies["session"] != "s3" {
		t.Errorf("connect hook request %s", call.Body)
	}
	if !call.SignatureOK || call.RequestID == "" {
		t.Errorf("call signed %v (valid %v), request id %q", call.Signed, call.SignatureOK, call.RequestID)
	}

	// The identity is the backend's: presence shows it with its info.
	send(t, c, s, `{"id":2,"op":"subscribe","channel":"open:a"}`)
	msgs, _ = send(t, c, s, `{"id":3,"op":"presence","channel":"open:a"}`)
	p := decodeResult[protocol.PresenceResult](t, replyTo(t, msgs, 3))
	if m := p.Clients[r.Client]; m.User != "42" || string(m.ConnInfo) != `{"vip":true,"level":3}` {
		t.Errorf("presence entry %+v, want user 42 with conn_info", m)
	}
}

func TestConnectHookRunsBeforeTheFirstCommandWithoutConnect(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.AnswerJSON(hooktest.ConnectPath, `{"result":{"user":"7"}}`)
	h, _ := hookedHub(t, backend, time.Second)
	c, s := newClient(t, h, Identity{Name: "小明"})
	c.SetHandshake(Handshake{Token: "from-the-query", Name: "小明"})

	if msgs, _ := send(t, c, s, `{"id":1,"op":"ping"}`); len(backend.Calls(hooktest.ConnectPath)) != 0 || msgs[0].Error != nil {
		t.Fatalf("ping called the connect hook or failed: %+v", msgs)
	}
	msgs, _ := send(t, c, s, `{"id":2,"op":"subscribe","channel":"user:7"}`)
	if m := replyTo(t, msgs, 2); m.Error != nil {
		t.Fatalf("subscribe to the backend's user's channel: %+v", m.Error)
	}
	var token, name string
	call := backend.Last(t, hooktest.ConnectPath)
	call.Field(t, "token", &token)
	call.Field(t, "name", &name)
	if token != "from-the-query" || name != "小明" {
		t.Errorf("implicit connect sent token %q name %q", token, name)
	}
	if c.Info().User != "7" || c.Info().Name != "小明" {
		t.Errorf("identity %+v, want user 7 keeping the name it gave", c.Info())
	}
	send(t, c, s, `{"id":3,"op":"history","channel":"user:7"}`)
	if n := len(backend.Calls(hooktest.ConnectPath)); n != 1 {
		t.Errorf("the connect hook ran %d times, want once", n)
	}
}

func TestConnectHookDenyKeepsTheConnectionUnconnected(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.AnswerJSON(hooktest.ConnectPath, `{"error":{"code":"banned","message":"你已被封禁"}}`)
	h, _ := hookedHub(t, backend, time.Second)
	c, s := newClient(t, h, Identity{})

	msgs, action := send(t, c, s, `{"id":1,"op":"connect","name":"李旺"}`)
	if e := replyTo(t, msgs, 1).Error; e == nil || e.Code != "banned" || e.Message != "你已被封禁" || action.Close {
		t.Fatalf("connect: %+v %+v, want the backend's banned error and no close", e, action)
	}
	// Without the backend's yes nothing reads a channel: the hook is asked again.
	msgs, _ = send(t, c, s, `{"id":2,"op":"subscribe","channel":"open:a"}`)
	if e := replyTo(t, msgs, 2).Error; e == nil || e.Code != "banned" {
		t.Fatalf("subscribe after a denied connect: %+v", e)
	}
	if n := len(backend.Calls(hooktest.ConnectPath)); n != 2 {
		t.Errorf("connect hook calls %d, want 2", n)
	}
	backend.AnswerJSON(hooktest.ConnectPath, `{"error":{}}`)
	msgs, _ = send(t, c, s, `{"id":3,"op":"connect"}`)
	if e := replyTo(t, msgs, 3).Error; e == nil || e.Code != protocol.CodeForbidden || e.Message != defaultHookDenyMessage {
		t.Errorf("a deny with no code or message: %+v, want forbidden with the default message", e)
	}
}

func TestHookDisconnectClosesWithTheBackendsCode(t *testing.T) {
	for _, tc := range []struct {
		name, path, frame, answer string
		code                      int
		reason                    string
	}{
		{"connect", hooktest.ConnectPath, `{"id":1,"op":"connect","name":"x"}`, `{"disconnect":{"code":4001,"reason":"账号已停用"}}`, 4001, "账号已停用"},
		{"publish with the default code", hooktest.PublishPath, `{"id":1,"op":"publish","channel":"mod:a","data":1}`, `{"disconnect":{}}`, DefaultHookDisconnectCode, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := hooktest.Start(t, testHookSecret)
			backend.AnswerJSON(tc.path, tc.answer)
			h, _ := hookedHub(t, backend, time.Second)
			c, s := newClient(t, h, Identity{})
			// The ping after the command is never handled: the close comes first.
			msgs, action := send(t, c, s, tc.frame+"\n"+`{"id":2,"op":"ping"}`)
			if len(msgs) != 0 {
				t.Errorf("got %+v, want no reply before the close", msgs)
			}
			if !action.Close || action.Code != tc.code || action.Reason != tc.reason {
				t.Errorf("action %+v, want close %d %q", action, tc.code, tc.reason)
			}
		})
	}
}

func TestFailedHooksAnswerUnavailableAndLeakNothing(t *testing.T) {
	const leak = "db-7.internal:5432 stack trace"
	timeout := 200 * time.Millisecond
	answers := []struct {
		name   string
		answer hooktest.Answer
		only   string // the hooks the answer is wrong for, when not all
	}{
		{"slow", hooktest.Answer{Body: `{"result":{}}`, Delay: 10 * timeout}, ""},
		{"HTTP 500", hooktest.Answer{Status: 500, Body: `{"error":{"code":"x","message":"` + leak + `"}}`}, ""},
		{"garbage", hooktest.Answer{Body: leak}, ""},
		{"two replies", hooktest.Answer{Body: `{"result":{}}{"result":{}}`}, ""},
		{"result and error", hooktest.Answer{Body: `{"result":{},"error":{"code":"banned"}}`}, ""},
		{"no reply at all", hooktest.Answer{Body: `{}`}, ""},
		{"result not an object", hooktest.Answer{Body: `{"result":"` + leak + `"}`}, ""},
		{"oversized", hooktest.Answer{Body: `{"result":{"data":"` + strings.Repeat("x", MaxHookResponseBytes) + `"}}`}, ""},
		{"bad error code", hooktest.Answer{Body: `{"error":{"code":"Not Allowed","message":"` + leak + `"}}`}, ""},
		{"control characters in the message", hooktest.Answer{Body: `{"error":{"code":"banned","message":"a\u0007b"}}`}, ""},
		{"close code outside 4000-4999", hooktest.Answer{Body: `{"disconnect":{"code":1000}}`}, ""},
		{"bad user id", hooktest.Answer{Body: `{"result":{"user":"a b"}}`}, "connect"},
		{"bad name", hooktest.Answer{Body: `{"result":{"name":"\u3164"}}`}, "connect"},
		{"null data", hooktest.Answer{Body: `{"result":{"data":null}}`}, "publish"},
		{"oversized info", hooktest.Answer{Body: `{"result":{"info":"` + strings.Repeat("i", MaxHookInfoBytes) + `"}}`}, "connect subscribe"},
	}
	commands := []struct{ hook, path, frame string }{
		{"connect", hooktest.ConnectPath, `{"id":1,"op":"connect","name":"x"}`},
		{"subscribe", hooktest.SubscribePath, `{"id":1,"op":"subscribe","channel":"mod:a"}`},
		{"publish", hooktest.PublishPath, `{"id":1,"op":"publish","channel":"mod:a","data":{"text":"hi"}}`},
	}
	for _, cmd := range commands {
		for _, a := range answers {
			if a.only != "" && !strings.Contains(a.only, cmd.hook) {
				continue
			}
			t.Run(cmd.hook+"/"+a.name, func(t *testing.T) {
				backend := hooktest.Start(t, testHookSecret)
				backend.AnswerJSON(hooktest.ConnectPath, `{"result":{"user":"42"}}`)
				backend.Answer(cmd.path, func(hooktest.Call) hooktest.Answer { return a.answer })
				h, logs := hookedHub(t, backend, timeout)
				c, s := newClient(t, h, Identity{})
				if cmd.hook != "connect" {
					send(t, c, s, `{"id":9,"op":"connect"}`)
				}
				msgs, action := send(t, c, s, cmd.frame)
				e := replyTo(t, msgs, 1).Error
				if e == nil || e.Code != protocol.CodeUnavailable || action.Close {
					t.Fatalf("got %+v (close %v), want unavailable and the connection kept", replyTo(t, msgs, 1), action.Close)
				}
				if want := cmd.hook + " failed: service unavailable, retry later"; e.Message != want {
					t.Errorf("message %q, want the fixed %q", e.Message, want)
				}
				if strings.Contains(fmt.Sprint(msgs), "db-7") {
					t.Errorf("backend text reached the client: %+v", msgs)
				}
				call := backend.Last(t, cmd.path)
				if !strings.Contains(logs.String(), `"request_id":"`+call.RequestID+`"`) || !strings.Contains(logs.String(), `"msg":"hook failed"`) {
					t.Errorf("the log does not name the failed call %q:\n%s", call.RequestID, logs)
				}
				if msgs, _ := send(t, c, s, `{"id":2,"op":"ping"}`); replyTo(t, msgs, 2).Error != nil {
					t.Errorf("ping after the failure: %+v", msgs)
				}
			})
		}
	}
}

func TestHookThatIsDownAnswersUnavailable(t *testing.T) {
	logs := &syncBuf{}
	hooks := NewHTTPHooks(HTTPHooksConfig{ConnectURL: hooktest.DownURL(t), Timeout: time.Second})
	h := newTestHub(t, HubConfig{Namespaces: unhookedNamespaces(), Hooks: hooks.Hooks(), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	c, s := newClient(t, h, Identity{})
	msgs, action := send(t, c, s, `{"id":1,"op":"subscribe","channel":"open:a"}`)
	if e := replyTo(t, msgs, 1).Error; e == nil || e.Code != protocol.CodeUnavailable || action.Close {
		t.Fatalf("subscribe with the connect hook down: %+v", msgs)
	}
	if !strings.Contains(logs.String(), `"hook":"connect"`) {
		t.Errorf("log: %s", logs)
	}
}

func TestSubscribeHookChannelInfoInPresenceJoinsAndPublications(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.Answer(hooktest.ConnectPath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ Name string }
		if c.Decode(&req); req.Name == "观众" {
			return hooktest.Answer{Body: `{"result":{"user":"v1"}}`}
		}
		return hooktest.Answer{Body: `{"result":{"user":"42","name":"主持人"}}`}
	})
	backend.Answer(hooktest.SubscribePath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ User, Channel string }
		_ = c.Decode(&req)
		switch {
		case req.Channel == "mod:secret":
			return hooktest.Answer{Body: `{"error":{"code":"forbidden","message":"这个房间需要邀请"}}`}
		case req.User == "42":
			return hooktest.Answer{Body: `{"result":{"info":{"role":"admin"}}}`}
		}
		return hooktest.Answer{Body: `{"result":{}}`}
	})
	h, _ := hookedHub(t, backend, time.Second)
	ticks := useManualTicks(h)
	admin, as := newClient(t, h, Identity{})
	viewer, vs := newClient(t, h, Identity{})
	send(t, viewer, vs, `{"id":1,"op":"connect","name":"观众"}`)
	send(t, viewer, vs, `{"id":2,"op":"subscribe","channel":"mod:room"}`)
	send(t, admin, as, `{"id":1,"op":"subscribe","channel":"mod:room"}`)

	msgs, _ := send(t, admin, as, `{"id":2,"op":"subscribe","channel":"mod:secret"}`)
	if e := replyTo(t, msgs, 2).Error; e == nil || e.Code != protocol.CodeForbidden || e.Message != "这个房间需要邀请" {
		t.Fatalf("subscribe denied by the backend: %+v", msgs)
	}
	var req struct{ Client, User, Name, Channel string }
	if err := json.Unmarshal(backend.Last(t, hooktest.SubscribePath).Body, &req); err != nil ||
		req.Client != admin.Info().Client || req.User != "42" || req.Name != "主持人" || req.Channel != "mod:secret" {
		t.Errorf("subscribe hook request %+v (%v)", req, err)
	}

	msgs, _ = send(t, viewer, vs, `{"id":3,"op":"presence","channel":"mod:room"}`)
	p := decodeResult[protocol.PresenceResult](t, replyTo(t, msgs, 3))
	if got := string(p.Clients[admin.Info().Client].ChanInfo); got != `{"role":"admin"}` {
		t.Errorf("the admin's chan_info in presence = %q", got)
	}
	if got := p.Clients[viewer.Info().Client].ChanInfo; got != nil {
		t.Errorf("the viewer has chan_info %s", got)
	}
	ticks.fire()
	got := vs.WaitFor(t, func(m []protocol.ServerMessage) bool {
		for _, x := range m {
			if x.Join != nil && x.Join.Client == admin.Info().Client {
				return true
			}
		}
		return false
	})
	for _, x := range got {
		if x.Join != nil && x.Join.Client == admin.Info().Client && string(x.Join.ChanInfo) != `{"role":"admin"}` {
			t.Errorf("join %+v has no role", x.Join)
		}
	}
	send(t, admin, as, `{"id":3,"op":"publish","channel":"mod:room","data":{"text":"欢迎"}}`)
	pub := vs.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, "mod:room")) == 1 })
	if info := pubs(pub, "mod:room")[0].Info; info == nil || string(info.ChanInfo) != `{"role":"admin"}` {
		t.Errorf("publication info %+v, want the publisher's role", info)
	}
}

func TestPublishHookReplacesOrRefusesData(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.Answer(hooktest.PublishPath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ Data struct{ Text string } }
		_ = c.Decode(&req)
		data := req.Data
		switch {
		case strings.Contains(data.Text, "广告"):
			return hooktest.Answer{Body: `{"error":{"code":"moderated","message":"消息含有违禁词"}}`}
		case strings.Contains(data.Text, "坏"):
			return hooktest.Answer{Body: fmt.Sprintf(`{"result":{"data":{"text":%q, "verified":true}}}`, strings.ReplaceAll(data.Text, "坏", "*"))}
		}
		return hooktest.Answer{Body: `{"result":{}}`}
	})
	h, _ := hookedHub(t, backend, time.Second)
	pub, ps := newClient(t, h, Identity{})
	reader, rs := newClient(t, h, Identity{})
	send(t, reader, rs, `{"id":1,"op":"subscribe","channel":"mod:room"}`)

	msgs, _ := send(t, pub, ps, `{"id":1,"op":"publish","channel":"mod:room","data":{"text":"坏人"}}`)
	if r := decodeResult[protocol.PublishResult](t, replyTo(t, msgs, 1)); r.Offset != 1 {
		t.Errorf("publish result %+v", r)
	}
	msgs, _ = send(t, pub, ps, `{"id":2,"op":"publish","channel":"mod:room","data":{"text":"买广告"}}`)
	if e := replyTo(t, msgs, 2).Error; e == nil || e.Code != "moderated" || e.Message != "消息含有违禁词" {
		t.Fatalf("a refused publish: %+v", msgs)
	}
	send(t, pub, ps, `{"id":3,"op":"publish","channel":"mod:room","data":{"text":"好"}}`)
	got := pubs(rs.WaitFor(t, func(m []protocol.ServerMessage) bool { return len(pubs(m, "mod:room")) == 2 }), "mod:room")
	if dataOf(got[0]) != `{"text":"*人","verified":true}` || got[0].Offset != 1 {
		t.Errorf("first publication %s at %d, want the backend's replacement at 1", got[0].Data, got[0].Offset)
	}
	if dataOf(got[1]) != `{"text":"好"}` || got[1].Offset != 2 {
		t.Errorf("second publication %s at %d, want the client's data at 2 (the refused one is not stored)", got[1].Data, got[1].Offset)
	}
	var req struct {
		Channel string
		Data    json.RawMessage
		Client  string
	}
	if err := json.Unmarshal(backend.Last(t, hooktest.PublishPath).Body, &req); err != nil ||
		req.Channel != "mod:room" || string(req.Data) != `{"text":"好"}` || req.Client != pub.Info().Client {
		t.Errorf("publish hook request %+v (%v)", req, err)
	}
}

func TestHooksOnlyWhereEnabled(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	backend.AnswerJSON(hooktest.PublishPath, `{"error":{"code":"banned"}}`)
	backend.AnswerJSON(hooktest.SubscribePath, `{"error":{"code":"banned"}}`)
	hooks := NewHTTPHooks(HTTPHooksConfig{SubscribeURL: backend.URL(hooktest.SubscribePath), PublishURL: backend.URL(hooktest.PublishPath)})
	h := newTestHub(t, HubConfig{Namespaces: hookNamespaces(), Hooks: hooks.Hooks()})
	c, s := newClient(t, h, Identity{})
	// No connect hook: the client is the guest it says it is.
	msgs, _ := send(t, c, s, `{"id":1,"op":"subscribe","channel":"open:a"}`+"\n"+`{"id":2,"op":"publish","channel":"open:a","data":1}`)
	if replyTo(t, msgs, 1).Error != nil || replyTo(t, msgs, 2).Error != nil {
		t.Fatalf("a namespace without hooks: %+v", msgs)
	}
	msgs, _ = send(t, c, s, `{"id":3,"op":"subscribe","channel":"mod:a"}`+"\n"+`{"id":4,"op":"publish","channel":"mod:a","data":1}`)
	if e := replyTo(t, msgs, 3).Error; e == nil || e.Code != "banned" {
		t.Errorf("subscribe in the hooked namespace: %+v", e)
	}
	if e := replyTo(t, msgs, 4).Error; e == nil || e.Code != "banned" {
		t.Errorf("publish in the hooked namespace: %+v", e)
	}
	if n, m := len(backend.Calls(hooktest.SubscribePath)), len(backend.Calls(hooktest.PublishPath)); n != 1 || m != 1 {
		t.Errorf("hook calls: %d subscribe, %d publish; want 1 each (none for open:)", n, m)
	}
}

func TestHookSignatureNeedsTheSharedSecret(t *testing.T) {
	backend := hooktest.Start(t, testHookSecret)
	for _, tc := range []struct {
		name           string
		secret         []byte
		signed, wantOK bool
	}{
		{"same secret", testHookSecret, true, true},
		{"another secret", []byte("another-secret-0123456789abcdef012345"), true, false},
		{"no secret", nil, false, false},
	} {
		hooks := NewHTTPHooks(HTTPHooksConfig{ConnectURL: backend.URL(hooktest.ConnectPath), Secret: tc.secret})
		h := newTestHub(t, HubConfig{Namespaces: unhookedNamespaces(), Hooks: hooks.Hooks()})
		c, s := newClient(t, h, Identity{})
		send(t, c, s, `{"id":1,"op":"connect","name":"x"}`)
		call := backend.Last(t, hooktest.ConnectPath)
		if call.Signed != tc.signed || call.SignatureOK != tc.wantOK {
			t.Errorf("%s: signed %v, valid %v; want %v, %v", tc.name, call.Signed, call.SignatureOK, tc.signed, tc.wantOK)
		}
	}
}

func TestHubRefusesANamespaceWithAMissingHook(t *testing.T) {
	for _, hooks := range []Hooks{{}, {Subscribe: NewHTTPHooks(HTTPHooksConfig{SubscribeURL: "http://127.0.0.1:1/s"}).Hooks().Subscribe}} {
		if _, err := NewHub(HubConfig{Namespaces: hookNamespaces(), Hooks: hooks}); err == nil {
			t.Errorf("NewHub with hooks %+v and namespace mod: no error", hooks)
		}
	}
	bad := Namespaces{"x": {PublishHook: true}}
	if err := bad.Validate(); err == nil {
		t.Error("a publish hook without client publish validated")
	}
}

func TestHookRequestIDsAreUnique(t *testing.T) {
	a, b := newHubHooks(Hooks{}, 0), newHubHooks(Hooks{}, 0)
	seen := map[string]bool{}
	for range 100 {
		for _, id := range []string{a.nextRequestID(), b.nextRequestID()} {
			if seen[id] {
				t.Fatalf("request id %q repeated", id)
			}
			seen[id] = true
		}
	}
}
