package realtime

import (
	"cmp"
	"context"
	"encoding/json"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// DefaultNodeInfoWait is how long Hub.Nodes waits for the other nodes'
// answers: a node that has not answered by then is left out.
const DefaultNodeInfoWait = 500 * time.Millisecond

// Default texts of the server-initiated close and unsubscribe.
const (
	defaultDisconnectReason  = "disconnected by the server"
	defaultUnsubscribeReason = "unsubscribed by the server"
)

// ControlConfig configures the hub's part in the server API's control of
// connections. Zero fields get defaults.
type ControlConfig struct {
	// Version is this node's version in NodeInfo.
	Version string
	// FindConn finds one of this node's connections by its Subscriber ID,
	// for Disconnect by client id; it returns nil when there is none. When
	// FindConn is nil, only users can be disconnected. It must be safe
	// for concurrent use.
	FindConn func(id uint64) ConnCloser
	// NodeInfoWait is how long Nodes waits for other nodes' answers
	// (default DefaultNodeInfoWait).
	NodeInfoWait time.Duration
}

// hubControl is the hub's control state. clients is updated by every
// Client's NewClient and Close.
type hubControl struct {
	cfg     ControlConfig
	started time.Time
	clients atomic.Int64
}

// ControlOp names a ControlCommand.
type ControlOp string

// The control commands.
const (
	// ControlDisconnect closes a user's connections, or one client's.
	ControlDisconnect ControlOp = "disconnect"
	// ControlUnsubscribe ends a user's subscriptions to one channel.
	ControlUnsubscribe ControlOp = "unsubscribe"
)

// ControlCommand is what one node asks every node to do to its own
// connections. It travels between nodes as JSON. A plain value.
type ControlCommand struct {
	Op ControlOp `json:"op"`
	// User selects a user's connections; Client one connection (for
	// disconnect only). Exactly one is set.
	User   string `json:"user,omitempty"`
	Client string `json:"client,omitempty"`
	// Channel is the channel of an unsubscribe.
	Channel string `json:"channel,omitempty"`
	// Code and Reason are the close frame's (disconnect), or Reason the
	// unsubscribed push's.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// NodeInfo describes one node, as GET /api/info lists it. A plain value.
type NodeInfo struct {
	// Node is the node's id, the prefix of its client ids.
	Node          string `json:"node"`
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	// Connections is the number of /realtime connections on the node,
	// Users the distinct users among them (guests are not counted),
	// Channels the channels with subscribers on the node.
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Channels    int `json:"channels"`
}

// ControlHandler is what a ControlBroker delivers to: the Hub implements
// it.
//
// Concurrency: HandleControl and NodeInfo may be called from any
// goroutine, concurrently with each other and with everything else.
// HandleControl must not be called with a broker lock held that the
// hub's Unsubscribe needs.
type ControlHandler interface {
	HandleControl(cmd ControlCommand)
	NodeInfo() NodeInfo
}

// ControlBroker is a Broker that also carries control commands and node
// information between the nodes: MemoryBroker (this node only) and
// NATSBroker (core NATS subjects under the prefix, at most once). A hub
// whose broker is not one controls its own connections only.
//
// Concurrency: every method may be called from any goroutine.
// SetControlHandler is called once, by NewHub, before the others.
type ControlBroker interface {
	Broker
	// SetControlHandler sets where control commands and node-information
	// requests go on this node.
	SetControlHandler(h ControlHandler) error
	// PublishControl hands cmd to every node's handler, this node's
	// included. It returns once the command is on its way (NATS: the
	// server has it), not when the nodes have acted on it.
	PublishControl(ctx context.Context, cmd ControlCommand) error
	// GatherNodeInfo asks every node for its NodeInfo and returns the
	// answers that arrive within wait (or before ctx ends), this node's
	// included.
	GatherNodeInfo(ctx context.Context, wait time.Duration) ([]NodeInfo, error)
}

// initControl sets the control part of a new hub up.
func (h *Hub) initControl(cfg ControlConfig) error {
	if cfg.NodeInfoWait <= 0 {
		cfg.NodeInfoWait = DefaultNodeInfoWait
	}
	h.ctl.cfg = cfg
	h.ctl.started = time.Now()
	h.users.seed = maphash.MakeSeed()
	if cb, ok := h.broker.(ControlBroker); ok {
		return cb.SetControlHandler(h)
	}
	return nil
}

// Disconnect closes the connections of user, or the one connection
// client (a client id as connect returns it), on every node, with code
// (0: protocol.CloseDisconnected) and reason (empty: a default). It
// returns once the command is on its way to every node.
//
// Errors: bad_request (neither or both of user and client, a malformed
// user or client id, a code other than 4000–4999, 1000 or 1008, a reason
// over 123 bytes or not UTF-8), unavailable (the broker failed).
func (h *Hub) Disconnect(ctx context.Context, user, client string, code int, reason string) error {
	if (user == "") == (client == "") {
		return protocol.Errorf(protocol.CodeBadRequest, "give exactly one of user and client")
	}
	if user != "" {
		if err := checkUserID(user); err != nil {
			return err
		}
	} else if _, _, ok := splitClientID(client); !ok {
		return protocol.Errorf(protocol.CodeBadRequest, "client is not a client id (node-number, as connect returns it)")
	}
	code = cmp.Or(code, protocol.CloseDisconnected)
	if !protocol.ValidServerCloseCode(code) {
		return protocol.Errorf(protocol.CodeBadRequest, "code must be 4000 to 4999, 1000 or 1008")
	}
	if err := protocol.CheckCloseReason(reason); err != nil {
		return err
	}
	reason = cmp.Or(reason, defaultDisconnectReason)
	return h.control(ctx, ControlCommand{Op: ControlDisconnect, User: user, Client: client, Code: code, Reason: reason})
}

// UnsubscribeUser ends user's subscriptions to channel on every node:
// each of the user's connections subscribed to it gets the push
// {"channel":…,"unsubscribed":{"reason":…}}, and the others in the
// channel see it leave. reason empty means a default. It returns once the
// command is on its way to every node.
//
// Errors: bad_request (a malformed user id, a reason over 123 bytes or
// not UTF-8), bad_channel, unavailable (the broker failed).
func (h *Hub) UnsubscribeUser(ctx context.Context, user, channel, reason string) error {
	if err := checkUserID(user); err != nil {
		return err
	}
	ch, _, err := h.ns.Lookup(channel)
	if err != nil {
		return err
	}
	if err := protocol.CheckCloseReason(reason); err != nil {
		return err
	}
	reason = cmp.Or(reason, defaultUnsubscribeReason)
	return h.control(ctx, ControlCommand{Op: ControlUnsubscribe, User: user, Channel: ch.Name, Reason: reason})
}

// Nodes lists every node (this one first among equals: sorted by node
// id) with its connections, users, channels, version and uptime. With a
// broker that connects nodes, it waits ControlConfig.NodeInfoWait for
// their answers; nodes that do not answer in time are left out.
//
// Errors: unavailable (the broker failed).
func (h *Hub) Nodes(ctx context.Context) ([]NodeInfo, error) {
	cb, ok := h.broker.(ControlBroker)
	if !ok {
		return []NodeInfo{h.NodeInfo()}, nil
	}
	nodes, err := cb.GatherNodeInfo(ctx, h.ctl.cfg.NodeInfoWait)
	if err != nil {
		return nil, h.unavailable("node info", "", err)
	}
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return strings.Compare(a.Node, b.Node) })
	return nodes, nil
}

// control sends cmd to every node, or handles it here when the broker
// does not connect nodes.
func (h *Hub) control(ctx context.Context, cmd ControlCommand) error {
	cb, ok := h.broker.(ControlBroker)
	if !ok {
		h.HandleControl(cmd)
		return nil
	}
	if err := cb.PublishControl(ctx, cmd); err != nil {
		return h.unavailable("control", cmd.Channel, err)
	}
	return nil
}

// HandleControl implements ControlHandler: it acts on this node's
// connections. A command that selects none here does nothing.
func (h *Hub) HandleControl(cmd ControlCommand) {
	switch cmd.Op {
	case ControlDisconnect:
		if cmd.User != "" {
			for _, c := range h.users.lookup(cmd.User) {
				c.closeConn(cmd.Code, cmd.Reason)
			}
			return
		}
		node, id, ok := splitClientID(cmd.Client)
		if !ok || node != h.nodeID || h.ctl.cfg.FindConn == nil {
			return
		}
		if conn := h.ctl.cfg.FindConn(id); conn != nil {
			conn.CloseConn(cmd.Code, cmd.Reason)
		}
	case ControlUnsubscribe:
		for _, c := range h.users.lookup(cmd.User) {
			c.serverUnsubscribe(cmd.Channel, cmd.Reason)
		}
	default:
		h.log.Warn("unknown control command", "op", cmd.Op)
	}
}

// NodeInfo implements ControlHandler: this node's figures now.
func (h *Hub) NodeInfo() NodeInfo {
	channels := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		channels += len(sh.channels)
		sh.mu.RUnlock()
	}
	return NodeInfo{
		Node:          h.nodeID,
		Version:       h.ctl.cfg.Version,
		UptimeSeconds: int64(time.Since(h.ctl.started) / time.Second),
		Connections:   int(h.ctl.clients.Load()),
		Users:         h.users.count(),
		Channels:      channels,
	}
}

// serverUnsubscribe ends the client's subscription to channel, if it has
// one, and tells it with the unsubscribed push, queued like a reply
// (never dropped). Others see it leave. A publication already being
// fanned out may still reach it after the push.
func (c *Client) serverUnsubscribe(channel, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	s := c.dropSubscription(channel)
	if s == nil {
		return
	}
	c.hub.Unsubscribe(clientCtx, s)
	c.reply(protocol.EncodeUnsubscribed(channel, reason))
}

// checkUserID checks a user id as tokens carry it.
func checkUserID(user string) error {
	if _, err := ParseChannel("user:" + user); err != nil || user == "" {
		return protocol.Errorf(protocol.CodeBadRequest, "user must be a user id (A-Z a-z 0-9 _ . @ : -)")
	}
	return nil
}

// splitClientID splits a client id "<node>-<n>" (Hub.clientID) into the
// node id and the connection's Subscriber ID.
func splitClientID(client string) (node string, id uint64, ok bool) {
	i := strings.LastIndexByte(client, '-')
	if i <= 0 {
		return "", 0, false
	}
	id, err := strconv.ParseUint(client[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return client[:i], id, true
}

// encodeControl and decodeControl are the JSON of control commands
// between nodes.
func encodeControl(cmd ControlCommand) []byte {
	b, _ := json.Marshal(cmd) // strings and an int: cannot fail
	return b
}

func decodeControl(data []byte) (ControlCommand, error) {
	var cmd ControlCommand
	err := json.Unmarshal(data, &cmd)
	return cmd, err
}
