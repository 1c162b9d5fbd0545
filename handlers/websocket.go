package handlers

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

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
// client gets a meaningful HTTP status instead of the library's blanket
// 426: 403 for a foreign Origin, 503 with Retry-After when the server is
// full or shutting down. Requests that are not upgrades pass through.
func UpgradeGuard(reg *wsconn.Registry, origins OriginPolicy, refused RefusalCounter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !IsUpgrade(c) {
			return c.Next()
		}
		if origin := c.Get(fiber.HeaderOrigin); !origins.Allows(origin, c.Hostname()) {
			refused.UpgradeRefused("origin")
			return c.Status(fiber.StatusForbidden).JSON(fiber.Map{
				"error": "origin not allowed: " + origin + " (add it to ALLOWED_ORIGINS)",
			})
		}
		if ok, reason := reg.Admitting(); !ok {
			refused.UpgradeRefused(reason)
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(retryAfter.Seconds())))
			msg := "server at connection limit, retry later"
			if reason == "shutting_down" {
				msg = "server shutting down, retry later"
			}
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": msg})
		}
		return c.Next()
	}
}

// Opener picks the handler of one connection before the upgrade: it may
// read the request (query, Locals) and returns what makes the Handler once
// the session is registered. It must not keep c, which is reused as soon
// as the upgrade response is out.
type Opener func(c *fiber.Ctx) wsconn.OpenFunc

// readBufferSize is the size of the upgrader's own read buffer, which the
// library allocates per connection but which is never read through: the
// session reads the socket itself. So the smallest size it accepts.
const readBufferSize = 128

// IsUpgrade reports whether c asks for a WebSocket upgrade.
func IsUpgrade(c *fiber.Ctx) bool { return websocket.FastHTTPIsWebSocketUpgrade(c.Context()) }

// WebSocket upgrades the request and runs the connection through reg with
// the handler open picks; a request that is not an upgrade goes on to the
// next handler. Origins are checked by UpgradeGuard before this runs.
//
// It drives the fasthttp/websocket upgrader itself rather than through the
// contrib middleware, which copies the request's headers, query, cookies
// and Locals into maps every connection keeps for its whole life; open
// reads what it needs from the request instead. The accepted socket goes
// to the session for good: the session frames, reads and writes it itself
// and closes it, so the server must keep hijacked connections open
// (fasthttp Server.KeepHijackedConns), and the handler goroutine is free
// as soon as the session is set up.
func WebSocket(reg *wsconn.Registry, lim wsconn.Limits, open Opener, refused RefusalCounter, log *slog.Logger) fiber.Handler {
	up := websocket.FastHTTPUpgrader{
		ReadBufferSize: readBufferSize,
		// The session frames its own writes (the library writes only the
		// 1011 of recoverSocket, which needs no buffer). A pool keeps it
		// from allocating a write buffer per connection.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*fasthttp.RequestCtx) bool { return true }, // UpgradeGuard has checked
	}
	return func(c *fiber.Ctx) error {
		if !IsUpgrade(c) {
			return c.Next()
		}
		openSession := open(c)
		ctx := c.Context()
		sock := ctx.Conn()
		err := up.Upgrade(ctx, func(conn *websocket.Conn) {
			defer recoverSocket(conn, lim, log)
			reg.Serve(conn.NetConn(), sock, lim, openSession)
		})
		if err != nil {
			refused.UpgradeRefused("bad_handshake")
			return fiber.NewError(fiber.StatusBadRequest, "bad WebSocket handshake: "+err.Error())
		}
		return nil
	}
}

// recoverSocket is the last line behind Serve, which recovers the message
// handlers itself: a panic is logged, the client is told nothing but 1011,
// and the connection, which the server keeps open, is closed.
func recoverSocket(conn *websocket.Conn, lim wsconn.Limits, log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error("websocket handler panicked", "panic", r)
		msg := websocket.FormatCloseMessage(wsconn.CloseInternalError, "internal error")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(lim.WriteTimeout))
		_ = conn.NetConn().Close()
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
