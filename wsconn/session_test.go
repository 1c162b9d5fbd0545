package wsconn

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// testPollerMode is the poller mode of every registry the tests make:
// WS_POLLER=off runs them on the goroutine-per-connection path that every
// system other than Linux has.
func testPollerMode(t testing.TB) PollerMode {
	m, err := ParsePollerMode(cmp.Or(os.Getenv("WS_POLLER"), "auto"))
	if err != nil {
		t.Fatalf("WS_POLLER: %v", err)
	}
	return m
}

// newTestRegistry is a registry of max sessions in the tests' poller mode.
func newTestRegistry(t testing.TB, max int) *Registry {
	return NewRegistry(RegistryConfig{MaxSessions: max, Poller: testPollerMode(t)})
}

var testLimits = Limits{
	MaxMessageBytes: 1 << 16,
	PingInterval:    time.Minute,
	PongTimeout:     time.Minute,
	WriteTimeout:    2 * time.Second,
	SendQueueBytes:  1 << 20,
}

// serve runs reg behind a bare fasthttp server on a loopback port, with
// handle for every message, and returns its ws:// URL.
func serve(t *testing.T, reg *Registry, lim Limits, handle func(s *Session, kind MessageType, data []byte)) string {
	t.Helper()
	return openWith(t, reg, lim, func(s *Session) Handler { return funcHandler{s, handle} })
}

// writeModes are the two ways a session writes: straight to the socket
// when it can (TCP, as in production), or only through its writer
// goroutine (any other connection). Tests of ordering, flushing and the
// slow-consumer policy run in both.
var writeModes = []struct {
	name   string
	direct bool
}{{"direct", true}, {"queued", false}}

func serveMode(t *testing.T, direct bool, reg *Registry, lim Limits, handle func(s *Session, kind MessageType, data []byte)) string {
	t.Helper()
	return openServer(t, reg, lim, func(s *Session) Handler { return funcHandler{s, handle} }, direct)
}

// funcHandler adapts a plain function to Handler.
type funcHandler struct {
	s *Session
	f func(s *Session, kind MessageType, data []byte)
}

func (h funcHandler) HandleMessage(kind MessageType, data []byte) { h.f(h.s, kind, data) }
func (funcHandler) Closed()                                       {}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClose counts data messages until the server's close frame.
func readUntilClose(t *testing.T, c *websocket.Conn) (messages int, code CloseCode) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			messages++
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("after %d messages: no close frame: %v", messages, err)
		}
		return messages, CloseCode(ce.Code)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessions hands the test each session the server starts.
func sessions(reg *Registry, lim Limits, t *testing.T) (string, chan *Session) {
	return sessionsMode(t, true, reg, lim)
}

func sessionsMode(t *testing.T, direct bool, reg *Registry, lim Limits) (string, chan *Session) {
	got := make(chan *Session, 16)
	url := serveMode(t, direct, reg, lim, func(s *Session, _ MessageType, data []byte) {
		if string(data) == "hello" {
			got <- s
		}
	})
	return url, got
}

func TestShutdownFlushesQueuedMessagesBeforeGoingAway(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testShutdownFlushes(t, mode.direct) })
	}
}

func testShutdownFlushes(t *testing.T, direct bool) {
	reg := newTestRegistry(t, 10)
	url, got := sessionsMode(t, direct, reg, testLimits)
	c := dial(t, url)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s := <-got
	const queued = 200
	for i := 0; i < queued; i++ {
		if err := s.Send(websocket.TextMessage, []byte("queued before shutdown")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	errs := make(chan error, 1)
	go func() { errs <- reg.Shutdown(context.Background()) }()
	n, code := readUntilClose(t, c)
	if n != queued || code != CloseGoingAway {
		t.Fatalf("got %d messages then close %d, want %d then 1001", n, code, queued)
	}
	if err := <-errs; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := s.Send(websocket.TextMessage, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v, want ErrClosed", err)
	}
}

func TestSlowConsumerIsClosedWithTryAgainLater(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testSlowConsumer(t, mode.direct) })
	}
}

func testSlowConsumer(t *testing.T, direct bool) {
	lim := testLimits
	lim.SendQueueBytes = 64 << 10
	reg := newTestRegistry(t, 10)
	url, got := sessionsMode(t, direct, reg, lim)

	slow := dial(t, url)
	if err := slow.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	slowSession := <-got
	fast := dial(t, url)
	if err := fast.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	fastSession := <-got

	// The slow client reads nothing while up to 64 MiB is pushed at it:
	// far more than the queue and the socket buffers hold.
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	var err error
	for i := 0; i < 4096 && err == nil; i++ {
		err = slowSession.Send(websocket.BinaryMessage, chunk)
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("overfilled queue: err = %v, want ErrSlowConsumer", err)
	}
	// The other client is not held up by the slow one.
	if err := fastSession.Send(websocket.TextMessage, []byte("through")); err != nil {
		t.Fatal(err)
	}
	_ = fast.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, data, err := fast.ReadMessage(); err != nil || string(data) != "through" {
		t.Fatalf("fast client: %q %v", data, err)
	}
	// The slow client gets what was queued, then the close code.
	_, code := readUntilClose(t, slow)
	if code != CloseTryAgainLater {
		t.Fatalf("slow consumer closed with %d, want 1013", code)
	}
	waitUntil(t, "the slow session to end", func() bool { return reg.Len() == 1 })
}

// A client that stops reading is dropped once it has taken nothing for the
// write timeout, whether its messages may be dropped or not: drop-oldest
// keeps a slow reader, not a stopped one.
func TestWriteDeadlineDropsClientThatStopsReading(t *testing.T) {
	for _, mode := range writeModes {
		for _, droppable := range []bool{false, true} {
			name := mode.name + "/send"
			if droppable {
				name = mode.name + "/drop-oldest"
			}
			t.Run(name, func(t *testing.T) { testWriteDeadlineDrops(t, mode.direct, droppable) })
		}
	}
}

func testWriteDeadlineDrops(t *testing.T, direct, droppable bool) {
	lim := testLimits
	lim.WriteTimeout = 200 * time.Millisecond
	lim.SendQueueBytes = 64 << 20
	if droppable {
		lim.SendQueueBytes = 1 << 20
		lim.MissedNotice = missedNotice
	}
	reg := newTestRegistry(t, 10)
	url, got := sessionsMode(t, direct, reg, lim)
	c := dial(t, url)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s := <-got
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	if !droppable {
		for i := 0; i < 512; i++ { // 32 MiB: more than loopback buffers take
			if s.Send(websocket.BinaryMessage, chunk) != nil {
				break
			}
		}
		waitUntil(t, "the stuck session to be dropped", func() bool { return reg.Len() == 0 })
		return
	}
	// Drop-oldest never fails a send, and a burst could fit in the
	// kernel's buffers: publish (64 MiB/s) until the session is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.SendDropOldest(websocket.BinaryMessage, chunk); err != nil {
			break // closing: the write deadline fired
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that reads nothing is still connected after %v", 5*time.Second)
		}
		time.Sleep(time.Millisecond)
	}
	waitUntil(t, "the stuck session to end", func() bool { return reg.Len() == 0 })
}

func TestHandlerPanicClosesWithInternalError(t *testing.T) {
	reg := newTestRegistry(t, 10)
	url := serve(t, reg, testLimits, func(s *Session, _ MessageType, data []byte) {
		if string(data) == "boom" {
			panic("secret internal detail")
		}
		_ = s.Reply(websocket.TextMessage, data)
	})
	victim := dial(t, url)
	other := dial(t, url)
	if err := victim.WriteMessage(websocket.TextMessage, []byte("boom")); err != nil {
		t.Fatal(err)
	}
	_ = victim.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err := victim.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || CloseCode(ce.Code) != CloseInternalError || ce.Text != "internal error" {
		t.Fatalf("after panic: %v, want close 1011 \"internal error\"", err)
	}
	if err := other.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, data, err := other.ReadMessage(); err != nil || string(data) != "still here" {
		t.Fatalf("other client: %q %v", data, err)
	}
}

func TestServeRefusesOverCapWithTryAgainLater(t *testing.T) {
	// Admitting is checked before the upgrade, but two upgrades can race
	// past it; Serve is the hard cap and closes the loser with 1013.
	reg := newTestRegistry(t, 1)
	url := serve(t, reg, testLimits, func(*Session, MessageType, []byte) {})
	dial(t, url)
	waitUntil(t, "one session", func() bool { return reg.Len() == 1 })
	second := dial(t, url)
	_, code := readUntilClose(t, second)
	if code != CloseTryAgainLater {
		t.Fatalf("over cap: close %d, want 1013", code)
	}
	if got := reg.Admitting(""); got != RefusedCapacity {
		t.Fatalf("Admitting() = %v at the cap, want %v", got, RefusedCapacity)
	}
}

// One peer holds at most MaxPerPeer sessions; others are not affected,
// and a slot freed is a slot the peer may use again.
func TestServeCapsSessionsPerPeer(t *testing.T) {
	reg := NewRegistry(RegistryConfig{MaxSessions: 10, MaxPerPeer: 2, Poller: testPollerMode(t)})
	url := openServerAs(t, reg, testLimits, func(s *Session) Handler {
		return funcHandler{s, func(*Session, MessageType, []byte) {}}
	}, true, func(ctx *fasthttp.RequestCtx) string { return string(ctx.Request.Header.Peek("X-Peer")) })
	dialAs := func(peer string) *websocket.Conn {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(url, map[string][]string{"X-Peer": {peer}})
		if err != nil {
			t.Fatalf("dial as %s: %v", peer, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a1 := dialAs("a")
	dialAs("a")
	waitUntil(t, "two sessions", func() bool { return reg.Len() == 2 })
	if got := reg.Admitting("a"); got != RefusedPeerCapacity {
		t.Fatalf("Admitting(a) = %v with a at its cap", got)
	}
	if got := reg.Admitting("b"); got != Admitted {
		t.Fatalf("Admitting(b) = %v, want admitted", got)
	}
	// The hard cap in Serve, for upgrades that raced past Admitting.
	if _, code := readUntilClose(t, dialAs("a")); code != CloseTryAgainLater {
		t.Fatalf("third session of a: close %d, want 1013", code)
	}
	dialAs("b")
	waitUntil(t, "b's session", func() bool { return reg.Len() == 3 })
	_ = a1.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	waitUntil(t, "a's slot freed", func() bool { return reg.Admitting("a") == Admitted })
}

func TestNoGoroutineLeakAfterManyConnections(t *testing.T) {
	reg := newTestRegistry(t, 100)
	var served atomic.Int64
	url := serve(t, reg, testLimits, func(s *Session, kind MessageType, data []byte) {
		served.Add(1)
		_ = s.Reply(kind, data)
	})
	// Warm up pools and the server's accept loop before counting.
	c := dial(t, url)
	c.Close()
	waitUntil(t, "warm-up session to end", func() bool { return reg.Len() == 0 })
	before := runtime.NumGoroutine()

	for i := 0; i < 1000; i++ {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if i%2 == 0 { // half talk first, half just leave
			_ = c.WriteMessage(websocket.TextMessage, []byte("hi"))
			_, _, _ = c.ReadMessage()
		}
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		c.Close()
	}
	waitUntil(t, "all sessions to end", func() bool { return reg.Len() == 0 })
	waitUntil(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+5 })
	if served.Load() != 500 {
		t.Fatalf("served %d messages, want 500", served.Load())
	}
}

// openWith runs reg behind a bare fasthttp server on a loopback port, with
// handlers made by open, and returns its ws:// URL. Everything is stopped
// when the test ends. Sessions are given their socket, as in production.
func openWith(t *testing.T, reg *Registry, lim Limits, open OpenFunc) string {
	t.Helper()
	return openServer(t, reg, lim, open, true)
}

// openServer is openWith; with direct false the sessions get no socket (as
// for a connection that is not TCP): they are read on the handler goroutine
// and every frame goes through the writer goroutine.
func openServer(t *testing.T, reg *Registry, lim Limits, open OpenFunc, direct bool) string {
	t.Helper()
	return openServerAs(t, reg, lim, open, direct, func(*fasthttp.RequestCtx) string { return "" })
}

// openServerAs is openServer; peer names each connection's peer for Serve.
func openServerAs(t *testing.T, reg *Registry, lim Limits, open OpenFunc, direct bool, peer func(*fasthttp.RequestCtx) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return openServerOn(t, ln, reg, lim, open, direct, peer)
}

// openServerOn is openServerAs on the listener ln.
func openServerOn(t *testing.T, ln net.Listener, reg *Registry, lim Limits, open OpenFunc, direct bool, peer func(*fasthttp.RequestCtx) string) string {
	t.Helper()
	up := websocket.FastHTTPUpgrader{CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			var sock net.Conn
			if direct {
				sock = ctx.Conn()
			}
			p := peer(ctx)
			_ = up.Upgrade(ctx, func(c *websocket.Conn) { reg.Serve(c.NetConn(), sock, p, &lim, open) })
		},
		// A session given its socket closes it itself, after Serve returned.
		KeepHijackedConns: direct,
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = reg.Shutdown(ctx)
		_ = srv.Shutdown()
		<-done
	})
	return "ws://" + ln.Addr().String()
}

func TestTextMessagesAreBatchedIntoFrames(t *testing.T) {
	lim := testLimits
	lim.MaxBatch = 8
	reg := newTestRegistry(t, 10)
	// Queued while a write is under way (writeMu held here), so the
	// writer finds all 20 at once.
	url := openWith(t, reg, lim, func(s *Session) Handler {
		s.writeMu.Lock()
		for i := 0; i < 20; i++ {
			_ = s.Send(websocket.TextMessage, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		}
		s.writeMu.Unlock()
		return funcHandler{s, func(*Session, MessageType, []byte) {}}
	})
	c := dial(t, url)
	var frames []int
	next := 0
	for next < 20 {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		kind, data, err := c.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			t.Fatalf("read: kind %d err %v", kind, err)
		}
		lines := strings.Split(string(data), "\n")
		for _, l := range lines {
			if want := fmt.Sprintf(`{"n":%d}`, next); l != want {
				t.Fatalf("message %q, want %q", l, want)
			}
			next++
		}
		frames = append(frames, len(lines))
	}
	if fmt.Sprint(frames) != "[8 8 4]" {
		t.Fatalf("messages per frame = %v, want [8 8 4]", frames)
	}
}

func TestDropOldestNeverDisconnects(t *testing.T) {
	lim := testLimits
	lim.SendQueueBytes = 4 << 10
	reg := newTestRegistry(t, 10)
	var dropped atomic.Int64
	url := openWith(t, reg, lim, func(s *Session) Handler {
		// Far more than the queue holds, before the writer can drain any
		// (writeMu held here, as during a write).
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		for i := 0; i < 1000; i++ {
			n, err := s.SendDropOldest(websocket.TextMessage, []byte(fmt.Sprintf("%04d%s", i, strings.Repeat(".", 60))))
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
			dropped.Add(int64(n))
		}
		return funcHandler{s, func(*Session, MessageType, []byte) {}}
	})
	c := dial(t, url)
	var last string
	received := 0
	for !strings.HasPrefix(last, "0999") {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", received, err)
		}
		last = string(data)
		received++
	}
	if dropped.Load() == 0 || int64(received)+dropped.Load() != 1000 {
		t.Fatalf("received %d, dropped %d: want some dropped and none lost uncounted", received, dropped.Load())
	}
	if reg.Len() != 1 {
		t.Fatal("drop-oldest closed the connection")
	}
}

func TestReplyKeepsOrderWithSendAndDoesNotKeepTheBuffer(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testReplyKeepsOrder(t, mode.direct) })
	}
}

func testReplyKeepsOrder(t *testing.T, direct bool) {
	reg := newTestRegistry(t, 10)
	const total = 2000
	url := serveMode(t, direct, reg, testLimits, func(s *Session, _ MessageType, data []byte) {
		// One goroutine mixing queued and inline sends, reusing one buffer
		// for Reply: the client must still see 0..total-1 in order.
		scratch := make([]byte, 0, 16)
		for i := 0; i < total; i++ {
			if i%3 == 0 {
				_ = s.Send(websocket.TextMessage, []byte(strconv.Itoa(i)))
				continue
			}
			scratch = strconv.AppendInt(scratch[:0], int64(i), 10)
			_ = s.Reply(websocket.TextMessage, scratch)
		}
	})
	c := dial(t, url)
	if err := c.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < total; i++ {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, data)
		}
	}
}

// expectEcho sends msg on c and fails t unless the next message back is
// msg, within 3 s: a round trip through an echoing session.
func expectEcho(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	expectReply(t, c, msg)
}

// expectReply reads the next message and fails unless it is msg.
func expectReply(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, data, err := c.ReadMessage(); err != nil || string(data) != msg {
		t.Fatalf("echo %q: %q %v", msg, data, err)
	}
}

// An idle session costs no goroutine where the registry polls: its read
// turn hands the socket to the registry's poller after activeLinger of
// silence, and the writer runs only while something is queued. Without
// the poller (WS_POLLER=off, and every system but Linux) it costs its
// reader alone, and no writer. The sessions still answer afterwards.
func TestIdleSessionGoroutines(t *testing.T) {
	reg := newTestRegistry(t, 100)
	url := serve(t, reg, testLimits, func(s *Session, kind MessageType, data []byte) { _ = s.Reply(kind, data) })
	c := dial(t, url) // warm up the server's pools and the poller
	expectEcho(t, c, "warm-up")
	c.Close()
	waitUntil(t, "warm-up session to end", func() bool { return reg.Len() == 0 })
	time.Sleep(activeLinger + 100*time.Millisecond)
	before := runtime.NumGoroutine()
	const conns = 50
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		clients[i] = dial(t, url)
		expectEcho(t, clients[i], "hi")
	}
	if reg.Len() != conns {
		t.Fatalf("%d sessions, want %d", reg.Len(), conns)
	}
	// The client side of each connection has no goroutine either (the
	// test reads synchronously); the server's 50 read turns wind down.
	perSession := 0
	if !reg.Polling() {
		perSession = 1
	}
	deadline := time.Now().Add(activeLinger + 3*time.Second)
	for runtime.NumGoroutine() > before+2+perSession*conns {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle sessions (%d before)", runtime.NumGoroutine(), conns, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, c := range clients {
		expectEcho(t, c, "again "+strconv.Itoa(i))
	}
}

// throttledConn is a client on a slow link that keeps reading: each Read
// waits for its slot and takes at most slowReadBytes, so the client drains
// slowReadBytes per slowReadEvery, steadily.
type throttledConn struct {
	net.Conn
	next time.Time
}

const (
	slowReadBytes = 4 << 10
	slowReadEvery = 5 * time.Millisecond
)

func (c *throttledConn) Read(b []byte) (int, error) {
	if d := time.Until(c.next); d > 0 {
		time.Sleep(d)
	}
	c.next = time.Now().Add(slowReadEvery)
	return c.Conn.Read(b[:min(len(b), slowReadBytes)])
}

// dialSlowReader dials url with a small receive buffer (set before the
// connection, so the window the server sees is small) and reads through a
// throttledConn.
func dialSlowReader(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = setRecvBuffer(fd, slowReaderRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &throttledConn{Conn: c}, nil
	}}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowReaderRcvBuf is the slow client's SO_RCVBUF: small, so that what the
// server writes waits in its own socket, paced by the client's reads.
const slowReaderRcvBuf = 4 << 10

// slowReaderSndBuf is the server's SO_SNDBUF towards the slow client.
const slowReaderSndBuf = 16 << 10

// sendBufferListener sets the send buffer of every connection it accepts.
type sendBufferListener struct {
	net.Listener
	bytes int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := setSendBuffer(c, l.bytes); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func missedNotice(n int) []byte { return []byte(`{"missed":` + strconv.Itoa(n) + `}`) }

// A client that keeps reading, only slower than a whole queue per
// WriteTimeout, is not dropped by the write deadline: on drop-oldest
// messages it loses the oldest, is told how many, and stays connected to
// the end (a sentinel that cannot be dropped).
func TestSlowReaderThatKeepsReadingStaysConnected(t *testing.T) {
	for _, mode := range writeModes {
		// 600 publications: 1.2 s of flood at 4 MiB/s, five times what
		// the client reads.
		t.Run(mode.name, func(t *testing.T) { testSlowReaderStays(t, mode.direct, slowReaderSndBuf, 600) })
	}
}

// TestSlowReaderBehindALargeSendBufferStaysConnected: the same reader
// behind a send buffer of megabytes, as loopback and proxies grow them.
// The kernel reports such a socket writable again only once a third of
// its buffer is free, which the slow reader takes seconds to drain: the
// writer sees no write return for longer than the write timeout although
// the client takes bytes all along. Progress is the kernel's unsent bytes
// going down (where the system tells them), so the reader stays.
func TestSlowReaderBehindALargeSendBufferStaysConnected(t *testing.T) {
	if !unsentBytesKnown {
		t.Skip("this system does not tell a socket's unsent bytes")
	}
	for _, mode := range writeModes {
		// 1,500 publications: 3 s of flood, more than the kernel's
		// buffer and the queue hold together.
		t.Run(mode.name, func(t *testing.T) { testSlowReaderStays(t, mode.direct, 2<<20, 1500) })
	}
}

func testSlowReaderStays(t *testing.T, direct bool, sndBuf, published int) {
	const (
		msgBytes   = 8 << 10
		publishGap = 2 * time.Millisecond
		sentinel   = "end"
	)
	lim := testLimits
	// The client needs over a second to read a full queue (1 MiB), more
	// than twice the write timeout: one flush of it cannot finish under
	// one deadline, while a writeChunk takes it a fraction of one (80 ms).
	// 500 ms, not less: a CI run (-race, the whole suite on 2 cores) once
	// stalled the client's reads past 300 ms and the reader was dropped.
	lim.WriteTimeout = 500 * time.Millisecond
	lim.MissedNotice = missedNotice
	reg := newTestRegistry(t, 10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A small send buffer on the server too: loopback would otherwise grow
	// it to megabytes, and the backlog would wait in the kernel, not in
	// the queue.
	got := make(chan *Session, 1)
	url := openServerOn(t, sendBufferListener{ln, sndBuf}, reg, lim, func(s *Session) Handler {
		return funcHandler{s, func(s *Session, _ MessageType, data []byte) {
			if string(data) == "hello" {
				got <- s
			}
		}}
	}, direct, func(*fasthttp.RequestCtx) string { return "" })
	c := dialSlowReader(t, url)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s := <-got

	var dropped atomic.Int64
	flood := make(chan error, 1)
	go func() {
		msg := bytes.Repeat([]byte("x"), msgBytes)
		for i := 0; i < published; i++ {
			n, err := s.SendDropOldest(websocket.TextMessage, msg)
			if err != nil {
				flood <- fmt.Errorf("publication %d: %w", i, err)
				return
			}
			dropped.Add(int64(n))
			time.Sleep(publishGap)
		}
		flood <- s.Send(websocket.TextMessage, []byte(sentinel))
	}()

	received, missed := 0, 0
	start := time.Now()
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %v, %d messages and %d missed: %v (the slow reader was disconnected)",
				time.Since(start).Round(time.Millisecond), received, missed, err)
		}
		if string(data) == sentinel {
			break
		}
		var notice struct{ Missed *int }
		if len(data) < 64 && json.Unmarshal(data, &notice) == nil && notice.Missed != nil {
			missed += *notice.Missed
			continue
		}
		if len(data) != msgBytes {
			t.Fatalf("message of %d bytes, want %d", len(data), msgBytes)
		}
		received++
	}
	if err := <-flood; err != nil {
		t.Fatalf("flood: %v", err)
	}
	// What was dropped is what SendDropOldest reported, plus what the
	// sentinel's Send dropped to make room (which Send does not report).
	if missed == 0 || int64(missed) < dropped.Load() || received+missed != published {
		t.Fatalf("received %d, told of %d missed, %d reported dropped: want some dropped, all counted, %d in all",
			received, missed, dropped.Load(), published)
	}
	// The client must take longer than the write timeout to read one
	// full queue, or the test tests nothing.
	took := time.Since(start)
	perQueue := time.Duration(float64(took) * float64(lim.SendQueueBytes) / float64(received*msgBytes))
	if perQueue < 2*lim.WriteTimeout {
		t.Fatalf("the client read a queue in %v: too fast to test a %v write timeout", perQueue, lim.WriteTimeout)
	}
	if reg.Len() != 1 {
		t.Fatal("the slow reader's session ended")
	}
}
