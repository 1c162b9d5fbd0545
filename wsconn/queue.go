package wsconn

import (
	"sync"
	"sync/atomic"
)

// outMessage is one data message waiting for the writer.
type outMessage struct {
	kind      int32 // opText or opBinary, with rsv1Bit if data is compressed
	droppable bool  // SendDropOldest's: may be dropped to make room
	data      []byte
	// forms are the shared forms data is the alone one of, of which the
	// writer may send the other instead (SharedMessage); nil for the rest.
	forms *deflateForms
}

// size is what m counts against the queue's byte cap: what it holds.
func (m *outMessage) size() int {
	n := len(m.data)
	if m.forms != nil {
		n += len(m.forms.after.b) // made before m was queued (queuedForm)
	}
	return n
}

// sendQueue is what a session still has to write, and the life of its
// writer goroutine: a FIFO of data messages capped by their total payload
// bytes (so one slow client costs at most that much memory), the control
// frames due (a ping, the answer to the client's last ping), and whether a
// writer runs. A writer runs only while there is something to write, so an
// idle session has no writer goroutine. All of it is under one mutex, so
// "nothing queued and no writer" is a single observation.
//
// Concurrency: every method may be called from any goroutine.
type sendQueue struct {
	// busy mirrors "not idle" for the lock-free check on every delivery;
	// it is stored under mu after every change.
	busy atomic.Bool

	mu        sync.Mutex
	items     []outMessage
	bytes     int
	dropBytes int // of bytes, those of droppable items
	missed    int // droppable messages dropped since the writer last took
	maxBytes  int
	pong      []byte // payload of the pong due, if pongDue
	pingDue   bool   // the flags together: padding after each costs 8 bytes
	pongDue   bool
	writing   bool // a writer goroutine runs
	stopped   bool // the session is ending: no writer may start
	writers   sync.WaitGroup
}

// update refreshes busy; q.mu is held.
func (q *sendQueue) update() {
	q.busy.Store(q.writing || q.stopped || len(q.items) > 0 || q.missed > 0 || q.pingDue || q.pongDue)
}

// claimWriter reports whether the caller must start a writer goroutine,
// and counts it in writers if so; q.mu is held. Counting under the lock
// that stop also takes means no writer is counted after stop returns.
func (q *sendQueue) claimWriter() bool {
	if q.writing || q.stopped {
		return false
	}
	q.writing = true
	q.writers.Add(1)
	return true
}

// push appends m, a message that must not be dropped. When it does not
// fit under the byte cap, droppable messages are dropped first, oldest
// first (and counted as missed); if it still does not fit, ok is false and
// the queue is as it was. start says the caller must start a writer.
func (q *sendQueue) push(m outMessage) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	if q.bytes-q.dropBytes+m.size() > q.maxBytes {
		return false, false
	}
	q.dropOldest(m.size())
	q.append(m)
	return true, q.claimWriter()
}

// pushDropOldest appends m, a droppable message, first dropping the
// oldest droppable messages until it fits under the byte cap. When even
// that is not enough (what must not be dropped fills the queue), m itself
// is dropped. It reports how many messages were dropped, m included; each
// is counted as missed, and the writer tells the client how many before
// the next message it writes. start is as for push.
func (q *sendQueue) pushDropOldest(m outMessage) (dropped int, start bool) {
	m.droppable = true
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	if q.bytes-q.dropBytes+m.size() > q.maxBytes {
		q.missed++
		return 1, q.claimWriter()
	}
	dropped = q.dropOldest(m.size())
	q.append(m)
	return dropped, q.claimWriter()
}

func (q *sendQueue) append(m outMessage) {
	q.items = append(q.items, m)
	q.bytes += m.size()
	if m.droppable {
		q.dropBytes += m.size()
	}
}

// dropOldest drops the oldest droppable messages until n more bytes fit,
// keeping the order of the rest, and counts them as missed; q.mu is held
// and the caller has checked that dropping them all would be enough.
func (q *sendQueue) dropOldest(n int) (dropped int) {
	if q.bytes+n <= q.maxBytes {
		return 0
	}
	kept := q.items[:0]
	for i, m := range q.items {
		if m.droppable && q.bytes+n > q.maxBytes {
			q.bytes -= m.size()
			q.dropBytes -= m.size()
			dropped++
			continue
		}
		if dropped == 0 {
			kept = q.items[:i+1] // nothing moved yet
			continue
		}
		kept = append(kept, m)
	}
	// Shift rather than reslice, so the backing array does not creep.
	clear(q.items[len(kept):])
	q.items = kept
	q.missed += dropped
	return dropped
}

// pushPing marks a ping due; one pending ping covers any number.
func (q *sendQueue) pushPing() (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	q.pingDue = true
	return q.claimWriter()
}

// pushPong marks a pong due with payload (copied). RFC 6455 lets an
// endpoint answer only the most recent ping, so a newer one replaces it.
func (q *sendQueue) pushPong(payload []byte) (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	q.pong = append(q.pong[:0], payload...)
	q.pongDue = true
	return q.claimWriter()
}

// kick starts a writer if none runs, for work that is not in the queue
// (an unfinished write, a close frame).
func (q *sendQueue) kick() (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	return q.claimWriter()
}

// idle reports whether nothing is queued or due and no writer runs: then,
// and only then, a message may be written on the caller's goroutine
// without overtaking anything. It takes no lock: a push that races with
// it starts a writer, which waits for the caller's writeMu, so the pushed
// message goes after the caller's as if it had been pushed just after.
func (q *sendQueue) idle() bool { return !q.busy.Load() }

// work is what one flush of the writer takes out of the queue.
type work struct {
	items   []outMessage
	missed  int // droppable messages dropped since the last take
	ping    bool
	pongDue bool
	pong    []byte
}

// take removes every queued message and due control frame. The caller
// passes back the work it got last time (emptied), so in the steady state
// the slices swap and nothing is allocated.
func (q *sendQueue) take(spare work) work {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	w := work{items: q.items, missed: q.missed, ping: q.pingDue, pongDue: q.pongDue, pong: spare.pong[:0]}
	if q.pongDue {
		w.pong = append(w.pong, q.pong...)
	}
	q.items, q.bytes, q.dropBytes, q.missed, q.pingDue, q.pongDue = spare.items[:0], 0, 0, 0, false, false
	return w
}

// writerDone is the writer's last check before it exits: it reports true,
// and the writer is no longer counted as running, when nothing is queued
// or due and more is not needed (a close frame still to send). Otherwise
// the writer goes round again.
func (q *sendQueue) writerDone(more func() bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	if len(q.items) > 0 || q.missed > 0 || q.pingDue || q.pongDue || more() {
		return false
	}
	q.writing = false
	return true
}

// writerQuit records that the writer exited for good: the close frame is
// out or the connection is gone, so what is queued is dropped.
func (q *sendQueue) writerQuit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.update()
	clear(q.items)
	q.items, q.bytes, q.dropBytes, q.missed, q.pingDue, q.pongDue = q.items[:0], 0, 0, 0, false, false
	q.writing = false
}

// stop lets no writer start from now on and waits for the one running,
// if any, to exit.
func (q *sendQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.update()
	q.mu.Unlock()
	q.writers.Wait()
}
