package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// MaxAPIBodyBytes caps the body of one API request; it is also the
// server's body limit, since no other route takes a body.
const MaxAPIBodyBytes = 64 << 10

// UnauthenticatedBodyBytes is the most body a request without the API key
// may make the server read: the size of the read buffer a connection has
// anyway, so a client without the key costs no more than one with an
// empty body.
const UnauthenticatedBodyBytes = 4 << 10

// APIKey checks the HTTP API's bearer key. It is read-only after
// NewAPIKey, so all its methods are safe for concurrent use.
type APIKey struct {
	on   bool
	want [sha256.Size]byte
}

// NewAPIKey checks for key; an empty key turns the API off.
func NewAPIKey(key string) *APIKey {
	return &APIKey{on: key != "", want: sha256.Sum256([]byte(key))}
}

// Middleware lets a request through only with "Authorization: Bearer
// <key>". The comparison is of SHA-256 digests in constant time, so
// neither the key's bytes nor its length leak through timing. With no key
// configured the API is off and says how to turn it on.
func (k *APIKey) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		return k.admit(c, c.Next)
	}
}

// admit calls next when c carries the key, and otherwise returns the error
// the client gets (setting WWW-Authenticate for a wrong key).
func (k *APIKey) admit(c *fiber.Ctx, next func() error) error {
	if !k.on {
		return fiber.NewError(fiber.StatusServiceUnavailable, "the HTTP API is off: set API_KEY to enable it")
	}
	if !k.matches(c.Request().Header.Peek(fiber.HeaderAuthorization)) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="duplex"`)
		return fiber.NewError(fiber.StatusUnauthorized, "missing or wrong API key (Authorization: Bearer $API_KEY)")
	}
	return next()
}

func (k *APIKey) matches(authorization []byte) bool {
	token, ok := strings.CutPrefix(string(authorization), "Bearer ")
	got := sha256.Sum256([]byte(token))
	return ok && k.on && subtle.ConstantTimeCompare(got[:], k.want[:]) == 1
}

// HeaderReceived is for fasthttp.Server.HeaderReceived, which runs after
// a request's headers and before its body is read. A request that does
// not carry the key may have at most UnauthenticatedBodyBytes of body;
// over that fasthttp refuses it from its headers and closes the
// connection, so a client without the key cannot make the server buffer
// bodies it will refuse anyway. Requests with the key, or with no body,
// keep the server's limit (MaxAPIBodyBytes).
func (k *APIKey) HeaderReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == 0 || k.matches(h.Peek(fiber.HeaderAuthorization)) {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: UnauthenticatedBodyBytes}
}

// ErrorHandler wraps the app's error handler: when HeaderReceived's limit
// refused the body of an API request without the key, the client is told
// about the key (401, or 503 with the API off), as it would have been had
// the body been read; a body over MaxAPIBodyBytes stays 413, key or not.
func (k *APIKey) ErrorHandler(next fiber.ErrorHandler) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		if errors.Is(err, fiber.ErrRequestEntityTooLarge) && strings.HasPrefix(strings.ToLower(c.Path()), "/api/") &&
			c.Request().Header.ContentLength() <= MaxAPIBodyBytes {
			if authErr := k.admit(c, func() error { return nil }); authErr != nil {
				err = authErr
			}
		}
		return next(c, err)
	}
}
