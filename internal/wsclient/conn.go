package wsclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// Message kinds and frame opcodes (RFC 6455 section 5.2), with the values
// fasthttp/websocket and gorilla use.
const (
	TextMessage   = 1
	BinaryMessage = 2
	CloseMessage  = 8
	PingMessage   = 9
	PongMessage   = 10

	opContinuation = 0
)

// Close codes the client sends or checks (RFC 6455 section 7.4.1).
const (
	CloseNormal          = 1000
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005 // reported when a close frame has no code
	CloseInvalidPayload  = 1007
	CloseMessageTooBig   = 1009
	maxControlPayload    = 125
	maxCloseReasonBytes  = maxControlPayload - 2
	maxFrameHeaderBytes  = 14
	keepBufferBytes      = 64 << 10 // larger scratch buffers are dropped after use
	initialWindowBytes   = 4 << 10
	minInflateGrowth     = 512
	compressedSlackBytes = 1024
	// controlAnswerTimeout bounds the writes the reader makes itself
	// (pongs, close answers), as fasthttp/websocket's ping handler does,
	// so that a server that stops reading cannot block the reader for
	// good; an earlier write deadline of the caller's still applies.
	controlAnswerTimeout = time.Second
)

var (
	// ErrProtocol: the server broke RFC 6455 or RFC 7692 (a masked frame,
	// a reserved bit or opcode, RSV1 where it is not allowed, bad
	// fragmentation, corrupt compressed data, invalid UTF-8 in a text
	// message). The client has sent a close frame with the matching code.
	ErrProtocol = errors.New("wsclient: protocol error")
	// ErrMessageTooBig: a message is larger than Options.MaxMessageBytes
	// (inflated, or on the wire). The client has sent close 1009.
	ErrMessageTooBig = errors.New("wsclient: message too big")
	// ErrCloseSent: a write after WriteClose (or after the client answered
	// the server's close).
	ErrCloseSent = errors.New("wsclient: close already sent")
)

// CloseError is what ReadMessage returns once the server closed the
// connection with a close frame; the client has answered it.
//
// Concurrency: a value; safe to read from any goroutine.
type CloseError struct {
	Code   int // CloseNoStatus when the frame had no code
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("wsclient: closed by the server: %d", e.Code)
	}
	return fmt.Sprintf("wsclient: closed by the server: %d %s", e.Code, e.Reason)
}

// Conn is one client WebSocket connection.
//
// Concurrency: one goroutine at a time reads (ReadMessage, AppendMessage,
// SetReadDeadline); any goroutines may write (WriteMessage, WriteClose,
// SetWriteDeadline) concurrently with it and with each other (writes are
// serialized, as the reader also writes pongs and close answers). Close,
// NetConn, Extensions and ContextTakeover are safe from any goroutine.
type Conn struct {
	nc         net.Conn
	br         *bufio.Reader
	extensions string
	deflate    deflateParams
	maxBytes   int64

	// The reader's state.
	readErr error  // sticky: the first error ends reading for good
	zbuf    []byte // the compressed payload of the message being read
	// window holds the last 2^windowBits bytes of inflated compressed
	// messages when the server keeps its context (allocated lazily:
	// idle connections carry none).
	window []byte
	ctrl   [maxControlPayload]byte

	wmu           sync.Mutex
	wbuf          []byte
	closeSent     bool
	writeDeadline time.Time // the caller's, restored after a control answer
}

func newConn(nc net.Conn, br *bufio.Reader, extensions string, d deflateParams, maxBytes int64) *Conn {
	return &Conn{nc: nc, br: br, extensions: extensions, deflate: d, maxBytes: maxBytes}
}

// NetConn is the underlying connection (deadlines, addresses).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Extensions is the server's Sec-WebSocket-Extensions answer ("" when
// none).
func (c *Conn) Extensions() string { return c.extensions }

// Deflate reports whether permessage-deflate was negotiated.
func (c *Conn) Deflate() bool { return c.deflate.on }

// ContextTakeover reports whether permessage-deflate was negotiated with
// the server keeping its window across messages (no
// server_no_context_takeover in its answer).
func (c *Conn) ContextTakeover() bool { return c.deflate.on && c.deflate.contextTakeover }

// SetReadDeadline sets the deadline of reads (a timeout ends reading for
// good, as any read error does).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of writes. Set it here, not on
// NetConn: the reader's pongs and close answers restore it after their
// own, shorter one.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeDeadline = t
	return c.nc.SetWriteDeadline(t)
}

// Close closes the socket without a close frame (send one first with
// WriteClose for a clean end).
func (c *Conn) Close() error { return c.nc.Close() }

// ReadMessage reads the next data message, in a new slice; see
// AppendMessage.
func (c *Conn) ReadMessage() (kind int, data []byte, err error) {
	return c.AppendMessage(nil)
}

// AppendMessage reads the next data message (TextMessage or
// BinaryMessage), inflated, and appends it to dst. On the way it answers
// pings with pongs carrying their payload and ignores pongs; a close frame
// is answered and returned as a *CloseError. Any error is final: later
// calls return it again.
func (c *Conn) AppendMessage(dst []byte) (kind int, data []byte, err error) {
	if c.readErr != nil {
		return 0, dst, c.readErr
	}
	kind, data, err = c.readMessage(dst)
	if err != nil {
		c.readErr = err
	}
	return kind, data, err
}

// frameHeader is a frame's first bytes, decoded.
type frameHeader struct {
	fin, rsv1 bool
	opcode    int
	length    int64
}

func (c *Conn) readMessage(dst []byte) (int, []byte, error) {
	start := len(dst)
	kind := 0
	compressed := false
	var total int64
	for {
		h, err := c.readHeader()
		if err != nil {
			return 0, dst, err
		}
		if h.opcode >= CloseMessage {
			if err := c.handleControl(h); err != nil {
				return 0, dst, err
			}
			continue
		}
		switch {
		case kind == 0 && h.opcode != TextMessage && h.opcode != BinaryMessage:
			return 0, dst, c.fail(CloseProtocolError, "a continuation frame starts no message")
		case kind != 0 && h.opcode != opContinuation:
			return 0, dst, c.fail(CloseProtocolError, "a new message inside a fragmented one")
		case h.rsv1 && (kind != 0 || !c.deflate.on):
			return 0, dst, c.fail(CloseProtocolError, "RSV1 set where permessage-deflate does not allow it")
		}
		if kind == 0 {
			kind, compressed = h.opcode, h.rsv1
		}
		total += h.length
		limit := c.maxBytes
		if compressed {
			limit = c.compressedLimit()
		}
		if total > limit {
			return 0, dst, c.tooBig()
		}
		if compressed {
			c.zbuf, err = c.readPayload(c.zbuf, h.length)
		} else {
			dst, err = c.readPayload(dst, h.length)
		}
		if err != nil {
			return 0, dst, err
		}
		if h.fin {
			break
		}
	}
	if compressed {
		var err error
		if dst, err = c.inflate(dst); err != nil {
			return 0, dst, err
		}
	}
	if kind == TextMessage && !utf8.Valid(dst[start:]) {
		return 0, dst, c.fail(CloseInvalidPayload, "invalid UTF-8 in a text message")
	}
	return kind, dst, nil
}

// compressedLimit bounds a compressed message's payload on the wire:
// MaxMessageBytes, plus what deflate may add to incompressible data (5
// bytes per stored block of up to 64 KiB, and a little more).
func (c *Conn) compressedLimit() int64 {
	return c.maxBytes + c.maxBytes/1024 + compressedSlackBytes
}

func (c *Conn) readHeader() (frameHeader, error) {
	var b [maxFrameHeaderBytes]byte
	if _, err := io.ReadFull(c.br, b[:2]); err != nil {
		return frameHeader{}, err
	}
	h := frameHeader{fin: b[0]&0x80 != 0, rsv1: b[0]&0x40 != 0, opcode: int(b[0] & 0x0f)}
	switch {
	case b[0]&0x30 != 0:
		return h, c.fail(CloseProtocolError, "RSV2 or RSV3 set")
	case b[1]&0x80 != 0:
		return h, c.fail(CloseProtocolError, "a masked server frame")
	case (h.opcode > BinaryMessage && h.opcode < CloseMessage) || h.opcode > PongMessage:
		return h, c.fail(CloseProtocolError, fmt.Sprintf("reserved opcode %d", h.opcode))
	}
	switch n := b[1] & 0x7f; n {
	case 126:
		if _, err := io.ReadFull(c.br, b[2:4]); err != nil {
			return h, err
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		if _, err := io.ReadFull(c.br, b[2:10]); err != nil {
			return h, err
		}
		v := binary.BigEndian.Uint64(b[2:10])
		if v>>63 != 0 {
			return h, c.fail(CloseProtocolError, "a 64-bit length with its top bit set")
		}
		h.length = int64(v)
	default:
		h.length = int64(n)
	}
	if h.opcode >= CloseMessage && (!h.fin || h.length > maxControlPayload || h.rsv1) {
		return h, c.fail(CloseProtocolError, "a fragmented, compressed or long control frame")
	}
	return h, nil
}

// readPayload appends n payload bytes to dst.
func (c *Conn) readPayload(dst []byte, n int64) ([]byte, error) {
	dst = slices.Grow(dst, int(n))
	end := len(dst) + int(n)
	if _, err := io.ReadFull(c.br, dst[len(dst):end]); err != nil {
		return dst, err
	}
	return dst[:end], nil
}

// handleControl reads a control frame's payload and acts on it.
func (c *Conn) handleControl(h frameHeader) error {
	p := c.ctrl[:h.length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return err
	}
	switch h.opcode {
	case PingMessage:
		return c.answer(PongMessage, p)
	case PongMessage:
		return nil
	}
	ce := &CloseError{Code: CloseNoStatus}
	switch {
	case len(p) == 1:
		return c.fail(CloseProtocolError, "a one-byte close payload")
	case len(p) >= 2:
		ce.Code = int(binary.BigEndian.Uint16(p))
		ce.Reason = string(p[2:])
		if !validCloseCode(ce.Code) {
			return c.fail(CloseProtocolError, fmt.Sprintf("close code %d", ce.Code))
		}
		if !utf8.ValidString(ce.Reason) {
			return c.fail(CloseInvalidPayload, "invalid UTF-8 in the close reason")
		}
	}
	// Answer with the same code (RFC 6455 section 5.5.1); a failed answer
	// changes nothing for the caller, the server has closed.
	if ce.Code == CloseNoStatus {
		_ = c.answer(CloseMessage, nil)
	} else {
		_ = c.answer(CloseMessage, p[:2])
	}
	return ce
}

// validCloseCode reports whether a server may send code in a close frame.
func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code != 1004 && code != CloseNoStatus && code != 1006
}

// fail sends a close frame with code (best effort) and returns the
// protocol error the reader ends with.
func (c *Conn) fail(code int, why string) error {
	_ = c.answer(CloseMessage, binary.BigEndian.AppendUint16(nil, uint16(code)))
	if code == CloseMessageTooBig {
		return fmt.Errorf("%w: %s", ErrMessageTooBig, why)
	}
	return fmt.Errorf("%w: %s", ErrProtocol, why)
}

func (c *Conn) tooBig() error {
	return c.fail(CloseMessageTooBig, fmt.Sprintf("over %d bytes", c.maxBytes))
}

// WriteMessage sends one data message (TextMessage or BinaryMessage),
// masked, in one frame, never compressed (RSV1=0 is always allowed).
func (c *Conn) WriteMessage(kind int, data []byte) error {
	if kind != TextMessage && kind != BinaryMessage {
		return fmt.Errorf("wsclient: WriteMessage of kind %d", kind)
	}
	return c.writeFrame(kind, data)
}

// WriteClose sends a close frame with code and reason (cut to the 123
// bytes a close frame holds); later writes fail with ErrCloseSent.
func (c *Conn) WriteClose(code int, reason string) error {
	var b [maxControlPayload]byte
	binary.BigEndian.PutUint16(b[:2], uint16(code))
	n := copy(b[2:], reason[:min(len(reason), maxCloseReasonBytes)])
	return c.writeFrame(CloseMessage, b[:2+n])
}

// writeFrame writes one final masked frame.
func (c *Conn) writeFrame(opcode int, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrameLocked(opcode, payload)
}

// answer is writeFrame for the reader's own writes, bounded by
// controlAnswerTimeout.
func (c *Conn) answer(opcode int, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	d := time.Now().Add(controlAnswerTimeout)
	if !c.writeDeadline.IsZero() && c.writeDeadline.Before(d) {
		d = c.writeDeadline
	}
	_ = c.nc.SetWriteDeadline(d)
	defer func() { _ = c.nc.SetWriteDeadline(c.writeDeadline) }()
	return c.writeFrameLocked(opcode, payload)
}

func (c *Conn) writeFrameLocked(opcode int, payload []byte) error {
	if c.closeSent {
		return ErrCloseSent
	}
	b := append(c.wbuf[:0], 0x80|byte(opcode))
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32()) // ChaCha8: unpredictable, as RFC 6455 asks
	b = append(b, key[:]...)
	head := len(b)
	b = append(b, payload...)
	for i := range b[head:] {
		b[head+i] ^= key[i&3]
	}
	if opcode == CloseMessage {
		c.closeSent = true
	}
	_, err := c.nc.Write(b)
	if cap(b) <= keepBufferBytes {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	return err
}
