// Package handlers holds the HTTP and WebSocket handlers. They are thin:
// the connection logic lives in wsconn.
package handlers

import "github.com/gofiber/fiber/v2"

// Index renders the tutorial's echo page.
func Index(c *fiber.Ctx) error {
	return c.Render("index", fiber.Map{"Title": "WebSocket 回声演示"}, "layouts/main")
}
