package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// A Client calls its hub's hooks from HandleFrame, with its lock held, so
// a connection's commands stay in order and one slow backend call holds
// up that connection only (for at most the hook timeout), never others.

// hubHooks is a hub's hooks with what every call shares.
type hubHooks struct {
	Hooks
	timeout time.Duration
	// idPrefix (random per hub) and ids name each call, so two nodes, or
	// one node across restarts, never give two calls one request id.
	idPrefix string
	ids      atomic.Uint64
}

func newHubHooks(h Hooks, timeout time.Duration) *hubHooks {
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &hubHooks{Hooks: h, timeout: timeout, idPrefix: hex.EncodeToString(b[:]) + "-"}
}

func (h *hubHooks) nextRequestID() string {
	return h.idPrefix + strconv.FormatUint(h.ids.Add(1), 10)
}

// checkHooks reports a namespace that enables a hook the hub lacks.
func (n Namespaces) checkHooks(h Hooks) error {
	for _, name := range slices.Sorted(maps.Keys(n)) {
		o := n[name]
		switch {
		case o.SubscribeHook && h.Subscribe == nil:
			return fmt.Errorf("namespace %q: the subscribe hook is enabled but none is configured", name)
		case o.PublishHook && h.Publish == nil:
			return fmt.Errorf("namespace %q: the publish hook is enabled but none is configured", name)
		}
	}
	return nil
}

// errHookDisconnected is what a command fails with when a hook asked for
// the connection to be closed: the command gets no reply, the close
// (Client.kick) says it all.
var errHookDisconnected = errors.New("disconnected by a hook")

// SetHandshake gives the connect hook what the transport learned at the
// upgrade (see Handshake). Call it before the first HandleFrame; without
// it the hook gets only the client id and what connect commands carry.
// It takes the client's lock.
func (c *Client) SetHandshake(h Handshake) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handshake = &h
}

// upgradeHandshake is what SetHandshake gave, or the zero Handshake. It
// is kept behind a pointer: only servers with a connect hook have one,
// and the 64 bytes would sit in every client.
func (c *Client) upgradeHandshake() Handshake {
	if c.handshake == nil {
		return Handshake{}
	}
	return *c.handshake
}

// connectFirst runs the connect hook, with the handshake's token and
// name, before the first command that needs an identity from a client
// that sent no connect (or whose connects all failed): with the hook on,
// no one subscribes, publishes or reads a channel without the backend's
// yes. It does nothing when the hook is off or has already allowed.
func (c *Client) connectFirst(op protocol.Op) error {
	if c.hub.hooks.Connect == nil || c.hooked {
		return nil
	}
	switch op {
	case protocol.OpSubscribe, protocol.OpPublish, protocol.OpPresence, protocol.OpHistory:
		hs := c.upgradeHandshake()
		return c.callConnectHook(hs.Token, hs.Name)
	}
	return nil
}

// connectThroughHook is the connect command with the connect hook on: the
// backend, not TOKEN_SECRET, judges the token, and names the identity.
// A connect with neither token nor name asks the backend with the
// handshake's, unless it has allowed already.
func (c *Client) connectThroughHook(cmd protocol.Command) (any, error) {
	token, name := cmd.Token, cmd.Name
	switch {
	case token == "" && name == "":
		if c.hooked {
			return c.connectResult(), nil
		}
		hs := c.upgradeHandshake()
		token, name = hs.Token, hs.Name
	case name != "":
		clean, err := CleanName(name)
		if err != nil {
			return nil, err
		}
		name = clean
	}
	if err := c.callConnectHook(token, name); err != nil {
		return nil, err
	}
	return c.connectResult(), nil
}

func (c *Client) connectResult() protocol.ConnectResult {
	return protocol.ConnectResult{Client: c.info.Client, User: c.info.User, Name: c.info.Name}
}

// callConnectHook asks the backend who this connection is and, when it
// allows, takes that identity; a refused or failed call leaves the
// identity as it was.
func (c *Client) callConnectHook(token, name string) error {
	req := ConnectRequest{RequestID: c.hub.hooks.nextRequestID(), Client: c.info.Client, Handshake: c.upgradeHandshake()}
	req.Token, req.Name = token, name
	reply, err := callHook(c, "connect", req.RequestID, "", func(ctx context.Context) (ConnectReply, error) {
		return c.hub.hooks.Connect.Connect(ctx, req)
	}, checkConnectReply)
	if err != nil {
		return err
	}
	if reply.Name == "" {
		reply.Name = name
	}
	c.setIdentity(Identity{User: reply.User, Name: reply.Name, Info: reply.Info})
	c.hooked = true
	return nil
}

// subscribeThroughHook asks the backend whether this client may subscribe
// to channel, and returns the channel info it attaches (nil for none).
func (c *Client) subscribeThroughHook(channel string) (json.RawMessage, error) {
	req := SubscribeRequest{RequestID: c.hub.hooks.nextRequestID(), Client: c.info, Channel: channel}
	reply, err := callHook(c, "subscribe", req.RequestID, channel, func(ctx context.Context) (SubscribeReply, error) {
		return c.hub.hooks.Subscribe.Subscribe(ctx, req)
	}, checkSubscribeReply)
	return reply.Info, err
}

// publishThroughHook asks the backend whether this client may publish
// data to channel, and returns the data to publish: the backend's
// replacement, or data itself.
func (c *Client) publishThroughHook(channel string, data json.RawMessage) (json.RawMessage, error) {
	req := PublishRequest{RequestID: c.hub.hooks.nextRequestID(), Client: c.info, Channel: channel, Data: data}
	reply, err := callHook(c, "publish", req.RequestID, channel, func(ctx context.Context) (PublishReply, error) {
		return c.hub.hooks.Publish.Publish(ctx, req)
	}, checkPublishReply)
	switch {
	case err != nil:
		return nil, err
	case reply.Data != nil:
		return reply.Data, nil
	}
	return data, nil
}

// hookReply is any hook's reply: it carries a verdict.
type hookReply interface{ verdict() HookVerdict }

func (v HookVerdict) verdict() HookVerdict { return v }

// callHook makes one call of hook under the hub's hook timeout and checks
// the answer: a failed call or an answer check refuses is unavailable, a
// refusal is the command's error, and only an allowed reply comes back.
func callHook[R hookReply](c *Client, hook, requestID, channel string, call func(context.Context) (R, error), check func(R) (R, error)) (R, error) {
	var none R
	ctx, cancel := context.WithTimeout(clientCtx, c.hub.hooks.timeout)
	defer cancel()
	reply, err := call(ctx)
	if err == nil {
		reply, err = check(reply)
	}
	if err != nil {
		return none, c.hookFailed(hook, requestID, channel, err)
	}
	if err := c.hookRefused(hook, requestID, channel, reply.verdict()); err != nil {
		return none, err
	}
	c.hub.log.Debug("hook allowed", "hook", hook, "request_id", requestID, "client", c.info.Client, "channel", channel)
	return reply, nil
}

// publisherInfo is how this client appears in its publications on
// channel: with the channel info its subscription there was given.
func (c *Client) publisherInfo(channel string) ClientInfo {
	info := c.info
	if s := c.subscription(channel); s != nil {
		info.ChanInfo = s.info.ChanInfo
	}
	return info
}

// hookFailed is a call that got no usable answer: the command fails with
// a fixed unavailable message, and only the log has the cause.
func (c *Client) hookFailed(hook, requestID, channel string, err error) error {
	c.hub.log.Warn("hook failed", "hook", hook, "request_id", requestID, "client", c.info.Client, "channel", channel, "err", err)
	return &backendError{
		public: &Error{Code: protocol.CodeUnavailable, Message: hook + " failed: service unavailable, retry later"},
		cause:  err,
	}
}

// hookRefused applies a backend's refusal: a deny is the command's error;
// a disconnect marks the client for closing and fails the command with
// errHookDisconnected. It returns nil when v allows.
func (c *Client) hookRefused(hook, requestID, channel string, v HookVerdict) error {
	switch {
	case v.Disconnect != nil:
		c.hub.log.Info("hook disconnects", "hook", hook, "request_id", requestID, "client", c.info.Client,
			"channel", channel, "code", v.Disconnect.Code)
		c.kick = &Action{Close: true, Code: v.Disconnect.Code, Reason: v.Disconnect.Reason}
		return errHookDisconnected
	case v.Deny != nil:
		c.hub.log.Debug("hook denied", "hook", hook, "request_id", requestID, "client", c.info.Client,
			"channel", channel, "code", v.Deny.Code)
		return v.Deny
	}
	return nil
}
