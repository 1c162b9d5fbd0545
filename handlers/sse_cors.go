package handlers

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// preflightMaxAge is how long a browser may reuse an emit's preflight
// answer, so that a signed-in client's every emit is not preceded by one.
const preflightMaxAge = 10 * time.Minute

// CrossOrigin lets a page of an origin that origins allows besides the
// server's own (ALLOWED_ORIGINS) read the answers of the SSE transport's
// requests, which a browser otherwise hides from it (CORS; a WebSocket
// needs no such permission): an allowed Origin is named in
// Access-Control-Allow-Origin, with Retry-After readable. It answers the
// preflight of an emit that carries Authorization itself: 204 for an
// allowed Origin, 403 otherwise. No credentials are allowed: the client
// proves who it is with its token, never a cookie.
func CrossOrigin(origins OriginPolicy) fiber.Handler {
	return func(c *fiber.Ctx) error {
		allowed := allowCrossOrigin(c, origins)
		if c.Method() != fiber.MethodOptions {
			return c.Next()
		}
		if !allowed {
			return refuseOrigin(c, c.Get(fiber.HeaderOrigin))
		}
		c.Set(fiber.HeaderAccessControlAllowMethods, fiber.MethodPost)
		c.Set(fiber.HeaderAccessControlAllowHeaders, fiber.HeaderAuthorization+", "+fiber.HeaderContentType)
		c.Set(fiber.HeaderAccessControlMaxAge, strconv.Itoa(int(preflightMaxAge.Seconds())))
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// allowCrossOrigin reports whether origins allows the request's Origin
// (no Origin: same-origin, allowed) and, for an allowed Origin, names it
// in the answer's CORS headers so that its page may read the answer.
func allowCrossOrigin(c *fiber.Ctx, origins OriginPolicy) bool {
	c.Vary(fiber.HeaderOrigin)
	origin := c.Get(fiber.HeaderOrigin)
	allowed := origins.Allows(origin, origins.requestHost(c))
	if allowed && origin != "" {
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		c.Set(fiber.HeaderAccessControlExposeHeaders, fiber.HeaderRetryAfter)
	}
	return allowed
}
