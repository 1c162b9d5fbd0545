package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// OpRefresh is the command that replaces a live connection's token
// without reconnecting: {"id":N,"op":"refresh","token":"…"} (issue 12,
// part 2; the server may not know it yet, and then answers bad_request).
const OpRefresh protocol.Op = "refresh"

// Refresh windows: the client refreshes at a random point of the last
// refreshWindow fraction of a token's life, at least minRefreshLead before
// its expiry, so that many clients given tokens together do not refresh
// together.
const (
	refreshWindow  = 0.2
	minRefreshLead = 5 * time.Second
)

// ErrNoTokenFunc is Refresh's error when Options.TokenFunc is not set.
var ErrNoTokenFunc = errors.New("duplex: refresh needs Options.TokenFunc")

// Refresh asks TokenFunc for a new token and sends it with refresh on the
// current connection (waiting for one within ctx). The server's refusal
// is an *Error (unauthorized: an invalid token or another user). With
// TokenFunc set the client also refreshes by itself before the token's
// exp; Refresh is for when the application knows better (a role changed).
func (c *Client) Refresh(ctx context.Context) error {
	if c.opts.TokenFunc == nil {
		return ErrNoTokenFunc
	}
	conn, err := c.current(ctx)
	if err != nil {
		return fmt.Errorf("duplex: refresh: %w", err)
	}
	_, err = c.refreshOn(ctx, conn)
	return err
}

func (c *Client) refreshOn(ctx context.Context, conn *Conn) (string, error) {
	tok, err := c.opts.TokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("duplex: refresh: token: %w", err)
	}
	if _, err := conn.Call(ctx, protocol.Command{Op: OpRefresh, Token: tok}); err != nil {
		return "", err
	}
	return tok, nil
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the
// server does): the client only needs to know when to refresh.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	return time.Unix(*claims.Exp, 0), true
}

// refreshDelay is how long to wait before refreshing a token that expires
// at exp, issued about now.
func refreshDelay(now, exp time.Time) time.Duration {
	life := exp.Sub(now)
	if life <= minRefreshLead {
		return 0
	}
	window := time.Duration(float64(life) * refreshWindow)
	window = max(window, minRefreshLead)
	window = min(window, life)
	return life - window + rand.N(window-minRefreshLead+1)
}

// refreshTimer fires when the current token should be refreshed; it never
// fires without TokenFunc or for a token without exp.
type refreshTimer struct {
	enabled bool
	timer   *time.Timer
}

func newRefreshTimer(enabled bool, token string) *refreshTimer {
	r := &refreshTimer{enabled: enabled}
	r.reset(token)
	return r
}

func (r *refreshTimer) reset(token string) {
	r.stop()
	if !r.enabled {
		return
	}
	if exp, ok := tokenExpiry(token); ok {
		r.timer = time.NewTimer(refreshDelay(time.Now(), exp))
	}
}

func (r *refreshTimer) c() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

func (r *refreshTimer) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}
