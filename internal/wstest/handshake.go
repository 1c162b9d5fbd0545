package wstest

import (
	"bufio"
	"encoding/binary"
	"fmt"
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
	b0, payload, err := readFrame(r, false)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return b0, payload
}

// maxTestFrame bounds the payload a test reads, so that a broken length
// fails the test instead of exhausting its memory.
const maxTestFrame = 16 << 20

// readFrame reads one frame, which must be masked as a client's or not as
// a server's, and returns its first byte and its payload, unmasked.
func readFrame(r *bufio.Reader, masked bool) (b0 byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	if (head[1]&0x80 != 0) != masked {
		return 0, nil, fmt.Errorf("wstest: frame %#x %#x: masked %v, want %v", head[0], head[1], head[1]&0x80 != 0, masked)
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		_, err = io.ReadFull(r, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		_, err = io.ReadFull(r, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if n > maxTestFrame {
		return 0, nil, fmt.Errorf("wstest: a %d-byte frame", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return head[0], payload, nil
}
