// Package testserver runs a real duplex server inside the test process,
// on a loopback port, for tests outside package app (which has its own,
// app/server_test.go, and cannot import this one without a cycle): the Go
// client's tests, the example bot's. It can restart the server on the
// same port, as a deploy or a crash does.
package testserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/app"
	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
)

// The secrets every test server starts with: the HTTP API and tokens on.
const (
	APIKey      = "testserver-api-key-5d1e"
	TokenSecret = "testserver-token-secret-0123456789abcdef"
)

// shutdownTimeout bounds one graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Server is a duplex server on 127.0.0.1.
//
// Concurrency: every method may be called from any goroutine; Restart and
// Stop must not run at the same time as each other.
type Server struct {
	t    testing.TB
	env  map[string]string
	addr string // host:port, the same across restarts

	mu     sync.Mutex
	app    *app.App
	served chan error
}

// Start runs a server with env over the defaults (API_KEY, TOKEN_SECRET;
// WS_POLLER from the test process's environment unless env sets it) and
// stops it when the test ends.
func Start(t testing.TB, env map[string]string) *Server {
	t.Helper()
	s := &Server{t: t, env: env}
	s.serve(nil)
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) lookup(k string) string {
	if v, ok := s.env[k]; ok {
		return v
	}
	switch k {
	case "API_KEY":
		return APIKey
	case "TOKEN_SECRET":
		return TokenSecret
	case "WS_POLLER":
		return os.Getenv(k)
	}
	return ""
}

func (s *Server) serve(ln net.Listener) {
	s.t.Helper()
	fs := features.Default()
	cfg, err := config.Load(nil, s.lookup, io.Discard, features.ConfigExtensions(fs)...)
	if err != nil {
		s.t.Fatalf("testserver: config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(context.Background(), cfg, fs, log, "test")
	if err != nil {
		s.t.Fatalf("testserver: new app: %v", err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			s.t.Fatalf("testserver: %v", err)
		}
	}
	s.mu.Lock()
	s.app, s.addr, s.served = a, ln.Addr().String(), make(chan error, 1)
	served := s.served
	s.mu.Unlock()
	go func() { served <- a.Serve(ln) }()
}

// Stop shuts the server down gracefully (its clients get 1001); later
// calls return at once.
func (s *Server) Stop() {
	s.mu.Lock()
	a, served := s.app, s.served
	s.app = nil
	s.mu.Unlock()
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		s.t.Errorf("testserver: shutdown: %v", err)
	}
	if err := <-served; err != nil {
		s.t.Errorf("testserver: serve: %v", err)
	}
}

// Restart stops the server and starts a new one on the same port: with
// the in-memory broker every channel starts again in a new epoch.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("testserver: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// URL is http://127.0.0.1:port followed by path.
func (s *Server) URL(path string) string { return "http://" + s.addr + path }

// RealtimeURL is ws://127.0.0.1:port/realtime.
func (s *Server) RealtimeURL() string { return "ws://" + s.addr + "/realtime" }

// API calls the HTTP API with the server's key, sends body as JSON (when
// not nil) and decodes the answer into out (when not nil); it fails t
// unless the status is 200.
func (s *Server) API(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, s.URL(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.lookup("API_KEY"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: shutdownTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: answer %s: %v", method, path, data, err)
		}
	}
}

// Token mints a token for user (with display name) through POST /api/token.
func (s *Server) Token(t testing.TB, user, name, ttl string) string {
	t.Helper()
	body := map[string]string{"user": user, "name": name}
	if ttl != "" {
		body["ttl"] = ttl
	}
	var r struct{ Token string }
	s.API(t, "POST", "/api/token", body, &r)
	if r.Token == "" {
		t.Fatalf("POST /api/token gave no token")
	}
	return r.Token
}

// testWriter sends server logs to the test log, so they show on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
