package wsconn

import (
	"container/heap"
	"runtime"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// heartbeatLen is how many sessions wait in reg's heartbeats.
func heartbeatLen(reg *Registry) int {
	reg.beats.mu.Lock()
	defer reg.beats.mu.Unlock()
	return len(reg.beats.heap)
}

// Sessions with different ping intervals share one registry's timer:
// each is pinged at its own pace, and a session that ends leaves it, so
// the heap never holds (or keeps alive) a closed connection.
func TestHeartbeatsShareOneTimerAndForgetEndedSessions(t *testing.T) {
	reg := newTestRegistry(t, 10)
	fast, slow := testLimits, testLimits
	fast.PingInterval, slow.PingInterval = 20*time.Millisecond, 60*time.Millisecond
	echo := func(s *Session, kind MessageType, data []byte) {}
	urls := []string{serve(t, reg, fast, echo), serve(t, reg, slow, echo), serve(t, reg, fast, echo)}

	pinged := make([]chan time.Time, len(urls))
	conns := make([]*websocket.Conn, len(urls))
	for i, url := range urls {
		c := dial(t, url)
		ch := make(chan time.Time, 64)
		c.SetPingHandler(func(string) error {
			select {
			case ch <- time.Now():
			default:
			}
			return nil // no pong: any input counts, and the pong timeout is a minute
		})
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		pinged[i], conns[i] = ch, c
	}
	waitUntil(t, "three sessions on the heartbeat", func() bool { return heartbeatLen(reg) == 3 })

	// Three pings each; the slow session's come no faster than its interval.
	for i, ch := range pinged {
		var first, last time.Time
		for n := range 3 {
			select {
			case at := <-ch:
				if n == 0 {
					first = at
				}
				last = at
			case <-time.After(5 * time.Second):
				t.Fatalf("connection %d got %d pings, want 3", i, n)
			}
		}
		if i == 1 && last.Sub(first) < 2*slow.PingInterval*9/10 {
			t.Errorf("slow session pinged 3 times in %v, want at least 2 x %v", last.Sub(first), slow.PingInterval)
		}
	}

	for _, c := range conns {
		_ = c.Close()
	}
	waitUntil(t, "every session gone", func() bool { return reg.Len() == 0 })
	if n := heartbeatLen(reg); n != 0 {
		t.Fatalf("%d ended sessions still on the heartbeat", n)
	}
}

// A heartbeat allocates nothing, so that idle connections keep the heap
// flat: neither the beat (the due session taken off the heap, its ping
// written, its next beat scheduled and the timer re-armed) nor the
// client's pong (handled by the poller where there is one).
func TestHeartbeatAllocatesNothing(t *testing.T) {
	reg, s, c := idleSession(t)
	_ = c.c.SetReadDeadline(time.Unix(1, 0)) // the client stops reading: its reader goroutine ends
	h := &reg.beats
	beatNow := func() {
		h.mu.Lock()
		s.hbDue = 0 // due: fire beats it, as when the timer fires
		heap.Fix(&h.heap, int(s.hbSlot-1))
		h.mu.Unlock()
		h.fire()
	}
	beatNow() // warm up the frame buffer pool and the spare list
	if n := testing.AllocsPerRun(100, beatNow); n != 0 {
		t.Errorf("a beat allocates %.1f times, want 0", n)
	}
	if d := heartbeatLen(reg); d != 1 {
		t.Fatalf("%d sessions on the heartbeat after the beats, want 1", d)
	}

	pong := clientFrame(true, opPong, nil)
	pongNow := func() {
		seen := s.lastSeen.Load()
		// The client answered pings before its reader ended, and its
		// library's pong set a write deadline 1 s on, which a slow run
		// (-race on a busy machine) outlives: this test writes without one.
		_ = c.c.NetConn().SetWriteDeadline(time.Time{})
		if _, err := c.c.NetConn().Write(pong); err != nil {
			t.Fatal(err)
		}
		for s.lastSeen.Load() == seen {
			runtime.Gosched()
		}
	}
	pongNow()
	if n := testing.AllocsPerRun(100, pongNow); n != 0 {
		t.Errorf("a pong allocates %.1f times, want 0", n)
	}
}

// Beats are rounded up to slots, never early and late by at most the
// slack, so that sessions that connected together are pinged together.
func TestBeatSlotRoundsUpWithinTheSlack(t *testing.T) {
	const d = 25 * time.Second
	slack := int64(beatSlack)
	for _, now := range []int64{0, 1, slack - 1, slack, 7*slack + 3} {
		at := beatSlot(now, d)
		if due := now + int64(d); at < due || at-due >= slack || at%slack != 0 {
			t.Errorf("beatSlot(%d, %v) = %d, want the first multiple of %d at or after %d", now, d, at, slack, due)
		}
	}
	if a, b := beatSlot(1, d), beatSlot(slack-1, d); a != b {
		t.Errorf("sessions %v apart got different slots: %d and %d", time.Duration(slack-2), a, b)
	}
	short := 20 * time.Millisecond // a quarter of it is the most a beat may be late
	if at := beatSlot(1, short); at-1-int64(short) >= int64(short/4) {
		t.Errorf("a %v beat is %v late, want under %v", short, time.Duration(at-1-int64(short)), short/4)
	}
}
