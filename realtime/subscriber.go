package realtime

// SlowPolicy says what happens when a subscriber's send queue is full.
type SlowPolicy uint8

const (
	// PolicyDisconnect never drops the frame: droppable frames already
	// queued make room for it, and if that is not enough the connection is
	// closed (the transport picks the close code; wsconn uses 1013).
	// Replies, errors and notices always use it.
	PolicyDisconnect SlowPolicy = iota
	// PolicyDropOldest makes the frame droppable: when the queue is full,
	// the oldest droppable frames are dropped to make room (or this one,
	// if what cannot be dropped fills the queue), and the client is told
	// exactly how many it missed, {"missed":n}, ahead of the next frame
	// it gets. The connection is never closed for being slow.
	PolicyDropOldest
)

// String returns the config spelling: "disconnect" or "drop-oldest".
func (p SlowPolicy) String() string {
	if p == PolicyDropOldest {
		return "drop-oldest"
	}
	return "disconnect"
}

// Subscriber is one connection as the hub sees it.
//
// Concurrency: Enqueue is called from many goroutines at once (every
// publisher fanning out to this connection, and the connection's own
// Client), so it must be safe for concurrent use, must never block, and
// must keep the frames of one caller in the order it enqueued them.
type Subscriber interface {
	// ID is unique for the process lifetime.
	ID() uint64
	// Enqueue hands one encoded frame to the connection's writer without
	// blocking, as policy says. The frame is shared with other subscribers
	// (the whole fan-out of a publication) and must not be modified. dropped counts the droppable frames lost
	// (this one included), for metrics: the transport itself tells the
	// client. ok is false when the frame was neither queued nor counted as
	// dropped: the connection is closing, or PolicyDisconnect closed it.
	Enqueue(frame *SharedFrame, policy SlowPolicy) (dropped int, ok bool)
}

// Prefetcher is a Subscriber that can read ahead what its Enqueue reads
// from memory of its own. A fan-out calls Prefetch for a few subscribers
// before it enqueues to them, so their cache misses overlap instead of
// adding up: at thousands of subscribers a delivery waits on memory
// about as long as on its code. A Subscriber without it is enqueued to
// all the same.
//
// Concurrency: Prefetch is called from the fanning-out goroutine,
// concurrently with Enqueue; it must not block or change anything.
type Prefetcher interface {
	Prefetch()
}
