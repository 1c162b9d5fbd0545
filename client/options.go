package client

import (
	"context"
	"net/http"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/realtime/protocol"
)

// Defaults of Options.
const (
	// DefaultPingInterval is how long the connection may be silent before
	// the client pings the server (duplex.js: 25 s).
	DefaultPingInterval = 25 * time.Second
	// DefaultPingTimeout is how long a ping, and the connect command of a
	// new connection, may go unanswered before the connection counts as
	// dead and is replaced.
	DefaultPingTimeout = 5 * time.Second
)

// TokenFunc returns a token for the next connect or refresh: for example
// from the backend's POST /api/token. It is called on the client's own
// goroutine with a context that ends with the attempt (or with Close).
type TokenFunc func(ctx context.Context) (string, error)

// Options configures a Client. The zero value is a guest named by the
// server (访客<id>) with the defaults above.
type Options struct {
	// Name is a guest's display name, sent with connect. Ignored when a
	// token is given.
	Name string
	// Token is a user's HS256 JWT (POST /api/token, `duplex token`).
	Token string
	// TokenFunc, when set, is asked for a token before every connect and
	// by Refresh; it takes the place of Token.
	TokenFunc TokenFunc
	// URL, when set, is asked for the socket URL before every connection
	// attempt instead of New's url (to spread reconnects over several
	// nodes, or to follow a test's topology).
	URL func() string
	// Header and Dialer are passed to Dial (ConnOptions).
	Header http.Header
	Dialer *websocket.Dialer
	// BackoffMin and BackoffMax are the reconnect delay ceilings
	// (DefaultBackoffMin, DefaultBackoffMax); a negative BackoffMin
	// reconnects at once (tests).
	BackoffMin, BackoffMax time.Duration
	// PingInterval is the silence after which the client pings
	// (DefaultPingInterval); negative: never.
	PingInterval time.Duration
	// PingTimeout bounds a ping and a new connection's connect command
	// (DefaultPingTimeout).
	PingTimeout time.Duration

	// The client's events, each called on the client's handler goroutine
	// (one at a time, in order; see the package documentation).

	// OnState is called on every change of State.
	OnState func(StateChange)
	// OnConnected is called with the connect result of every connection.
	OnConnected func(protocol.ConnectResult)
	// OnError gets failures nobody awaits: a refused token (the
	// connection carries on as a guest), a refused resubscribe, an error
	// reply without id, a failed connection attempt.
	OnError func(error)
	// OnMissed gets the server's {"missed":n}: n publications of
	// drop-oldest namespaces (live) were dropped because this client read
	// too slowly. They are not publications; gaps in offsets show where.
	OnMissed func(n int)
}

// State is the connection state.
type State int

// The states, as duplex.js names them.
const (
	Disconnected State = iota
	Connecting
	Connected
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return "disconnected"
}

// StateChange is one change of State. Err is why a connection ended or an
// attempt failed; Delay is how long the client waits before the next
// attempt (-1 after Close).
type StateChange struct {
	State State
	Err   error
	Delay time.Duration
}

func (o Options) withDefaults() Options {
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	return o
}
