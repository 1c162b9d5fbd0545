package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/realtime/protocol"
)

// Limits of one connection.
const (
	// DefaultWriteTimeout bounds one write when the context has no deadline.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds the WebSocket upgrade when the
	// context has no deadline.
	DefaultHandshakeTimeout = 10 * time.Second
	// closeFrameTimeout bounds the close frame Close sends.
	closeFrameTimeout = time.Second
	// handshakeBodyLimit is how much of a refused upgrade's body
	// HandshakeError keeps.
	handshakeBodyLimit = 512
)

// ConnOptions configures Dial.
type ConnOptions struct {
	// Header is sent with the upgrade request (for example an Origin, or
	// cookies). Nil sends none: a client without Origin is not a browser,
	// and the server allows it.
	Header http.Header
	// Dialer makes the connection; nil uses a copy of
	// websocket.DefaultDialer.
	Dialer *websocket.Dialer
	// OnMessage is called on the connection's reader goroutine, in arrival
	// order, for every message the server sends except the replies to
	// commands sent with Call and Go: pushes (publications, join, leave,
	// presence_count, missed, and kinds this package does not know yet),
	// error replies without an id, and replies to ids written with
	// WriteText. Reading waits while it runs: it must not wait for a reply
	// of the same Conn.
	OnMessage func(protocol.ServerMessage)
	// BeforeRead, when set, is called on the reader goroutine before each
	// frame is read. While it blocks, nothing is read: the server's queue
	// for this client fills as for a client that stopped reading (tests
	// play a stalled consumer with it).
	BeforeRead func()
}

// replyFunc receives the reply to one command; see Go.
type replyFunc func(reply protocol.ServerMessage, err error)

// Conn is one WebSocket connection to /realtime: commands matched to their
// replies by id, every other message handed to ConnOptions.OnMessage. It
// does not reconnect, resubscribe or remember anything: Client does, on
// top of it. Tests use it to speak the protocol exactly.
//
// Concurrency: every method is safe for concurrent use. One goroutine,
// started by Dial and owned by the Conn, reads; it ends when the
// connection does, and Close waits for it.
type Conn struct {
	ws   *websocket.Conn
	opts ConnOptions

	wmu sync.Mutex // one writer at a time (the library allows one)

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]replyFunc
	err     error // why reading ended; set once

	lastRead atomic.Int64  // unix nanoseconds of the last frame read
	done     chan struct{} // closed when the connection has ended
	readDone chan struct{} // closed when the reader goroutine has returned
	closing  sync.Once
}

// Dial opens url (ws://host:port/realtime, optionally with ?name= or
// ?token=) and starts reading. A refused upgrade is a *HandshakeError.
// ctx bounds the upgrade only.
func Dial(ctx context.Context, url string, opts ConnOptions) (*Conn, error) {
	d := websocket.DefaultDialer
	if opts.Dialer != nil {
		d = opts.Dialer
	}
	dialer := *d
	if _, ok := ctx.Deadline(); !ok && dialer.HandshakeTimeout == 0 {
		dialer.HandshakeTimeout = DefaultHandshakeTimeout
	}
	ws, resp, err := dialer.DialContext(ctx, url, opts.Header)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body := ""
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, handshakeBodyLimit))
				body = strings.TrimSpace(string(b))
				resp.Body.Close()
			}
			return nil, fmt.Errorf("dial %s: %w", url, &HandshakeError{Status: resp.StatusCode, Body: body})
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c := &Conn{ws: ws, opts: opts, pending: map[uint64]replyFunc{},
		done: make(chan struct{}), readDone: make(chan struct{})}
	c.lastRead.Store(time.Now().UnixNano())
	go c.readLoop()
	return c, nil
}

func (c *Conn) readLoop() {
	defer close(c.readDone)
	for {
		if c.opts.BeforeRead != nil {
			c.opts.BeforeRead()
		}
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				err = &CloseError{Code: ce.Code, Text: ce.Text}
			}
			c.end(err)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		if kind != websocket.TextMessage {
			c.end(fmt.Errorf("duplex: the server sent a non-text message (type %d)", kind))
			return
		}
		var bad error
		protocol.SplitLines(data, func(line []byte) bool {
			m, err := protocol.DecodeServerMessage(line)
			if err != nil {
				bad = fmt.Errorf("duplex: undecodable server message %q: %w", line, err)
				return false
			}
			c.dispatch(m)
			return true
		})
		if bad != nil {
			c.end(bad)
			return
		}
	}
}

func (c *Conn) dispatch(m protocol.ServerMessage) {
	if m.ID != 0 {
		c.mu.Lock()
		fn, ok := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ok {
			fn(m, nil)
			return
		}
	}
	if c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
}

// end records why the connection ended, closes it and fails every
// command still waiting for its reply.
func (c *Conn) end(err error) {
	c.closing.Do(func() {
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		_ = c.ws.Close()
		for _, fn := range pending {
			fn(protocol.ServerMessage{}, fmt.Errorf("%w: %w", ErrDisconnected, err))
		}
		close(c.done)
	})
}

// Done is closed when the connection has ended (and its reader with it).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is open): a *CloseError
// when the server sent a close frame, ErrClosed after Close.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// LastRead is when the last frame arrived (or the connection opened).
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

// Close sends a normal close frame (1000), drops the socket and waits for
// the reader to end. It must not be called from OnMessage or BeforeRead
// (the reader would wait for itself); a BeforeRead that blocks must be
// released for Close to return. Later calls return at once.
func (c *Conn) Close() error {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeFrameTimeout))
	c.wmu.Unlock()
	c.end(ErrClosed)
	<-c.readDone
	return nil
}

// WriteText writes one text frame as is: one command, several separated
// by '\n', or anything else a test wants the server to see. Replies to the
// ids in it go to OnMessage. ctx's deadline (else DefaultWriteTimeout)
// bounds the write.
func (c *Conn) WriteText(ctx context.Context, frame []byte) error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultWriteTimeout)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("duplex: write: %w", err)
	}
	return nil
}

// Go sends cmds (with fresh ids; their ID fields are ignored) in one
// frame and calls onReply once per command with the command's index: on
// the reader goroutine as its reply is read, before the messages after it
// in the same frame (an error reply is reply.Error, with err nil), or with
// err wrapping ErrDisconnected when the connection ended first. onReply
// must not block for long, nor wait for another reply of this Conn. It
// returns the ids in order; when the write fails, no onReply is called.
func (c *Conn) Go(ctx context.Context, cmds []protocol.Command, onReply func(i int, reply protocol.ServerMessage, err error)) ([]uint64, error) {
	ids := make([]uint64, len(cmds))
	lines := make([][]byte, len(cmds))
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	for i := range cmds {
		c.nextID++
		ids[i] = c.nextID
		cmd := cmds[i]
		cmd.ID = ids[i]
		lines[i] = protocol.EncodeCommand(cmd)
		c.pending[ids[i]] = func(m protocol.ServerMessage, err error) { onReply(i, m, err) }
	}
	c.mu.Unlock()
	// Holding wmu from here keeps a frame's ids in the order they were
	// written, which tests of batching rely on.
	if err := c.WriteText(ctx, joinLines(lines)); err != nil {
		c.mu.Lock()
		for _, id := range ids {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		return nil, err
	}
	return ids, nil
}

func joinLines(lines [][]byte) []byte {
	if len(lines) == 1 {
		return lines[0]
	}
	var b []byte
	for i, l := range lines {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, l...)
	}
	return b
}

// forget drops the reply callback of id (a caller that stopped waiting).
func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Call sends cmd and waits for its reply: the result, or an *Error when
// the server refused it, or an error wrapping ErrDisconnected when the
// connection ended first, or ctx's error.
func (c *Conn) Call(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	type answer struct {
		m   protocol.ServerMessage
		err error
	}
	got := make(chan answer, 1)
	ids, err := c.Go(ctx, []protocol.Command{cmd}, func(_ int, m protocol.ServerMessage, err error) { got <- answer{m, err} })
	if err != nil {
		return nil, fmt.Errorf("duplex: %s: %w", cmd.Op, err)
	}
	select {
	case a := <-got:
		return replyResult(cmd, a.m, a.err)
	case <-ctx.Done():
		c.forget(ids[0])
		return nil, fmt.Errorf("duplex: %s %s: no reply: %w", cmd.Op, cmd.Channel, ctx.Err())
	}
}

// replyResult is a reply as Call returns it.
func replyResult(cmd protocol.Command, m protocol.ServerMessage, err error) (json.RawMessage, error) {
	if err != nil {
		return nil, fmt.Errorf("duplex: %s %s: %w", cmd.Op, cmd.Channel, err)
	}
	if m.Error != nil {
		return nil, replyError(cmd, m.Error)
	}
	return m.Result, nil
}

// CallInto is Call that decodes the result into out (a pointer).
func (c *Conn) CallInto(ctx context.Context, cmd protocol.Command, out any) error {
	res, err := c.Call(ctx, cmd)
	if err != nil {
		return err
	}
	return decodeResult(cmd, res, out)
}

func decodeResult(cmd protocol.Command, res json.RawMessage, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("duplex: %s result %s: %w", cmd.Op, res, err)
	}
	return nil
}
