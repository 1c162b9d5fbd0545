package app

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
)

func TestPageKeepsTheTutorialDOM(t *testing.T) {
	s := startServer(t, nil)
	status, hdr, body := s.get(t, "/")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", status, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`id="result"`, `<form id="form"`, `id="m"`, `placeholder="请输入您的昵称"`, `>发送</button>`,
		`<html lang="zh-CN">`, `/static/js/echo.js`, `/static/css/site.css`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("X-Frame-Options") == "" || hdr.Get("X-Request-Id") == "" {
		t.Errorf("missing security or request-id headers: %v", hdr)
	}

	status, hdr, body = s.get(t, "/static/js/echo.js")
	if status != 200 || !strings.Contains(hdr.Get("Content-Type"), "javascript") || !strings.Contains(body, "已连接上!") {
		t.Fatalf("echo.js: %d %s", status, hdr.Get("Content-Type"))
	}
	// The script builds its URL from location, never a fixed address.
	if strings.Contains(body, "ws://") || strings.Contains(body, "localhost") {
		t.Error("echo.js hard-codes an address")
	}
	if status, _, _ := s.get(t, "/static/css/site.css"); status != 200 {
		t.Fatalf("site.css: %d", status)
	}
}

// TestUpgradeAnswerCarriesNoDocumentHeaders: the 101 of a WebSocket
// upgrade carries the request id and the handshake, but none of the
// security headers a page gets (they apply to documents, and each new
// connection would pay for a dozen of them); the socket works, and a
// page of the same server still has them.
func TestUpgradeAnswerCarriesNoDocumentHeaders(t *testing.T) {
	s := startServer(t, nil)
	c, resp, err := websocket.DefaultDialer.Dial(s.wsURL("/realtime"), nil)
	if err != nil {
		t.Fatalf("dial /realtime: %v", err)
	}
	defer c.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") == "" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("upgrade answered %d %v", resp.StatusCode, resp.Header)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Cross-Origin-Embedder-Policy", "Referrer-Policy"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("the 101 carries %s: %q", h, v)
		}
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, reply, err := c.ReadMessage(); err != nil || !strings.Contains(string(reply), `"id":1,"result"`) {
		t.Fatalf("subscribe reply %s, %v", reply, err)
	}
	if _, hdr, _ := s.get(t, "/"); hdr.Get("Content-Security-Policy") != wantCSP || hdr.Get("X-Frame-Options") == "" {
		t.Errorf("the page lost its security headers: %v", hdr)
	}
}

// wantCSP is the Content-Security-Policy every page is served with, spelt
// out so that a change to it is a deliberate one: page data must not need
// an inline script or any other loosening.
const wantCSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// TestPageDataRoundTrips: a page's data reaches the browser as data-*
// attributes on <body> whose decoded values are exactly what the server
// gave, characters that need escaping included, even when they come from
// the request; the CSP stays as strict as before, and a page without data
// has a bare <body>.
func TestPageDataRoundTrips(t *testing.T) {
	a, _ := newUnstartedApp(t, nil)
	symbols := `["600519.SS","AT&T","<b>\"引号\"</b>","O'Reilly","贵州茅台"]`
	a.fiber.Get("/page-data", handlers.PageWith("index", "行情", handlers.PageData{
		"symbols":   func(*fiber.Ctx) string { return symbols },
		"room-name": func(c *fiber.Ctx) string { return c.Query("room") },
	}))
	room := `大厅" onload="alert(1)<script>&amp;`

	status, csp, page := getPage(t, a, "/page-data?room="+url.QueryEscape(room))
	if status != 200 {
		t.Fatalf("GET /page-data = %d %s", status, page)
	}
	if csp != wantCSP {
		t.Errorf("Content-Security-Policy = %q, want %q", csp, wantCSP)
	}
	// Everything between <body and > is the attributes; an unescaped quote
	// or < in a value would end them early and fail the comparison.
	body := regexp.MustCompile(`<body([^>]*)>`).FindStringSubmatch(page)
	if body == nil {
		t.Fatalf("no <body> in %s", page)
	}
	attrs := map[string]string{}
	for _, m := range regexp.MustCompile(` ([a-z-]+)="([^"]*)"`).FindAllStringSubmatch(body[1], -1) {
		attrs[m[1]] = html.UnescapeString(m[2])
	}
	want := map[string]string{"data-symbols": symbols, "data-room-name": room}
	if !maps.Equal(attrs, want) {
		t.Errorf("<body%s> decodes to %q, want %q", body[1], attrs, want)
	}
	if !strings.Contains(page, `id="result"`) {
		t.Error("the page with data lacks its own content")
	}

	status, csp, plain := getPage(t, a, "/")
	if status != 200 || csp != wantCSP || !strings.Contains(plain, "<body>\n") {
		t.Errorf("GET / = %d, CSP %q; want 200, %q and a bare <body> (no data): %.400s", status, csp, wantCSP, plain)
	}
}

// getPage fetches path from the unstarted app a: the status, the
// Content-Security-Policy header and the body.
func getPage(t *testing.T, a *App, path string) (status int, csp, body string) {
	t.Helper()
	resp, err := a.fiber.Test(httptest.NewRequest("GET", path, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Security-Policy"), string(b)
}

func TestErrorsLeakNothing(t *testing.T) {
	a, logs := newUnstartedApp(t, nil)
	a.fiber.Get("/boom", func(*fiber.Ctx) error { panic("secret-db-password") })
	a.fiber.Get("/fail", func(*fiber.Ctx) error { return io.ErrUnexpectedEOF })

	for _, path := range []string{"/boom", "/fail"} {
		resp, err := a.fiber.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 500 || string(body) != `{"error":"internal server error"}` {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	// The detail goes to the log, for the operator.
	if !strings.Contains(logs.String(), "secret-db-password") {
		t.Error("panic value not logged")
	}
	resp, _ := a.fiber.Test(httptest.NewRequest("GET", "/nope", nil))
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 404 || !strings.Contains(string(body), "error") {
		t.Errorf("/nope: %d %s", resp.StatusCode, body)
	}
}

func TestAccessLogSkipsProbes(t *testing.T) {
	a, logs := newUnstartedApp(t, nil)
	for _, path := range []string{"/healthz", "/livez", "/readyz", "/metrics", "/"} {
		if _, err := a.fiber.Test(httptest.NewRequest("GET", path, nil)); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"request"`) || !strings.Contains(lines[0], `"path":"/"`) ||
		!strings.Contains(lines[0], `"status":200`) || !strings.Contains(lines[0], `"request_id":"`) {
		t.Fatalf("access log = %q, want one structured line for /", lines)
	}
}

// newUnstartedApp builds the app with env over the defaults, for
// fiber.Test, with its log captured.
func newUnstartedApp(t *testing.T, env map[string]string) (*App, *bytes.Buffer) {
	t.Helper()
	fs := features.Default()
	cfg, err := config.Load(nil, testEnv(env), io.Discard, features.ConfigExtensions(fs)...)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	a, err := New(context.Background(), cfg, fs, slog.New(slog.NewJSONHandler(logs, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, logs
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	// fiber.Test's requests come from 0.0.0.0.
	for _, tc := range []struct{ trusted, wantIP string }{
		{"0.0.0.0", "203.0.113.7"},
		{"10.0.0.0/8", "0.0.0.0"},
		{"", "0.0.0.0"},
	} {
		a, logs := newUnstartedApp(t, map[string]string{"TRUSTED_PROXIES": tc.trusted})
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		if _, err := a.fiber.Test(req); err != nil {
			t.Fatal(err)
		}
		if want := `"ip":"` + tc.wantIP + `"`; !strings.Contains(logs.String(), want) {
			t.Errorf("TRUSTED_PROXIES=%q: access log %s lacks %s", tc.trusted, logs.String(), want)
		}
	}
}
