package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

const (
	testAPIKey      = "test-api-key-7f3a9c"
	testTokenSecret = "test-token-secret-0123456789abcdef0123456789"
)

// rtEnv is the environment of a server with the API and tokens on, plus
// extra settings.
func rtEnv(extra map[string]string) map[string]string {
	env := map[string]string{"API_KEY": testAPIKey, "TOKEN_SECRET": testTokenSecret}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// apiRequest calls the API with "Authorization: Bearer key" (none when key
// is empty) and returns the status, headers and body.
func apiRequest(t *testing.T, s *testServer, method, path, key, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// apiJSON calls the API with the test key, requires 200 and decodes the body.
func apiJSON(t *testing.T, s *testServer, method, path, body string, out any) {
	t.Helper()
	status, hdr, resp := apiRequest(t, s, method, path, testAPIKey, body)
	if status != 200 {
		t.Fatalf("%s %s: %d %s", method, path, status, resp)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		dec := json.NewDecoder(strings.NewReader(resp))
		dec.DisallowUnknownFields() // the documented shape, nothing else
		if err := dec.Decode(out); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, path, resp, err)
		}
	}
}

// apiPublish publishes as the server and returns the new position.
func apiPublish(t *testing.T, s *testServer, channel, data string) protocol.PublishResult {
	t.Helper()
	var r protocol.PublishResult
	body := fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data)
	apiJSON(t, s, "POST", "/api/publish", body, &r)
	if r.Offset == 0 || r.Epoch == "" {
		t.Fatalf("publish %s: position %+v", channel, r)
	}
	return r
}

// apiError checks a JSON error answer: the status, a non-empty "error"
// message, and the code when want.code is set.
type apiErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func wantAPIError(t *testing.T, what string, status int, body string, wantStatus int, wantCode string) apiErrorBody {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d (%s), want %d", what, status, body, wantStatus)
	}
	var e apiErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("%s: body %q is not a JSON error (%v)", what, body, err)
	}
	if wantCode != "" && e.Code != wantCode {
		t.Fatalf("%s: code %q, want %q (%s)", what, e.Code, wantCode, body)
	}
	return e
}

func TestAPIOffWithoutKey(t *testing.T) {
	s := startServer(t, map[string]string{"TOKEN_SECRET": testTokenSecret})
	routes := []struct{ method, path, body string }{
		{"POST", "/api/publish", `{"channel":"chat:a","data":1}`},
		{"POST", "/api/broadcast", `{"channels":["chat:a"],"data":1}`},
		{"GET", "/api/channels", ""},
		{"GET", "/api/presence/chat:a", ""},
		{"GET", "/api/history/chat:a", ""},
		{"POST", "/api/token", `{"user":"42"}`},
	}
	for _, r := range routes {
		for _, key := range []string{"", "anything"} {
			status, _, body := apiRequest(t, s, r.method, r.path, key, r.body)
			e := wantAPIError(t, r.method+" "+r.path, status, body, 503, "")
			if !strings.Contains(e.Error, "API_KEY") {
				t.Errorf("%s %s: 503 message %q does not say to set API_KEY", r.method, r.path, e.Error)
			}
		}
	}
}

func TestAPIAuth(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	cases := []struct {
		name   string
		header string // the Authorization header; "-" for none
	}{
		{"no header", "-"},
		{"wrong key", "Bearer wrong-key"},
		{"key prefix", "Bearer " + testAPIKey[:len(testAPIKey)-1]},
		{"key plus suffix", "Bearer " + testAPIKey + "x"},
		{"empty bearer", "Bearer "},
		{"wrong scheme", "Basic " + testAPIKey},
		{"lower-case scheme and no space", "bearer" + testAPIKey},
		{"bare key", testAPIKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/channels", "/api/history/chat:a"} {
				req, _ := http.NewRequest("GET", s.url(path), nil)
				if tc.header != "-" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantAPIError(t, path, resp.StatusCode, string(body), 401, "")
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", path, got)
				}
			}
		})
	}
	// A rejected publish must not have published anything.
	status, _, body := apiRequest(t, s, "POST", "/api/publish", "wrong", `{"channel":"chat:auth","data":1}`)
	wantAPIError(t, "publish with a wrong key", status, body, 401, "")
	var h protocol.HistoryResult
	apiJSON(t, s, "GET", "/api/history/chat:auth", "", &h)
	if len(h.Publications) != 0 || h.Offset != 0 {
		t.Fatalf("a publish with a wrong key reached the channel: %+v", h)
	}
}

func TestAPIBadBodies(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"not JSON", "/api/publish", `hello`, 400, ""},
		{"empty body", "/api/publish", ``, 400, ""},
		{"JSON array", "/api/publish", `[1,2]`, 400, ""},
		{"unknown field", "/api/publish", `{"channel":"chat:a","data":1,"extra":true}`, 400, ""},
		{"trailing data", "/api/publish", `{"channel":"chat:a","data":1} {"x":1}`, 400, ""},
		{"missing channel", "/api/publish", `{"data":1}`, 400, ""},
		{"missing data", "/api/publish", `{"channel":"chat:a"}`, 400, "bad_request"},
		{"data not JSON", "/api/publish", `{"channel":"chat:a","data":nope}`, 400, ""},
		{"channel not a string", "/api/publish", `{"channel":5,"data":1}`, 400, ""},
		{"unknown namespace", "/api/publish", `{"channel":"nope:a","data":1}`, 400, "bad_channel"},
		{"bad channel charset", "/api/publish", `{"channel":"chat:a b","data":1}`, 400, "bad_channel"},
		{"channel too long", "/api/publish", `{"channel":"chat:` + strings.Repeat("x", 300) + `","data":1}`, 400, "bad_channel"},
		{"broadcast no channels", "/api/broadcast", `{"channels":[],"data":1}`, 400, "bad_request"},
		{"broadcast unknown namespace", "/api/broadcast", `{"channels":["chat:a","nope:b"],"data":1}`, 400, "bad_channel"},
		{"broadcast unknown field", "/api/broadcast", `{"channel":"chat:a","data":1}`, 400, ""},
		{"token unknown field", "/api/token", `{"user":"42","admin":true}`, 400, ""},
		{"token bad user", "/api/token", `{"user":"a b"}`, 400, ""},
		{"token missing user", "/api/token", `{}`, 400, ""},
		{"token bad ttl", "/api/token", `{"user":"42","ttl":"forever"}`, 400, ""},
		{"token ttl too long", "/api/token", `{"user":"42","ttl":"10000h"}`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := apiRequest(t, s, "POST", tc.path, testAPIKey, tc.body)
			wantAPIError(t, tc.body, status, body, tc.status, tc.code)
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
		})
	}
	// None of it published anything.
	var h protocol.HistoryResult
	apiJSON(t, s, "GET", "/api/history/chat:a", "", &h)
	if h.Offset != 0 {
		t.Fatalf("bad bodies published: %+v", h)
	}

	// A server-only namespace is fine for the server.
	apiPublish(t, s, "push:news", `{"n":1}`)
	apiPublish(t, s, "user:42", `{"n":1}`)
}

// TestAPITrailingCloser: a stray closing bracket after the object is
// trailing data like any other and must be refused.
func TestAPITrailingCloser(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	for _, body := range []string{
		`{"channel":"chat:tc","data":1}]`,
		`{"channel":"chat:tc","data":1}}`,
		`{"channel":"chat:tc","data":1} ]`,
	} {
		status, _, resp := apiRequest(t, s, "POST", "/api/publish", testAPIKey, body)
		if status != 400 {
			t.Errorf("%s: status %d %s, want 400 (trailing data)", body, status, resp)
		}
	}
}

func TestAPIBodyLimit(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	wrap := func(n int) string { // a valid publish body of exactly n bytes
		head, tail := `{"channel":"chat:big","data":"`, `"}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	// At the limit it is served.
	apiJSON(t, s, "POST", "/api/publish", wrap(64<<10), nil)
	// A body over the limit is refused from its Content-Length, before it
	// is read: the server answers 413 and closes, so a client still
	// writing the body may see the connection reset instead of the answer.
	// The client here sends the headers and reads the answer first.
	for _, n := range []int{64<<10 + 1, 200 << 10, 2 << 20} {
		conn, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "POST /api/publish HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.addr, testAPIKey, n)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d-byte body: %v", n, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		wantAPIError(t, fmt.Sprintf("%d-byte body", n), resp.StatusCode, string(body), 413, "")
	}
	var h protocol.HistoryResult
	apiJSON(t, s, "GET", "/api/history/chat:big", "", &h)
	if h.Offset != 1 {
		t.Fatalf("offset after one accepted publish = %d, want 1", h.Offset)
	}
}

func TestAPIRoutesSuccessShapes(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	sub := dialRT(t, s, "name=李旺")
	sub.Subscribe("chat:lobby")
	sub.Subscribe("push:news")

	// publish
	var p1 protocol.PublishResult
	apiJSON(t, s, "POST", "/api/publish", `{"channel":"chat:lobby","data":{"text":"你好"}}`, &p1)
	if p1.Offset != 1 || p1.Epoch == "" {
		t.Fatalf("publish: %+v", p1)
	}
	got := sub.WaitPubs("chat:lobby", 1, replyTimeout)[0]
	if got.Offset != 1 || string(got.Data) != `{"text":"你好"}` {
		t.Fatalf("push = %+v", got)
	}
	// Pretty-printed data is compacted.
	apiJSON(t, s, "POST", "/api/publish", "{\"channel\":\"chat:lobby\",\"data\":{ \"text\" :\n \"b\" }}", nil)
	if got := sub.WaitPubs("chat:lobby", 2, replyTimeout)[1]; string(got.Data) != `{"text":"b"}` {
		t.Fatalf("compacted push data = %s", got.Data)
	}

	// broadcast
	var b struct {
		Positions []protocol.PublishResult `json:"positions"`
	}
	apiJSON(t, s, "POST", "/api/broadcast", `{"channels":["chat:lobby","push:news","chat:empty"],"data":{"n":3}}`, &b)
	if len(b.Positions) != 3 || b.Positions[0].Offset != 3 || b.Positions[0].Epoch != p1.Epoch ||
		b.Positions[1].Offset != 1 || b.Positions[2].Offset != 1 {
		t.Fatalf("broadcast positions: %+v", b.Positions)
	}
	sub.WaitPubs("chat:lobby", 3, replyTimeout)
	if pn := sub.WaitPubs("push:news", 1, replyTimeout); string(pn[0].Data) != `{"n":3}` {
		t.Fatalf("push:news got %+v", pn)
	}

	// channels
	other := dialRT(t, s, "")
	other.Subscribe("chat:lobby")
	var ch struct {
		Channels []realtime.ChannelInfo `json:"channels"`
	}
	apiJSON(t, s, "GET", "/api/channels", "", &ch)
	want := []realtime.ChannelInfo{{Channel: "chat:lobby", Subscribers: 2}, {Channel: "push:news", Subscribers: 1}}
	if fmt.Sprint(ch.Channels) != fmt.Sprint(want) {
		t.Fatalf("channels = %+v, want %+v", ch.Channels, want)
	}

	// presence, raw and escaped
	for _, path := range []string{"/api/presence/chat:lobby", "/api/presence/chat%3Alobby", "/api/presence/chat%3alobby"} {
		var pr protocol.PresenceResult
		apiJSON(t, s, "GET", path, "", &pr)
		if pr.Count != 2 || len(pr.Clients) != 2 {
			t.Fatalf("%s: %+v", path, pr)
		}
		names := map[string]bool{}
		for id, info := range pr.Clients {
			if info.Client != id {
				t.Errorf("%s: client %q listed under %q", path, info.Client, id)
			}
			names[info.Name] = true
		}
		if !names["李旺"] {
			t.Fatalf("%s: 李旺 not in %+v", path, pr.Clients)
		}
	}
	status, _, body := apiRequest(t, s, "GET", "/api/presence/push:news", testAPIKey, "")
	wantAPIError(t, "presence where it is off", status, body, 404, "not_found")
	status, _, body = apiRequest(t, s, "GET", "/api/presence/nope:x", testAPIKey, "")
	wantAPIError(t, "presence of an unknown namespace", status, body, 400, "bad_channel")

	// history
	var h protocol.HistoryResult
	apiJSON(t, s, "GET", "/api/history/chat%3Alobby", "", &h)
	if h.Offset != 3 || h.Epoch != p1.Epoch || len(h.Publications) != 3 || h.Publications[0].Offset != 1 {
		t.Fatalf("history: %+v", h)
	}
	apiJSON(t, s, "GET", "/api/history/chat:never-used", "", &h)
	if h.Offset != 0 || h.Epoch == "" || h.Publications == nil || len(h.Publications) != 0 {
		t.Fatalf("history of an unused channel: %+v (publications must be [] not null)", h)
	}
	for _, q := range []string{"limit=-1", "limit=x", "since=-3", "since=abc"} {
		status, _, body := apiRequest(t, s, "GET", "/api/history/chat:lobby?"+q, testAPIKey, "")
		wantAPIError(t, q, status, body, 400, "")
	}
	status, _, body = apiRequest(t, s, "GET", "/api/history/live:x", testAPIKey, "")
	wantAPIError(t, "history where it is off", status, body, 404, "not_found")

	// token
	var tok struct {
		Token     string `json:"token"`
		User      string `json:"user"`
		ExpiresAt int64  `json:"expires_at"`
	}
	apiJSON(t, s, "POST", "/api/token", `{"user":"42","name":"王五","ttl":"1h"}`, &tok)
	if tok.Token == "" || tok.User != "42" {
		t.Fatalf("token: %+v", tok)
	}
	if d := time.Until(time.Unix(tok.ExpiresAt, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("token expires in %v, want 1h", d)
	}
}

func TestAPITokenWorksOnRealtime(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	var tok struct {
		Token     string `json:"token"`
		User      string `json:"user"`
		ExpiresAt int64  `json:"expires_at"`
	}
	apiJSON(t, s, "POST", "/api/token", `{"user":"42","name":"王五"}`, &tok)

	// As ?token=.
	c := dialRT(t, s, "token="+url.QueryEscape(tok.Token))
	c.Subscribe("user:42")
	var pr protocol.PresenceResult
	c.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:t"}, nil)
	c.Subscribe("chat:t")
	c.OK(protocol.Command{Op: protocol.OpPresence, Channel: "chat:t"}, &pr)
	for _, info := range pr.Clients {
		if info.User != "42" || info.Name != "王五" {
			t.Fatalf("presence shows %+v, want user 42 named 王五", info)
		}
	}
	apiPublish(t, s, "user:42", `{"n":1,"text":"私信"}`)
	if m := c.WaitPubs("user:42", 1, replyTimeout)[0]; pubN(t, m) != 1 {
		t.Fatalf("user push: %+v", m)
	}
	c.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "user:43"}, protocol.CodeForbidden)

	// As a connect command.
	g := dialRT(t, s, "")
	g.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "user:42"}, protocol.CodeUnauthorized)
	var cr protocol.ConnectResult
	g.OK(protocol.Command{Op: protocol.OpConnect, Token: tok.Token}, &cr)
	if cr.User != "42" || cr.Name != "王五" || cr.Client == "" {
		t.Fatalf("connect result: %+v", cr)
	}
	g.Subscribe("user:42")
	apiPublish(t, s, "user:42", `{"n":2}`)
	g.WaitPubs("user:42", 1, replyTimeout)
}

func TestAPITokenOffWithoutSecret(t *testing.T) {
	s := startServer(t, map[string]string{"API_KEY": testAPIKey})
	status, _, body := apiRequest(t, s, "POST", "/api/token", testAPIKey, `{"user":"42"}`)
	e := wantAPIError(t, "token without TOKEN_SECRET", status, body, 503, "")
	if !strings.Contains(e.Error, "TOKEN_SECRET") {
		t.Fatalf("503 message %q does not name TOKEN_SECRET", e.Error)
	}
	// Without a secret a token on /realtime is refused too, before the upgrade.
	tok, err := realtime.MintToken([]byte(testTokenSecret), "42", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, err := tryDialRT(s, "token="+tok); err == nil || st != 401 {
		t.Fatalf("dial with a token on a server without TOKEN_SECRET: HTTP %d, err %v; want 401", st, err)
	}
	// And as a connect command: unauthorized, the connection survives.
	c := dialRT(t, s, "")
	c.Fails(protocol.Command{Op: protocol.OpConnect, Token: tok}, protocol.CodeUnauthorized)
	c.Ping()
}
