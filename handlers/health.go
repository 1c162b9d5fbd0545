package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// Health serves the liveness, readiness and status endpoints. Its funcs
// are called on every probe from many goroutines and must be safe for it.
type Health struct {
	Version     string
	Started     time.Time
	Connections func() int
	// Ready is false once shutdown has begun.
	Ready func() bool
	// Broker reports the broker's state ("memory", or NATS's "connected",
	// "reconnecting", …) and whether publishing works.
	Broker func() (state string, healthy bool)
}

// Healthz reports status, version, uptime, open connections and the broker.
func (h Health) Healthz(c *fiber.Ctx) error {
	state, _ := h.Broker()
	return c.JSON(fiber.Map{
		"status":         "ok",
		"version":        h.Version,
		"uptime_seconds": int64(time.Since(h.Started).Seconds()),
		"connections":    h.Connections(),
		"broker":         state,
	})
}

// Livez answers 200 while the process can serve HTTP at all. It ignores the
// broker: restarting a node does not bring NATS back.
func (h Health) Livez(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "alive"})
}

// Readyz answers 200 while the server takes new clients, and 503 once
// shutdown has begun or while the broker is unreachable (publishes would
// fail), so a load balancer sends clients to the nodes that can serve
// them. The body says which, and the broker's state.
func (h Health) Readyz(c *fiber.Ctx) error {
	state, healthy := h.Broker()
	switch {
	case !h.Ready():
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "shutting_down", "broker": state})
	case !healthy:
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "broker_unavailable", "broker": state})
	}
	return c.JSON(fiber.Map{"status": "ready", "broker": state})
}
