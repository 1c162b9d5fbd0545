package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
)

// testServer is a real duplex server on a random loopback port.
type testServer struct {
	app    *App
	addr   string // host:port
	served chan error
}

// testEnv looks settings up in env; WS_POLLER comes from the test
// process's environment unless env sets it, so that `WS_POLLER=off go
// test` runs the suites on the goroutine-per-connection path that systems
// other than Linux have.
func testEnv(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok || k != "WS_POLLER" {
			return v
		}
		return os.Getenv(k)
	}
}

// manyClientsEnv is rtEnv(extra) for a test that opens many connections
// from one loopback address at once: the per-address limits, which are
// for the internet (TestConnectionCapPerIP, TestConnectRatePerIP), are off.
func manyClientsEnv(extra map[string]string) map[string]string {
	env := rtEnv(extra)
	env["CONNECT_RATE_PER_IP"], env["MAX_CONNECTIONS_PER_IP"] = "0", "0"
	return env
}

// startServer runs the server with the given environment on top of the
// defaults, and shuts it down when the test ends.
func startServer(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	return startServerWith(t, env, features.Default())
}

// startServerWith is startServer with the features fs instead of the
// product's.
func startServerWith(t *testing.T, env map[string]string, fs []*features.Feature) *testServer {
	t.Helper()
	return startServerLogging(t, env, fs, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// startServerLogging is startServerWith logging to log.
func startServerLogging(t *testing.T, env map[string]string, fs []*features.Feature, log *slog.Logger) *testServer {
	t.Helper()
	cfg, err := config.Load(nil, testEnv(env), io.Discard, features.ConfigExtensions(fs)...)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := New(context.Background(), cfg, fs, log, "test")
	if err != nil {
		t.Fatalf("new app: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{app: a, addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { s.served <- a.Serve(ln) }()
	t.Cleanup(func() { s.shutdown(t, 5*time.Second) })
	return s
}

// shutdown stops the server once; later calls return at once.
func (s *testServer) shutdown(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if s.app == nil {
		return nil
	}
	a := s.app
	s.app = nil
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := a.Shutdown(ctx)
	if serr := <-s.served; serr != nil {
		t.Errorf("serve: %v", serr)
	}
	return err
}

func (s *testServer) url(path string) string   { return "http://" + s.addr + path }
func (s *testServer) wsURL(path string) string { return "ws://" + s.addr + path }

// dial opens a WebSocket as a non-browser client (no Origin header).
func (s *testServer) dial(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(s.wsURL(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *testServer) get(t *testing.T, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(s.url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testWriter sends server logs to the test log, so they show on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
