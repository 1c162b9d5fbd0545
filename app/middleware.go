package app

import (
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/duplex/duplex/handlers"
)

// contentSecurityPolicy allows the pages' own scripts, styles and socket
// and nothing else. 'self' covers ws: and wss: to the same host.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// quietPaths are polled by machines; logging each hit would drown the log.
var quietPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/metrics": true}

func useMiddleware(f *fiber.App, log *slog.Logger) {
	f.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			log.Error("handler panicked", "panic", e, "path", c.Path(), "request_id", requestID(c))
		},
	}))
	f.Use(requestid.New())
	f.Use(accessLog(log))
	f.Use(helmet.New(helmet.Config{
		// The headers are for documents; a WebSocket's 101 (or its
		// refusal) is none, and a dozen headers on it (570 bytes) would
		// cost every new connection for nothing.
		Next:                  handlers.IsUpgrade,
		ContentSecurityPolicy: contentSecurityPolicy,
		ReferrerPolicy:        "strict-origin-when-cross-origin",
	}))
}

// accessLog logs one structured line per request, after it is answered.
// A WebSocket shows up once, as its 101 upgrade.
func accessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Skip the work of building the line when it would be dropped
		// (LOG_LEVEL=warn and above); upgrades pass through here too.
		if quietPaths[c.Path()] || !log.Enabled(c.UserContext(), slog.LevelInfo) {
			return c.Next()
		}
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			status, _ = clientError(err)
		}
		log.Info("request",
			"method", c.Method(), "path", c.Path(), "status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
			"ip", c.IP(), "request_id", requestID(c))
		return err
	}
}

// errorHandler answers every failed request with JSON. Only errors that
// handlers wrote for clients (*fiber.Error, *handlers.CodedError) show
// their message; anything else, panics included, becomes a bare 500 and
// goes to the log, so no internals leak.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, body := clientError(err)
		if status == fiber.StatusInternalServerError {
			log.Error("request failed", "err", err, "path", c.Path(), "request_id", requestID(c))
		}
		return c.Status(status).JSON(body)
	}
}

// clientError is the status and JSON body a client gets for err.
func clientError(err error) (int, fiber.Map) {
	var fe *fiber.Error
	var ce *handlers.CodedError
	switch {
	case errors.As(err, &ce):
		return ce.Status, fiber.Map{"error": ce.Message, "code": ce.Code}
	case errors.As(err, &fe) && fe.Code != fiber.StatusInternalServerError:
		return fe.Code, fiber.Map{"error": fe.Message}
	}
	return fiber.StatusInternalServerError, fiber.Map{"error": "internal server error"}
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals("requestid").(string)
	return id
}
