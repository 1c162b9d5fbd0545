// Package handlers holds the HTTP and WebSocket handlers. They are thin:
// the connection logic lives in wsconn and the channels in realtime.
package handlers

import "github.com/gofiber/fiber/v2"

// Page renders the template name (from views/) inside the main layout.
func Page(name, title string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		return c.Render(name, fiber.Map{"Title": title}, "layouts/main")
	}
}
