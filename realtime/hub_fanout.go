package realtime

import (
	"context"
	"sync"
)

// A large channel's publications are fanned out on a goroutine of the
// channel's own, not on the publisher's: a fan-out to a thousand
// subscribers is a thousand write system calls (about 5 ms here), and
// POST /api/publish, or a client's publish command, would wait for all of
// them before it is answered. A publisher that sends one request at a
// time (the load tool at 100/s, a backend posting in order) then cannot
// publish faster than the channel's fan-out, and the answer's latency is
// the fan-out's. Small channels are still fanned out inline, which costs
// no goroutine switch and keeps a publisher's own push ahead of its reply.
//
// Order is kept: publications of one channel reach Hub.fanout one at a
// time, in offset order (the broker's guarantee), and one goroutine
// drains them in that order. A publication is inlined only while no
// drainer runs for the channel, so it cannot overtake a queued one.
//
// A publication is handed over, not queued: Hub.fanout returns once the
// drainer has begun its fan-out, so while one fan-out runs, the next
// publication waits with its publisher. A publisher is still answered a
// whole fan-out sooner than if it waited for its own, and the drainer
// still finds the next publication ready when it finishes; but nothing
// sits in the server, unseen by the publisher, waiting for a fan-out
// that has not begun. Such a queued publication aged by a whole fan-out
// before its own began (at 5,000 x 40/s, a fan-out takes about as long
// as the interval between publications), and that wait was the larger
// part of the delivery latency (docs/benchmarks.md, session 6).

// fanoutAsyncMin is the fewest subscribers whose fan-out goes to the
// channel's goroutine. Below it a fan-out takes about a millisecond or
// less, not worth a goroutine switch.
const fanoutAsyncMin = 256

// fanoutQueue is the hand-over of one channel's publications to its
// drainer.
//
// Concurrency: Hub.fanout is called by one goroutine at a time per
// channel (the broker's order); the drainer is the only consumer; wait
// may be called from any goroutine. mu is never held across a fan-out
// (cond waits release it).
type fanoutQueue struct {
	mu      sync.Mutex
	next    queuedFanout // the publication being handed over, when has is set
	has     bool
	running bool       // a drainer runs (or is starting)
	changed *sync.Cond // on mu: broadcast when next is taken or the drainer exits
}

type queuedFanout struct {
	offset uint64
	frame  []byte
}

func newFanoutQueue() *fanoutQueue {
	q := &fanoutQueue{}
	q.changed = sync.NewCond(&q.mu)
	return q
}

// fanout delivers one publication's frame to hc's subscribers: inline for
// a small channel whose queue is idle, else handed over to the channel's
// drainer, returning once that fan-out has begun. Called one publication
// at a time per channel, in offset order.
func (h *Hub) fanout(hc *hubChannel, offset uint64, frame []byte) {
	q := hc.fan.Load()
	if q == nil {
		if hc.count.Load() < fanoutAsyncMin {
			h.fanoutPublication(hc, offset, frame)
			return
		}
		// Only this call can make the queue (one publication at a
		// time per channel); WaitFanouts reads it concurrently.
		q = newFanoutQueue()
		hc.fan.Store(q)
	}
	q.mu.Lock()
	if !q.running && hc.count.Load() < fanoutAsyncMin {
		// No drainer runs, and only this caller could start one: the
		// inline fan-out overtakes nothing.
		q.mu.Unlock()
		h.fanoutPublication(hc, offset, frame)
		return
	}
	// The previous caller returned only once the drainer took its
	// publication, so the hand-over is free; the wait is a guard that
	// costs nothing, should two callers ever come for one channel at once.
	for q.has {
		q.changed.Wait()
	}
	q.next, q.has = queuedFanout{offset, frame}, true
	if !q.running {
		q.running = true
		go h.drainFanout(hc, q)
	}
	for q.has {
		q.changed.Wait()
	}
	q.mu.Unlock()
}

// drainFanout is a channel's drainer: it fans out each publication handed
// over, in order, and exits once none is, so an idle channel has no
// goroutine. The hub starts it; it stops by itself (nothing is handed over
// once the publishers stop).
func (h *Hub) drainFanout(hc *hubChannel, q *fanoutQueue) {
	for {
		q.mu.Lock()
		if !q.has {
			q.running = false
			q.changed.Broadcast()
			q.mu.Unlock()
			return
		}
		p := q.next
		q.next, q.has = queuedFanout{}, false // let the frame be collected
		q.changed.Broadcast()
		q.mu.Unlock()
		h.fanoutPublication(hc, p.offset, p.frame)
	}
}

// WaitFanouts waits until the publications accepted so far are handed to
// the subscribers of every channel, or ctx ends (its error); one arriving
// meanwhile may be waited for too. The server calls it at shutdown, after
// FlushTicks and before the connections are sent their close, so a large
// channel's last publications are not lost with a fan-out still under
// way. Safe for concurrent use.
func (h *Hub) WaitFanouts(ctx context.Context) error {
	for i := range h.shards {
		sh := &h.shards[i]
		var queues []*fanoutQueue
		sh.mu.RLock()
		for _, hc := range sh.channels {
			if q := hc.fan.Load(); q != nil {
				queues = append(queues, q)
			}
		}
		sh.mu.RUnlock()
		for _, q := range queues {
			if err := q.wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// wait returns once no drainer runs for q, or with ctx's error.
func (q *fanoutQueue) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.changed.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.running {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		q.changed.Wait()
	}
	return nil
}
