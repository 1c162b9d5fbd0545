package realtime

import (
	"context"
	"encoding/json"
	"time"
)

// Backend hooks let an application's backend decide who connects, what
// they may subscribe to and what they publish (like Centrifugo's
// proxies). The core only calls them: Hooks holds the implementations
// (HTTPHooks POSTs JSON to the backend), and a Client calls them at its
// connect, subscribe and publish. A connection with no hook configured
// pays one nil check per command.

// DefaultHookTimeout bounds one hook call when HubConfig.HookTimeout is 0.
const DefaultHookTimeout = time.Second

// MaxHookInfoBytes bounds the extra information a backend attaches to a
// connection (ConnectReply.Info) or a subscription (SubscribeReply.Info):
// it travels with every presence entry, join, leave and publication of
// that client.
const MaxHookInfoBytes = 4 << 10

// DefaultHookDisconnectCode is the close code of a hook's disconnect
// that names none: in the application range (4000-4999), "forbidden".
const DefaultHookDisconnectCode = 4403

// Hooks are the backend hooks a hub calls; a nil field is a hook that is
// off. The subscribe and publish hooks apply only in namespaces that
// enable them (NamespaceOptions.SubscribeHook, PublishHook); the connect
// hook, when set, applies to every connection.
//
// Concurrency: every hook is called from many connections at once and
// must be safe for concurrent use. A call is bounded by
// HubConfig.HookTimeout through ctx.
type Hooks struct {
	Connect   ConnectHook
	Subscribe SubscribeHook
	Publish   PublishHook
}

// ConnectHook decides who a connection is. An error means the backend
// could not answer (down, slow, garbage): the command fails with
// unavailable and the error is only logged.
type ConnectHook interface {
	Connect(ctx context.Context, req ConnectRequest) (ConnectReply, error)
}

// SubscribeHook decides whether a client may subscribe to a channel. Its
// error means what ConnectHook's does.
type SubscribeHook interface {
	Subscribe(ctx context.Context, req SubscribeRequest) (SubscribeReply, error)
}

// PublishHook decides whether a client's publication goes out, and may
// replace its data. Its error means what ConnectHook's does.
type PublishHook interface {
	Publish(ctx context.Context, req PublishRequest) (PublishReply, error)
}

// Handshake is what the transport learned of a connection at its
// upgrade, for the connect hook: the client's own claims (a token the
// server has not verified, a cleaned name), its address, and the
// allow-listed request headers and cookies. It is a plain value, not
// modified once handed to Client.SetHandshake.
type Handshake struct {
	Token   string
	Name    string
	IP      string
	Headers map[string]string // canonical header name → first value
	Cookies map[string]string // cookie name → value
}

// ConnectRequest is one connect hook call: the client id, the token and
// name it gave (in its connect command, else at the upgrade), and the
// rest of its Handshake. RequestID names the call in the server's log
// and the backend's.
type ConnectRequest struct {
	RequestID string
	Client    string
	Handshake
}

// SubscribeRequest is one subscribe hook call: who (Client: client id,
// user, name and connect info) wants Channel.
type SubscribeRequest struct {
	RequestID string
	Client    ClientInfo
	Channel   string
}

// PublishRequest is one publish hook call: who publishes Data (compact
// JSON) to Channel.
type PublishRequest struct {
	RequestID string
	Client    ClientInfo
	Channel   string
	Data      json.RawMessage
}

// HookVerdict is a backend's refusal, shared by every reply: at most one
// of Deny and Disconnect is set; neither means allowed.
type HookVerdict struct {
	// Deny fails the command with this error; the connection stays.
	Deny *Error
	// Disconnect closes the connection with this code and reason.
	Disconnect *HookDisconnect
}

// HookDisconnect asks for the connection to be closed with Code
// (4000-4999) and Reason (at most 123 bytes, the close frame's room).
type HookDisconnect struct {
	Code   int
	Reason string
}

// ConnectReply is a connect hook's answer. When allowed, User (empty: a
// guest) and Name (empty: the name the client gave, else the default
// one) are the connection's identity, and Info (compact JSON, or nil) is
// shown with it.
type ConnectReply struct {
	HookVerdict
	User string
	Name string
	Info json.RawMessage
}

// SubscribeReply is a subscribe hook's answer. When allowed, Info
// (compact JSON, or nil) is the channel info shown with this client in
// the channel's presence, joins, leaves and publications.
type SubscribeReply struct {
	HookVerdict
	Info json.RawMessage
}

// PublishReply is a publish hook's answer. When allowed, Data (compact
// JSON, not null), if set, replaces the client's data.
type PublishReply struct {
	HookVerdict
	Data json.RawMessage
}
