package handlers

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	fiberws "github.com/gofiber/contrib/websocket"
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
// client gets a meaningful HTTP status instead of the library's blanket
// 426: 403 for a foreign Origin, 503 with Retry-After when the server is
// full or shutting down. Requests that are not upgrades pass through.
func UpgradeGuard(reg *wsconn.Registry, origins OriginPolicy, refused RefusalCounter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !fiberws.IsWebSocketUpgrade(c) {
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

// Opener makes the handler of one upgraded connection. c gives access to
// the request's query and Locals; it must not be kept past the call.
type Opener func(c *fiberws.Conn, s *wsconn.Session) wsconn.Handler

// WebSocket upgrades the request and runs the connection through reg with
// the handler open makes; a request that is not an upgrade goes on to the
// next handler. Origins are checked by UpgradeGuard before this runs.
func WebSocket(reg *wsconn.Registry, lim wsconn.Limits, open Opener, refused RefusalCounter, log *slog.Logger) fiber.Handler {
	upgrade := fiberws.New(func(c *fiberws.Conn) {
		reg.Serve(c.Conn, lim, func(s *wsconn.Session) wsconn.Handler { return open(c, s) })
	}, fiberws.Config{
		Filter:  fiberws.IsWebSocketUpgrade, // true means upgrade
		Origins: []string{"*"},              // UpgradeGuard has checked already
		// Idle connections share write buffers instead of holding one each.
		WriteBufferPool: &sync.Pool{},
		// Serve recovers the message handler itself; this is the last line,
		// and unlike the default it tells the client nothing but 1011.
		RecoverHandler: func(c *fiberws.Conn) {
			if r := recover(); r != nil {
				log.Error("websocket handler panicked", "panic", r)
				msg := websocket.FormatCloseMessage(wsconn.CloseInternalError, "internal error")
				_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(lim.WriteTimeout))
			}
		},
	})
	return func(c *fiber.Ctx) error {
		err := upgrade(c)
		if errors.Is(err, fiber.ErrUpgradeRequired) {
			refused.UpgradeRefused("bad_handshake")
			return fiber.NewError(fiber.StatusBadRequest, "bad WebSocket handshake")
		}
		return err
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
