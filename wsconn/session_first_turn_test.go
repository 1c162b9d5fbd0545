package wsconn

import (
	"strings"
	"sync/atomic"
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

// A read that takes less than a full buffer hands the socket back to the
// poller at once, even in the middle of a frame: what the client sends
// next, the rest of the frame or a frame right behind the first, is read
// by the poller's turn and answered.
func TestInputAfterAShortReadIsReadByThePoller(t *testing.T) {
	reg := newTestRegistry(t, 10)
	var opened atomic.Pointer[Session]
	url := openWith(t, reg, testLimits, func(s *Session) Handler {
		opened.Store(s)
		return funcHandler{s, func(s *Session, kind MessageType, data []byte) { _ = s.Reply(kind, data) }}
	})
	c := dial(t, url)
	frame := wstest.ClientFrame(true, false, byte(TextMessage), []byte("sent in two halves"))
	half := len(frame) / 2
	if _, err := c.NetConn().Write(frame[:half]); err != nil {
		t.Fatal(err)
	}
	// The first half read and the socket handed back: the rest is the
	// poller's to read, in a turn of its own.
	waitUntil(t, "the first half read and the turn over", func() bool {
		s := opened.Load()
		return s != nil && s.lastSeen.Load() != 0 && s.rstate.Load() == turnIdle
	})
	turns := reg.turnsStarted.Load()
	if _, err := c.NetConn().Write(frame[half:]); err != nil {
		t.Fatal(err)
	}
	expectReply(t, c, "sent in two halves")
	if reg.Polling() && reg.turnsStarted.Load() == turns {
		t.Fatal("the second half was answered without a read turn of the poller's")
	}

	for _, msg := range []string{"one", "right behind it"} {
		if _, err := c.NetConn().Write(wstest.ClientFrame(true, false, byte(TextMessage), []byte(msg))); err != nil {
			t.Fatal(err)
		}
	}
	expectReply(t, c, "one")
	expectReply(t, c, "right behind it")
}
