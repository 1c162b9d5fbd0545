package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/duplex/duplex/realtime"
)

// emitErrors are the JSON error texts of an emit's refusals, by status.
var emitErrors = map[int]string{
	http.StatusBadRequest:            "the body must be one or more JSON commands in UTF-8",
	http.StatusForbidden:             "identity does not match the session",
	http.StatusNotFound:              "unknown session",
	http.StatusGone:                  "session closed",
	http.StatusRequestEntityTooLarge: "body over the largest message (WS_MAX_MESSAGE_BYTES)",
	http.StatusServiceUnavailable:    "the node of the session cannot be reached, retry later",
}

// checkEmitBody returns the status refusing body, or 0 if it may go to a
// stream: not empty, at most maxBody bytes, UTF-8.
func checkEmitBody(body []byte, maxBody int) int {
	switch {
	case len(body) > maxBody:
		return http.StatusRequestEntityTooLarge
	case len(body) == 0 || !utf8.Valid(body):
		return http.StatusBadRequest
	}
	return 0
}

// Emit serves POST /realtime/emit?session=<sid>: the body's commands go
// to the stream's client, on this node or on the node the session id
// names (through the broker), and its replies come on the stream. The
// answer is 204, or an error status with {"error": ...}: 403 for a
// foreign Origin (the CSRF defence) or another identity than the
// stream's, 404 for an unknown or malformed session, 410 for a stream
// that ended, 400 and 413 for a bad body, 503 when the owning node cannot
// be reached.
func (t *SSE) Emit(c *fiber.Ctx) error {
	if origin := c.Get(fiber.HeaderOrigin); !t.origins.Allows(origin, t.origins.requestHost(c)) {
		return t.refuseEmitOrigin(c)
	}
	return t.answerEmit(c, t.emit(c))
}

// refuseEmitOrigin counts and sends an emit's refusal for a foreign
// Origin (403, as refuseOrigin words it).
func (t *SSE) refuseEmitOrigin(c *fiber.Ctx) error {
	t.obs.EmitAnswered(http.StatusForbidden)
	return refuseOrigin(c, c.Get(fiber.HeaderOrigin))
}

// answerEmit counts an emit's answer and sends it: 204, or the status's
// error JSON (emitErrors, never internal text).
func (t *SSE) answerEmit(c *fiber.Ctx, status int) error {
	t.obs.EmitAnswered(status)
	if status == http.StatusNoContent {
		return c.SendStatus(status)
	}
	return c.Status(status).JSON(fiber.Map{"error": emitErrors[status]})
}

// emit is Emit past the Origin check: the status of the answer.
func (t *SSE) emit(c *fiber.Ctx) int {
	sid := c.Query("session")
	node, ok := parseSessionID(sid)
	if !ok {
		return http.StatusNotFound
	}
	body := c.Body()
	if status := checkEmitBody(body, int(t.lim.MaxMessageBytes)); status != 0 {
		return status
	}
	e := realtime.Emit{Session: sid, Token: bearerToken(c), Body: body}
	if node == t.sessions.node {
		return t.sessions.Deliver(e, int(t.lim.MaxMessageBytes))
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), t.routeTimeout)
	defer cancel()
	status, err := t.hub.RouteEmit(ctx, node, e)
	if err != nil {
		return http.StatusServiceUnavailable
	}
	return status
}

// bearerToken is the emit's token: Authorization: Bearer <token>, or
// ?token=; "" for none.
func bearerToken(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
		return h // not a bearer token: it cannot match any user
	}
	return c.Query("token")
}

// emitPath is the route of POST /realtime/emit.
const emitPath = "/realtime/emit"

// isEmitPath reports whether the router takes a POST to path (as sent,
// without the query) for the emit: as Fiber routes by default (neither
// CaseSensitive nor StrictRouting), whatever the case of its letters and
// with any trailing slashes, so /realtime/emit/ is the emit too and gets
// its body limit and its 413.
func isEmitPath(path []byte) bool {
	return bytes.EqualFold(bytes.TrimRight(path, "/"), []byte(emitPath))
}

// isEmitRequest reports whether the router will take h's request for the
// emit: a POST whose target (origin or absolute form, parsed as the
// router's fasthttp.URI does) has the emit's path.
func isEmitRequest(h *fasthttp.RequestHeader) bool {
	if !h.IsPost() {
		return false
	}
	u := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(u)
	return u.Parse(h.Host(), h.RequestURI()) == nil && isEmitPath(u.PathOriginal())
}

// emitBodySlack is how many times WS_MAX_MESSAGE_BYTES the server reads
// of an emit's body: up to that an oversized emit is answered 413 once
// read; beyond it the server answers from the headers and closes the
// connection, so a client still sending may see the connection reset
// instead (as a socket's oversized frame closes it with 1009).
const emitBodySlack = 2

// EmitBodyLimit wraps a fasthttp.Server.HeaderReceived hook: an emit may
// carry as much as one socket message (WS_MAX_MESSAGE_BYTES), however
// small the API's limit without its key; every other request is next's.
// Only a POST's target is parsed, so an upgrade costs nothing more. The
// hook keeps no state: fasthttp may call it from any goroutine at once.
func EmitBodyLimit(maxMessage int64, next func(*fasthttp.RequestHeader) fasthttp.RequestConfig) func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if isEmitRequest(h) {
			return fasthttp.RequestConfig{MaxRequestBodySize: emitBodySlack * int(maxMessage)}
		}
		return next(h)
	}
}

// EmitErrors wraps the app's error handler: an emit whose body the server
// refused from its headers (over EmitBodyLimit) gets the answer the
// emit's route would have given had it read the body: 403 for a foreign
// Origin, else the emit's own 413 with the CORS headers an allowed origin
// needs to read it (the route's middlewares never ran: without them a
// page of another allowed origin would see an opaque network error).
// Safe for concurrent use, as next must be.
func (t *SSE) EmitErrors(next fiber.ErrorHandler) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		if !errors.Is(err, fiber.ErrRequestEntityTooLarge) || c.Method() != fiber.MethodPost || !isEmitPath([]byte(c.Path())) {
			return next(c, err)
		}
		if !allowCrossOrigin(c, t.origins) {
			return t.refuseEmitOrigin(c)
		}
		return t.answerEmit(c, http.StatusRequestEntityTooLarge)
	}
}
