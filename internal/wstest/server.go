package wstest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/klauspost/compress/flate"
)

// ServerConn is the server side of one WebSocket connection at the byte
// level, for the tests of clients: it reads their masked frames and writes
// frames as a server does. It compresses with permessage-deflate context
// takeover (RFC 7692 section 7.2.1): one flate writer kept across the
// connection's compressed messages, so that each may refer to the
// previous ones, as a browser's peer may.
//
// Concurrency: one goroutine reads (ReadFrame, ReadMessage); writes
// (WriteFrame, WriteMessage, Compress) are serialized and may come from
// any goroutine.
type ServerConn struct {
	Conn net.Conn
	R    *bufio.Reader
	// Deflate makes WriteMessage compress (RSV1) with context takeover.
	Deflate bool

	wmu  sync.Mutex
	zw   *flate.Writer
	zout bytes.Buffer
}

// AcceptKey is the Sec-WebSocket-Accept answering key (RFC 6455 section
// 4.2.2).
//
// Concurrency: a pure function.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Handshake reads the upgrade request on conn and answers it with 101 and
// the Sec-WebSocket-Extensions answer extensions ("" for none). It
// returns the connection (compressing when extensions starts with
// permessage-deflate) and the request, whose offer a test may check.
//
// Concurrency: call it once per connection, before using it.
func Handshake(conn net.Conn, extensions string) (*ServerConn, *http.Request, error) {
	r := bufio.NewReader(conn)
	req, err := http.ReadRequest(r)
	if err != nil {
		return nil, nil, err
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if extensions != "" {
		resp += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	if _, err := conn.Write([]byte(resp + "\r\n")); err != nil {
		return nil, nil, err
	}
	s := NewServerConn(conn, r)
	s.Deflate = len(extensions) >= len("permessage-deflate") && extensions[:len("permessage-deflate")] == "permessage-deflate"
	return s, req, nil
}

// NewServerConn is a ServerConn over conn after a handshake done
// elsewhere; r reads conn (nil: a new reader).
//
// Concurrency: as ServerConn.
func NewServerConn(conn net.Conn, r *bufio.Reader) *ServerConn {
	if r == nil {
		r = bufio.NewReader(conn)
	}
	return &ServerConn{Conn: conn, R: r}
}

// Compress returns msg compressed against everything Compress compressed
// before on this connection: flushed with a sync flush and without its
// 00 00 ff ff tail, the payload of one compressed message.
func (s *ServerConn) Compress(msg []byte) []byte {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.compress(msg)
}

func (s *ServerConn) compress(msg []byte) []byte {
	s.zout.Reset()
	if s.zw == nil {
		s.zw, _ = flate.NewWriter(&s.zout, flate.BestSpeed)
	}
	_, _ = s.zw.Write(msg)
	_ = s.zw.Flush()
	return bytes.Clone(bytes.TrimSuffix(s.zout.Bytes(), []byte{0, 0, 0xff, 0xff}))
}

// WriteFrame writes one unmasked server frame.
func (s *ServerConn) WriteFrame(fin, rsv1 bool, opcode byte, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeFrame(fin, rsv1, opcode, payload)
}

func (s *ServerConn) writeFrame(fin, rsv1 bool, opcode byte, payload []byte) error {
	out := appendFrameHeader(nil, fin, rsv1, false, opcode, len(payload))
	_, err := s.Conn.Write(append(out, payload...))
	return err
}

// WriteMessage writes one data message of kind (1 text, 2 binary) in one
// frame, compressed with context takeover when s.Deflate is set.
func (s *ServerConn) WriteMessage(kind int, msg []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.Deflate {
		return s.writeFrame(true, true, byte(kind), s.compress(msg))
	}
	return s.writeFrame(true, false, byte(kind), msg)
}

// ReadFrame reads and unmasks one client frame; an unmasked one is an
// error.
func (s *ServerConn) ReadFrame() (fin bool, opcode byte, payload []byte, err error) {
	b0, payload, err := readFrame(s.R, true)
	if err != nil {
		return false, 0, nil, err
	}
	return b0&0x80 != 0, b0 & 0x0f, payload, nil
}

// ErrClientClosed: ReadMessage met the client's close frame.
var ErrClientClosed = errors.New("wstest: the client sent a close frame")

// ReadMessage reads the client's next data message (uncompressed, as the
// clients under test send), skipping pongs; a ping is an error (clients
// under test do not ping) and a close frame is ErrClientClosed.
func (s *ServerConn) ReadMessage() (kind int, msg []byte, err error) {
	for {
		fin, op, p, err := s.ReadFrame()
		switch {
		case err != nil:
			return 0, nil, err
		case op == 8:
			return 0, nil, ErrClientClosed
		case op == 10:
			continue
		case op == 9:
			return 0, nil, errors.New("wstest: a client ping")
		case op == 0 && kind == 0, op != 0 && kind != 0:
			return 0, nil, fmt.Errorf("wstest: opcode %d out of place", op)
		}
		if kind == 0 {
			kind = int(op)
		}
		msg = append(msg, p...)
		if fin {
			return kind, msg, nil
		}
	}
}
