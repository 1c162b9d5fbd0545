package realtime

import (
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// ConnCloser is implemented by a Subscriber whose connection the server
// may close on its own initiative: when the connection's token expires,
// or when the API disconnects it. CloseConn sends a close frame with code
// and reason after what is queued (the transport then ends the
// connection, and calls Client.Close). It must not block and must be safe
// from any goroutine; calls after the first do nothing.
type ConnCloser interface {
	CloseConn(code int, reason string)
}

// clientAuth is the token state of a connection signed in with a token
// that expires. Guests and identities without expiry have none, so they
// pay nothing for it but a nil pointer. Guarded by Client.mu.
type clientAuth struct {
	expires time.Time   // the token's exp; the close comes TokenLeeway later
	timer   *time.Timer // runs Client.expire
}

// closeAt is when the connection is closed unless refreshed.
func (a *clientAuth) closeAt() time.Time { return a.expires.Add(TokenLeeway) }

// setTokenExpiry arms, moves or stops the expiry close for a token that
// expires at expires (zero: never). One time.AfterFunc per signed-in
// connection, made with its first token: a runtime timer costs no
// goroutine until it fires, so an idle connection stays without one.
// The close comes within the runtime's timer latency (well under 10 ms
// on an idle server) after closeAt. Called with c.mu held.
func (c *Client) setTokenExpiry(expires time.Time) {
	switch {
	case expires.IsZero():
		if c.auth != nil {
			c.auth.timer.Stop()
			c.auth = nil
		}
	case c.auth == nil:
		c.auth = &clientAuth{expires: expires}
		c.auth.timer = time.AfterFunc(time.Until(c.auth.closeAt()), c.expire)
	default:
		c.auth.expires = expires
		c.auth.timer.Reset(time.Until(c.auth.closeAt()))
	}
}

// tokenExpires is the current token's exp, zero without one. Called with
// c.mu held.
func (c *Client) tokenExpires() time.Time {
	if c.auth == nil {
		return time.Time{}
	}
	return c.auth.expires
}

// expire runs on the expiry timer's goroutine. A refresh that moved the
// expiry while the timer was firing wins: the deadline is checked again
// under the lock.
func (c *Client) expire() {
	c.mu.Lock()
	due := !c.closed && c.auth != nil && !time.Now().Before(c.auth.closeAt())
	c.mu.Unlock()
	if due {
		c.closeConn(protocol.CloseTokenExpired, "token expired")
	}
}

// closeConn asks the transport to close the connection with code and
// reason. Without a ConnCloser (a test's Subscriber) the client just
// closes. It must be called without c.mu: Close takes it.
func (c *Client) closeConn(code int, reason string) {
	if cc, ok := c.sub.(ConnCloser); ok {
		cc.CloseConn(code, reason)
		return
	}
	c.Close()
}

// stopExpiry stops the expiry timer of a closing client. Called with c.mu
// held.
func (c *Client) stopExpiry() {
	if c.auth != nil {
		c.auth.timer.Stop()
	}
}

// expiresIn is the seconds left until the expiry close, at least 1, as
// connect and refresh tell the client; 0 without an expiring token.
// Called with c.mu held.
func (c *Client) expiresIn() int64 {
	if c.auth == nil {
		return 0
	}
	return max(1, int64(time.Until(c.auth.closeAt())/time.Second))
}

// refresh replaces the connection's token: the same checks as connect's
// token, and the same user, or it is refused and the old token stays in
// force. The display name and everything else stay as they are; only the
// expiry moves.
func (c *Client) refresh(cmd protocol.Command) (any, error) {
	if c.info.User == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "refresh needs a connection signed in with a token (use connect)")
	}
	if c.hub.verify == nil {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "tokens are not accepted: the server has no TOKEN_SECRET")
	}
	id, err := c.hub.verify(cmd.Token)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "invalid token: %v", err)
	}
	if id.User != c.info.User {
		return nil, protocol.Errorf(protocol.CodeForbidden, "the token is for another user")
	}
	c.setTokenExpiry(id.Expires)
	return protocol.RefreshResult{ExpiresIn: c.expiresIn()}, nil
}
