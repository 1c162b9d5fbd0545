package wsconn

import (
	"container/heap"
	"sync"
	"time"
)

// heartbeats runs the heartbeat of every session of a registry on one
// timer: a min-heap of the sessions by the time of their next beat. A
// timer per session cost each idle connection 128 bytes (the runtime's
// timer and the bound callback); here a session carries only its due time
// and its place in the heap. The timer is armed for the earliest beat,
// and its callback runs every beat that is due, then re-arms it; with no
// session left it is not re-armed, so no goroutine outlives the sessions.
//
// Concurrency: schedule and remove may be called from any goroutine;
// every field of a session that says hb is guarded by mu.
type heartbeats struct {
	mu    sync.Mutex
	heap  beatHeap
	timer *time.Timer // made on first use; fires fire
	armed int64       // the beatClock time the timer is set for; 0: not armed
	// spare is fire's list of due sessions, kept between beats so that a
	// beat allocates nothing; nil while a fire uses it (fires may overlap).
	spare []*Session
}

// beatEpoch anchors beatClock, a monotonic clock in int64 nanoseconds.
var beatEpoch = time.Now()

func beatClock() int64 { return int64(time.Since(beatEpoch)) }

// schedule sets s's next beat d from now, unless s has been removed (its
// session ended): a beat that raced with the end must not bring it back.
func (h *heartbeats) schedule(s *Session, d time.Duration) {
	at := beatSlot(beatClock(), d)
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.hbGone {
		return
	}
	s.hbDue = at
	if s.hbSlot == 0 {
		heap.Push(&h.heap, s)
	} else {
		heap.Fix(&h.heap, int(s.hbSlot-1))
	}
	h.arm()
}

// beatSlack is how much later than due a beat may come: due times are
// rounded up to a multiple of it, so that the beats of the sessions that
// connected within it fall on one firing of the timer, and their pongs
// come back to the poller together. Idle connections then cost a timer
// firing and a poller wake-up per slot, not per session.
const beatSlack = 50 * time.Millisecond

// beatSlot is the beatClock time of a beat d after now, rounded up to a
// multiple of beatSlack, or of d/4 for a shorter interval, so that a
// beat is never late by more than a quarter of its interval.
func beatSlot(now int64, d time.Duration) int64 {
	at := now + int64(d)
	if q := int64(min(beatSlack, d/4)); q > 0 {
		at = (at + q - 1) / q * q
	}
	return at
}

// remove takes s out for good.
func (h *heartbeats) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.hbGone = true
	if s.hbSlot != 0 {
		heap.Remove(&h.heap, int(s.hbSlot-1))
	}
	// The timer may now fire with nothing due; fire re-arms it then.
}

// arm sets the timer for the earliest beat, if it is not set for it
// already. h.mu is held.
func (h *heartbeats) arm() {
	if len(h.heap) == 0 {
		return
	}
	next := h.heap[0].hbDue
	if h.armed != 0 && h.armed <= next {
		return // it fires first, and re-arms then
	}
	d := time.Duration(next - beatClock())
	if h.timer == nil {
		h.timer = time.AfterFunc(d, h.fire)
	} else {
		h.timer.Reset(d)
	}
	h.armed = next
}

// fire is the timer's callback: it takes every session whose beat is due
// out of the heap, re-arms the timer for the next, and beats them (each
// beat schedules the session's next one). Beats never block: a ping is
// written at once or queued for the session's writer.
func (h *heartbeats) fire() {
	now := beatClock()
	h.mu.Lock()
	h.armed = 0
	due := h.spare[:0]
	h.spare = nil
	for len(h.heap) > 0 && h.heap[0].hbDue <= now {
		due = append(due, heap.Pop(&h.heap).(*Session))
	}
	h.arm()
	h.mu.Unlock()
	for _, s := range due {
		s.beat()
	}
	clear(due) // keep no ended session alive
	h.mu.Lock()
	if cap(due) <= maxSpareBeats {
		h.spare = due
	}
	h.mu.Unlock()
}

// maxSpareBeats caps the due list fire keeps between beats: a burst of
// connections makes many beats due at once, once; a list that long is
// not kept for the steady state.
const maxSpareBeats = 4096

// beatHeap is container/heap's view of the sessions by next beat; each
// session knows its place (hbSlot, 1-based so that 0 means "not in it").
type beatHeap []*Session

func (b beatHeap) Len() int           { return len(b) }
func (b beatHeap) Less(i, j int) bool { return b[i].hbDue < b[j].hbDue }
func (b beatHeap) Swap(i, j int) {
	b[i], b[j] = b[j], b[i]
	b[i].hbSlot, b[j].hbSlot = int32(i+1), int32(j+1)
}

func (b *beatHeap) Push(x any) {
	s := x.(*Session)
	s.hbSlot = int32(len(*b) + 1)
	*b = append(*b, s)
}

func (b *beatHeap) Pop() any {
	old := *b
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*b = old[:len(old)-1]
	s.hbSlot = 0
	return s
}
