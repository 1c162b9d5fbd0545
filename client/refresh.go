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
// part 2).
const OpRefresh = protocol.OpRefresh

// Refresh windows: the client refreshes at a random point of the last
// refreshWindow fraction of a token's life, at least minRefreshLead before
// its expiry, so that many clients given tokens together do not refresh
// together.
const (
	refreshWindow  = 0.2
	minRefreshLead = 5 * time.Second
	// minRefreshGap keeps a client whose tokens are short-lived from
	// refreshing in a loop: it waits at least this long (or half of what
	// is left, if less) between refreshes.
	minRefreshGap = time.Second
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
	_, _, err = c.refreshOn(ctx, conn)
	return err
}

// refreshOn sends refresh with a new token from TokenFunc; expiresIn is
// the server's answer: how long until it closes the connection unless
// refreshed again (the token's exp plus its leeway).
func (c *Client) refreshOn(ctx context.Context, conn *Conn) (token string, expiresIn time.Duration, err error) {
	tok, err := c.opts.TokenFunc(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("duplex: refresh: token: %w", err)
	}
	var res protocol.RefreshResult
	if err := conn.CallInto(ctx, protocol.Command{Op: OpRefresh, Token: tok}, &res); err != nil {
		return "", 0, err
	}
	return tok, time.Duration(res.ExpiresIn) * time.Second, nil
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

// refreshDelay is how long to wait before refreshing a token whose
// connection closes at exp, issued about now.
func refreshDelay(now, exp time.Time) time.Duration {
	life := exp.Sub(now)
	if life <= minRefreshLead {
		return min(minRefreshGap, max(life/2, 0))
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

func newRefreshTimer(enabled bool, token string, expiresIn time.Duration) *refreshTimer {
	r := &refreshTimer{enabled: enabled}
	r.reset(token, expiresIn)
	return r
}

// reset arms the timer for token: against the server's expires_in when it
// gave one (the close time, the token's exp plus the server's leeway),
// else against the token's own exp.
func (r *refreshTimer) reset(token string, expiresIn time.Duration) {
	r.stop()
	if !r.enabled {
		return
	}
	now := time.Now()
	if expiresIn > 0 {
		r.timer = time.NewTimer(refreshDelay(now, now.Add(expiresIn)))
	} else if exp, ok := tokenExpiry(token); ok {
		r.timer = time.NewTimer(refreshDelay(now, exp))
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
