package wsconn

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/wstest"
)

// The first read turn runs on the upgrade's goroutine and waits up to
// firstInputWait for the client's first message; then the poller reads
// the socket. A client that speaks at once, one that speaks only after
// that wait, and one that sends its first frame with the handshake are
// all answered, and so is each of them again afterwards.
func TestFirstMessageEarlyLateOrWithTheHandshake(t *testing.T) {
	reg := newTestRegistry(t, 10)
	url := serve(t, reg, testLimits, func(s *Session, kind MessageType, data []byte) { _ = s.Reply(kind, data) })
	echo := func(c *websocket.Conn, msg string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, data, err := c.ReadMessage(); err != nil || string(data) != msg {
			t.Fatalf("echo %q: %q %v", msg, data, err)
		}
	}
	early := dial(t, url)
	echo(early, "at once")
	late := dial(t, url)
	// Past the first turn's wait, the socket is the poller's.
	time.Sleep(firstInputWait + 50*time.Millisecond)
	echo(late, "after the first wait")
	echo(early, "again")
	echo(late, "again")

	eager := dialSendingAtOnce(t, url, "with the handshake")
	if got := readTextFrame(t, eager); got != "with the handshake" {
		t.Fatalf("the frame sent with the handshake was answered %q", got)
	}
}

// dialSendingAtOnce opens a WebSocket whose first text frame, msg, goes
// out in the same write as the upgrade request, without waiting for the
// 101 (as RFC 6455 says a client should not, but may), and reads the 101.
func dialSendingAtOnce(t *testing.T, url, msg string) *bufio.Reader {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), wstest.ClientFrame(true, false, byte(TextMessage), []byte(msg))...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return r
}

// readTextFrame reads one short unmasked text frame, as a server sends it.
func readTextFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x80|byte(TextMessage) || head[1] >= 126 {
		t.Fatalf("frame header % x, want a short final text frame", head)
	}
	payload := make([]byte, head[1])
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	return string(payload)
}
