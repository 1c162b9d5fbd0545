package app

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

const tutorialReply = "服务端已收到消息:李旺服务端发来消息: Hello,李旺"

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	kind, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("got message type %d, want text", kind)
	}
	return string(data)
}

// closeCode reads until the server closes and returns the close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// assertEchoes proves a connection (and so the server) still works.
func assertEchoes(t *testing.T, c *websocket.Conn) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte("李旺")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := readText(t, c); got != tutorialReply {
		t.Fatalf("reply = %q, want %q", got, tutorialReply)
	}
}

func TestEchoTutorialReply(t *testing.T) {
	s := startServer(t, nil)
	for _, path := range []string{"/ws", "/"} { // "/" is the tutorial's own client URL
		t.Run(path, func(t *testing.T) {
			assertEchoes(t, s.dial(t, path))
		})
	}
}

func TestEchoEmptyTextGetsNoReply(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(t, "/ws")
	if err := c.WriteMessage(websocket.TextMessage, nil); err != nil {
		t.Fatal(err)
	}
	// The next message must answer "next", not the empty one, and the
	// connection must still be open.
	if err := c.WriteMessage(websocket.TextMessage, []byte("next")); err != nil {
		t.Fatal(err)
	}
	want := "服务端已收到消息:next服务端发来消息: Hello,next"
	if got := readText(t, c); got != want {
		t.Fatalf("reply = %q, want %q", got, want)
	}
}

func TestEchoBinaryVerbatim(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(t, "/ws")
	payload := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
	if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	kind, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if kind != websocket.BinaryMessage || !bytes.Equal(got, payload) {
		t.Fatalf("got type %d %v, want binary %v", kind, got, payload)
	}
}

func TestEchoFragmentedMessageWithPingBetween(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr, "/ws")
	li, wang := []byte("李"), []byte("旺")
	c.send(frame{opcode: opText, payload: li})
	c.send(frame{fin: true, opcode: opPing, payload: []byte("p1")}) // control frames may interleave
	c.send(frame{fin: true, opcode: opContinuation, payload: wang})

	op, p := c.read(3 * time.Second)
	if op != opPong || string(p) != "p1" {
		t.Fatalf("got opcode %d %q, want pong \"p1\"", op, p)
	}
	op, p = c.read(3 * time.Second)
	if op != opText || string(p) != tutorialReply {
		t.Fatalf("got opcode %d %q, want text %q", op, p, tutorialReply)
	}
}

func TestEchoMessageAtLimitIsServed(t *testing.T) {
	s := startServer(t, map[string]string{"WS_MAX_MESSAGE_BYTES": "4096"})
	c := s.dial(t, "/ws")
	payload := bytes.Repeat([]byte{7}, 4096)
	if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo at the limit: err=%v, %d bytes back", err, len(got))
	}
}

// TestCloseCodes sends each kind of bad input and checks the close code,
// and that a bystander connection notices nothing.
func TestCloseCodes(t *testing.T) {
	s := startServer(t, map[string]string{"WS_MAX_MESSAGE_BYTES": "1024"})
	bystander := s.dial(t, "/ws")

	cases := []struct {
		name  string
		frame frame
		code  int
	}{
		{"invalid UTF-8 text", frame{fin: true, opcode: opText, payload: []byte{'o', 'k', 0xff, 0xfe}}, 1007},
		{"truncated UTF-8 sequence", frame{fin: true, opcode: opText, payload: []byte("李")[:2]}, 1007},
		{"over the size limit", frame{fin: true, opcode: opBinary, payload: bytes.Repeat([]byte{1}, 1025)}, 1009},
		{"unmasked client frame", frame{fin: true, opcode: opText, unmasked: true, payload: []byte("hi")}, 1002},
		{"reserved opcode", frame{fin: true, opcode: 0x3, payload: []byte("hi")}, 1002},
		{"RSV1 without an extension", frame{fin: true, rsv: 0x40, opcode: opText, payload: []byte("hi")}, 1002},
		{"continuation with nothing to continue", frame{fin: true, opcode: opContinuation, payload: []byte("hi")}, 1002},
		{"fragmented control frame", frame{fin: false, opcode: opPing, payload: []byte("hi")}, 1002},
		{"control frame over 125 bytes", frame{fin: true, opcode: opPing, payload: bytes.Repeat([]byte{1}, 126)}, 1002},
		{"close with an invalid code", frame{fin: true, opcode: opClose, payload: []byte{0x03, 0xe7}}, 1002}, // 999
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.addr, "/ws")
			c.send(tc.frame)
			if got := c.expectClose(3 * time.Second); got != tc.code {
				t.Fatalf("close code = %d, want %d", got, tc.code)
			}
			// The server drops the TCP connection after closing.
			if _, _, err := c.tryRead(3 * time.Second); err == nil {
				t.Fatal("connection still open after close")
			}
			assertEchoes(t, bystander)
		})
	}
	waitFor(t, "only the bystander left", 3*time.Second, func() bool { return s.app.Connections() == 1 })
}

func TestServerPingsAndDropsSilentClients(t *testing.T) {
	s := startServer(t, map[string]string{"WS_PING_INTERVAL": "200ms", "WS_PONG_TIMEOUT": "200ms"})

	// A live client answers pings (the library does) and stays connected
	// well past the point where a silent one is dropped.
	live := s.dial(t, "/ws")
	pings := make(chan struct{}, 16)
	live.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	liveDone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.ReadMessage(); err != nil {
				liveDone <- err
				return
			}
		}
	}()

	// A silent client reads frames but never answers a ping.
	silent := dialRaw(t, s.addr, "/ws")
	start := time.Now()
	sawPing := false
	for {
		op, _, err := silent.tryRead(3 * time.Second)
		if err != nil {
			break // dropped
		}
		if op == opPing {
			sawPing = true
		}
	}
	if !sawPing {
		t.Fatal("silent client never got a ping")
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("silent client dropped after %v, want about 400ms", waited)
	}

	select {
	case <-pings:
	case <-time.After(2 * time.Second):
		t.Fatal("live client never got a ping")
	}
	select {
	case err := <-liveDone:
		t.Fatalf("live client dropped: %v", err)
	case <-time.After(time.Second):
	}
	waitFor(t, "one connection left", 2*time.Second, func() bool { return s.app.Connections() == 1 })
}

func TestClientPingGetsPong(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.addr, "/ws")
	c.send(frame{fin: true, opcode: opPing, payload: []byte("hello")})
	op, p := c.read(3 * time.Second)
	if op != opPong || string(p) != "hello" {
		t.Fatalf("got opcode %d %q, want pong \"hello\"", op, p)
	}
}

func TestClientCloseIsAnswered(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(t, "/ws")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseNormalClosure {
		t.Fatalf("close code = %d, want 1000", code)
	}
	waitFor(t, "no connections", 2*time.Second, func() bool { return s.app.Connections() == 0 })
}

func TestPlainGetOnWebSocketRoute(t *testing.T) {
	s := startServer(t, nil)
	status, hdr, body := s.get(t, "/ws")
	if status != 426 || hdr.Get("Upgrade") != "websocket" || !strings.Contains(body, "WebSocket") {
		t.Fatalf("GET /ws = %d %v %q, want 426 with Upgrade: websocket", status, hdr, body)
	}
}
