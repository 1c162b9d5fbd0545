package wsconn

import (
	"testing"
	"time"
)

func testBurstRelease(min int) (*burstRelease, chan struct{}) {
	released := make(chan struct{}, 4)
	b := &burstRelease{min: min, quiet: 20 * time.Millisecond, release: func() { released <- struct{}{} }, now: time.Now}
	return b, released
}

func waitRelease(t *testing.T, released chan struct{}) {
	t.Helper()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("no release after the burst")
	}
}

// A burst is released once it is over, and the count starts again: the
// next release needs a whole burst more, not one session more.
func TestBurstIsReleasedOnceOver(t *testing.T) {
	b, released := testBurstRelease(3)
	defer b.stop()
	for range 3 {
		b.opened()
	}
	waitRelease(t, released)
	b.mu.Lock()
	count := b.count
	b.mu.Unlock()
	if count != 0 {
		t.Fatalf("count after the release = %d, want 0", count)
	}
	// Two sessions are no burst; the third makes one. The release that
	// follows is the second, and no other came between (the channel
	// holds every release).
	b.opened()
	b.opened()
	b.opened()
	waitRelease(t, released)
	if n := len(released); n != 0 {
		t.Fatalf("%d releases more than bursts", n)
	}
}

// A burst still going on pushes its release back: sessions arriving
// faster than quiet apart are one burst, released once.
func TestBurstStillGoingIsNotReleased(t *testing.T) {
	b, released := testBurstRelease(1)
	defer b.stop()
	b.quiet = time.Second // far above the gaps below, even on a loaded machine
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		b.opened()
		select {
		case <-released:
			t.Fatalf("released %v into a burst still going on", time.Since(start))
		case <-time.After(10 * time.Millisecond):
		}
	}
	waitRelease(t, released)
}

// stop cancels the release due: the registry stops it at shutdown.
func TestBurstReleaseStopCancels(t *testing.T) {
	b, released := testBurstRelease(1)
	b.quiet = time.Hour
	b.opened()
	b.stop()
	if b.timer.Stop() {
		t.Fatal("the release was still due after stop")
	}
	b.opened() // after stop: nothing is armed again
	b.mu.Lock()
	count := b.count
	b.mu.Unlock()
	if count != 1 || len(released) != 0 {
		t.Fatalf("after stop: count %d, releases %d", count, len(released))
	}
}

// Sessions that open more than quiet apart are no burst, however many
// there are over time: the count starts again after each quiet gap, so
// a server that gains a connection every few seconds never collects for
// it. Only min sessions with no gap above quiet make a burst.
func TestBurstCountStartsAgainAfterAQuietGap(t *testing.T) {
	b, released := testBurstRelease(3)
	defer b.stop()
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	b.opened()
	b.opened()
	now = now.Add(b.quiet + time.Millisecond)
	b.opened() // the third session, but after a gap: a new count of one
	b.mu.Lock()
	count, armed := b.count, b.timer != nil
	b.mu.Unlock()
	if count != 1 || armed {
		t.Fatalf("after a quiet gap: count %d, release armed %v; want 1, false", count, armed)
	}
	// Two more without a gap make the burst, released once.
	b.opened()
	b.opened()
	waitRelease(t, released)
	if n := len(released); n != 0 {
		t.Fatalf("%d releases more than bursts", n)
	}
}
