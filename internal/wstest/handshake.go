package wstest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// UpgradeSendingFrame connects to addr and sends a WebSocket upgrade
// request for path with frame in the same write, without waiting for the
// 101 (as RFC 6455 says a client should not, but may), so that the frame
// sits in the server's read buffer with the request. It reads the 101
// within timeout and returns the reader after it; the connection is closed
// when t ends.
//
// Concurrency: call it from the test's goroutine (it may call t.Fatal).
func UpgradeSendingFrame(t testing.TB, addr, path string, frame []byte, timeout time.Duration) *bufio.Reader {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return r
}

// ReadShortTextFrame reads one final, unmasked text frame of at most 125
// bytes, as a server sends a short message, and returns its payload; any
// other frame fails t.
//
// Concurrency: call it from the test's goroutine (it may call t.Fatal).
func ReadShortTextFrame(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	b0, payload := ReadFrame(t, r)
	if b0 != 0x81 || len(payload) >= 126 {
		t.Fatalf("frame %#x of %d bytes, want a short final text frame", b0, len(payload))
	}
	return string(payload)
}

// ReadFrame reads one unmasked frame, as a server sends it, and returns
// its first byte (FIN, RSV bits, opcode) and payload; a read error fails
// t.
//
// Concurrency: call it from the test's goroutine (it may call t.Fatal).
func ReadFrame(t testing.TB, r *bufio.Reader) (b0 byte, payload []byte) {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		_, _ = io.ReadFull(r, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		_, _ = io.ReadFull(r, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("reading a payload of %d: %v", n, err)
	}
	return head[0], payload
}
