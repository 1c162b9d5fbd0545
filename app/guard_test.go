package app

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// dialWithOrigin tries an upgrade with the given Origin header and returns
// the HTTP status and body of the answer.
func dialWithOrigin(t *testing.T, s *testServer, origin string) (int, string) {
	t.Helper()
	return dialWithHeaders(t, s, origin, nil)
}

// dialWithHeaders is dialWithOrigin with more request headers.
func dialWithHeaders(t *testing.T, s *testServer, origin string, more map[string]string) (int, string) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	for k, v := range more {
		h.Set(k, v)
	}
	c, resp, err := websocket.DefaultDialer.Dial(s.wsURL("/ws"), h)
	if err == nil {
		c.Close()
		return resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestOriginCheck(t *testing.T) {
	s := startServer(t, map[string]string{"ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000"})
	cases := []struct {
		origin string
		want   int
	}{
		{"", 101},                        // not a browser
		{"http://" + s.addr, 101},        // the page's own host
		{"https://app.example.com", 101}, // listed
		{"http://localhost:3000", 101},   // listed
		{"https://evil.example", 403},
		{"https://app.example.com.evil.example", 403},
		{"http://localhost:3001", 403},
		{"null", 403},
	}
	for _, tc := range cases {
		status, body := dialWithOrigin(t, s, tc.origin)
		if status != tc.want {
			t.Errorf("Origin %q: HTTP %d, want %d", tc.origin, status, tc.want)
		}
		if tc.want == 403 && !strings.Contains(body, "origin not allowed") {
			t.Errorf("Origin %q: body %q does not say why", tc.origin, body)
		}
	}
	metric := scrapeMetric(t, s, `duplex_websocket_upgrades_refused_total{reason="origin"}`)
	if metric != 4 {
		t.Errorf("refused-for-origin metric = %v, want 4", metric)
	}
}

// The same-host rule compares Origin with the host the client asked for.
// X-Forwarded-Host names that host only when a trusted proxy set it:
// from anyone else it would let any site pass as the page's own host.
func TestForwardedHostOnlyFromTrustedProxies(t *testing.T) {
	forged := map[string]string{"X-Forwarded-Host": "evil.example"}
	direct := startServer(t, nil)
	if status, _ := dialWithHeaders(t, direct, "http://evil.example", forged); status != 403 {
		t.Errorf("untrusted X-Forwarded-Host let a foreign origin in: HTTP %d, want 403", status)
	}
	behindProxy := startServer(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"})
	if status, _ := dialWithHeaders(t, behindProxy, "https://app.example", map[string]string{"X-Forwarded-Host": "app.example"}); status != 101 {
		t.Errorf("a trusted proxy's X-Forwarded-Host was ignored: HTTP %d, want 101", status)
	}
	if status, _ := dialWithHeaders(t, behindProxy, "http://evil.example", nil); status != 403 {
		t.Errorf("behind a proxy, a foreign origin got HTTP %d, want 403", status)
	}
}

func TestOriginWildcardMustBeSpelledOut(t *testing.T) {
	strict := startServer(t, nil)
	if status, _ := dialWithOrigin(t, strict, "https://anywhere.example"); status != 403 {
		t.Fatalf("default config let a foreign origin in: HTTP %d", status)
	}
	open := startServer(t, map[string]string{"ALLOWED_ORIGINS": "*"})
	if status, _ := dialWithOrigin(t, open, "https://anywhere.example"); status != 101 {
		t.Fatalf("ALLOWED_ORIGINS=* refused an origin: HTTP %d", status)
	}
}

func TestConnectionCap(t *testing.T) {
	s := startServer(t, map[string]string{"MAX_CONNECTIONS": "2"})
	first := s.dial(t, "/ws")
	second := s.dial(t, "/ws")
	waitFor(t, "two connections", 2*time.Second, func() bool { return s.app.Connections() == 2 })

	_, resp, err := websocket.DefaultDialer.Dial(s.wsURL("/ws"), nil)
	if err == nil {
		t.Fatal("third connection was accepted over the cap")
	}
	if resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %v, want 503 with Retry-After", resp)
	}

	// The server is unaffected, and a slot freed is a slot usable again.
	assertEchoes(t, first)
	first.Close()
	waitFor(t, "a free slot", 2*time.Second, func() bool { return s.app.Connections() == 1 })
	assertEchoes(t, s.dial(t, "/ws"))
	assertEchoes(t, second)
	if got := scrapeMetric(t, s, `duplex_websocket_upgrades_refused_total{reason="capacity"}`); got != 1 {
		t.Fatalf("refused-for-capacity metric = %v, want 1", got)
	}
}

func TestMalformedHandshake(t *testing.T) {
	s := startServer(t, nil)
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	cases := []struct {
		name, extra string
		status      int
		version     string // the Sec-WebSocket-Version the answer must carry
	}{
		{"no key", "Sec-WebSocket-Version: 13\r\n", 400, ""},
		{"key not base64", "Sec-WebSocket-Key: not*base64*at*all*!!!!!\r\nSec-WebSocket-Version: 13\r\n", 400, ""},
		{"key of 15 bytes", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n", 400, ""},
		{"key of 17 bytes", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Version: 13\r\n", 400, ""},
		// RFC 6455 section 4.4: an unsupported version gets 426 and the
		// versions the server speaks.
		{"wrong version", key + "Sec-WebSocket-Version: 8\r\n", 426, "13"},
		{"no version", key, 426, "13"},
	}
	for _, tc := range cases {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		req := "GET /ws HTTP/1.1\r\nHost: " + s.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + tc.extra + "\r\n"
		_, _ = conn.Write([]byte(req))
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: HTTP %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("Sec-WebSocket-Version"); got != tc.version {
			t.Errorf("%s: Sec-WebSocket-Version %q, want %q", tc.name, got, tc.version)
		}
		conn.Close()
	}
	assertEchoes(t, s.dial(t, "/ws"))
	if got := scrapeMetric(t, s, `duplex_websocket_upgrades_refused_total{reason="bad_handshake"}`); got != float64(len(cases)) {
		t.Errorf("bad_handshake metric = %v, want %d", got, len(cases))
	}
}

// dialFrom tries an upgrade of /ws from the loopback source address src
// with extra headers, and returns the answer's status and Retry-After;
// on success the connection stays open until the test ends.
func dialFrom(t *testing.T, s *testServer, src string, headers map[string]string) (status int, retryAfter string) {
	t.Helper()
	d := *websocket.DefaultDialer
	nd := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	d.NetDial = nd.Dial
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	c, resp, err := d.Dial(s.wsURL("/ws"), h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// One address cannot take every slot: past MAX_CONNECTIONS_PER_IP it is
// answered 503 with Retry-After, and other addresses still get in. The
// address is the client's as TRUSTED_PROXIES defines it.
func TestConnectionCapPerIP(t *testing.T) {
	s := startServer(t, map[string]string{"MAX_CONNECTIONS_PER_IP": "2", "CONNECT_RATE_PER_IP": "0"})
	for i := range 2 {
		if status, _ := dialFrom(t, s, "127.0.0.1", nil); status != 101 {
			t.Fatalf("connection %d: HTTP %d", i, status)
		}
	}
	// The 101 goes out before the session is registered: wait for both,
	// or the next upgrade may pass the guard and meet Serve's 1013 instead.
	waitFor(t, "two sessions", 3*time.Second, func() bool { return s.app.Connections() == 2 })
	if status, retry := dialFrom(t, s, "127.0.0.1", nil); status != 503 || retry == "" {
		t.Fatalf("third connection from one address: HTTP %d, Retry-After %q; want 503 with Retry-After", status, retry)
	}
	if status, _ := dialFrom(t, s, "127.0.0.2", nil); status != 101 {
		t.Fatalf("another address: HTTP %d", status)
	}
	if got := scrapeMetric(t, s, `duplex_websocket_upgrades_refused_total{reason="ip_capacity"}`); got != 1 {
		t.Errorf("ip_capacity metric = %v, want 1", got)
	}

	// Behind a trusted proxy every client comes from the proxy's address;
	// X-Forwarded-For tells them apart.
	proxied := startServer(t, map[string]string{"MAX_CONNECTIONS_PER_IP": "1", "CONNECT_RATE_PER_IP": "0", "TRUSTED_PROXIES": "127.0.0.1"})
	if status, _ := dialFrom(t, proxied, "127.0.0.1", map[string]string{"X-Forwarded-For": "203.0.113.7"}); status != 101 {
		t.Fatalf("first proxied client: HTTP %d", status)
	}
	if status, _ := dialFrom(t, proxied, "127.0.0.1", map[string]string{"X-Forwarded-For": "203.0.113.8"}); status != 101 {
		t.Fatalf("second proxied client, another address: HTTP %d", status)
	}
	waitFor(t, "two proxied sessions", 3*time.Second, func() bool { return proxied.app.Connections() == 2 })
	if status, _ := dialFrom(t, proxied, "127.0.0.1", map[string]string{"X-Forwarded-For": "203.0.113.7"}); status != 503 {
		t.Fatalf("proxied client over its cap: HTTP %d, want 503", status)
	}
}

// An address opening connections faster than CONNECT_RATE_PER_IP allows
// is answered 429 with Retry-After; other addresses are not slowed.
func TestConnectRatePerIP(t *testing.T) {
	s := startServer(t, map[string]string{"CONNECT_RATE_PER_IP": "3"})
	for i := range 3 {
		if status, _ := dialFrom(t, s, "127.0.0.1", nil); status != 101 {
			t.Fatalf("connection %d of the burst: HTTP %d", i, status)
		}
	}
	status, retry := dialFrom(t, s, "127.0.0.1", nil)
	if status != 429 || retry == "" {
		t.Fatalf("fourth at once: HTTP %d, Retry-After %q; want 429 with Retry-After", status, retry)
	}
	if status, _ := dialFrom(t, s, "127.0.0.3", nil); status != 101 {
		t.Fatalf("another address: HTTP %d", status)
	}
	if got := scrapeMetric(t, s, `duplex_websocket_upgrades_refused_total{reason="ip_rate"}`); got != 1 {
		t.Errorf("ip_rate metric = %v, want 1", got)
	}
}
