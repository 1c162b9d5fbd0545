package handlers

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/wsconn"
)

// retryAfter is what a client refused for capacity or shutdown is told to
// wait before trying again.
const retryAfter = 5 * time.Second

// RefusalCounter counts upgrades refused before they happen, by reason.
// Implementations must be safe for concurrent use.
type RefusalCounter interface {
	UpgradeRefused(reason string)
}

// UpgradeGuard checks a WebSocket upgrade before it happens, so a refused
// client gets a meaningful HTTP status instead of contrib/websocket's
// blanket 426 (which it answers for every failure, a foreign origin
// included): 400 or 426 for a malformed handshake, 403 for a foreign
// Origin, 429 with Retry-After for an address opening connections faster
// than rate allows, 503 with Retry-After when the server, or the address's
// share of it, is full, or the server is shutting down. Requests that are
// not upgrades pass through.
func UpgradeGuard(reg *wsconn.Registry, origins OriginPolicy, rate *PeerRate, refused RefusalCounter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !IsUpgrade(c) {
			return c.Next()
		}
		if status, msg := handshakeProblem(c); status != 0 {
			refused.UpgradeRefused("bad_handshake")
			if status == fiber.StatusUpgradeRequired {
				// RFC 6455 section 4.4: name the versions we speak.
				c.Set(fiber.HeaderSecWebSocketVersion, "13")
			}
			return fiber.NewError(status, "bad WebSocket handshake: "+msg)
		}
		if ok, err := admitConnection(c, reg, origins, rate, refused); !ok {
			return err
		}
		return c.Next()
	}
}

// admitConnection makes the checks every new connection passes, a
// WebSocket or an SSE stream: 403 for a foreign Origin, 429 with
// Retry-After for an address opening connections faster than rate
// allows, 503 with Retry-After when the server, or the address's share of
// it, is full, or the server is shutting down. It answers a refused
// request itself (ok false; err is the response's); an admitted one
// leaves the client's address in Locals under peerKey.
func admitConnection(c *fiber.Ctx, reg *wsconn.Registry, origins OriginPolicy, rate *PeerRate, refused RefusalCounter) (ok bool, err error) {
	if origin := c.Get(fiber.HeaderOrigin); !origins.Allows(origin, origins.requestHost(c)) {
		refused.UpgradeRefused("origin")
		return false, refuseOrigin(c, origin)
	}
	// c.IP() is the client as TRUSTED_PROXIES defines it; it may alias
	// the request's buffer, and the registry keeps it.
	peer := strings.Clone(c.IP())
	if allowed, wait := rate.Allow(peer, time.Now()); !allowed {
		refused.UpgradeRefused("ip_rate")
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(max(time.Second, wait.Round(time.Second)).Seconds())))
		return false, c.Status(fiber.StatusTooManyRequests).JSON(fiber.Map{"error": "too many new connections from your address, retry later"})
	}
	if why := reg.Admitting(peer); why != wsconn.Admitted {
		refused.UpgradeRefused(why.String())
		return false, refuseAdmission(c, why)
	}
	c.Locals(peerKey, peer)
	return true, nil
}

// refuseOrigin answers a request from a browser page of an origin the
// policy does not allow: 403, naming the origin and the setting.
func refuseOrigin(c *fiber.Ctx, origin string) error {
	return c.Status(fiber.StatusForbidden).JSON(fiber.Map{"error": "origin not allowed: " + origin + " (add it to ALLOWED_ORIGINS)"})
}

// refuseAdmission answers a connection the registry would not admit: 503
// with Retry-After and why.
func refuseAdmission(c *fiber.Ctx, why wsconn.Admission) error {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(retryAfter.Seconds())))
	msg := "server at connection limit, retry later"
	switch why {
	case wsconn.RefusedShuttingDown:
		msg = "server shutting down, retry later"
	case wsconn.RefusedPeerCapacity:
		msg = "too many connections from your address, retry later"
	}
	return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": msg})
}

// handshakeProblem checks an upgrade request against RFC 6455 section
// 4.2.1 and returns the status and reason to refuse it with, or 0: a key
// that is not the base64 of 16 bytes is a 400, a version other than 13 a
// 426 (the caller adds Sec-WebSocket-Version: 13). contrib/websocket would
// answer the first 426 and upgrade the second anyway.
func handshakeProblem(c *fiber.Ctx) (status int, msg string) {
	if !headerHasToken(c.Get(fiber.HeaderSecWebSocketVersion), "13") {
		return fiber.StatusUpgradeRequired, "Sec-WebSocket-Version must be 13"
	}
	if key := c.Get(fiber.HeaderSecWebSocketKey); !validKey(key) {
		return fiber.StatusBadRequest, "Sec-WebSocket-Key must be the base64 of 16 bytes"
	}
	return 0, ""
}

// validKey reports whether key is the base64 of 16 bytes: 24 characters,
// the last two "==" (RFC 6455 section 4.1, item 7).
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(key)
	return err == nil && len(b) == 16
}

// headerHasToken reports whether the comma-separated header value lists
// token (RFC 7230 section 7), in any case.
func headerHasToken(value, token string) bool {
	for part := range strings.SplitSeq(value, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// Opener picks the handler of one connection once it is upgraded. What it
// may know of the request is what the route's middleware left in Locals,
// which contrib/websocket copies at the upgrade (string keys only): the
// request's own buffers are reused by then. It must not keep conn, which
// goes back to contrib's pool when the upgrade handler returns.
type Opener func(conn *websocket.Conn) wsconn.OpenFunc

// Locals keys under which the route leaves request data for the socket.
const (
	// socketKey holds the TCP socket under the upgraded connection
	// (socketRef), which the session reads and writes directly.
	socketKey = "duplex.socket"
	// requestIDKey is where Fiber's requestid middleware leaves its id.
	requestIDKey = "requestid"
	// peerKey holds the client's address as UpgradeGuard admitted it (a
	// string of its own), which the registry counts against
	// MAX_CONNECTIONS_PER_IP.
	peerKey = "duplex.peer"
	// deflateKey holds the deflateMode the upgrade negotiated.
	deflateKey = "duplex.deflate"
)

// socketRef carries the TCP socket through Locals. It is a struct and not
// the net.Conn itself because fasthttp closes every io.Closer in a
// request's user values when the request ends, which for a hijacked
// connection is right after the upgrade.
type socketRef struct{ conn net.Conn }

// readBufferSize is the size of the upgrader's own read buffer, which the
// library allocates per connection but which is never read through: the
// session reads the socket itself. So the smallest size it accepts.
const readBufferSize = 128

// writeBufferPool keeps the upgrader from allocating a write buffer per
// connection: the session frames its own writes, and the library writes
// at most the 1011 of recoverSocket.
var writeBufferPool = &sync.Pool{}

// IsUpgrade reports whether c asks for a WebSocket upgrade.
func IsUpgrade(c *fiber.Ctx) bool { return websocket.IsWebSocketUpgrade(c) }

// WebSocket upgrades the request through contrib/websocket and runs the
// connection through reg with the handler open picks; a request that is
// not an upgrade goes on to the next handler. UpgradeGuard has checked
// the handshake, the origin and the capacity before this runs, so
// contrib's own Origins check is left at its "*".
//
// contrib's handler only hands the socket over: the session frames, reads
// and writes it itself and closes it, so the server must keep hijacked
// connections open (fasthttp Server.KeepHijackedConns). With lim.Deflate
// set (WS_COMPRESSION), a client's permessage-deflate offer is accepted if
// it can be honoured (negotiateDeflate), and only the sessions that
// negotiated it get Limits.Deflate; with lim.DeflateContext too, those
// whose offer left the server its context get Limits.DeflateContext.
// Where the registry
// polls, the handler returns once the session is set up and has handled
// the client's first input (or waited firstInputWait for it), and the
// maps contrib copied for the connection (headers, query, cookies,
// Locals) are dropped with its Conn; nothing of contrib's is kept per idle
// connection.
func WebSocket(reg *wsconn.Registry, lim wsconn.Limits, open Opener, log *slog.Logger) fiber.Handler {
	// The sessions share their limits (Serve keeps the pointer), one per
	// deflateMode.
	var modeLim [deflateModes]wsconn.Limits
	for mode := range modeLim {
		modeLim[mode] = lim
		modeLim[mode].Deflate = deflateMode(mode) != noDeflate
		modeLim[mode].DeflateContext = deflateMode(mode) == deflateFollowing
	}
	upgrade := websocket.New(func(conn *websocket.Conn) {
		// Nothing has read the connection yet: the session must be first,
		// since it owns every byte the client sends after the handshake.
		sock, _ := conn.Locals(socketKey).(socketRef)
		openSession := open(conn)
		if id, _ := conn.Locals(requestIDKey).(string); id != "" && log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("websocket upgraded", "request_id", id, "ip", conn.IP())
		}
		peer, _ := conn.Locals(peerKey).(string)
		mode, _ := conn.Locals(deflateKey).(deflateMode)
		reg.Serve(conn.NetConn(), sock.conn, peer, &modeLim[mode], openSession)
	}, websocket.Config{
		ReadBufferSize:  readBufferSize,
		WriteBufferPool: writeBufferPool,
		RecoverHandler:  recoverSocket(lim, log),
	})
	return func(c *fiber.Ctx) error {
		if !IsUpgrade(c) {
			return c.Next()
		}
		c.Locals(socketKey, socketRef{c.Context().Conn()})
		answer, mode := "", noDeflate
		if lim.Deflate {
			answer, mode = negotiateDeflate(c.Get(fiber.HeaderSecWebSocketExtensions), lim.DeflateContext)
		}
		c.Locals(deflateKey, mode)
		if err := upgrade(c); err != nil || answer == "" {
			return err
		}
		// Only now: the upgrader refuses (500) a response that names
		// extensions before it runs. The response, 101 and all, is
		// written once this handler returns, before the socket is handed
		// over.
		if c.Response().StatusCode() == fiber.StatusSwitchingProtocols {
			c.Set(fiber.HeaderSecWebSocketExtensions, answer)
		}
		return nil
	}
}

// recoverSocket replaces contrib's default RecoverHandler, which would
// send the panic value to the client: it is the last line behind Serve,
// which recovers the message handlers itself. A panic is logged, the
// client is told nothing but 1011, and the connection, which the server
// keeps open, is closed.
func recoverSocket(lim wsconn.Limits, log *slog.Logger) func(*websocket.Conn) {
	return func(conn *websocket.Conn) {
		if r := recover(); r != nil {
			log.Error("websocket handler panicked", "panic", r)
			nc := conn.NetConn()
			_ = nc.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
			_, _ = nc.Write(wsconn.CloseFrame(wsconn.CloseInternalError, ""))
			_ = nc.Close()
		}
	}
}

// UpgradeRequired ends a plain HTTP request on a WebSocket-only route.
func UpgradeRequired(refused RefusalCounter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		refused.UpgradeRefused("not_websocket")
		c.Set(fiber.HeaderUpgrade, "websocket")
		return fiber.NewError(fiber.StatusUpgradeRequired, "this endpoint speaks WebSocket only")
	}
}
