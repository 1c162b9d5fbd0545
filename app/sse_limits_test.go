package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseTestMaxMessage is the WS_MAX_MESSAGE_BYTES of these tests: above the
// 4 KiB an API request without the key may carry, so a body between the
// two shows which limit a route got.
const sseTestMaxMessage = 8192

// pingOfSize is a ping command padded with spaces to exactly n bytes.
func pingOfSize(id, n int) string {
	cmd := fmt.Sprintf(`{"id":%d,"op":"ping"}`, id)
	return cmd + strings.Repeat(" ", n-len(cmd))
}

// TestSSESessionEventNamesTheEmitLimit: the session event tells the
// client the largest emit (WS_MAX_MESSAGE_BYTES), so it can batch under
// it; a body of exactly that many bytes is taken, one byte more is 413
// and the stream goes on.
func TestSSESessionEventNamesTheEmitLimit(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"WS_MAX_MESSAGE_BYTES": fmt.Sprint(sseTestMaxMessage)}))
	c := openSSE(t, s, "name=limit", sseOptions{})
	if c.maxEmit != sseTestMaxMessage {
		t.Fatalf("session event max_emit = %d, want %d", c.maxEmit, sseTestMaxMessage)
	}
	if status, body := c.emitAs(pingOfSize(1, c.maxEmit), "", nil); status != 204 {
		t.Fatalf("an emit of max_emit bytes: %d %s, want 204", status, body)
	}
	c.reply(1)
	if status, body := c.emitAs(pingOfSize(2, c.maxEmit+1), "", nil); status != 413 ||
		!strings.Contains(body, "WS_MAX_MESSAGE_BYTES") {
		t.Fatalf("an emit of max_emit+1 bytes: %d %s, want 413", status, body)
	}
	if status, body := c.emitAs(`{"id":3,"op":"ping"}`, "", nil); status != 204 {
		t.Fatalf("an emit after the 413: %d %s", status, body)
	}
	c.reply(3)
}

// TestSSEEmitRouteSpellingsShareItsLimit: the router takes
// /realtime/emit/ (and other spellings: case, more slashes) for the emit,
// so each gets the emit's body limit, not the 4 KiB of an API request
// without the key, and the emit's own 413 past it.
func TestSSEEmitRouteSpellingsShareItsLimit(t *testing.T) {
	s := startServer(t, rtEnv(map[string]string{"WS_MAX_MESSAGE_BYTES": fmt.Sprint(sseTestMaxMessage)}))
	c := openSSE(t, s, "name=slash", sseOptions{})
	base := "http://" + s.addr
	for i, path := range []string{"/realtime/emit/", "/realtime/emit//", "/Realtime/EMIT", "/REALTIME/EMIT/"} {
		id := 10 + i
		status, body, err := tryPostEmitTo(base, path, c.session, pingOfSize(id, 6000), "", nil)
		if err != nil || status != 204 {
			t.Fatalf("6000 bytes to %s: %d %s %v, want 204 as on /realtime/emit", path, status, body, err)
		}
		c.reply(uint64(id))
		status, body, err = tryPostEmitTo(base, path, c.session, pingOfSize(id, 2*sseTestMaxMessage), "", nil)
		if err != nil || status != 413 || !strings.Contains(body, "WS_MAX_MESSAGE_BYTES") {
			t.Fatalf("twice the limit to %s: %d %s %v, want the emit's 413", path, status, body, err)
		}
	}
}

// TestSSEEmitRefusedFromItsHeadersIsReadableCrossOrigin: an emit whose
// Content-Length is far over the limit is answered 413 from its headers,
// before any handler runs; a page of an allowed origin must still be
// allowed to read that answer (Access-Control-Allow-Origin), or its
// browser shows it an opaque network error. A foreign origin is 403 with
// no such header, as when the body is read.
func TestSSEEmitRefusedFromItsHeadersIsReadableCrossOrigin(t *testing.T) {
	const allowed = "https://app.example"
	s := startServer(t, rtEnv(map[string]string{
		"WS_MAX_MESSAGE_BYTES": fmt.Sprint(sseTestMaxMessage), "ALLOWED_ORIGINS": allowed,
	}))
	c := openSSE(t, s, "name=cors", sseOptions{})
	for _, tc := range []struct {
		origin, path string
		status       int
		allowOrigin  string
		error        string
	}{
		{allowed, "/realtime/emit", 413, allowed, "WS_MAX_MESSAGE_BYTES"},
		{allowed, "/realtime/emit/", 413, allowed, "WS_MAX_MESSAGE_BYTES"},
		{"http://evil.example", "/realtime/emit", 403, "", "origin not allowed"},
	} {
		resp, body := postHeadersOnly(t, s.addr, tc.path+"?session="+c.session, tc.origin, 1<<20)
		var got struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &got)
		if resp.StatusCode != tc.status || resp.Header.Get("Access-Control-Allow-Origin") != tc.allowOrigin ||
			!strings.Contains(got.Error, tc.error) {
			t.Errorf("Origin %s, 1 MiB to %s: %d %v %s; want %d, Access-Control-Allow-Origin %q, error %q",
				tc.origin, tc.path, resp.StatusCode, resp.Header, body, tc.status, tc.allowOrigin, tc.error)
		}
		if tc.allowOrigin != "" && !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("Origin %s: Access-Control-Expose-Headers %q, want Retry-After", tc.origin, resp.Header.Get("Access-Control-Expose-Headers"))
		}
	}
	if status, body := c.emitAs(`{"id":1,"op":"ping"}`, "", nil); status != 204 {
		t.Fatalf("an emit after the refusals: %d %s", status, body)
	}
	c.reply(1)
}

// postHeadersOnly sends the headers of a POST of length bytes to uri from
// origin, and none of its body, and reads the answer: what a server that
// answers from the headers sends, with nothing unread left to reset the
// connection.
func postHeadersOnly(t *testing.T, addr, uri, origin string, length int) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(replyTimeout))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n",
		uri, addr, origin, length)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("POST %s from %s: %v", uri, origin, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp, sb.String()
}
