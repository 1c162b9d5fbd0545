package realtime

import (
	"context"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// Join and leave events are gathered per channel for a short tick and go
// out together: one frame, encoded once, the same bytes for every
// subscriber. Sent one by one, n joins into a room cost n(n-1)/2 frames
// (issue 10: 2,000 joins made 3.0 M deliveries); per tick they cost one
// frame per member per tick. Above JoinLeaveMaxMembers a tick sends only
// the member count, so the frame stays small however many joined.
//
// Coalescing happens where the events are fanned out, on the node that
// receives them from the broker, so it works the same for events of this
// node and, over NATS, of the others.

const (
	// DefaultJoinLeaveTick is how long join/leave events are gathered
	// when a namespace does not say.
	DefaultJoinLeaveTick = 200 * time.Millisecond
	// DefaultJoinLeaveMaxMembers is the member count above which a
	// channel sends presence_count instead of join/leave, when a namespace
	// does not say.
	DefaultJoinLeaveMaxMembers = 200

	minJoinLeaveTick = time.Millisecond
	maxJoinLeaveTick = 10 * time.Second

	// joinLeaveFrameBytes bounds one frame of events, so that a tick of a
	// large room (a high JoinLeaveMaxMembers) cannot make a frame near the
	// send queue's size; more events go in further frames.
	joinLeaveFrameBytes = 32 << 10
	// memberCountTimeout bounds the presence count a tick asks for.
	memberCountTimeout = 2 * time.Second
)

func (o NamespaceOptions) joinLeaveTick() time.Duration {
	if o.JoinLeaveTick > 0 {
		return o.JoinLeaveTick
	}
	return DefaultJoinLeaveTick
}

func (o NamespaceOptions) joinLeaveMaxMembers() int {
	if o.JoinLeaveMaxMembers > 0 {
		return o.JoinLeaveMaxMembers
	}
	return DefaultJoinLeaveMaxMembers
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

type joinLeaveEvent struct {
	leave bool
	info  ClientInfo
}

// joinLeaveQueue is one channel's join/leave events waiting for their
// tick. A timer runs only while events wait, so an idle channel costs
// nothing; the channel owns it and stops it when it goes (close).
//
// Concurrency: mu guards pending, armed, stop and closed. armed stays set
// from the moment a timer is started until its flush has fanned out, so
// two flushes of one channel never overlap (their frames stay in order);
// lastCount is touched only by that one flush.
type joinLeaveQueue struct {
	mu      sync.Mutex
	pending []joinLeaveEvent
	armed   bool
	stop    func() bool
	closed  bool

	lastCount int // the presence_count last sent; 0 after join/leave frames
}

// close stops the timer and drops what is pending: the channel has no
// subscriber left here.
func (q *joinLeaveQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.pending = nil
	if q.armed && q.stop != nil {
		q.stop()
	}
}

// HandleJoin implements BrokerHandler: the join waits for the channel's
// tick.
func (h *Hub) HandleJoin(channel string, info ClientInfo) {
	h.queueJoinLeave(channel, joinLeaveEvent{info: info})
}

// HandleLeave implements BrokerHandler: the leave waits for the channel's
// tick.
func (h *Hub) HandleLeave(channel string, info ClientInfo) {
	h.queueJoinLeave(channel, joinLeaveEvent{leave: true, info: info})
}

func (h *Hub) queueJoinLeave(channel string, ev joinLeaveEvent) {
	hc := h.lookup(channel)
	if hc == nil {
		return // no subscriber here: nobody to tell
	}
	_, o, err := h.ns.Lookup(channel)
	if err != nil {
		return
	}
	q := &hc.events
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.pending = append(q.pending, ev)
	if !q.armed {
		q.armed = true
		q.stop = h.after(o.joinLeaveTick(), func() { h.flushJoinLeave(hc, o) })
	}
}

// flushJoinLeave is a channel's tick: it sends what gathered, and starts
// the next tick only if more came meanwhile.
func (h *Hub) flushJoinLeave(hc *hubChannel, o NamespaceOptions) {
	q := &hc.events
	q.mu.Lock()
	events := q.pending
	q.pending = nil
	q.mu.Unlock()

	for _, frame := range h.joinLeaveFrames(hc, o, events) {
		h.fanoutTo(hc, 0, NewSharedFrame(frame))
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = false
	if len(q.pending) > 0 && !q.closed {
		q.armed = true
		q.stop = h.after(o.joinLeaveTick(), func() { h.flushJoinLeave(hc, o) })
	}
}

// joinLeaveFrames encodes one tick: each member's net change as a join or
// leave line, or, above the namespace's member count, one presence_count
// when the count changed or someone joined (a new member learns the room
// is count-only from it).
func (h *Hub) joinLeaveFrames(hc *hubChannel, o NamespaceOptions, events []joinLeaveEvent) [][]byte {
	joins, leaves := netJoinLeave(events)
	if len(joins) == 0 && len(leaves) == 0 {
		return nil
	}
	q := &hc.events
	count, ok := h.memberCount(hc)
	if count > o.joinLeaveMaxMembers() {
		if !ok || len(joins) == 0 && count == q.lastCount {
			return nil // no count to tell, or nothing new to tell
		}
		q.lastCount = count
		return [][]byte{protocol.EncodePresenceCount(hc.name, count)}
	}
	q.lastCount = 0
	var frames [][]byte
	var frame []byte
	add := func(line []byte) {
		if len(frame) > 0 && len(frame)+1+len(line) > joinLeaveFrameBytes {
			frames = append(frames, frame)
			frame = nil
		}
		if len(frame) > 0 {
			frame = append(frame, '\n')
		}
		frame = append(frame, line...)
	}
	for _, info := range joins {
		add(protocol.EncodeJoin(hc.name, info))
	}
	for _, info := range leaves {
		add(protocol.EncodeLeave(hc.name, info))
	}
	return append(frames, frame)
}

// memberCount is the channel's member count from the presence store (all
// nodes). If the store fails, the local subscriber count stands in to
// choose between events and a count, and ok is false: that count is not
// to be told.
func (h *Hub) memberCount(hc *hubChannel) (n int, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), memberCountTimeout)
	defer cancel()
	n, err := h.presence.Count(ctx, hc.name)
	if err != nil {
		h.log.Warn("presence count for join/leave failed", "channel", hc.name, "err", err)
		return int(hc.count.Load()), false
	}
	return n, true
}

// netJoinLeave reduces a tick's events to each client's net change, in
// the order clients first appear: a client that joined and left within
// the tick (or left and came back) changed nothing its room needs to hear.
func netJoinLeave(events []joinLeaveEvent) (joins, leaves []ClientInfo) {
	type change struct {
		firstLeave bool
		last       joinLeaveEvent
	}
	byClient := make(map[string]*change, len(events))
	order := make([]string, 0, len(events))
	for _, ev := range events {
		c := byClient[ev.info.Client]
		if c == nil {
			c = &change{firstLeave: ev.leave}
			byClient[ev.info.Client] = c
			order = append(order, ev.info.Client)
		}
		c.last = ev
	}
	for _, id := range order {
		c := byClient[id]
		switch {
		case c.firstLeave != c.last.leave:
		case c.last.leave:
			leaves = append(leaves, c.last.info)
		default:
			joins = append(joins, c.last.info)
		}
	}
	return joins, leaves
}
