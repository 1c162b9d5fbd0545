package app

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// rawConn is a hand-rolled WebSocket client that can send frames a real
// library would refuse to, to test the server's answer to bad clients.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

func dialRaw(t *testing.T, addr, path string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: HTTP %d", resp.StatusCode)
	}
	return &rawConn{t: t, conn: conn, r: r}
}

// frame is one WebSocket frame on the wire.
type frame struct {
	fin      bool
	rsv      byte // the three RSV bits, already shifted into place (0x70 mask)
	opcode   byte
	unmasked bool // clients must mask; true sends a protocol violation
	payload  []byte
}

func (c *rawConn) send(f frame) {
	c.t.Helper()
	b0 := f.opcode | f.rsv
	if f.fin {
		b0 |= 0x80
	}
	buf := []byte{b0}
	maskBit := byte(0x80)
	if f.unmasked {
		maskBit = 0
	}
	n := len(f.payload)
	switch {
	case n < 126:
		buf = append(buf, maskBit|byte(n))
	case n < 1<<16:
		buf = append(buf, maskBit|126, byte(n>>8), byte(n))
	default:
		buf = append(buf, maskBit|127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	payload := append([]byte(nil), f.payload...)
	if !f.unmasked {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		buf = append(buf, key[:]...)
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.conn.Write(append(buf, payload...)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// read returns the next frame from the server, or fails the test.
func (c *rawConn) read(timeout time.Duration) (opcode byte, payload []byte) {
	c.t.Helper()
	op, p, err := c.tryRead(timeout)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return op, p
}

func (c *rawConn) tryRead(timeout time.Duration) (byte, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}

// expectClose reads until a close frame and returns its code, skipping
// pings; any data frame first fails the test.
func (c *rawConn) expectClose(timeout time.Duration) int {
	c.t.Helper()
	for {
		op, p := c.read(timeout)
		switch op {
		case opPing, opPong:
			continue
		case opClose:
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		default:
			c.t.Fatalf("got opcode %d (%q) while waiting for close", op, p)
		}
	}
}
