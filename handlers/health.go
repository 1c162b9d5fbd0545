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
	Ready       func() bool
}

// Healthz reports status, version, uptime and open connections.
func (h Health) Healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{
		"status":         "ok",
		"version":        h.Version,
		"uptime_seconds": int64(time.Since(h.Started).Seconds()),
		"connections":    h.Connections(),
	})
}

// Livez answers 200 while the process can serve HTTP at all.
func (h Health) Livez(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "alive"})
}

// Readyz answers 200 while the server takes new clients and 503 once
// shutdown has begun, so a load balancer stops sending them.
func (h Health) Readyz(c *fiber.Ctx) error {
	if !h.Ready() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "shutting_down"})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
