package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
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
