package app

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// expiryBound is how late past its due time the server may close a
// connection whose token expired: the documented bound is the runtime's
// timer latency, well under this on a test machine under -race.
const expiryBound = time.Second

// testToken mints a token of user valid for ttl (negative: expired that
// long ago, which the server still accepts within realtime.TokenLeeway)
// and returns it with its exp as the server reads it.
func testToken(t *testing.T, user string, ttl time.Duration) (string, time.Time) {
	t.Helper()
	tok, err := realtime.MintToken([]byte(testTokenSecret), user, "", ttl)
	if err != nil {
		t.Fatal(err)
	}
	id, err := realtime.VerifyToken([]byte(testTokenSecret), tok)
	if err != nil {
		t.Fatalf("a token expiring in %v does not verify: %v", ttl, err)
	}
	return tok, id.Expires
}

// closeFrame waits for the server's close and returns its code and reason.
func closeFrame(t *testing.T, c *rtClient, timeout time.Duration) (int, string) {
	t.Helper()
	var ce *client.CloseError
	if c.WaitClose(timeout) < 0 || !errors.As(c.ReadErr(), &ce) {
		t.Fatalf("%s: ended without a close frame: %v", c.Name(), c.ReadErr())
	}
	return ce.Code, ce.Text
}

// wantExpiryClose waits for the 4001 close of a connection whose token
// expires at exp and checks it came on time: not before exp plus the
// leeway, and within expiryBound after.
func wantExpiryClose(t *testing.T, c *rtClient, exp time.Time) {
	t.Helper()
	due := exp.Add(realtime.TokenLeeway)
	code, reason := closeFrame(t, c, time.Until(due)+5*time.Second)
	closedAt := time.Now()
	if code != protocol.CloseTokenExpired || reason != "token expired" {
		t.Fatalf("%s: closed with %d %q, want %d \"token expired\"", c.Name(), code, reason, protocol.CloseTokenExpired)
	}
	// The client reads the close a little after the server sent it, so
	// only the upper bound gets slack.
	if closedAt.Before(due) || closedAt.After(due.Add(expiryBound)) {
		t.Fatalf("%s: closed at %v, want within %v after %v", c.Name(), closedAt.Format(time.StampMilli), expiryBound, due.Format(time.StampMilli))
	}
}

func TestTokenExpiryClosesWith4001(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	// Expired 4 s ago: still accepted (5 s leeway), closed within a second.
	tok, exp := testToken(t, "42", -4*time.Second)

	viaQuery := dialRT(t, s, "token="+url.QueryEscape(tok))
	viaConnect := dialRT(t, s, "")
	var cr protocol.ConnectResult
	viaConnect.OK(protocol.Command{Op: protocol.OpConnect, Token: tok}, &cr)
	if cr.User != "42" || cr.ExpiresIn != 1 {
		t.Fatalf("connect result %+v, want user 42 and expires_in 1", cr)
	}
	// Renaming itself keeps the token's expiry.
	renamed := dialRT(t, s, "token="+url.QueryEscape(tok))
	renamed.OK(protocol.Command{Op: protocol.OpConnect, Name: "新名字"}, &cr)
	if cr.User != "42" || cr.Name != "新名字" || cr.ExpiresIn != 1 {
		t.Fatalf("connect with a name: %+v, want user 42 renamed, still expiring", cr)
	}
	guest := dialRT(t, s, "name=访客")

	for _, c := range []*rtClient{viaQuery, viaConnect, renamed} {
		wantExpiryClose(t, c, exp)
	}
	guest.Ping() // guests have no token to expire
}

func TestRefreshReplacesTheToken(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	old, oldExp := testToken(t, "42", -4*time.Second)
	fresh, _ := testToken(t, "42", time.Hour)
	other, _ := testToken(t, "43", time.Hour)

	c := dialRT(t, s, "token="+url.QueryEscape(old))
	sentinel := dialRT(t, s, "token="+url.QueryEscape(old)) // not refreshed
	var rr protocol.RefreshResult
	c.OK(protocol.Command{Op: protocol.OpRefresh, Token: fresh}, &rr)
	if rr.ExpiresIn < 3600 || rr.ExpiresIn > 3605 {
		t.Fatalf("refresh result %+v, want expires_in about an hour", rr)
	}
	// Refused refreshes leave the new token in force.
	c.Fails(protocol.Command{Op: protocol.OpRefresh, Token: other}, protocol.CodeForbidden)
	c.Fails(protocol.Command{Op: protocol.OpRefresh, Token: "not.a.token"}, protocol.CodeUnauthorized)
	m := c.Call(protocol.Command{Op: protocol.OpRefresh})
	c.WantErr(m, protocol.CodeBadRequest, "refresh without a token")

	// Once the old token's close has come (to the sentinel, whose timer
	// is due at the same moment), the refreshed connection is still there.
	wantExpiryClose(t, sentinel, oldExp)
	c.Ping()
	var cr protocol.ConnectResult
	c.OK(protocol.Command{Op: protocol.OpConnect}, &cr)
	if cr.User != "42" || cr.ExpiresIn < 3590 {
		t.Fatalf("after refresh, connect says %+v", cr)
	}

	// A guest has nothing to refresh.
	g := dialRT(t, s, "")
	g.Fails(protocol.Command{Op: protocol.OpRefresh, Token: fresh}, protocol.CodeBadRequest)
}

func TestRefusedRefreshKeepsTheOldExpiry(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	old, exp := testToken(t, "42", -4*time.Second)
	other, _ := testToken(t, "43", time.Hour)
	c := dialRT(t, s, "token="+url.QueryEscape(old))
	c.Fails(protocol.Command{Op: protocol.OpRefresh, Token: other}, protocol.CodeForbidden)
	wantExpiryClose(t, c, exp)
}
