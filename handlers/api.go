package handlers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// API serves the server-side push API over the hub. Its fields are set
// once; the handlers run concurrently.
type API struct {
	Hub *realtime.Hub
	// TokenSecret signs tokens for POST /api/token; empty turns it off.
	TokenSecret []byte
	TokenTTL    time.Duration
}

type publishRequest struct {
	Channel        string          `json:"channel"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
	// Priority: flow-controlled channels never sample it out.
	Priority bool `json:"priority"`
}

type broadcastRequest struct {
	Channels       []string        `json:"channels"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

type tokenRequest struct {
	User string `json:"user"`
	Name string `json:"name"`
	TTL  string `json:"ttl"`
}

// Publish: POST /api/publish {"channel","data","idempotency_key","priority"} →
// {"offset","epoch"}, plus "replayed":true (and the header
// Idempotent-Replayed) when the key was used already.
func (a API) Publish(c *fiber.Ctx) error {
	var req publishRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Channel == "" {
		return fiber.NewError(fiber.StatusBadRequest, "channel is required")
	}
	key, err := idempotencyKey(c, req.IdempotencyKey)
	if err != nil {
		return err
	}
	res, err := a.Hub.PublishWith(c.UserContext(), req.Channel, req.Data, nil,
		realtime.PublishDetails{Key: key, Priority: req.Priority})
	if err != nil {
		return apiError(err)
	}
	if res.Replayed {
		c.Set(headerIdempotentReplayed, "true")
	}
	return c.JSON(res)
}

// Broadcast: POST /api/broadcast {"channels":[...],"data","idempotency_key"}
// → {"positions":[...]}; a position the key had published already has
// "replayed":true.
func (a API) Broadcast(c *fiber.Ctx) error {
	var req broadcastRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(c, req.IdempotencyKey)
	if err != nil {
		return err
	}
	positions, err := a.Hub.BroadcastOnce(c.UserContext(), req.Channels, req.Data, nil, key)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(fiber.Map{"positions": positions})
}

// Channels: GET /api/channels → the channels with subscribers here.
func (a API) Channels(c *fiber.Ctx) error {
	list := a.Hub.Channels()
	if list == nil {
		list = []realtime.ChannelInfo{}
	}
	return c.JSON(fiber.Map{"channels": list})
}

// Presence: GET /api/presence/:channel.
func (a API) Presence(c *fiber.Ctx) error {
	channel, err := channelParam(c)
	if err != nil {
		return err
	}
	res, err := a.Hub.Presence(c.UserContext(), channel)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(res)
}

// History: GET /api/history/:channel?limit=N&since=OFFSET&epoch=E.
func (a API) History(c *fiber.Ctx) error {
	channel, err := channelParam(c)
	if err != nil {
		return err
	}
	limit := 0
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return fiber.NewError(fiber.StatusBadRequest, "limit must be a whole number >= 0")
		}
	}
	var since *realtime.StreamPosition
	if v := c.Query("since"); v != "" {
		offset, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "since must be an offset (a whole number)")
		}
		since = &realtime.StreamPosition{Offset: offset, Epoch: c.Query("epoch")}
	}
	res, err := a.Hub.History(c.UserContext(), channel, since, limit)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(res)
}

// Token: POST /api/token {"user","name","ttl"} → {"token","user","expires_at"}.
func (a API) Token(c *fiber.Ctx) error {
	if len(a.TokenSecret) == 0 {
		return fiber.NewError(fiber.StatusServiceUnavailable, "tokens are off: set TOKEN_SECRET to enable them")
	}
	var req tokenRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	ttl := a.TokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Minute || d > a.TokenTTL {
			return fiber.NewError(fiber.StatusBadRequest, "ttl must be a duration from 1m to "+a.TokenTTL.String())
		}
		ttl = d
	}
	token, err := realtime.MintToken(a.TokenSecret, req.User, req.Name, ttl)
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	return c.JSON(fiber.Map{"token": token, "user": req.User, "expires_at": time.Now().Add(ttl).Unix()})
}

// decodeBody reads one JSON object, refusing unknown fields, trailing
// data and bodies over MaxAPIBodyBytes.
func decodeBody(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(body) > MaxAPIBodyBytes {
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, "body is over "+strconv.Itoa(MaxAPIBodyBytes)+" bytes")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body must be a JSON object: "+err.Error())
	}
	// Anything but the end of the body after the object, even a stray
	// "]" (which dec.More would not notice), is refused.
	if _, err := dec.Token(); err != io.EOF {
		return fiber.NewError(fiber.StatusBadRequest, "body has data after the JSON object")
	}
	return nil
}

// Idempotency keys: the request header, or the body's field.
const (
	headerIdempotencyKey     = "Idempotency-Key"
	headerIdempotentReplayed = "Idempotent-Replayed"
	maxIdempotencyKeyBytes   = 128
)

// idempotencyKey is the request's key from the Idempotency-Key header or
// the idempotency_key field (both may be given if they agree), "" when
// neither is: 1 to 128 visible ASCII characters.
func idempotencyKey(c *fiber.Ctx, field string) (string, error) {
	// Cloned: Fiber's header strings alias the request buffer, and the
	// memory broker keeps the key past the request.
	header := strings.Clone(c.Get(headerIdempotencyKey))
	if header != "" && field != "" && header != field {
		return "", fiber.NewError(fiber.StatusBadRequest, "the Idempotency-Key header and the idempotency_key field differ")
	}
	key := cmp.Or(header, field)
	if len(key) > maxIdempotencyKeyBytes {
		return "", fiber.NewError(fiber.StatusBadRequest, "idempotency key is longer than "+strconv.Itoa(maxIdempotencyKeyBytes)+" bytes")
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return "", fiber.NewError(fiber.StatusBadRequest, "idempotency key may only contain visible ASCII characters")
		}
	}
	return key, nil
}

func channelParam(c *fiber.Ctx) (string, error) {
	channel, err := url.PathUnescape(c.Params("channel"))
	if err != nil || channel == "" {
		return "", fiber.NewError(fiber.StatusBadRequest, "channel is missing or badly escaped")
	}
	return channel, nil
}

// apiStatus maps the protocol's error codes onto HTTP statuses.
var apiStatus = map[protocol.Code]int{
	protocol.CodeBadRequest:    fiber.StatusBadRequest,
	protocol.CodeBadChannel:    fiber.StatusBadRequest,
	protocol.CodeForbidden:     fiber.StatusForbidden,
	protocol.CodeLimitExceeded: fiber.StatusRequestEntityTooLarge,
	protocol.CodeRateLimited:   fiber.StatusTooManyRequests,
	protocol.CodeUnavailable:   fiber.StatusServiceUnavailable,
	// Not stored (503) and perhaps stored (504) call for different
	// retries, so they are told apart.
	protocol.CodeOutcomeUnknown: fiber.StatusGatewayTimeout,
	protocol.CodeNotFound:       fiber.StatusNotFound,
	protocol.CodeUnauthorized:   fiber.StatusUnauthorized,
}

// apiError turns a hub error into a JSON answer with the protocol's code.
func apiError(err error) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return err // a bare 500; the error handler logs it
	}
	status, ok := apiStatus[pe.Code]
	if !ok {
		status = fiber.StatusInternalServerError
	}
	return &CodedError{Status: status, Code: string(pe.Code), Message: pe.Message}
}

// CodedError is a failed request with one of the protocol's stable error
// codes; the app answers it as {"error": Message, "code": Code}.
type CodedError struct {
	Status  int
	Code    string
	Message string
}

func (e *CodedError) Error() string { return e.Code + ": " + e.Message }
