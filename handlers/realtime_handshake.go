package handlers

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/realtime"
)

// handshakeKey is the Locals key under which RealtimeHandshake leaves the
// connect hook's realtime.Handshake for the socket.
const handshakeKey = "duplex.handshake"

// RealtimeHandshake replaces RealtimeIdentity on a server with a connect
// hook, where the backend and not TOKEN_SECRET judges tokens: it keeps
// ?token= unverified and ?name= cleaned (a bad name is still a 400), with
// the client's address (as TRUSTED_PROXIES defines it) and the upgrade's
// headers and cookies named in the allow-lists, for the hook. Only these
// are copied: the request's buffers are reused after the upgrade, and
// nothing else of the request is kept per connection. Requests that are
// not upgrades or SSE streams pass through.
func RealtimeHandshake(headers, cookies []string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !opensConnection(c) {
			return c.Next()
		}
		h := realtime.Handshake{Token: strings.Clone(c.Query("token"))}
		if raw := c.Query("name"); raw != "" {
			name, err := realtime.CleanName(raw)
			if err != nil {
				return fiber.NewError(fiber.StatusBadRequest, err.Error())
			}
			h.Name = strings.Clone(name)
		}
		if peer, ok := c.Locals(peerKey).(string); ok { // UpgradeGuard's copy
			h.IP = peer
		} else {
			h.IP = strings.Clone(c.IP())
		}
		h.Headers = copyPresent(headers, func(name string) string { return c.Get(name) })
		h.Cookies = copyPresent(cookies, func(name string) string { return c.Cookies(name) })
		c.Locals(handshakeKey, h)
		// The identity the socket starts with, until the hook names one.
		c.Locals(identityKey, realtime.Identity{Name: h.Name})
		return c.Next()
	}
}

// copyPresent maps each name whose value is not empty to a copy of it;
// nil when none is.
func copyPresent(names []string, get func(name string) string) map[string]string {
	var out map[string]string
	for _, name := range names {
		if v := get(name); v != "" {
			if out == nil {
				out = make(map[string]string, len(names))
			}
			out[name] = strings.Clone(v)
		}
	}
	return out
}
