package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestTokenFuncRefreshesBeforeExpiry: a token valid for 2 s would have the
// server close the connection with 4001 at its exp plus the 5 s leeway.
// The client asks TokenFunc for a new one before then and sends refresh,
// so the same connection is still open after that moment. Refresh with a
// token of another user is refused (forbidden) and changes nothing.
func TestTokenFuncRefreshesBeforeExpiry(t *testing.T) {
	s := testserver.Start(t, nil)
	ctx := testCtx(t)
	var calls atomic.Int32
	var otherUser atomic.Bool
	mint := func(context.Context) (string, error) {
		calls.Add(1)
		user := "7"
		if otherUser.Load() {
			user = "8"
		}
		return realtime.MintToken([]byte(testserver.TokenSecret), user, "", 2*time.Second)
	}
	states := newRecorder[client.StateChange]()
	c := connect(t, s.RealtimeURL(), client.Options{TokenFunc: mint, OnState: states.add})
	if info, _ := c.Info(); info.User != "7" {
		t.Fatalf("connected as %+v", info)
	}
	closesAt := time.Now().Add(2*time.Second + realtime.TokenLeeway)

	deadline := time.Now().Add(waitTimeout)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("TokenFunc was not asked again before the token's expiry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Past the moment the first token's connection would have closed.
	time.Sleep(time.Until(closesAt) + 500*time.Millisecond)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the first token's close time: %v", err)
	}
	for _, st := range states.all() {
		if st.State == client.Disconnected {
			t.Fatalf("the connection was lost (%v): the refresh did not take", st.Err)
		}
	}

	otherUser.Store(true)
	if err := c.Refresh(ctx); !client.HasCode(err, protocol.CodeForbidden) {
		t.Errorf("refresh with another user's token: %v, want forbidden", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after a refused refresh: %v", err)
	}
}
