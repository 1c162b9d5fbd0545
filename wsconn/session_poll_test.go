package wsconn

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// rawClient writes frames as bytes on the wire, in the writes a test
// chooses, and reports what it reads, in order: "pong P", "text T" and
// "close CODE". Its reader goroutine ends when the connection does (dial
// closes it at the test's end).
type rawClient struct {
	c      *websocket.Conn
	events chan string
}

func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	r := &rawClient{c: dial(t, url), events: make(chan string, 64)}
	r.c.SetPongHandler(func(p string) error { r.events <- "pong " + p; return nil })
	go func() {
		for {
			_, data, err := r.c.ReadMessage()
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				r.events <- fmt.Sprintf("close %d", ce.Code)
				return
			case err != nil:
				return
			}
			r.events <- "text " + string(data)
		}
	}()
	return r
}

// write sends frames joined in one write, so the server reads them
// together.
func (r *rawClient) write(t *testing.T, frames ...[]byte) {
	t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	if _, err := r.c.NetConn().Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expect reads the next events and checks them.
func (r *rawClient) expect(t *testing.T, want ...string) {
	t.Helper()
	for i, w := range want {
		select {
		case got := <-r.events:
			if got != w {
				t.Fatalf("event %d: got %q, want %q", i, got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d: nothing, want %q", i, w)
		}
	}
}

// idleSession serves an echo on a new registry, connects a raw client
// and waits until the session is idle (no read turn), so that the next
// input is what the poller sees first.
func idleSession(t *testing.T) (*Registry, *Session, *rawClient) {
	t.Helper()
	reg := newTestRegistry(t, 10)
	var got atomic.Pointer[Session]
	url := serve(t, reg, testLimits, func(s *Session, kind MessageType, data []byte) {
		got.Store(s)
		_ = s.Reply(kind, data)
	})
	c := dialRaw(t, url)
	c.write(t, clientFrame(true, opText, []byte("hello")))
	c.expect(t, "text hello")
	s := got.Load()
	waitUntil(t, "the session idle", func() bool { return !reg.Polling() || s.rstate.Load() == turnIdle })
	return reg, s, c
}

// noTurnSince fails if a read turn started since before, on a polling
// registry: input that is only pings and pongs is the poller's own work.
func noTurnSince(t *testing.T, reg *Registry, before uint64) {
	t.Helper()
	if n := reg.turnsStarted.Load() - before; reg.Polling() && n != 0 {
		t.Fatalf("%d read turns started for pings and pongs, want none", n)
	}
}

// A heartbeat's pong proves the client alive without a read turn.
func TestPongIsHandledWithoutAReadTurn(t *testing.T) {
	reg, s, c := idleSession(t)
	turns, seen := reg.turnsStarted.Load(), s.lastSeen.Load()
	c.write(t, clientFrame(true, opPong, nil), clientFrame(true, opPong, []byte("x")))
	waitUntil(t, "the pong noted", func() bool { return s.lastSeen.Load() != seen })
	noTurnSince(t, reg, turns)
	// Still served: a message after the pongs gets its echo.
	c.write(t, clientFrame(true, opText, []byte("after")))
	c.expect(t, "text after")
}

// A client's ping is answered with its payload, without a read turn.
func TestPingIsAnsweredWithoutAReadTurn(t *testing.T) {
	reg, _, c := idleSession(t)
	turns := reg.turnsStarted.Load()
	c.write(t, clientFrame(true, opPing, []byte("abc")))
	c.expect(t, "pong abc")
	c.write(t, clientFrame(true, opPong, nil), clientFrame(true, opPing, []byte("def")))
	c.expect(t, "pong def")
	noTurnSince(t, reg, turns)
}

// A ping cut across two reads is answered whole; the turn that takes the
// first piece reads the rest.
func TestPingSplitAcrossReadsIsAnswered(t *testing.T) {
	reg, _, c := idleSession(t)
	turns := reg.turnsStarted.Load()
	ping := clientFrame(true, opPing, []byte("split"))
	c.write(t, ping[:3])
	if reg.Polling() {
		// The poller read the piece and handed it to a read turn.
		waitUntil(t, "a read turn for the piece", func() bool { return reg.turnsStarted.Load() != turns })
	}
	c.write(t, ping[3:])
	c.expect(t, "pong split")
}

// A data frame read together with control frames is handled in stream
// order, whichever comes first: the echoes come in order, and the last
// ping is answered (a pong may overtake queued data, and answer only the
// latest ping: RFC 6455 section 5.5.3).
func TestDataFrameWithPingsInOneReadKeepsOrder(t *testing.T) {
	_, _, c := idleSession(t)
	c.write(t, clientFrame(true, opPong, nil), clientFrame(true, opPing, []byte("1")),
		clientFrame(true, opText, []byte("two")), clientFrame(true, opText, []byte("three")),
		clientFrame(true, opPing, []byte("4")))
	c.expectTexts(t, "pong 4", "text two", "text three")
	c.write(t, clientFrame(true, opText, []byte("five")), clientFrame(true, opPing, []byte("6")),
		clientFrame(true, opText, []byte("seven")))
	c.expectTexts(t, "pong 6", "text five", "text seven")
}

// expectTexts reads until the texts have come in this order and the pong
// lastPong too; other pongs (of earlier pings) are skipped.
func (r *rawClient) expectTexts(t *testing.T, lastPong string, texts ...string) {
	t.Helper()
	ponged := false
	for !ponged || len(texts) > 0 {
		select {
		case got := <-r.events:
			switch {
			case got == lastPong:
				ponged = true
			case strings.HasPrefix(got, "pong "):
			case len(texts) == 0 || got != texts[0]:
				t.Fatalf("got %q, want %q next", got, texts)
			default:
				texts = texts[1:]
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing more; still want %q and %q", texts, lastPong)
		}
	}
}

// A close frame, alone or behind a pong, is answered and ends the
// session.
func TestCloseFrameOnAnIdleSessionEndsIt(t *testing.T) {
	for _, withPong := range []bool{false, true} {
		t.Run(fmt.Sprintf("pong first %v", withPong), func(t *testing.T) {
			reg, _, c := idleSession(t)
			var frames [][]byte
			if withPong {
				frames = append(frames, clientFrame(true, opPong, nil))
			}
			c.write(t, append(frames, clientFrame(true, opClose, []byte{0x03, 0xe8}))...)
			c.expect(t, "close 1000")
			waitUntil(t, "the session gone", func() bool { return reg.Len() == 0 })
		})
	}
}

// A bad control frame from an idle client fails the connection with the
// right code, as it does in a read turn.
func TestBadControlFrameOnAnIdleSessionFailsIt(t *testing.T) {
	reg, _, c := idleSession(t)
	long := clientFrame(true, opPing, make([]byte, 126)) // over 125 bytes
	c.write(t, clientFrame(true, opPong, nil), long)
	c.expect(t, "close 1002")
	waitUntil(t, "the session gone", func() bool { return reg.Len() == 0 })
}

// A flood of pings, more than the poller handles itself, goes to a read
// turn (on the client's own goroutine, not the one poller goroutine every
// idle session shares). The pings are answered in order; pongs may be
// coalesced (RFC 6455 5.5.3: a pong for the latest ping is enough), so
// the last ping's pong must come, after any earlier ones.
func TestPingFloodGoesToAReadTurn(t *testing.T) {
	reg, _, c := idleSession(t)
	turns := reg.turnsStarted.Load()
	const pings = 40 // 40 × 9 bytes: past pollInlineMaxBytes in one write
	var frames [][]byte
	for i := range pings {
		frames = append(frames, clientFrame(true, opPing, []byte(fmt.Sprintf("%03d", i))))
	}
	c.write(t, frames...)
	last := -1
	for last != pings-1 {
		select {
		case got := <-c.events:
			var n int
			if _, err := fmt.Sscanf(got, "pong %d", &n); err != nil || n <= last {
				t.Fatalf("got %q after pong %03d, want a later pong", got, last)
			}
			last = n
		case <-time.After(5 * time.Second):
			t.Fatalf("no pong after pong %03d, want up to %03d", last, pings-1)
		}
	}
	if reg.Polling() && reg.turnsStarted.Load() == turns {
		t.Fatalf("%d pings in one read were answered on the poller, want a read turn", pings)
	}
	c.write(t, clientFrame(true, opText, []byte("after")))
	c.expect(t, "text after")
}
