package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/internal/wstest"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

var testLimits = wsconn.Limits{
	MaxMessageBytes: 1 << 16,
	PingInterval:    time.Minute,
	PongTimeout:     time.Minute,
	WriteTimeout:    2 * time.Second,
	SendQueueBytes:  1 << 20,
}

// nopRefusals counts nothing.
type nopRefusals struct{}

func (nopRefusals) UpgradeRefused(string) {}

// serveRoute runs a Fiber app on loopback whose /ws upgrades through
// WebSocket with open (behind the guard and mw), as app does, and returns
// its address and the log.
func serveRoute(t *testing.T, open Opener, mw ...fiber.Handler) (addr string, log *testbin.SyncBuffer) {
	t.Helper()
	return serveRouteWith(t, testLimits, open, mw...)
}

// serveRouteWith is serveRoute with the limits lim.
func serveRouteWith(t *testing.T, lim wsconn.Limits, open Opener, mw ...fiber.Handler) (addr string, log *testbin.SyncBuffer) {
	t.Helper()
	log = &testbin.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mode, err := wsconn.ParsePollerMode(cmp.Or(os.Getenv("WS_POLLER"), "auto"))
	if err != nil {
		t.Fatal(err)
	}
	reg := wsconn.NewRegistry(wsconn.RegistryConfig{MaxSessions: 100, Poller: mode, Log: logger})
	f := fiber.New(fiber.Config{DisableStartupMessage: true})
	f.Server().KeepHijackedConns = true
	f.Use(requestid.New())
	chain := append([]fiber.Handler{UpgradeGuard(reg, NewOriginPolicy(nil, false), nil, nopRefusals{})}, mw...)
	chain = append(chain, WebSocket(reg, lim, open, logger), UpgradeRequired(nopRefusals{}))
	f.Get("/ws", chain...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Listener(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = f.ShutdownWithContext(ctx)
		_ = reg.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String(), log
}

func dial(t *testing.T, url string) *fastws.Conn {
	t.Helper()
	c, resp, err := fastws.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// replier answers every text message with what reply says, once the
// session is open.
type replier struct {
	s     *wsconn.Session
	reply string
}

func (h replier) HandleMessage(kind wsconn.MessageType, _ []byte) {
	_ = h.s.Reply(kind, []byte(h.reply))
}
func (replier) Closed() {}

// contrib/websocket's default RecoverHandler writes the panic value to the
// client as JSON. Ours logs it and sends close 1011 with no reason.
func TestPanicBeforeTheSessionGetsOnly1011(t *testing.T) {
	const secret = "secret internal detail 42"
	addr, log := serveRoute(t, func(*websocket.Conn) wsconn.OpenFunc { panic(secret) })
	c := dial(t, "ws://"+addr+"/ws")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	kind, msg, err := c.ReadMessage()
	var ce *fastws.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got message %d %q (err %v), want a close frame", kind, msg, err)
	}
	if ce.Code != int(wsconn.CloseInternalError) || ce.Text != "" {
		t.Fatalf("close %d %q, want 1011 with no reason", ce.Code, ce.Text)
	}
	if !strings.Contains(log.String(), secret) || !strings.Contains(log.String(), "panicked") {
		t.Fatalf("the panic is not in the log:\n%s", log)
	}
	// The server goes on serving.
	addr2, _ := serveRoute(t, func(*websocket.Conn) wsconn.OpenFunc {
		return func(s *wsconn.Session) wsconn.Handler { return replier{s, "ok"} }
	})
	c2 := dial(t, "ws://"+addr2+"/ws")
	if err := c2.WriteMessage(fastws.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c2.ReadMessage(); err != nil || string(got) != "ok" {
		t.Fatalf("after a panic: %q %v", got, err)
	}
}

// Request data reaches the socket only through Locals, which contrib
// copies at the upgrade: the identity (with the guest name) that
// RealtimeIdentity leaves, and the request id. Many connections at once,
// each with its own name, each get their own back after the request
// buffers have been reused (the race detector watches for aliasing).
func TestLocalsCarryIdentityAndRequestID(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]bool{}
	open := func(conn *websocket.Conn) wsconn.OpenFunc {
		id, _ := conn.Locals(identityKey).(realtime.Identity)
		rid, _ := conn.Locals(requestIDKey).(string)
		mu.Lock()
		dup := ids[rid]
		ids[rid] = true
		mu.Unlock()
		reply := id.Name + "|" + rid
		if dup || rid == "" {
			reply = "bad request id " + rid
		}
		return func(s *wsconn.Session) wsconn.Handler { return replier{s, reply} }
	}
	addr, _ := serveRoute(t, open, RealtimeIdentity(nil))
	const n = 40
	conns := make([]*fastws.Conn, n)
	for i := range conns {
		conns[i] = dial(t, fmt.Sprintf("ws://%s/ws?name=%%E6%%9D%%8E%%E6%%97%%BA%d", addr, i)) // 李旺<i>
	}
	for i, c := range conns {
		if err := c.WriteMessage(fastws.TextMessage, []byte("who")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		name, rid, _ := strings.Cut(string(got), "|")
		if name != fmt.Sprintf("李旺%d", i) || len(rid) < 16 {
			t.Fatalf("connection %d sees %q, want its own name and a request id", i, got)
		}
	}
}

// The session owns the socket from the first byte after the handshake: a
// frame the client sends together with its upgrade request (so it sits
// in the server's read buffer) still reaches the handler.
func TestFrameSentWithTheHandshakeIsRead(t *testing.T) {
	addr, _ := serveRoute(t, func(*websocket.Conn) wsconn.OpenFunc {
		return func(s *wsconn.Session) wsconn.Handler { return replier{s, "got it"} }
	})
	r := wstest.UpgradeSendingFrame(t, addr, "/ws", wstest.ClientFrame(true, false, 0x1, []byte("hi")), 5*time.Second)
	if got := wstest.ReadShortTextFrame(t, r); got != "got it" {
		t.Fatalf("got text %q, want \"got it\"", got)
	}
}
