package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
)

// TestDuplexJSSSEHeartbeatSilence: an SSE stream that falls silent (the
// server stopped with SIGSTOP: no event, no ": ping" comment) counts as
// dead after twice the ping interval the session event named, plus the
// slack; the client reconnects by itself once the server runs again.
func TestDuplexJSSSEHeartbeatSilence(t *testing.T) {
	s := testbin.Start(t, testbin.Options{
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text", "WS_PING_INTERVAL=1s"},
	})
	ctx := openDuplexJSPage(t, s)
	runJS(t, ctx, transportClient("quiet", `{name: '静', transports: ['sse'], backoffMin: 20, backoffMax: 200}`))
	runJS(t, ctx, `window.quietReasons = []; window.quiet.on('disconnected', e => window.quietReasons.push(e.reason)); true`)
	waitEvents(t, ctx, "quiet", 10*time.Second, "connecting:sse", "transport:sse/null", "connected")

	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = s.Signal(syscall.SIGCONT)
		}
	})
	// 2 × 1 s + 5 s of silence; the server's TCP stack stays up meanwhile.
	waitFor(t, ctx, "the silent stream to count as dead", 15*time.Second, `JSON.stringify(window.quietReasons)`,
		`() => window.quietReasons.length > 0`)
	if got := evalString(t, ctx, "window.quietReasons[0]"); got != "heartbeat timeout" {
		t.Errorf("the first disconnect's reason is %q, want heartbeat timeout", got)
	}
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	waitFor(t, ctx, "the reconnect after the server runs again", 25*time.Second, `JSON.stringify(window.quietEvents)`,
		`() => window.quietEvents.filter(e => e === 'connected').length === 2 && window.quiet.state === 'connected'`)
}
