package app

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/internal/hooktest"
	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/realtime/protocol"
)

const testHookSecret = "hook-secret-0123456789abcdef0123456789"

// startHookedServer runs the product with its three hooks on backend
// (chat: has the subscribe and publish hooks), timeout per call, and
// returns its debug log.
func startHookedServer(t *testing.T, backend *hooktest.Backend, timeout string) (*testServer, *testbin.SyncBuffer) {
	t.Helper()
	logs := &testbin.SyncBuffer{}
	s := startServerLogging(t, rtEnv(map[string]string{
		"HOOK_CONNECT_URL":   backend.URL(hooktest.ConnectPath),
		"HOOK_SUBSCRIBE_URL": backend.URL(hooktest.SubscribePath),
		"HOOK_PUBLISH_URL":   backend.URL(hooktest.PublishPath),
		"HOOK_TIMEOUT":       timeout,
		"HOOK_HEADERS":       "user-agent,X-Tenant",
		"HOOK_COOKIES":       "session",
		"HOOK_SECRET":        testHookSecret,
		"NAMESPACES":         `{"chat":{"subscribe_hook":true,"publish_hook":true}}`,
	}), features.Default(), slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return s, logs
}

// moderatingBackend knows one user (token tok-42: 李旺, a VIP and the
// chat's admin), lets everyone else in as the guest they say they are,
// stars out 坏 and refuses 广告.
func moderatingBackend(t *testing.T) *hooktest.Backend {
	backend := hooktest.Start(t, []byte(testHookSecret))
	backend.Answer(hooktest.ConnectPath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ Token string }
		if c.Decode(&req); req.Token == "tok-42" {
			return hooktest.Answer{Body: `{"result":{"user":"42","name":"李旺","info":{"vip":true}}}`}
		}
		return hooktest.Answer{Body: `{"result":{}}`}
	})
	backend.Answer(hooktest.SubscribePath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ User string }
		if c.Decode(&req); req.User == "42" {
			return hooktest.Answer{Body: `{"result":{"info":{"role":"admin"}}}`}
		}
		return hooktest.Answer{Body: `{"result":{}}`}
	})
	backend.Answer(hooktest.PublishPath, func(c hooktest.Call) hooktest.Answer {
		var req struct{ Data struct{ Text string } }
		_ = c.Decode(&req)
		switch text := req.Data.Text; {
		case strings.Contains(text, "广告"):
			return hooktest.Answer{Body: `{"error":{"code":"moderated","message":"消息含有违禁词"}}`}
		case strings.Contains(text, "坏"):
			return hooktest.Answer{Body: fmt.Sprintf(`{"result":{"data":{"text":%q,"verified":true}}}`, strings.ReplaceAll(text, "坏", "*"))}
		}
		return hooktest.Answer{}
	})
	return backend
}

func TestHooksThroughRealtime(t *testing.T) {
	backend := moderatingBackend(t)
	s, _ := startHookedServer(t, backend, "1s")

	// The admin signs in with the backend's own token in the URL and sends
	// no connect: the hook runs before its first subscribe.
	admin := dialRTWith(t, s, "token=tok-42", http.Header{
		"User-Agent": {"duplex-test/1"}, "X-Tenant": {"acme"}, "X-Secret": {"not allow-listed"},
		"Cookie": {"session=s3; tracking=no"},
	})
	viewer := dialRT(t, s, "name="+"观众")
	viewer.subscribe("chat:lobby")
	admin.subscribe("chat:lobby")

	var connects []hooktest.Call
	for _, c := range backend.Calls(hooktest.ConnectPath) {
		if strings.Contains(string(c.Body), "tok-42") {
			connects = append(connects, c)
		}
	}
	if len(connects) != 1 {
		t.Fatalf("connect hook calls with the admin's token: %d, want 1", len(connects))
	}
	var req struct {
		Client, Token, IP string
		Headers, Cookies  map[string]string
	}
	if err := json.Unmarshal(connects[0].Body, &req); err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]string{"User-Agent": "duplex-test/1", "X-Tenant": "acme"}
	if req.IP != "127.0.0.1" || fmt.Sprint(req.Headers) != fmt.Sprint(wantHeaders) || fmt.Sprint(req.Cookies) != "map[session:s3]" {
		t.Errorf("connect hook got ip %q headers %v cookies %v; want 127.0.0.1, %v, only session", req.IP, req.Headers, req.Cookies, wantHeaders)
	}
	for _, path := range []string{hooktest.ConnectPath, hooktest.SubscribePath} {
		for _, c := range backend.Calls(path) {
			if !c.SignatureOK || c.RequestID == "" {
				t.Errorf("%s call %s: signature valid %v, request id %q", path, c.Body, c.SignatureOK, c.RequestID)
			}
		}
	}

	var p protocol.PresenceResult
	viewer.ok(protocol.Command{Op: protocol.OpPresence, Channel: "chat:lobby"}, &p)
	if m := p.Clients[req.Client]; m.User != "42" || m.Name != "李旺" || string(m.ConnInfo) != `{"vip":true}` || string(m.ChanInfo) != `{"role":"admin"}` {
		t.Errorf("the admin in presence: %+v", m)
	}

	admin.publish("chat:lobby", `{"text":"坏人"}`)
	e := admin.fails(protocol.Command{Op: protocol.OpPublish, Channel: "chat:lobby", Data: json.RawMessage(`{"text":"买广告"}`)}, "moderated")
	if e.Message != "消息含有违禁词" {
		t.Errorf("refusal message %q", e.Message)
	}
	admin.publish("chat:lobby", `{"text":"好"}`)
	got := viewer.waitPubs("chat:lobby", 2, replyTimeout)
	if string(got[0].Data) != `{"text":"*人","verified":true}` || got[0].Offset != 1 {
		t.Errorf("first publication %s at %d, want the backend's replacement at 1", got[0].Data, got[0].Offset)
	}
	if string(got[1].Data) != `{"text":"好"}` || got[1].Offset != 2 || got[1].Info == nil || string(got[1].Info.ChanInfo) != `{"role":"admin"}` {
		t.Errorf("second publication %+v, want the client's data at 2 from the admin (the refused one is not stored)", got[1])
	}
}

func TestFailingHooksThroughRealtime(t *testing.T) {
	backend := moderatingBackend(t)
	s, logs := startHookedServer(t, backend, "300ms")
	author := dialRT(t, s, "name=作者")
	reader := dialRT(t, s, "name=读者")
	reader.subscribe("chat:lobby")
	author.subscribe("chat:lobby")

	for _, tc := range []struct {
		name   string
		answer hooktest.Answer
	}{
		{"HTTP 500", hooktest.Answer{Status: 500, Body: `{"error":{"code":"boom","message":"pq: relation users does not exist"}}`}},
		{"garbage", hooktest.Answer{Body: `<html>pq: relation users does not exist</html>`}},
		{"slow", hooktest.Answer{Body: `{"result":{}}`, Delay: 5 * time.Second}},
	} {
		backend.Answer(hooktest.PublishPath, func(hooktest.Call) hooktest.Answer { return tc.answer })
		calls := len(backend.Calls(hooktest.PublishPath))
		id := author.send(protocol.Command{Op: protocol.OpPublish, Channel: "chat:lobby", Data: json.RawMessage(`{"text":"x"}`)})
		// While the author waits on the backend, the other client is served.
		call := backend.WaitCalls(t, hooktest.PublishPath, calls+1, replyTimeout)[calls]
		reader.ping()
		e := author.wantErr(author.await(id), protocol.CodeUnavailable, tc.name)
		if e.Message != "publish failed: service unavailable, retry later" {
			t.Errorf("%s: message %q leaks or changed", tc.name, e.Message)
		}
		waitFor(t, "the failed call in the log", replyTimeout, func() bool {
			return strings.Contains(logs.String(), `"request_id":"`+call.RequestID+`"`)
		})
		author.ping()
	}
	// Nothing of the failed publications reached the reader: the next
	// one is the channel's first.
	backend.Answer(hooktest.PublishPath, func(hooktest.Call) hooktest.Answer { return hooktest.Answer{} })
	author.publish("chat:lobby", `{"text":"终于"}`)
	if got := reader.waitPubs("chat:lobby", 1, replyTimeout); got[0].Offset != 1 || len(got) != 1 {
		t.Errorf("reader got %+v, want only the one publication that went through", got)
	}
	if strings.Contains(fmt.Sprint(author.allPushes(), reader.allPushes()), "relation users") {
		t.Error("backend text reached a client")
	}
}

func TestConnectHookDisconnectThroughRealtime(t *testing.T) {
	backend := hooktest.Start(t, []byte(testHookSecret))
	backend.AnswerJSON(hooktest.ConnectPath, `{"disconnect":{"code":4001,"reason":"账号已停用"}}`)
	s, _ := startHookedServer(t, backend, "1s")
	bystander := dialRT(t, s, "name=旁观者")
	c := dialRT(t, s, "token=stale")
	c.send(protocol.Command{Op: protocol.OpSubscribe, Channel: "chat:lobby"})
	if code := c.waitClose(replyTimeout); code != 4001 {
		t.Errorf("close code %d, want the backend's 4001", code)
	}
	if got := c.allPushes(); len(got) != 0 {
		t.Errorf("the disconnected client got %+v before its close", got)
	}
	bystander.ping()
}
