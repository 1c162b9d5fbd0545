package realtime

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/duplex/duplex/realtime/protocol"
)

// ClosePolicyViolation (1008) is the close code a transport sends when
// HandleFrame asks it to close for sustained abuse.
const ClosePolicyViolation = 1008

// DefaultGuestNamePrefix and DefaultUserNamePrefix, followed by the
// client id, name a guest or a user who gave no display name, unless
// HubConfig says otherwise (the server's pages use Chinese ones).
const (
	DefaultGuestNamePrefix = "guest"
	DefaultUserNamePrefix  = "user"
)

// DefaultMaxSubscriptions is the default cap on one connection's subscriptions.
const DefaultMaxSubscriptions = 128

// DefaultMaxReplyBytes is the default bound on one reply: a quarter of the
// default send queue (WS_SEND_QUEUE_BYTES, 1 MiB), so a reply always fits
// with room for the pushes queued around it.
const DefaultMaxReplyBytes = 256 << 10

// ClientLimits bound one connection's use of the protocol. A value is
// copied into each Client.
type ClientLimits struct {
	// MaxSubscriptions caps the channels one connection is subscribed to;
	// beyond it subscribe answers limit_exceeded. Default 128.
	MaxSubscriptions int
	// MaxPublishBytes caps the data of one client publication; beyond it
	// publish answers limit_exceeded. Default 16 KiB.
	MaxPublishBytes int
	// CommandRate and CommandBurst limit all commands of one connection
	// (token bucket); beyond it every command answers rate_limited.
	// Defaults 50/s, burst 100. Publications are further limited per
	// namespace (NamespaceOptions.PublishRate).
	CommandRate  float64
	CommandBurst int
	// AbuseRate and AbuseBurst decide when rate-limit violations become
	// abuse: each rate_limited answer takes a token from this bucket, and
	// when none is left HandleFrame asks for a close with 1008. Defaults
	// 1/s, burst 10: ten violations in a row, or more than one a second
	// sustained, close the connection.
	AbuseRate  float64
	AbuseBurst int
	// MaxReplyBytes bounds one reply, so that a reply always fits in the
	// connection's send queue (WS_SEND_QUEUE_BYTES) and never counts as
	// slow consumption. A history reply holds the oldest publications
	// that fit and sets more (the client asks again from the last
	// offset); a recovery that does not fit answers recovered=false (the
	// client pages through history); a subscribe with latest holds the
	// newest that fit. Default DefaultMaxReplyBytes; keep
	// it well below the send queue.
	MaxReplyBytes int
}

// DefaultClientLimits returns the defaults documented on ClientLimits.
func DefaultClientLimits() ClientLimits {
	return ClientLimits{
		MaxSubscriptions: DefaultMaxSubscriptions,
		MaxPublishBytes:  16 << 10,
		CommandRate:      50, CommandBurst: 100,
		AbuseRate: 1, AbuseBurst: 10,
		MaxReplyBytes: DefaultMaxReplyBytes,
	}
}

func (l ClientLimits) withDefaults() ClientLimits {
	d := DefaultClientLimits()
	if l.MaxSubscriptions <= 0 {
		l.MaxSubscriptions = d.MaxSubscriptions
	}
	if l.MaxPublishBytes <= 0 {
		l.MaxPublishBytes = d.MaxPublishBytes
	}
	if l.CommandRate <= 0 {
		l.CommandRate, l.CommandBurst = d.CommandRate, d.CommandBurst
	}
	if l.CommandBurst <= 0 {
		l.CommandBurst = 1
	}
	if l.AbuseRate <= 0 {
		l.AbuseRate, l.AbuseBurst = d.AbuseRate, d.AbuseBurst
	}
	if l.AbuseBurst <= 0 {
		l.AbuseBurst = 1
	}
	if l.MaxReplyBytes <= 0 {
		l.MaxReplyBytes = d.MaxReplyBytes
	}
	return l
}

// Action tells the transport what to do after HandleFrame.
type Action struct {
	// Close asks the transport to close the connection with Code and
	// Reason (after flushing what is queued), then call Client.Close.
	Close  bool
	Code   int
	Reason string
}

// Client is the protocol state machine of one connection, independent of
// the transport: the transport calls HandleFrame for every text frame it
// reads and Close when the connection ends. Every reply goes out through
// the connection's Subscriber.Enqueue, so replies and pushes share one
// ordered queue.
//
// Concurrency: all methods are safe for concurrent use, but HandleFrame
// is meant to be called by the connection's reader only; calls are
// serialized. Close may be called from any goroutine, once or more.
type Client struct {
	hub *Hub
	sub Subscriber
	lim *ClientLimits // with defaults, shared by every client with the same (Hub.sharedLimits)

	mu   sync.Mutex
	info ClientInfo // who the connection is (Identity's user and name, with the client id)
	// subs are the subscriptions in the order they were made. A
	// connection has few (MaxSubscriptions caps them), so a slice, 8
	// bytes for the usual one, beats a map, 200 bytes for one entry.
	subs        []*Subscription
	cmdBucket   tokenBucket             // every command (CommandRate, CommandBurst)
	abuseBucket tokenBucket             // rate_limited answers (AbuseRate, AbuseBurst)
	pubBuckets  map[string]*tokenBucket // by namespace; nil until a limited publication
	abusive     bool
	closed      bool
	auth        *clientAuth // the token's expiry (refresh.go); nil for guests

	// With a connect hook (hooks_client.go): what the upgrade knew (nil
	// without SetHandshake), and whether the backend has allowed an
	// identity.
	handshake *Handshake
	hooked    bool
	// kick, once a hook asked for it, is the close HandleFrame returns.
	kick *Action
}

// clientCtx is the context of every client's calls to the hub, the
// broker and the hooks. A client's commands run one at a time under its
// mutex, which Close also takes, so no call of a client is ever in
// flight when it closes: there is nothing to cancel, and a context per
// client (96 bytes) would only cost memory.
var clientCtx = context.Background()

// NewClient makes the state machine for one connection. identity comes
// from the transport (a verified ?token= or a guest ?name=); a guest
// without a name is called HubConfig.GuestNamePrefix followed by its id.
func NewClient(hub *Hub, sub Subscriber, identity Identity, limits ClientLimits) *Client {
	c := &Client{hub: hub, sub: sub, lim: hub.sharedLimits(limits.withDefaults())}
	c.hub.ctl.clients.Add(1)
	c.setIdentity(identity)
	return c
}

func (c *Client) setIdentity(id Identity) {
	clientID := c.info.Client // the connection's for good, once made
	if id.Name == "" {
		prefix := c.hub.guestNamePrefix
		if !id.Guest() {
			prefix = c.hub.userNamePrefix
		}
		if clientID == "" {
			clientID, id.Name = c.hub.clientIDAndName(c.sub, prefix)
		} else if name := prefix + strconv.FormatUint(c.sub.ID(), 10); name == c.info.Name {
			id.Name = c.info.Name // the same default: keep the string it shares with the id
		} else {
			id.Name = name
		}
	}
	if clientID == "" {
		clientID = c.hub.clientID(c.sub)
	} else if id.Name != c.info.Name {
		// The id may be cut from one string with the default name
		// (clientIDAndName); a copy of its own lets the replaced name go
		// instead of keeping it alive for the connection's life.
		clientID = strings.Clone(clientID)
	}
	c.hub.users.move(c, c.info.User, id.User)
	c.info = ClientInfo{Client: clientID, User: id.User, Name: id.Name, ConnInfo: id.Info}
	c.setTokenExpiry(id.Expires)
}

// Subscriber is the connection the client was made over (NewClient's
// sub). It never changes: safe from any goroutine.
func (c *Client) Subscriber() Subscriber { return c.sub }

// Info is how this client appears to others (presence, publications).
func (c *Client) Info() ClientInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Channels lists the client's subscriptions, sorted.
func (c *Client) Channels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for _, s := range c.subs {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out
}

// HandleFrame handles one text frame of one or more '\n'-separated
// commands, in order, enqueueing a reply for each. Bad input gets an error
// reply and the connection survives; the returned Action asks for a close
// only when rate-limit violations continue (code 1008). data is not kept.
func (c *Client) HandleFrame(data []byte) Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Action{}
	}
	if !c.abusive && c.kick == nil {
		protocol.SplitLines(data, func(line []byte) bool {
			c.handle(line)
			return !c.abusive && c.kick == nil
		})
	}
	if c.kick != nil {
		return *c.kick
	}
	if c.abusive {
		return Action{Close: true, Code: ClosePolicyViolation, Reason: "rate limit exceeded repeatedly"}
	}
	return Action{}
}

// Close ends every subscription (pushing leave events where the namespace
// wants them). Later frames are ignored. It is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.stopExpiry()
	c.hub.users.remove(c, c.info.User)
	c.hub.ctl.clients.Add(-1)
	for i, s := range c.subs {
		c.hub.Unsubscribe(clientCtx, s)
		c.subs[i] = nil
	}
	c.subs = nil
}

// subscription finds the client's subscription to channel; nil if none.
// The caller holds c.mu.
func (c *Client) subscription(channel string) *Subscription {
	for _, s := range c.subs {
		if s.name == channel {
			return s
		}
	}
	return nil
}

// dropSubscription forgets the client's subscription to channel and
// returns it; nil if there was none. The caller holds c.mu and
// unsubscribes it.
func (c *Client) dropSubscription(channel string) *Subscription {
	for i, s := range c.subs {
		if s.name == channel {
			c.subs = slices.Delete(c.subs, i, i+1)
			return s
		}
	}
	return nil
}

// reply enqueues a reply (or error) that must never be dropped: the
// protocol promises one answer per command. On a connection whose queue
// is full of droppable pushes, they make room for it (PolicyDisconnect's
// contract); only a queue full of what cannot be dropped disconnects.
func (c *Client) reply(frame []byte) { c.hub.send(c.sub, NewSharedFrame(frame), PolicyDisconnect) }

func (c *Client) fail(id uint64, err error) {
	if c.kick != nil {
		return // a hook disconnects the client: the close is the answer
	}
	// Hub errors wrap the coded error a client may see (backendError
	// keeps the cause for logs), so look through the chain.
	var pe *Error
	if !errors.As(err, &pe) {
		pe = protocol.Errorf(protocol.CodeInternal, "internal error")
		c.hub.log.Error("unexpected error in client command", "client", c.info.Client, "err", err)
	}
	if pe.Code == protocol.CodeRateLimited && !c.abuseBucket.allow(c.lim.AbuseRate, c.lim.AbuseBurst) {
		c.abusive = true
	}
	c.reply(protocol.EncodeError(id, pe))
}

func (c *Client) handle(line []byte) {
	cmd, perr := protocol.DecodeCommand(line)
	if !c.cmdBucket.allow(c.lim.CommandRate, c.lim.CommandBurst) {
		c.fail(cmd.ID, protocol.Errorf(protocol.CodeRateLimited, "too many commands, slow down"))
		return
	}
	if perr != nil {
		c.fail(cmd.ID, perr)
		return
	}
	// A panic in a backend (broker, presence store) costs this command an
	// internal error, not the connection or the process.
	defer func() {
		if r := recover(); r != nil {
			c.hub.log.Error("panic in client command", "op", cmd.Op, "client", c.info.Client, "panic", r)
			c.reply(protocol.EncodeError(cmd.ID, protocol.Errorf(protocol.CodeInternal, "internal error")))
		}
	}()
	if err := c.connectFirst(cmd.Op); err != nil {
		c.fail(cmd.ID, err)
		return
	}
	var (
		result any
		err    error
	)
	switch cmd.Op {
	case protocol.OpPing:
		result = protocol.Empty{}
	case protocol.OpConnect:
		result, err = c.connect(cmd)
	case protocol.OpRefresh:
		result, err = c.refresh(cmd)
	case protocol.OpSubscribe:
		// The reply is enqueued by subscribe itself, before any push.
		if err = c.subscribe(cmd); err == nil {
			return
		}
	case protocol.OpUnsubscribe:
		result, err = c.unsubscribe(cmd)
	case protocol.OpPublish:
		result, err = c.publish(cmd)
	case protocol.OpPresence:
		result, err = c.presence(cmd)
	case protocol.OpHistory:
		result, err = c.history(cmd)
	default: // DecodeCommand returns only known ops
		err = protocol.Errorf(protocol.CodeBadRequest, "unknown op")
	}
	if err != nil {
		c.fail(cmd.ID, err)
		return
	}
	c.reply(protocol.EncodeResult(cmd.ID, result))
}

func (c *Client) connect(cmd protocol.Command) (any, error) {
	if len(c.subs) > 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "connect must come before any subscribe")
	}
	if c.hub.hooks.Connect != nil {
		return c.connectThroughHook(cmd)
	}
	switch {
	case cmd.Token != "":
		if c.hub.verify == nil {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "tokens are not accepted: the server has no TOKEN_SECRET")
		}
		id, err := c.hub.verify(cmd.Token)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "invalid token: %v", err)
		}
		c.setIdentity(id)
	case cmd.Name != "":
		name, err := CleanName(cmd.Name)
		if err != nil {
			return nil, err
		}
		c.setIdentity(Identity{User: c.info.User, Name: name, Expires: c.tokenExpires()})
	}
	return protocol.ConnectResult{Client: c.info.Client, User: c.info.User, Name: c.info.Name, ExpiresIn: c.expiresIn()}, nil
}

// access checks that this identity may read channel (subscribe, presence,
// history).
func (c *Client) access(ch Channel, o NamespaceOptions) error {
	if !o.UserChannel {
		return nil
	}
	if c.info.User == "" {
		return protocol.Errorf(protocol.CodeUnauthorized, "sign in (token) to use user channels")
	}
	if ch.Rest != c.info.User {
		return protocol.Errorf(protocol.CodeForbidden, "user channel of another user")
	}
	return nil
}

func (c *Client) subscribe(cmd protocol.Command) error {
	ch, o, err := c.hub.ns.Lookup(cmd.Channel)
	if err != nil {
		return err
	}
	if err := c.access(ch, o); err != nil {
		return err
	}
	if c.subscription(ch.Name) != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "already subscribed to %s", ch.Name)
	}
	if len(c.subs) >= c.lim.MaxSubscriptions {
		return protocol.Errorf(protocol.CodeLimitExceeded, "at most %d subscriptions per connection", c.lim.MaxSubscriptions)
	}
	info := c.info
	// The subscription shares c.info, which no longer changes once there
	// is a subscription (connect must come first), unless a hook gave it
	// channel info of its own.
	shared := &c.info
	if o.SubscribeHook {
		if info.ChanInfo, err = c.subscribeThroughHook(ch.Name); err != nil {
			return err
		}
		shared = nil
	}
	s, _, err := c.hub.Subscribe(clientCtx, c.sub, ch.Name, SubscribeOptions{
		Info:       info,
		sharedInfo: shared,
		Recover:    cmd.Recover,
		Latest:     cmd.Latest,
		OnReady: func(res SubscribeResult) {
			c.reply(protocol.EncodeResult(cmd.ID, subscribeReply(cmd, res, c.lim.MaxReplyBytes)))
		},
	})
	if err != nil {
		return err
	}
	c.subs = append(c.subs, s)
	return nil
}

func (c *Client) unsubscribe(cmd protocol.Command) (any, error) {
	ch, err := ParseChannel(cmd.Channel)
	if err != nil {
		return nil, err
	}
	s := c.dropSubscription(ch.Name)
	if s == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "not subscribed to %s", ch.Name)
	}
	c.hub.Unsubscribe(clientCtx, s)
	return protocol.Empty{}, nil
}

func (c *Client) publish(cmd protocol.Command) (any, error) {
	ch, o, err := c.hub.ns.Lookup(cmd.Channel)
	if err != nil {
		return nil, err
	}
	if !o.ClientPublish {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only the server publishes in namespace %q", ch.Namespace)
	}
	if len(cmd.Data) > c.lim.MaxPublishBytes {
		return nil, protocol.Errorf(protocol.CodeLimitExceeded, "data larger than %d bytes", c.lim.MaxPublishBytes)
	}
	if o.PublishRate > 0 {
		b := c.pubBuckets[ch.Namespace]
		if b == nil {
			if c.pubBuckets == nil {
				c.pubBuckets = make(map[string]*tokenBucket)
			}
			b = new(tokenBucket)
			c.pubBuckets[ch.Namespace] = b
		}
		if !b.allow(o.PublishRate, o.PublishBurst) {
			return nil, protocol.Errorf(protocol.CodeRateLimited, "at most %g messages per second in %q", o.PublishRate, ch.Namespace)
		}
	}
	data, info := cmd.Data, c.info
	if o.PublishHook {
		if data, err = c.publishThroughHook(ch.Name, data); err != nil {
			return nil, err
		}
	}
	if o.SubscribeHook {
		info = c.publisherInfo(ch.Name)
	}
	pos, err := c.hub.publish(clientCtx, ch.Name, o, data, &info)
	if err != nil {
		return nil, err
	}
	if o.FlowTick > 0 {
		c.echoOwn(ch.Name, pos, cmd.Data, &info)
	}
	return protocol.PublishResult{Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

func (c *Client) presence(cmd protocol.Command) (any, error) {
	ch, o, err := c.hub.ns.Lookup(cmd.Channel)
	if err != nil {
		return nil, err
	}
	if err := c.access(ch, o); err != nil {
		return nil, err
	}
	return c.hub.presencePage(clientCtx, ch.Name, cmd.After, c.lim.MaxReplyBytes)
}

func (c *Client) history(cmd protocol.Command) (any, error) {
	ch, o, err := c.hub.ns.Lookup(cmd.Channel)
	if err != nil {
		return nil, err
	}
	if err := c.access(ch, o); err != nil {
		return nil, err
	}
	res, err := c.hub.History(clientCtx, ch.Name, cmd.Since, cmd.Limit)
	if err != nil {
		return nil, err
	}
	if n := fitPublications(res.Publications, res.Epoch, c.lim.MaxReplyBytes); n < len(res.Publications) {
		res.Publications, res.More = res.Publications[:n], true
	}
	return res, nil
}
