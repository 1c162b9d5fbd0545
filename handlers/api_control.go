package handlers

import (
	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/realtime"
)

// The server API's control of connections (docs/protocol.md, "HTTP API").
// Each request is validated by the hub, which then hands it to every
// node through the broker.

type disconnectRequest struct {
	User   string `json:"user"`
	Client string `json:"client"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type unsubscribeRequest struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
	Reason  string `json:"reason"`
}

// Disconnect: POST /api/disconnect {"user"|"client","code","reason"} → {}
// once every node has been told.
func (a API) Disconnect(c *fiber.Ctx) error {
	var req disconnectRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := a.Hub.Disconnect(c.UserContext(), req.User, req.Client, req.Code, req.Reason); err != nil {
		return apiError(err)
	}
	return c.JSON(fiber.Map{})
}

// Unsubscribe: POST /api/unsubscribe {"user","channel","reason"} → {} once
// every node has been told.
func (a API) Unsubscribe(c *fiber.Ctx) error {
	var req unsubscribeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := a.Hub.UnsubscribeUser(c.UserContext(), req.User, req.Channel, req.Reason); err != nil {
		return apiError(err)
	}
	return c.JSON(fiber.Map{})
}

// Info: GET /api/info → {"nodes":[…]}, every node that answered in time.
func (a API) Info(c *fiber.Ctx) error {
	nodes, err := a.Hub.Nodes(c.UserContext())
	if err != nil {
		return apiError(err)
	}
	if nodes == nil {
		nodes = []realtime.NodeInfo{}
	}
	return c.JSON(fiber.Map{"nodes": nodes})
}
