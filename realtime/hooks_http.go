package realtime

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxHookResponseBytes bounds the body read from a hook's answer; a
// longer one is a failed call (unavailable), so a backend cannot make
// the server buffer without limit.
const MaxHookResponseBytes = 64 << 10

// Header names of a hook call.
const (
	// HookRequestIDHeader carries the call's request id, which the server
	// logs with the call's outcome.
	HookRequestIDHeader = "X-Request-Id"
	// HookSignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the
	// body under HTTPHooksConfig.Secret, when one is set.
	HookSignatureHeader = "X-Duplex-Signature"
)

// hookMaxIdleConns is how many idle connections to the backend are kept
// (per host): every client command of a hooked namespace makes a call, and
// the default of 2 would open and close connections under load.
const hookMaxIdleConns = 256

// HTTPHooksConfig configures HTTPHooks. An empty URL turns that hook off.
type HTTPHooksConfig struct {
	ConnectURL, SubscribeURL, PublishURL string
	// Timeout bounds one call, connection included (default
	// DefaultHookTimeout). The hub bounds it too (HubConfig.HookTimeout).
	Timeout time.Duration
	// Secret, when not empty, signs every body (HookSignatureHeader).
	Secret []byte
	// Transport defaults to a clone of http.DefaultTransport.
	Transport http.RoundTripper
}

// HTTPHooks calls the backend over HTTP: each hook is a POST of a JSON
// request to its URL, answered 200 with one JSON reply (docs/protocol.md,
// "Backend hooks"). A status other than 200, a redirect, a body over
// MaxHookResponseBytes or one that is not exactly one reply is an error.
//
// Concurrency: safe for concurrent use; it keeps no state but the HTTP
// client's connection pool.
type HTTPHooks struct {
	cfg    HTTPHooksConfig
	client *http.Client
}

// NewHTTPHooks makes the HTTP hooks of cfg.
func NewHTTPHooks(cfg HTTPHooksConfig) *HTTPHooks {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHookTimeout
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = hookMaxIdleConns, hookMaxIdleConns
		cfg.Transport = t
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	return &HTTPHooks{cfg: cfg, client: &http.Client{
		Transport: cfg.Transport,
		Timeout:   cfg.Timeout,
		// A hook answers where it was asked; following a redirect would
		// send the signed body, cookies included, somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Hooks returns the hooks whose URLs are set, for HubConfig.Hooks.
func (h *HTTPHooks) Hooks() Hooks {
	var out Hooks
	if h.cfg.ConnectURL != "" {
		out.Connect = httpConnectHook{h}
	}
	if h.cfg.SubscribeURL != "" {
		out.Subscribe = httpSubscribeHook{h}
	}
	if h.cfg.PublishURL != "" {
		out.Publish = httpPublishHook{h}
	}
	return out
}

type (
	httpConnectHook   struct{ h *HTTPHooks }
	httpSubscribeHook struct{ h *HTTPHooks }
	httpPublishHook   struct{ h *HTTPHooks }
)

func (k httpConnectHook) Connect(ctx context.Context, req ConnectRequest) (ConnectReply, error) {
	var res wireConnectResult
	v, err := k.h.call(ctx, k.h.cfg.ConnectURL, req.RequestID, wireConnectRequestOf(req), &res)
	if err != nil {
		return ConnectReply{}, fmt.Errorf("connect hook: %w", err)
	}
	return ConnectReply{HookVerdict: v, User: res.User, Name: res.Name, Info: res.Info}, nil
}

func (k httpSubscribeHook) Subscribe(ctx context.Context, req SubscribeRequest) (SubscribeReply, error) {
	var res wireSubscribeResult
	v, err := k.h.call(ctx, k.h.cfg.SubscribeURL, req.RequestID, wireSubscribeRequest{
		wireClient: wireClientOf(req.Client), Channel: req.Channel,
	}, &res)
	if err != nil {
		return SubscribeReply{}, fmt.Errorf("subscribe hook: %w", err)
	}
	return SubscribeReply{HookVerdict: v, Info: res.Info}, nil
}

func (k httpPublishHook) Publish(ctx context.Context, req PublishRequest) (PublishReply, error) {
	var res wirePublishResult
	v, err := k.h.call(ctx, k.h.cfg.PublishURL, req.RequestID, wirePublishRequest{
		wireClient: wireClientOf(req.Client), Channel: req.Channel, Data: req.Data,
	}, &res)
	if err != nil {
		return PublishReply{}, fmt.Errorf("publish hook: %w", err)
	}
	return PublishReply{HookVerdict: v, Data: res.Data}, nil
}

// call POSTs body to url and decodes the reply: its verdict, and its
// result into result when allowed.
func (h *HTTPHooks) call(ctx context.Context, url, requestID string, body, result any) (HookVerdict, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return HookVerdict{}, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return HookVerdict{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HookRequestIDHeader, requestID)
	if len(h.cfg.Secret) > 0 {
		req.Header.Set(HookSignatureHeader, SignHookBody(h.cfg.Secret, payload))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return HookVerdict{}, err
	}
	defer resp.Body.Close()
	// One byte more than allowed tells a body at the limit from a longer one.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxHookResponseBytes+1))
	if err != nil {
		return HookVerdict{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return HookVerdict{}, fmt.Errorf("answered HTTP %d", resp.StatusCode)
	}
	if len(raw) > MaxHookResponseBytes {
		return HookVerdict{}, fmt.Errorf("answer larger than %d bytes", MaxHookResponseBytes)
	}
	return decodeHookReply(raw, result)
}

// SignHookBody is the HookSignatureHeader value of body under secret:
// "sha256=" and the hex HMAC-SHA256. A backend computes the same over the
// bytes it received and compares in constant time (hmac.Equal). It is
// safe for concurrent use.
func SignHookBody(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// errHookGarbage is an answer that is not one hook reply.
var errHookGarbage = errors.New("answer is not one hook reply")
