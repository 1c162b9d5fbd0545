package main

// The connections of the modes that subscribe and read (broadcast, idle,
// live, connect), through one of two client libraries: fasthttp/websocket
// by default, or with -deflate internal/wsclient, which offers
// permessage-deflate as Chrome does and inflates with context takeover
// when the server keeps its window (fasthttp/websocket's client insists on
// server_no_context_takeover, so it cannot measure what browsers get).
// The modes' read loops are written once, against subConn.

import (
	"context"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/wsclient"
)

// chromeDeflateOffer is the Sec-WebSocket-Extensions offer of Chrome (and
// of every Chromium browser); Firefox and Safari offer the bare name.
// Neither asks for server_no_context_takeover.
const chromeDeflateOffer = "permessage-deflate; client_max_window_bits"

// subConn is one subscribed connection of the reading modes.
//
// Concurrency: one goroutine reads (readFrame, SetReadDeadline); writes
// (writeText) must be serialized by the caller, as both libraries
// require of concurrent writers; closeNow after the reader stopped.
type subConn interface {
	// readFrame reads the next data message into buf (reused), inflated.
	readFrame(buf []byte) ([]byte, error)
	// writeText sends one text message (set a write deadline first).
	writeText(msg []byte) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// contextTakeover reports whether the server compresses against its
	// previous messages (permessage-deflate without
	// server_no_context_takeover).
	contextTakeover() bool
	// closeNow sends a normal close frame (bounded by a second) and
	// closes the socket, without waiting for the server's.
	closeNow()
}

// closeFrameDeadline bounds closeNow's close frame.
const closeFrameDeadline = time.Second

// fastConn is a subConn of fasthttp/websocket.
type fastConn struct{ *websocket.Conn }

func (c fastConn) readFrame(buf []byte) ([]byte, error) { return readFrame(c.Conn, buf) }

func (c fastConn) writeText(msg []byte) error { return c.WriteMessage(websocket.TextMessage, msg) }

// contextTakeover: never, fasthttp/websocket only accepts answers with
// server_no_context_takeover.
func (c fastConn) contextTakeover() bool { return false }

func (c fastConn) closeNow() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeFrameDeadline))
	_ = c.Close()
}

// clientConn is a subConn of internal/wsclient.
type clientConn struct{ *wsclient.Conn }

func (c clientConn) readFrame(buf []byte) ([]byte, error) {
	_, b, err := c.AppendMessage(buf[:0])
	return b, err
}

func (c clientConn) writeText(msg []byte) error { return c.WriteMessage(wsclient.TextMessage, msg) }

func (c clientConn) contextTakeover() bool { return c.ContextTakeover() }

func (c clientConn) closeNow() {
	_ = c.SetWriteDeadline(time.Now().Add(closeFrameDeadline))
	_ = c.WriteClose(wsclient.CloseNormal, "")
	_ = c.Close()
}

// subDialer opens subConns from one source address: through ws (plain),
// or with deflate through internal/wsclient over ws's dial (the counting
// dial from the source address, read when dialling, so that a wrapper set
// on ws later, such as connect's TCP timing, applies too).
type subDialer struct {
	ws      *websocket.Dialer
	deflate bool
}

// newSubDialers is newDialers for subConns.
func newSubDialers(ds []*websocket.Dialer, deflate bool) []subDialer {
	out := make([]subDialer, len(ds))
	for i, d := range ds {
		out[i] = subDialer{ws: d, deflate: deflate}
	}
	return out
}

// dial opens one connection, bounded by timeout. With deflate, a server
// that declines permessage-deflate fails the dial (errDeflateDeclined).
func (d subDialer) dial(ctx context.Context, url string, timeout time.Duration) (subConn, error) {
	if !d.deflate {
		c, err := dial(ctx, d.ws, url, timeout)
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(readLimitBytes)
		return fastConn{c}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := wsclient.Dial(ctx, url, wsclient.Options{
		NetDial:         d.ws.NetDialContext,
		Extensions:      chromeDeflateOffer,
		MaxMessageBytes: readLimitBytes,
		ReadBufferSize:  d.ws.ReadBufferSize,
	})
	if err != nil {
		return nil, err
	}
	if !c.Deflate() {
		c.Close()
		return nil, errDeflateDeclined
	}
	return clientConn{c}, nil
}

// countContextTakeover counts the connections whose server compresses
// with context takeover, for a run's report; it adds an error sample when
// some did and some did not (then the figures mix both).
func countContextTakeover[C any](conns []C, conn func(C) subConn, errs *errSamples) bool {
	open, takeover := 0, 0
	for _, x := range conns {
		c := conn(x)
		if c == nil {
			continue
		}
		open++
		if c.contextTakeover() {
			takeover++
		}
	}
	if takeover > 0 && takeover < open {
		errs.add("only %d of %d connections negotiated deflate context takeover", takeover, open)
	}
	return open > 0 && takeover == open
}
