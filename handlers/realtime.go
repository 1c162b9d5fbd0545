package handlers

import (
	"strings"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
	"github.com/duplex/duplex/wsconn"
)

// identityKey is the Locals key under which RealtimeIdentity leaves the
// identity for the socket; Locals reach the socket only with string keys.
const identityKey = "duplex.identity"

// RealtimeIdentity reads who a /realtime client is from ?token= (an HS256
// token; verify may be nil when tokens are off) and ?name= (a guest's
// nickname) before the upgrade, so a bad token is a clear 401 rather than
// a socket that closes. Requests that are not upgrades or SSE streams pass through.
func RealtimeIdentity(verify realtime.TokenVerifier) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !opensConnection(c) {
			return c.Next()
		}
		var id realtime.Identity
		if token := c.Query("token"); token != "" {
			if verify == nil {
				return fiber.NewError(fiber.StatusUnauthorized, "tokens are off on this server (TOKEN_SECRET is not set)")
			}
			var err error
			if id, err = verify(token); err != nil {
				return fiber.NewError(fiber.StatusUnauthorized, "invalid token: "+err.Error())
			}
		}
		if raw := c.Query("name"); raw != "" {
			name, err := realtime.CleanName(raw)
			if err != nil {
				return fiber.NewError(fiber.StatusBadRequest, err.Error())
			}
			if id.Name == "" {
				// A copy: the request's buffers are reused once the
				// upgrade is done, and the name lives as long as the socket.
				id.Name = strings.Clone(name)
			}
		}
		c.Locals(identityKey, id)
		return c.Next()
	}
}

// realtimeBatch is how many queued messages a /realtime writer joins into
// one frame (the protocol's messages are JSON lines).
const realtimeBatch = 16

// RealtimeLimits is lim as /realtime sockets use it: queued JSON lines
// are joined into frames, and publications dropped from a full queue
// (drop-oldest namespaces) are told to the client as {"missed":n}.
func RealtimeLimits(lim wsconn.Limits) wsconn.Limits {
	lim.MaxBatch = realtimeBatch
	lim.MissedNotice = protocol.EncodeMissed
	return lim
}

// Realtime serves one /realtime connection: JSON commands in text frames,
// handled by a realtime.Client over the session.
func Realtime(hub *realtime.Hub, limits realtime.ClientLimits) Opener {
	return func(conn *websocket.Conn) wsconn.OpenFunc {
		id, _ := conn.Locals(identityKey).(realtime.Identity) // unnamed: the client names it
		handshake, forHook := conn.Locals(handshakeKey).(realtime.Handshake)
		return func(s *wsconn.Session) wsconn.Handler {
			client := realtime.NewClient(hub, subscriber{s}, id, limits)
			if forHook {
				client.SetHandshake(handshake)
			}
			return (*realtimeHandler)(client)
		}
	}
}

// realtimeHandler is the connection's client as its session's handler:
// a conversion, not an object of its own, so an idle connection keeps
// one small object fewer alive (see docs/benchmarks.md, idle memory).
// Its methods run on the session's reader goroutine.
type realtimeHandler realtime.Client

func (h *realtimeHandler) client() *realtime.Client { return (*realtime.Client)(h) }

// session is the one the client was made over: Realtime makes every
// client over a subscriber, and must keep doing so (anything else would
// panic here, on a close path, which dispatch answers with 1011).
func (h *realtimeHandler) session() *wsconn.Session {
	return h.client().Subscriber().(subscriber).s
}

func (h *realtimeHandler) HandleMessage(kind wsconn.MessageType, data []byte) {
	if kind != wsconn.TextMessage {
		h.session().Close(wsconn.CloseUnsupportedData, "binary messages are not part of the protocol")
		return
	}
	if action := h.client().HandleFrame(data); action.Close {
		h.session().Close(wsconn.CloseCode(action.Code), action.Reason)
	}
}

// Closed withdraws the connection from every channel before its writer
// stops, so no publisher enqueues onto a finished session for long.
func (h *realtimeHandler) Closed() { h.client().Close() }

// subscriber is a session as the hub sees it: every frame is a text
// message, and the namespace's slow-consumer policy picks how to queue it.
type subscriber struct{ s *wsconn.Session }

var (
	_ realtime.Subscriber = subscriber{}
	_ realtime.ConnCloser = subscriber{}
	_ realtime.Backlogger = subscriber{}
	_ realtime.Prefetcher = subscriber{}
)

// Prefetch implements realtime.Prefetcher: a fan-out reads the sessions
// of the next few subscribers ahead of sending to them.
func (a subscriber) Prefetch() { a.s.Prefetch() }

// Backlogged lets flow-controlled channels skip a tick for a client whose
// queue still holds something, instead of queueing behind it.
func (a subscriber) Backlogged() bool { return a.s.Backlogged() }

func (a subscriber) ID() uint64 { return a.s.ID() }

// CloseConn implements realtime.ConnCloser: the close frame goes out
// after what is queued.
func (a subscriber) CloseConn(code int, reason string) { a.s.Close(wsconn.CloseCode(code), reason) }

// Enqueue sends the frame plain, or, to a client that negotiated
// permessage-deflate, compressed: once per frame (or twice, alone and
// against the frame it follows), however many such clients a publication
// is fanned out to (realtime.SharedFrame, wsconn.SharedMessage).
func (a subscriber) Enqueue(frame *realtime.SharedFrame, policy realtime.SlowPolicy) (dropped int, ok bool) {
	dropOldest := policy == realtime.PolicyDropOldest
	if a.s.Deflates(len(frame.Data)) {
		m, ok := frame.Prepared(sharedMessage).(*wsconn.SharedMessage)
		if !ok { // prepared by another transport: its own, never shared
			m = sharedMessage(frame).(*wsconn.SharedMessage)
		}
		n, err := a.s.SendShared(m, dropOldest)
		return n, err == nil
	}
	if dropOldest {
		n, err := a.s.SendDropOldest(wsconn.TextMessage, frame.Data)
		return n, err == nil
	}
	return 0, a.s.Send(wsconn.TextMessage, frame.Data) == nil
}

// sharedMessage is a frame's form for the sessions: the same message
// identities, which wsconn compares with what each client got last.
func sharedMessage(f *realtime.SharedFrame) any {
	after, prev := f.Follows()
	return wsconn.NewSharedMessage(wsconn.TextMessage, f.Data, f.ID(), after, prev)
}
