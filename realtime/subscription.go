package realtime

import (
	"sync"
	"sync/atomic"
)

// Subscription is one subscriber's membership of one channel, made by
// Hub.Subscribe and ended by Hub.Unsubscribe.
//
// Concurrency: publishers deliver to it from their goroutines while it is
// live; its methods are safe for concurrent use.
type Subscription struct {
	// What a delivery reads comes first, within one cache line: a fan-out
	// touches every subscription of the channel per publication.
	active    atomic.Bool // cleared on Unsubscribe: deliveries stop
	buffering atomic.Bool // see buf
	policy    SlowPolicy  // opts.SlowPolicy
	ended     atomic.Bool // Unsubscribe ran (idempotency); here, it fills policy's padding
	// floor is the position the subscribe reply covered: a publication at
	// or below it (numbered before the reply, delivered after) is skipped.
	// Written once in start, before buffering is cleared.
	floor uint64
	hub   *Hub
	sub   Subscriber
	ahead Prefetcher // sub's, if it is one; else nil

	hc *hubChannel
	// name is the channel's (the hub channel's own string), opts its
	// namespace's options and info the subscriber's identity, all shared
	// rather than copied: a subscription is made per connection and
	// channel, and copies would be 230 bytes each.
	name string
	opts *NamespaceOptions
	info *ClientInfo

	// While buffering, deliveries are parked in buf instead of being
	// enqueued, so the subscribe reply (with its position and recovered
	// publications) goes out first. start flushes buf and clears buffering.
	mu  sync.Mutex
	buf []parkedFrame

	// In a flow-controlled channel (flow.go): backlog tells whether the
	// subscriber's queue still holds something (nil: never), and lag is
	// what a viewer too slow for earlier ticks is owed. lag is touched
	// only by the channel's tick, one at a time.
	backlog Backlogger
	lag     *flowLag
}

type parkedFrame struct {
	offset uint64 // 0 for join/leave events
	frame  *SharedFrame
}

// Channel is the subscribed channel.
func (s *Subscription) Channel() Channel { return splitChannel(s.name) }

// Options are the channel's namespace options.
func (s *Subscription) Options() NamespaceOptions { return *s.opts }

// deliver hands one encoded frame to the subscriber, or parks it while the
// subscription is starting. Publications of one channel are delivered by
// one goroutine at a time (the broker's ordering guarantee), so they stay
// in order; the channel's join/leave tick may deliver at the same time,
// which is safe (Enqueue is, and parking is under mu) but leaves join and
// leave events unordered with publications.
func (s *Subscription) deliver(offset uint64, frame *SharedFrame) (delivered bool) {
	if !s.active.Load() {
		return false
	}
	if s.buffering.Load() {
		s.mu.Lock()
		if s.buffering.Load() {
			s.buf = append(s.buf, parkedFrame{offset, frame})
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
	if offset != 0 && offset <= s.floor {
		return false
	}
	return s.hub.send(s.sub, frame, s.policy)
}

// start calls ready (which enqueues the subscribe reply), flushes the
// parked frames that come after pos (publications at or before pos are
// already covered by the reply) and switches to direct delivery, all under
// s.mu, so no delivery can slip in between.
func (s *Subscription) start(pos uint64, ready func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready()
	s.floor = pos
	for _, p := range s.buf {
		if p.offset == 0 || p.offset > pos {
			s.hub.send(s.sub, p.frame, s.policy)
		}
	}
	s.buf = nil
	s.buffering.Store(false)
}
