// Package uws_test checks the uWebSockets.js benchmark peers (server.js,
// echo.js) against what the load tool relies on: the uWS peer must answer
// and push the very bytes duplex does, so that cmd/duplexload parses and
// times both alike. Each test runs the peer with node (a real process)
// beside a real duplex server (internal/testserver); without node or the
// package installed (npm ci in bench/uws) they are skipped.
package uws_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/internal/testserver"
)

const (
	apiKey      = testserver.APIKey // the same key for both servers
	waitTimeout = 10 * time.Second
)

// startPeer runs `node script` from this directory on a free port and
// returns its address once it accepts connections.
func startPeer(t *testing.T, script string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "uWebSockets.js", "package.json")); err != nil {
		t.Skip("uWebSockets.js is not installed: run npm ci in bench/uws")
	}
	port := testbin.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := testbin.StartProcess(t, script, "env", "HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "API_KEY="+apiKey, node, script)
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s: %v\n%s", script, addr, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// lineReader reads a connection's messages one line at a time: duplex
// may put several in one frame (docs/protocol.md, frames and batching),
// the uWS peer never does. Owned by one goroutine.
type lineReader struct {
	c       *websocket.Conn
	pending []string
}

// next returns the next message, failing the test after waitTimeout.
func (r *lineReader) next(t *testing.T) string {
	t.Helper()
	for len(r.pending) == 0 {
		_ = r.c.SetReadDeadline(time.Now().Add(waitTimeout))
		mt, b, err := r.c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if mt != websocket.TextMessage {
			t.Fatalf("got a message of type %d, want text", mt)
		}
		r.pending = strings.Split(string(b), "\n")
	}
	line := r.pending[0]
	r.pending = r.pending[1:]
	return line
}

// next is the next message of a connection whose frames hold one each
// (the uWS peer's).
func next(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	return (&lineReader{c: c}).next(t)
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// publish posts body to base's /api/publish with key and returns the
// status and the answer.
func publish(t *testing.T, base, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+base+"/api/publish", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		t.Fatalf("publish %.60s: %v", body, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// epoch is random per channel and server: compared as a placeholder.
var epoch = regexp.MustCompile(`"epoch":"[0-9a-f]{12}"`)

func maskEpoch(s string) string { return epoch.ReplaceAllString(s, `"epoch":"E"`) }

// The load tool's publication body first, then bodies whose data only a
// careful copy keeps byte for byte: spaces to compact, braces and quotes
// inside strings, escapes, numbers past a double, duplicate members,
// an escaped key, non-ASCII text.
var publishBodies = []string{
	`{"channel":"push:bench","data":{"dxseq":1,"dxts":1764600000123456789,"pad":"xxxxxxxxxxxx"}}`,
	` {"data" : { "s" : "a } ] , \" {", "n": [ 1 , {"x": "y"} ] } , "channel":"push:bench" } `,
	`{"channel":"push:bench","data":"str\u00e9 \n x"}`,
	`{"channel":"push:bench","data":12345678901234567890123}`,
	`{"channel":"push:bench","data":[ ]}`,
	`{"channel":"push:bench","data":1,"data":{"dup":  2}}`,
	`{"channel":"push:bench","d\u0061ta":{"esc":1}}`,
	`{"channel":"push:bench","data":{"中文":"你好 世界"}}`,
	`{"channel":"push:bench","data":-1.5e+10 }`,
	`{"channel":"push:bench","data":"\\"}`,
}

// TestPushesAndRepliesAreDuplexBytes subscribes to push:bench on duplex
// and on the uWS peer, publishes the same bodies to both, and compares
// every reply, answer and push byte for byte (epochs aside).
func TestPushesAndRepliesAreDuplexBytes(t *testing.T) {
	peer := startPeer(t, "server.js")
	duplex := testserver.Start(t, nil)
	servers := []struct{ name, addr string }{
		{"duplex", strings.TrimPrefix(duplex.URL(""), "http://")},
		{"uws", peer},
	}
	var got [2][]string
	for i, s := range servers {
		c := dial(t, "ws://"+s.addr+"/realtime")
		r := &lineReader{c: c}
		send(t, c, `{"id":1,"op":"subscribe","channel":"push:bench"}`)
		got[i] = append(got[i], maskEpoch(r.next(t)))
		for _, body := range publishBodies {
			status, answer := publish(t, s.addr, apiKey, body)
			got[i] = append(got[i], strconv.Itoa(status)+" "+maskEpoch(answer), r.next(t))
		}
		send(t, c, "{\"id\":2,\"op\":\"ping\"}\r\n\n{\"id\":3,\"op\":\"subscribe\",\"channel\":\"push:bench\"}")
		got[i] = append(got[i], r.next(t), r.next(t))
	}
	if len(got[0]) != len(got[1]) {
		t.Fatalf("duplex sent %d messages, uws %d", len(got[0]), len(got[1]))
	}
	for j := range got[0] {
		if got[0][j] != got[1][j] {
			t.Errorf("message %d:\n duplex %s\n uws    %s", j, got[0][j], got[1][j])
		}
	}
	if !strings.Contains(got[1][2], `"dxts":1764600000123456789,`) {
		t.Errorf("the send time was not kept to the nanosecond: %s", got[1][2])
	}
}

// TestBadInputHasItsOutcome: each bad input gets its answer, and the
// connection (or the other clients) carry on: the first push after the
// refused publications is the sentinel published next.
func TestBadInputHasItsOutcome(t *testing.T) {
	peer := startPeer(t, "server.js")
	sub := dial(t, "ws://"+peer+"/realtime")
	send(t, sub, `{"id":1,"op":"subscribe","channel":"push:bench"}`)
	if r := maskEpoch(next(t, sub)); r != `{"id":1,"result":{"offset":0,"epoch":"E"}}` {
		t.Fatalf("subscribe reply %s", r)
	}

	for _, tc := range []struct{ cmd, reply string }{
		{`garbage`, `{"error":{"code":"bad_request","message":"malformed command: `},
		{`{"op":"ping"}`, `{"error":{"code":"bad_request","message":"missing field: id"}}`},
		{`{"id":0,"op":"ping"}`, `{"error":{"code":"bad_request","message":"id must be an integer >= 1"}}`},
		{`{"id":4,"op":"publish","channel":"push:bench","data":1}`, `{"id":4,"error":{"code":"bad_request","message":"unknown op \"publish\"`},
		{`{"id":5,"op":"subscribe","channel":"nonamespace"}`, `{"id":5,"error":{"code":"bad_channel","message":"channel name must be namespace:name"}}`},
		{`{"id":6,"op":"subscribe","channel":"push:bench"}`, `{"id":6,"error":{"code":"bad_request","message":"already subscribed to push:bench"}}`},
		{`{"id":7,"op":"unsubscribe","channel":"push:other"}`, `{"id":7,"error":{"code":"not_found","message":"not subscribed to push:other"}}`},
	} {
		send(t, sub, tc.cmd)
		if r := next(t, sub); !strings.HasPrefix(r, tc.reply) {
			t.Errorf("%s: got %s, want %s…", tc.cmd, r, tc.reply)
		}
	}

	for _, tc := range []struct {
		key, body string
		status    int
		answer    string
	}{
		{"wrong-key", publishBodies[0], http.StatusUnauthorized, `{"error":"missing or wrong API key (Authorization: Bearer $API_KEY)"}`},
		{apiKey, `{"channel":"push:bench"}`, http.StatusBadRequest, `{"code":"bad_request","error":"data is required"}`},
		{apiKey, `{"channel":"push:bench","data":null}`, http.StatusBadRequest, `{"code":"bad_request","error":"data is required"}`},
		{apiKey, `{"channel":"push:bench","data":1,"priority":true}`, http.StatusBadRequest, `{"error":"body must be a JSON object: unknown field \"priority\"`},
		{apiKey, `{"channel":"push:bench","data":1} x`, http.StatusBadRequest, `{"error":"body must be a JSON object: `},
		{apiKey, `[1]`, http.StatusBadRequest, `{"error":"body must be a JSON object"}`},
		{apiKey, `{"channel":"bad channel","data":1}`, http.StatusBadRequest, `{"code":"bad_channel","error":"channel name may only contain A-Z a-z 0-9 _ . @ : -"}`},
	} {
		status, answer := publish(t, peer, tc.key, tc.body)
		if status != tc.status || !strings.HasPrefix(answer, tc.answer) {
			t.Errorf("publish %.60s: got %d %s, want %d %s…", tc.body, status, answer, tc.status, tc.answer)
		}
	}
	// A body over 64 KiB is refused from its Content-Length, unread.
	big413, err := net.Dial("tcp", peer)
	if err != nil {
		t.Fatal(err)
	}
	defer big413.Close()
	_ = big413.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprintf(big413, "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", apiKey, 64<<10+1)
	if status, err := bufio.NewReader(big413).ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 413 ") {
		t.Errorf("publish of %d bytes: %q, %v; want 413", 64<<10+1, status, err)
	}

	sentinel := `{"channel":"push:bench","data":"sentinel"}`
	if status, answer := publish(t, peer, apiKey, sentinel); status != http.StatusOK || maskEpoch(answer) != `{"offset":1,"epoch":"E"}` {
		t.Fatalf("sentinel: %d %s", status, answer)
	}
	if p := next(t, sub); p != `{"channel":"push:bench","offset":1,"data":"sentinel"}` {
		t.Errorf("first push after the refused publications: %s", p)
	}

	// A binary frame closes with 1003, as duplex does.
	bin := dial(t, "ws://"+peer+"/realtime")
	if err := bin.WriteMessage(websocket.BinaryMessage, []byte(`{"id":1,"op":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	_ = bin.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := bin.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
		t.Errorf("after a binary frame: %v, want close 1003", err)
	}
	// A frame over 64 KiB ends the connection (uWS drops it, 1006).
	big := dial(t, "ws://"+peer+"/realtime")
	send(t, big, strings.Repeat("x", 64<<10+1))
	_ = big.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := big.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("after a frame over 64 KiB: %v, want the connection closed", err)
	}
	// A plain GET of /realtime: 426, as duplex.
	resp, err := http.Get("http://" + peer + "/realtime")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /realtime: %d, want 426", resp.StatusCode)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestEchoIsTheTutorials: echo.js answers non-empty text with the
// tutorial's reply and nothing else (the reply after a binary and an
// empty message is the next text's).
func TestEchoIsTheTutorials(t *testing.T) {
	peer := startPeer(t, "echo.js")
	c := dial(t, "ws://"+peer+"/ws")
	if err := c.WriteMessage(websocket.BinaryMessage, []byte("bin")); err != nil {
		t.Fatal(err)
	}
	send(t, c, "")
	send(t, c, "你好abc")
	if r := next(t, c); r != "服务端已收到消息:你好abc服务端发来消息: Hello,你好abc" {
		t.Errorf("reply %q", r)
	}
}

// TestSlowSubscriberIsClosedNotSkipped: a subscriber that stops reading
// is closed once 1 MiB is queued for it, as duplex closes one, instead of
// being skipped by uWS's pub/sub and shown a gap; the others get every
// publication meanwhile.
func TestSlowSubscriberIsClosedNotSkipped(t *testing.T) {
	const (
		publications = 600
		dataBytes    = 32 << 10 // 600 x 32 KiB = 19 MiB, far past what the sockets and 1 MiB hold
	)
	peer := startPeer(t, "server.js")
	// The slow one's receive buffer stays small (64 KiB: smaller ones
	// make loopback TCP crawl), so the server's queue fills soon.
	slowDialer := *websocket.DefaultDialer
	slowDialer.NetDial = func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}
	slow, _, err := slowDialer.Dial("ws://"+peer+"/realtime", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := dial(t, "ws://"+peer+"/realtime")
	for _, c := range []*websocket.Conn{slow, fast} {
		send(t, c, `{"id":1,"op":"subscribe","channel":"push:bench"}`)
		next(t, c)
	}
	pad := strings.Repeat("x", dataBytes)
	for i := 1; i <= publications; i++ {
		if status, answer := publish(t, peer, apiKey, `{"channel":"push:bench","data":"`+pad+`"}`); status != http.StatusOK {
			t.Fatalf("publication %d: %d %s", i, status, answer)
		}
		want := `{"channel":"push:bench","offset":` + strconv.Itoa(i) + `,"data":"`
		if p := next(t, fast); !strings.HasPrefix(p, want) {
			t.Fatalf("the reading subscriber's push %d: %.60s, want %s…", i, p, want)
		}
	}
	got := 0
	for {
		_ = slow.SetReadDeadline(time.Now().Add(waitTimeout))
		_, b, err := slow.ReadMessage()
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("the slow subscriber is still open after %d of %d publications", got, publications)
			}
			break
		}
		got++
		if want := `{"channel":"push:bench","offset":` + strconv.Itoa(got) + `,"data":"`; !strings.HasPrefix(string(b), want) {
			t.Fatalf("the slow subscriber's message %d: %.60s, want %s… (a gap)", got, b, want)
		}
	}
	if got >= publications {
		t.Errorf("the slow subscriber got all %d publications: the test did not fill its queue", got)
	}
	t.Logf("the slow subscriber got publications 1..%d, then was closed", got)
}
