package realtime

import (
	"sync"
	"time"
)

// DefaultIdempotencyKeys is how many idempotency keys a MemoryBroker
// remembers at most (each costs about the length of its key and channel
// plus 100 bytes): past it the oldest is forgotten before its window ends.
const DefaultIdempotencyKeys = 50_000

// dedupWindow remembers the positions of keyed publications for ttl, and
// at most max of them, so that a repeat can be answered with the first
// result. Every key lives for the same ttl, so insertion order is expiry
// order and one FIFO serves both bounds.
//
// Concurrency: safe for concurrent use (mu). A caller that must not
// publish twice checks and records under its own ordering lock.
type dedupWindow struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	byKey map[dedupKey]StreamPosition
	fifo  []dedupItem // oldest first from head
	head  int
}

type dedupKey struct{ channel, key string }

type dedupItem struct {
	k  dedupKey
	at time.Time
}

func newDedupWindow(ttl time.Duration, max int) *dedupWindow {
	return &dedupWindow{ttl: ttl, max: max, byKey: make(map[dedupKey]StreamPosition)}
}

// get returns the position recorded for key on channel, if still in the
// window.
func (w *dedupWindow) get(channel, key string, now time.Time) (StreamPosition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	pos, ok := w.byKey[dedupKey{channel, key}]
	return pos, ok
}

// put records pos for key on channel (the caller checked get first).
func (w *dedupWindow) put(channel, key string, pos StreamPosition, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := dedupKey{channel, key}
	w.byKey[k] = pos
	w.fifo = append(w.fifo, dedupItem{k, now})
	w.expire(now)
}

// sweep drops what is past the window, so an idle broker lets it go.
func (w *dedupWindow) sweep(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
}

// expire drops what is past ttl or beyond max, oldest first. Called with
// w.mu held.
func (w *dedupWindow) expire(now time.Time) {
	for w.head < len(w.fifo) {
		it := w.fifo[w.head]
		if len(w.fifo)-w.head <= w.max && now.Sub(it.at) < w.ttl {
			break
		}
		delete(w.byKey, it.k)
		w.fifo[w.head] = dedupItem{}
		w.head++
	}
	// Reuse the slice's front once half of it is spent, so its length
	// stays within twice the live entries.
	if w.head > 0 && w.head >= len(w.fifo)/2 {
		n := copy(w.fifo, w.fifo[w.head:])
		clear(w.fifo[n:])
		w.fifo, w.head = w.fifo[:n], 0
	}
}
