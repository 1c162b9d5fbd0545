package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/duplex/duplex/realtime/protocol"
)

// Publication is one publication as a Subscription delivers it: in offset
// order, each once (a push, a recovered one and a latest one of the same
// offset are one publication).
type Publication struct {
	Channel string
	// Offset is its place in the channel's stream, Epoch the stream's name.
	Offset uint64
	Epoch  string
	// Data is the published JSON value, compact, byte for byte as sent.
	Data json.RawMessage
	// Info is who published it; nil for the server (the HTTP API).
	Info *protocol.ClientInfo
	// Recovered: it was missed while disconnected and recovered by a
	// resubscribe.
	Recovered bool
	// Latest: it came in a subscribe reply's latest.
	Latest bool
	// Priority: the server published it with the priority flag (flow
	// control never samples it out).
	Priority bool
	// Tick: it came in a flow-controlled channel's tick frame (see Tick).
	Tick bool
}

// Tick is one tick frame of a flow-controlled channel (a live room):
// Total publications the channel had in the tick, Shown of them (and of
// priority ones carried over) delivered as publications, and Missed, what
// earlier ticks would have shown had the connection kept up.
type Tick struct {
	Channel              string
	Shown, Total, Missed int
}

// Subscribed is one successful subscribe: the first, or a resubscribe
// after a reconnect (Resubscribed). Recovered is the server's answer to
// recover (nil when none was asked).
type Subscribed struct {
	Channel      string
	Result       protocol.SubscribeResult
	Resubscribed bool
	Recovered    *bool
}

// Reload says that a resubscribe could not recover what was missed
// (another epoch, or a gap older or larger than what is kept): reload
// history, merging by epoch and offset. Position is the channel's
// position now. Subscriptions with Latest get the latest publications
// again instead, and no Reload.
type Reload struct {
	Channel  string
	Position protocol.Position
}

// SubscribeOptions configures one Subscription. Every handler is called
// on the client's handler goroutine, one at a time, in the order the
// messages arrived, and may call the Client.
type SubscribeOptions struct {
	// Latest, when 1 or more, asks for the newest Latest kept
	// publications on every subscribe: delivered first (Latest: true),
	// then the live ones, none twice. After a reconnect a recoverable gap
	// is recovered; otherwise the latest ones come again (skipping those
	// seen in the same epoch) and no Reload is sent.
	Latest int
	// NoRecover turns recovery off (for namespaces without history,
	// live:): a resubscribe asks for nothing and never reloads.
	NoRecover bool

	// OnPublication gets every publication.
	OnPublication func(Publication)
	// Publications, when not nil, also gets every publication (after
	// OnPublication). Sending waits while it is full, and handlers wait
	// with it; after Close nothing more is sent. It is never closed.
	Publications chan<- Publication
	// OnJoin and OnLeave get join/leave events (chat: gathered per tick).
	OnJoin, OnLeave func(protocol.ClientInfo)
	// OnPresenceCount gets the member count of a room too large for join
	// and leave events.
	OnPresenceCount func(count int)
	// OnTick gets the counts of each tick frame of a flow-controlled
	// channel, before the publications it shows.
	OnTick func(Tick)
	// OnSubscribed gets every successful subscribe and resubscribe.
	OnSubscribed func(Subscribed)
	// OnReload is called when a resubscribe could not recover the gap.
	OnReload func(Reload)
	// OnUnsubscribed is called once when the subscription ends: with nil
	// after Unsubscribe, ErrClosed after Close, the *Error of a
	// resubscribe the server refused, or an *Error with code
	// "unsubscribed" when the server's API ended it.
	OnUnsubscribed func(reason error)
}

// Subscription is one channel's subscription; it lasts across reconnects
// until Unsubscribe, Close, or a refused resubscribe.
//
// Concurrency: every method is safe for concurrent use.
type Subscription struct {
	client  *Client
	channel string
	opts    SubscribeOptions

	// Under client.mu:
	active   bool  // subscribed on the current connection
	first    bool  // no subscribe answered yet
	sentOn   *Conn // the connection the last subscribe went out on
	pos      protocol.Position
	firstRes protocol.SubscribeResult
	firstErr error
	answered chan struct{} // closed at the first answer (or the end)
	ended    bool
	endErr   error
	done     chan struct{}
	// own are the offsets of this client's own publications delivered at
	// once in a flow-controlled channel, which a later tick may show again
	// (at most maxOwnRemembered, oldest forgotten first).
	own      map[uint64]bool
	ownOrder []uint64
}

// maxOwnRemembered bounds Subscription.own.
const maxOwnRemembered = 64

// Channel is the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// Position is the position of the last publication delivered (or of the
// last subscribe result); ok is false before the first result.
func (s *Subscription) Position() (pos protocol.Position, ok bool) {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	return s.pos, s.pos.Epoch != ""
}

// Done is closed when the subscription has ended; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is nil while the subscription lasts and after Unsubscribe;
// ErrClosed after Close; the *Error of a refused resubscribe.
func (s *Subscription) Err() error {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	return s.endErr
}

// endLocked ends s (under client.mu) and releases a waiting Subscribe.
func (s *Subscription) endLocked(reason error) {
	if s.ended {
		return
	}
	s.ended, s.endErr, s.active = true, reason, false
	close(s.done)
	if s.first {
		s.first = false
		if reason == nil {
			reason = errors.New("duplex: unsubscribed")
		}
		s.firstErr = reason
		close(s.answered)
	}
}

// Subscribe subscribes to channel and waits for the first result (ctx
// bounds the wait, also for a connection while disconnected). The
// returned Subscription stays subscribed across reconnects. Subscribing
// twice to one channel is an *Error with protocol.CodeBadRequest, as the
// server answers it; a refused subscribe is the server's *Error.
func (c *Client) Subscribe(ctx context.Context, channel string, opts SubscribeOptions) (*Subscription, error) {
	sub := &Subscription{client: c, channel: channel, opts: opts, first: true,
		answered: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := c.subs[channel]; dup {
		c.mu.Unlock()
		return nil, &Error{Op: protocol.OpSubscribe, Channel: channel, Code: protocol.CodeBadRequest,
			Message: "already subscribed to " + channel}
	}
	c.subs[channel] = sub
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		c.sendSubscribe(sub, conn)
	}
	select {
	case <-sub.answered:
		if sub.firstErr != nil {
			return nil, sub.firstErr
		}
		return sub, nil
	case <-ctx.Done():
		if conn, ok := c.drop(sub, nil); ok && conn != nil {
			unsubscribeQuietly(c.ctx, conn, channel) // answered just now
		}
		return nil, fmt.Errorf("duplex: subscribe %s: %w", channel, ctx.Err())
	}
}

// unsubscribeQuietly sends unsubscribe without waiting for the reply.
func unsubscribeQuietly(ctx context.Context, conn *Conn, channel string) {
	_, _ = conn.Go(ctx, []protocol.Command{{Op: protocol.OpUnsubscribe, Channel: channel}},
		func(int, protocol.ServerMessage, error) {})
}

// FirstResult is the first subscribe result.
func (s *Subscription) FirstResult() protocol.SubscribeResult {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	return s.firstRes
}

// Unsubscribe ends the subscription and tells the server (when
// connected). A subscription already ended returns nil.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	conn, ok := s.client.drop(s, nil)
	if !ok || conn == nil {
		return nil
	}
	cmd := protocol.Command{Op: protocol.OpUnsubscribe, Channel: s.channel}
	_, err := conn.Call(ctx, cmd)
	if HasCode(err, protocol.CodeNotFound) || errors.Is(err, ErrDisconnected) {
		return nil
	}
	return err
}

// drop removes sub (ending it with reason) and returns the connection it
// was subscribed on, if it still is the current one.
func (c *Client) drop(sub *Subscription, reason error) (conn *Conn, ok bool) {
	c.mu.Lock()
	if c.subs[sub.channel] != sub {
		c.mu.Unlock()
		return nil, false
	}
	delete(c.subs, sub.channel)
	if sub.active && sub.sentOn == c.conn {
		conn = c.conn
	}
	sub.endLocked(reason)
	c.mu.Unlock()
	c.postUnsubscribed(sub, reason)
	return conn, true
}

func (c *Client) postUnsubscribed(sub *Subscription, reason error) {
	if fn := sub.opts.OnUnsubscribed; fn != nil {
		c.events.post(func() { fn(reason) })
	}
}

// sendSubscribe subscribes sub on conn, once per connection: with recover
// from its position after the first result, and latest when asked.
func (c *Client) sendSubscribe(sub *Subscription, conn *Conn) {
	c.mu.Lock()
	if c.subs[sub.channel] != sub || sub.sentOn == conn || c.conn != conn {
		c.mu.Unlock()
		return
	}
	sub.sentOn = conn
	resub := !sub.first
	cmd := protocol.Command{Op: protocol.OpSubscribe, Channel: sub.channel, Latest: sub.opts.Latest}
	if resub && !sub.opts.NoRecover && sub.pos.Epoch != "" {
		pos := sub.pos
		cmd.Recover = &pos
	}
	c.mu.Unlock()
	_, err := conn.Go(c.ctx, []protocol.Command{cmd}, func(_ int, m protocol.ServerMessage, err error) {
		switch {
		case err != nil:
			// The connection ended; the next one resubscribes.
		case m.Error != nil:
			c.subscribeRefused(sub, conn, replyError(cmd, m.Error))
		default:
			var res protocol.SubscribeResult
			if err := json.Unmarshal(m.Result, &res); err != nil {
				conn.end(fmt.Errorf("duplex: subscribe result %s: %w", m.Result, err))
				return
			}
			c.subscribed(sub, conn, res, resub)
		}
	})
	if err != nil {
		conn.end(err)
	}
}

// subscribed applies a subscribe result, on the reader goroutine before
// the pushes after it.
func (c *Client) subscribed(sub *Subscription, conn *Conn, res protocol.SubscribeResult, resub bool) {
	c.mu.Lock()
	if c.subs[sub.channel] != sub || sub.sentOn != conn {
		abandoned := c.subs[sub.channel] == nil && c.conn == conn
		c.mu.Unlock()
		if abandoned {
			// Given up (Subscribe's ctx ended) while the subscribe was on
			// its way: undo it on the server.
			unsubscribeQuietly(c.ctx, conn, sub.channel)
		}
		return
	}
	sub.active = true
	if res.Recovered != nil && *res.Recovered {
		for _, p := range res.Publications {
			c.deliverLocked(sub, p, true, false)
		}
	} else if sub.opts.Latest > 0 {
		// The newest ones up to the position: in the stream seen so far
		// they skip what was seen; in another one all are new.
		if res.Epoch != sub.pos.Epoch || res.Offset < sub.pos.Offset {
			sub.pos.Offset = 0
		}
		sub.pos.Epoch = res.Epoch
		for _, p := range res.Publications {
			c.deliverLocked(sub, p, false, true)
		}
	}
	sub.pos = protocol.Position{Offset: res.Offset, Epoch: res.Epoch}
	if sub.first {
		sub.first = false
		sub.firstRes = res
		close(sub.answered)
	}
	c.mu.Unlock()
	ev := Subscribed{Channel: sub.channel, Result: res, Resubscribed: resub, Recovered: res.Recovered}
	if fn := sub.opts.OnSubscribed; fn != nil {
		c.events.post(func() { fn(ev) })
	}
	if res.Recovered != nil && !*res.Recovered && sub.opts.Latest == 0 {
		if fn := sub.opts.OnReload; fn != nil {
			rl := Reload{Channel: sub.channel, Position: sub.pos}
			c.events.post(func() { fn(rl) })
		}
	}
}

// subscribeRefused ends sub: the first subscribe's error goes to
// Subscribe, a refused resubscribe to OnError and OnUnsubscribed.
func (c *Client) subscribeRefused(sub *Subscription, conn *Conn, err *Error) {
	c.mu.Lock()
	if c.subs[sub.channel] != sub || sub.sentOn != conn {
		c.mu.Unlock()
		return
	}
	first := sub.first
	delete(c.subs, sub.channel)
	sub.endLocked(err)
	c.mu.Unlock()
	if !first {
		c.reportError(err)
		c.postUnsubscribed(sub, err)
	}
}

// deliverLocked hands one publication to sub's handlers unless it was
// seen already (offsets only grow within an epoch).
func (c *Client) deliverLocked(sub *Subscription, p protocol.Publication, recovered, latest bool) {
	if p.Offset != 0 && sub.pos.Epoch != "" && p.Offset <= sub.pos.Offset {
		return
	}
	if p.Offset != 0 {
		sub.pos.Offset = p.Offset
	}
	c.postPublicationLocked(sub, Publication{Channel: sub.channel, Offset: p.Offset, Epoch: sub.pos.Epoch,
		Data: p.Data, Info: p.Info, Priority: p.Priority, Recovered: recovered, Latest: latest})
}

// postPublicationLocked queues ev for the subscription's handlers.
func (c *Client) postPublicationLocked(sub *Subscription, ev Publication) {
	fn, out := sub.opts.OnPublication, sub.opts.Publications
	if fn == nil && out == nil {
		return
	}
	c.events.post(func() {
		if fn != nil {
			fn(ev)
		}
		if out != nil {
			select {
			case out <- ev:
			case <-c.ctx.Done():
			}
		}
	})
}

// IsPublication reports whether m is a publication push: a message with a
// channel and data that is none of the channel's events (join, leave,
// presence_count). Replies, errors and {"missed":n} are not publications,
// nor is any push kind this package does not know. It is the one
// definition Client, and the test helpers built on Conn, use.
//
// Concurrency: a pure function.
func IsPublication(m protocol.ServerMessage) bool {
	return m.ID == 0 && m.Error == nil && m.Channel != "" && len(m.Data) > 0 &&
		m.Join == nil && m.Leave == nil && m.PresenceCount == 0
}

// session routes one connection's pushes to the subscriptions.
type session struct {
	client *Client
	conn   *Conn
}

func (s *session) onMessage(m protocol.ServerMessage) {
	c := s.client
	switch {
	case m.ID != 0:
		return // a reply nobody waits for any more
	case m.Error != nil:
		c.reportError(&Error{Code: m.Error.Code, Message: m.Error.Message})
		return
	case m.Missed > 0:
		if fn := c.opts.OnMissed; fn != nil {
			n := m.Missed
			c.events.post(func() { fn(n) })
		}
		return
	case m.Channel == "":
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sub := c.subs[m.Channel]
	if sub == nil || !sub.active || sub.sentOn != s.conn {
		return
	}
	o := sub.opts
	switch {
	case m.Join != nil && o.OnJoin != nil:
		info := *m.Join
		c.events.post(func() { o.OnJoin(info) })
	case m.Leave != nil && o.OnLeave != nil:
		info := *m.Leave
		c.events.post(func() { o.OnLeave(info) })
	case m.PresenceCount != 0 && o.OnPresenceCount != nil:
		n := m.PresenceCount
		c.events.post(func() { o.OnPresenceCount(n) })
	case m.Unsubscribed != nil:
		reason := &Error{Op: protocol.OpSubscribe, Channel: m.Channel, Code: "unsubscribed", Message: m.Unsubscribed.Reason}
		delete(c.subs, sub.channel)
		sub.endLocked(reason)
		c.postUnsubscribed(sub, reason)
	case m.Tick != nil:
		c.deliverTickLocked(sub, m)
	case IsPublication(m):
		p := protocol.Publication{Offset: m.Offset, Data: m.Data, Info: m.Info, Priority: m.Priority}
		if c.isOwnLocked(p) {
			sub.rememberOwn(p.Offset)
		}
		c.deliverLocked(sub, p, false, false)
	}
}

// deliverTickLocked hands on a tick frame: its counts, then each
// publication it shows, in order, but for this client's own ones, which
// came at once already. A tick's offsets may be below that of an own
// publication delivered just before, so they are not dropped as seen.
func (c *Client) deliverTickLocked(sub *Subscription, m protocol.ServerMessage) {
	t := m.Tick
	if fn := sub.opts.OnTick; fn != nil {
		ev := Tick{Channel: sub.channel, Shown: t.Shown, Total: t.Total, Missed: t.Missed}
		c.events.post(func() { fn(ev) })
	}
	for _, p := range t.Publications {
		if sub.own[p.Offset] {
			continue
		}
		if p.Offset > sub.pos.Offset {
			sub.pos.Offset = p.Offset
		}
		c.postPublicationLocked(sub, Publication{Channel: sub.channel, Offset: p.Offset, Epoch: sub.pos.Epoch,
			Data: p.Data, Info: p.Info, Priority: p.Priority, Tick: true})
	}
}

// isOwnLocked: p was published by this client's current connection.
func (c *Client) isOwnLocked(p protocol.Publication) bool {
	return p.Info != nil && c.info.Client != "" && p.Info.Client == c.info.Client
}

func (s *Subscription) rememberOwn(offset uint64) {
	if s.own == nil {
		s.own = make(map[uint64]bool)
	}
	s.own[offset] = true
	s.ownOrder = append(s.ownOrder, offset)
	if len(s.ownOrder) > maxOwnRemembered {
		delete(s.own, s.ownOrder[0])
		s.ownOrder = s.ownOrder[1:]
	}
}
