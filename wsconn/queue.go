package wsconn

import "sync"

// outMessage is one data message waiting for the writer.
type outMessage struct {
	kind int // websocket.TextMessage or websocket.BinaryMessage
	data []byte
}

// sendQueue is a FIFO of outbound messages capped by their total payload
// bytes, so one slow client costs at most that much memory. Any goroutine
// may push; only the session's writer takes. wake has room for one signal,
// so a push never blocks and the writer never misses one.
type sendQueue struct {
	mu       sync.Mutex
	items    []outMessage
	bytes    int
	maxBytes int
	wake     chan struct{}
}

func newSendQueue(maxBytes int) *sendQueue {
	return &sendQueue{maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push appends m unless that would take the queue over its byte cap, in
// which case it reports false and leaves the queue as it was.
func (q *sendQueue) push(m outMessage) bool {
	q.mu.Lock()
	if q.bytes+len(m.data) > q.maxBytes {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, m)
	q.bytes += len(m.data)
	q.mu.Unlock()
	q.signal()
	return true
}

// signal wakes the writer; a signal already pending covers this one.
func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pushDropOldest appends m, first dropping the oldest queued messages
// until it fits under the byte cap, and reports how many it dropped. It
// fails only when m alone is larger than the cap.
func (q *sendQueue) pushDropOldest(m outMessage) (dropped int, ok bool) {
	if len(m.data) > q.maxBytes {
		return 0, false
	}
	q.mu.Lock()
	for q.bytes+len(m.data) > q.maxBytes {
		q.bytes -= len(q.items[dropped].data)
		q.items[dropped] = outMessage{}
		dropped++
	}
	if dropped > 0 {
		// Shift rather than reslice, so the backing array does not creep.
		n := copy(q.items, q.items[dropped:])
		clear(q.items[n:])
		q.items = q.items[:n]
	}
	q.items = append(q.items, m)
	q.bytes += len(m.data)
	q.mu.Unlock()
	q.signal()
	return dropped, true
}

// empty reports whether nothing is queued.
func (q *sendQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0
}

// takeAll removes every queued message and returns them in order. The
// caller passes back the slice it got last time (emptied), so in the
// steady state the two slices swap and nothing is allocated.
func (q *sendQueue) takeAll(spare []outMessage) []outMessage {
	q.mu.Lock()
	out := q.items
	q.items = spare[:0]
	q.bytes = 0
	q.mu.Unlock()
	return out
}
