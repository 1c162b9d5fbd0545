package wsconn

import (
	"runtime/debug"
	"sync"
	"time"
)

// After a burst of new connections (a start-up, a reconnect storm after a
// deploy) the heap holds the garbage of their upgrades until the next
// collection: contrib/websocket's copies of each request's headers,
// query, cookies and Locals, fasthttp/websocket's Conn and its buffers,
// the handshake's JSON, about 4 KB a connection. An idle server allocates
// almost nothing, so no collection runs until the runtime's forced one
// two minutes later, and even then the runtime keeps the freed pages as
// headroom for a heap twice the live one. With 15,000 connections that
// is 60 MB the connections do not hold. So once a burst is over, the
// registry collects and gives the freed memory back to the system.
const (
	// burstSessions opened since the last release, none more than
	// burstQuiet after the one before, make a burst.
	burstSessions = 1000
	// burstQuiet without a new session ends the burst.
	burstQuiet = 3 * time.Second
)

// burstRelease returns the memory of a burst's upgrades to the system
// once the burst is over: two full collections (releaseGarbage) per
// burst, run on the timer's goroutine, never on a connection's.
//
// Concurrency: opened and stop may be called from any goroutine.
type burstRelease struct {
	min     int              // sessions that make a burst (burstSessions)
	quiet   time.Duration    // burstQuiet
	release func()           // debug.FreeOSMemory; a test counts instead
	now     func() time.Time // time.Now; a test sets the clock

	mu      sync.Mutex
	count   int       // sessions opened since the last release or quiet gap
	last    time.Time // when the last of them opened
	timer   *time.Timer
	stopped bool
	running sync.WaitGroup // a release under way, which stop waits for
}

func newBurstRelease() *burstRelease {
	return &burstRelease{min: burstSessions, quiet: burstQuiet, release: releaseGarbage, now: time.Now}
}

// releaseGarbage collects twice and returns the freed memory to the
// system. Twice because an object with a finalizer (the upgrade leaves
// some behind) survives the collection that queues its finalizer and is
// freed by the next one: measured at 15,000 connections, one collection
// left 2,900 B of RSS per idle connection and two 2,580 B.
func releaseGarbage() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}

// opened counts a new session; from the burst's min-th on, each one
// pushes the release back by quiet. A session that opens more than quiet
// after the one before starts the count again: sessions trickling in are
// no burst, and collecting for them would cost two full collections for
// garbage the runtime's own collections take care of.
func (b *burstRelease) opened() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	now := b.now()
	if b.count > 0 && now.Sub(b.last) > b.quiet {
		b.count = 0
	}
	b.last = now
	if b.count++; b.count < b.min {
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.quiet, b.fire)
	} else {
		b.timer.Reset(b.quiet)
	}
}

func (b *burstRelease) fire() {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.count = 0
	b.running.Add(1)
	b.mu.Unlock()
	defer b.running.Done()
	b.release()
}

// stop cancels a release not yet begun and waits for one under way.
func (b *burstRelease) stop() {
	b.mu.Lock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.running.Wait()
}
