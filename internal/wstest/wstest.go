// Package wstest holds what the tests of several packages need to speak
// WebSocket at the byte level, as a client does: the connection core's
// reader tests, the handlers' raw-client tests and the app's tests.
package wstest

import (
	"encoding/binary"
	"net"
	"sync/atomic"
)

// maskKey masks every frame ClientFrame builds: a fixed key keeps the
// bytes of a test the same from run to run.
var maskKey = [4]byte{0x12, 0x34, 0x56, 0x78}

// ClientFrame builds one masked client frame (RFC 6455 section 5.2), as a
// browser sends it; rsv1 sets the bit that marks a compressed message
// (RFC 7692). Any opcode may be given, reserved ones included, so tests
// can build what a correct client would not.
//
// Concurrency: a pure function.
func ClientFrame(fin, rsv1 bool, opcode byte, payload []byte) []byte {
	out := appendFrameHeader(nil, fin, rsv1, true, opcode, len(payload))
	out = append(out, maskKey[:]...)
	for i, b := range payload {
		out = append(out, b^maskKey[i%4])
	}
	return out
}

// appendFrameHeader appends a frame's first byte and its length (RFC 6455
// section 5.2), with the mask bit if masked (the key is the caller's).
func appendFrameHeader(dst []byte, fin, rsv1, masked bool, opcode byte, n int) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	var mask byte
	if masked {
		mask = 0x80
	}
	dst = append(dst, b0)
	switch {
	case n <= 125:
		return append(dst, mask|byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, mask|126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, mask|127), uint64(n))
}

// CountingConn adds every byte read through it to N: what a client reads
// off the wire, compressed or not.
//
// Concurrency: as the Conn it wraps; N is atomic.
type CountingConn struct {
	net.Conn
	N *atomic.Int64
}

func (c CountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.N.Add(int64(n))
	return n, err
}
