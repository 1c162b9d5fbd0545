package realtime

// SlowPolicy says what happens when a subscriber's send queue is full.
type SlowPolicy uint8

const (
	// PolicyDisconnect closes the connection (the transport picks the close
	// code; wsconn uses 1013).
	PolicyDisconnect SlowPolicy = iota
	// PolicyDropOldest drops the oldest queued frames to make room; the hub
	// then pushes {"missed":n} so the client knows.
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
	// blocking. The frame is shared with other subscribers and must not be
	// modified. With PolicyDisconnect, a full queue closes the connection
	// (the connection decides the close code) and ok is false; with
	// PolicyDropOldest, the oldest queued frames are dropped to make room
	// and their count is returned, so the hub can tell the client it missed
	// messages. ok is false when the frame was not queued (the connection
	// is closing, or the frame alone exceeds the queue).
	Enqueue(frame []byte, policy SlowPolicy) (dropped int, ok bool)
}
