package wsconn

import (
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/wstest"
)

// The first read turn runs on the upgrade's goroutine and waits up to
// firstInputWait for the client's first message; then the poller reads
// the socket. A client that speaks at once, one that speaks only after
// that wait, and one that sends its first frame with the handshake are
// all answered, and so is each of them again afterwards.
func TestFirstMessageEarlyLateOrWithTheHandshake(t *testing.T) {
	reg := newTestRegistry(t, 10)
	url := serve(t, reg, testLimits, func(s *Session, kind MessageType, data []byte) { _ = s.Reply(kind, data) })
	early := dial(t, url)
	expectEcho(t, early, "at once")
	late := dial(t, url)
	// Past the first turn's wait, the socket is the poller's.
	time.Sleep(firstInputWait + 50*time.Millisecond)
	expectEcho(t, late, "after the first wait")
	expectEcho(t, early, "again")
	expectEcho(t, late, "again")

	eager := wstest.UpgradeSendingFrame(t, strings.TrimPrefix(url, "ws://"), "/",
		wstest.ClientFrame(true, false, byte(TextMessage), []byte("with the handshake")), 3*time.Second)
	if got := wstest.ReadShortTextFrame(t, eager); got != "with the handshake" {
		t.Fatalf("the frame sent with the handshake was answered %q", got)
	}
}
