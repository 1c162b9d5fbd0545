package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// Client is a connection to a duplex server that stays up: it connects
// with a name or a token, reconnects with full-jitter backoff when the
// connection is lost, resubscribes every Subscription with recover (and
// latest), and tells a subscription to reload when its gap cannot be
// recovered. It is what duplex.js is for a page.
//
// Concurrency: every method is safe for concurrent use, also from the
// handlers. The Client owns two goroutines, started by Connect and ended
// by Close: the connection loop (dial, connect, resubscribe, ping, back
// off) and the handler goroutine (see the package documentation); each
// Conn it opens owns its reader.
type Client struct {
	url    string
	opts   Options
	events *dispatcher
	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	mu         sync.Mutex
	started    bool
	closed     bool
	state      State
	conn       *Conn // the connection whose connect was answered, else nil
	info       protocol.ConnectResult
	connectErr error         // the current connection's refused token, if any
	up         chan struct{} // closed while connected; replaced when the connection ends
	subs       map[string]*Subscription
	loopDone   chan struct{}
}

// New returns a Client for url (ws://host:port/realtime; wss: behind TLS).
// It does nothing until Connect.
func New(url string, opts Options) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		url: url, opts: opts.withDefaults(), events: newDispatcher(),
		ctx: ctx, cancel: cancel,
		up: make(chan struct{}), subs: map[string]*Subscription{}, loopDone: make(chan struct{}),
	}
}

// Connect starts the connection loop (once) and waits until the client is
// connected, or ctx ends (the loop keeps trying: call Close to stop it).
// When the server refused the token (or the name), Connect returns that
// *Error (protocol.CodeUnauthorized, CodeBadRequest) while the client
// carries on as a guest, as
// duplex.js does, so public channels keep working.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.started {
		c.started = true
		c.events.start()
		go c.run()
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		conn, up, refused, closed := c.conn, c.up, c.connectErr, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case conn != nil:
			return refused
		}
		select {
		case <-up:
		case <-ctx.Done():
			return fmt.Errorf("duplex: connect: %w", ctx.Err())
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// Close ends the client for good: the connection is closed (1000), no
// reconnect follows, every waiting call returns ErrClosed, every
// Subscription ends with ErrClosed (its OnUnsubscribed is called), the
// queued handlers run, and both goroutines have ended when it returns.
// It must not be called from a handler (it waits for them; use go
// c.Close() there). Later calls return nil at once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	subs := c.subs
	c.subs = map[string]*Subscription{}
	for _, s := range subs {
		s.endLocked(ErrClosed)
	}
	c.mu.Unlock()
	c.cancel()
	if started {
		<-c.loopDone
	}
	for _, s := range subs {
		c.postUnsubscribed(s, ErrClosed)
	}
	c.setState(StateChange{State: Disconnected, Err: ErrClosed, Delay: -1})
	c.events.stop()
	return nil
}

// State is the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Info is the current connection's connect result (who the server thinks
// this client is); ok is false while not connected.
func (c *Client) Info() (info protocol.ConnectResult, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info, c.conn != nil
}

func (c *Client) setState(ch StateChange) {
	c.mu.Lock()
	c.state = ch.State
	c.mu.Unlock()
	if fn := c.opts.OnState; fn != nil {
		c.events.post(func() { fn(ch) })
	}
}

func (c *Client) reportError(err error) {
	if fn := c.opts.OnError; fn != nil {
		c.events.post(func() { fn(err) })
	}
}

// run is the connection loop: one session after another, with backoff
// between them, until Close.
func (c *Client) run() {
	defer close(c.loopDone)
	attempt := 0
	for {
		err, wasUp := c.session()
		if wasUp {
			attempt = 0
		}
		if c.ctx.Err() != nil {
			return
		}
		delay := time.Duration(0)
		if c.opts.BackoffMin > 0 {
			delay = backoff(attempt, c.opts.BackoffMin, c.opts.BackoffMax)
		}
		attempt++
		if !wasUp {
			c.reportError(err)
		}
		c.setState(StateChange{State: Disconnected, Err: err, Delay: delay})
		timer := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// session runs one connection: dial, connect, resubscribe, then ping it
// while it lasts. wasUp tells whether connect was answered.
func (c *Client) session() (err error, wasUp bool) {
	c.setState(StateChange{State: Connecting})
	url := c.url
	if c.opts.URL != nil {
		url = c.opts.URL()
	}
	s := &session{client: c}
	conn, err := Dial(c.ctx, url, ConnOptions{Header: c.opts.Header, Dialer: c.opts.Dialer, OnMessage: s.onMessage})
	if err != nil {
		return err, false
	}
	s.conn = conn
	defer conn.Close()
	info, token, refused, err := c.handshake(conn)
	if err != nil {
		return err, false
	}

	c.mu.Lock()
	c.conn, c.info, c.connectErr = conn, info, refused
	close(c.up)
	subs := make([]*Subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.mu.Unlock()
	c.setState(StateChange{State: Connected})
	if refused != nil {
		c.reportError(refused)
	}
	if fn := c.opts.OnConnected; fn != nil {
		c.events.post(func() { fn(info) })
	}
	for _, sub := range subs {
		c.sendSubscribe(sub, conn)
	}
	err = c.watch(conn, token, time.Duration(info.ExpiresIn)*time.Second)

	c.mu.Lock()
	c.conn, c.info, c.connectErr = nil, protocol.ConnectResult{}, nil
	c.up = make(chan struct{})
	for _, sub := range c.subs {
		sub.active = false
	}
	c.mu.Unlock()
	return err, true
}

// handshake sends connect with the token (or name). A refused token or
// name leaves the connection as a guest: refused is the refusal.
func (c *Client) handshake(conn *Conn) (info protocol.ConnectResult, token string, refused, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.PingTimeout)
	defer cancel()
	cmd := protocol.Command{Op: protocol.OpConnect, Name: c.opts.Name, Token: c.opts.Token}
	if c.opts.TokenFunc != nil {
		if cmd.Token, err = c.opts.TokenFunc(ctx); err != nil {
			return info, "", nil, fmt.Errorf("duplex: token: %w", err)
		}
	}
	if cmd.Token != "" {
		cmd.Name = ""
	}
	err = conn.CallInto(ctx, cmd, &info)
	var refusal *Error
	if errors.As(err, &refusal) && (cmd.Token != "" || cmd.Name != "") {
		// A refused token or name: carry on as a guest the server names.
		err = conn.CallInto(ctx, protocol.Command{Op: protocol.OpConnect}, &info)
		return info, "", refusal, err
	}
	return info, cmd.Token, nil, err
}

// watch waits for conn to end: it pings after PingInterval of silence
// (no answer within PingTimeout drops the connection) and refreshes the
// token before it expires when TokenFunc is set.
func (c *Client) watch(conn *Conn, token string, expiresIn time.Duration) error {
	var pingC <-chan time.Time
	if c.opts.PingInterval > 0 {
		ticker := time.NewTicker(c.opts.PingInterval / 2)
		defer ticker.Stop()
		pingC = ticker.C
	}
	refresh := newRefreshTimer(c.opts.TokenFunc != nil, token, expiresIn)
	defer refresh.stop()
	for {
		select {
		case <-conn.Done():
			return conn.Err()
		case <-c.ctx.Done():
			return ErrClosed
		case <-pingC:
			if time.Since(conn.LastRead()) < c.opts.PingInterval {
				continue
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.PingTimeout)
			_, err := conn.Call(ctx, protocol.Command{Op: protocol.OpPing})
			cancel()
			if err != nil && c.ctx.Err() == nil {
				conn.end(fmt.Errorf("duplex: ping: %w", err))
			}
		case <-refresh.c():
			tok, expiresIn, err := c.refreshOn(c.ctx, conn)
			if err != nil {
				// The server closes the connection when the token expires;
				// the reconnect asks TokenFunc again.
				c.reportError(err)
				refresh.stop()
				continue
			}
			refresh.reset(tok, expiresIn)
		}
	}
}

// current returns the connection to send a command on, waiting for one
// while disconnected.
func (c *Client) current(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		conn, up, closed := c.conn, c.up, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if conn != nil {
			return conn, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("duplex: not connected: %w", ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// call sends cmd on the current connection (waiting for one, within ctx)
// and decodes the result into out.
func (c *Client) call(ctx context.Context, cmd protocol.Command, out any) error {
	conn, err := c.current(ctx)
	if err != nil {
		return fmt.Errorf("duplex: %s: %w", cmd.Op, err)
	}
	return conn.CallInto(ctx, cmd, out)
}
