package realtime

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// Flow control for flooded channels (NamespaceOptions.FlowTick): a
// channel's publications are gathered for one tick and go out as one
// tick frame, encoded once, the same bytes for every subscriber. A
// subscriber's writes are then bounded by the tick rate, not by the
// publication rate: V viewers of C publications/s cost V x ticks/s
// writes instead of V x C. Past the namespace's budget a tick is sampled
// (flow_sampler.go), and the frame says how many the tick had and how
// many it shows.
//
// A subscriber whose socket cannot take a frame (its queue still holds
// something: Backlogger) skips the tick; the next frame it can take is
// built for it alone, with the priority publications of the ticks it
// skipped and how many others it missed. Nothing is queued for it in the
// meantime, so a slow viewer costs no memory and is never disconnected.
//
// Each node ticks for its own subscribers, on the publications the
// broker brings it: with NATS a node's work grows with its own viewers,
// not with every node's.

const (
	// DefaultFlowBudget is how many publications a tick frame shows when
	// a flow-controlled namespace does not say.
	DefaultFlowBudget = 5

	minFlowTick   = 10 * time.Millisecond
	maxFlowTick   = 10 * time.Second
	maxFlowBudget = 1000

	// flowMaxPending bounds the publications one tick keeps; more are
	// counted in the tick's total but not kept (priority ones always
	// are), so a flood costs bounded memory between two ticks.
	flowMaxPending = 10_000
	// flowMaxCarried bounds the priority publications kept for a viewer
	// that skips ticks; more count as missed.
	flowMaxCarried = 64
	// flowFanoutChunk is the fewest viewers worth a goroutine of their
	// own in a tick's fan-out. A tick is one write per viewer 10 times a
	// second, so the split costs little CPU, and the last viewer of a
	// 5,000-viewer room waits for every write before it (measured: 100 ms
	// on one core of the benchmark machine, which pushed p99 past 300 ms).
	// It stays at what issue #11's live-room benchmark measured: the
	// publications' fanoutChunk (256) was lowered later on plain
	// channels' measurements only, and live rooms were not measured again
	// with a lower value.
	flowFanoutChunk = 1024
)

func (o NamespaceOptions) flowBudget() int {
	if o.FlowBudget > 0 {
		return o.FlowBudget
	}
	return DefaultFlowBudget
}

// Backlogger is a Subscriber that can tell whether its send queue still
// holds something not yet written to the socket. Flow-controlled channels
// skip a tick for a subscriber that is backlogged instead of queueing a
// stale frame behind the others. A Subscriber without it is never
// considered backlogged (its queue's slow-consumer policy applies).
//
// Concurrency: Backlogged is called from the channel's tick goroutine,
// concurrently with Enqueue; it must not block.
type Backlogger interface {
	Backlogged() bool
}

// flowQueue is one flow-controlled channel's publications waiting for
// their tick. Its timer runs only while publications wait or a viewer is
// owed a frame, so a quiet channel costs nothing; the channel stops it
// when it goes (close).
//
// Concurrency: mu guards pending, overflow, armed, stop and closed.
// armed stays set from the moment a timer starts until its flush is done,
// so two flushes of one channel never overlap; sampler, lagging and the
// subscriptions' lag are touched only by that one flush.
type flowQueue struct {
	tick time.Duration

	mu       sync.Mutex
	pending  []Publication
	overflow int // publications counted but not kept (flowMaxPending)
	armed    bool
	stop     func() bool
	closed   bool

	sampler flowSampler
	lagging []*Subscription // viewers owed a frame
}

// flowLag is what a viewer that skipped ticks is owed.
type flowLag struct {
	missed  int
	carried []Publication // priority publications of the skipped ticks
}

func newFlowQueue(o NamespaceOptions) *flowQueue {
	if o.FlowTick <= 0 {
		return nil
	}
	return &flowQueue{tick: o.FlowTick, sampler: newFlowSampler(o.flowBudget())}
}

// close stops the timer and drops what is pending: the channel has no
// subscriber left here. A nil queue (no flow control) does nothing.
func (q *flowQueue) close() {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.pending = nil
	if q.armed && q.stop != nil {
		q.stop()
	}
}

// queueFlow keeps pub for hc's next tick, starting the tick if none runs.
func (h *Hub) queueFlow(hc *hubChannel, pub Publication) {
	q := hc.flow
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.pending) >= flowMaxPending && !pub.Priority {
		q.overflow++
	} else {
		q.pending = append(q.pending, pub)
	}
	h.armFlow(hc)
}

// armFlow starts hc's tick unless one is under way; q.mu is held.
func (h *Hub) armFlow(hc *hubChannel) {
	q := hc.flow
	if q.armed {
		return
	}
	q.armed = true
	q.stop = h.after(q.tick, func() { h.flushFlow(hc) })
}

// flushFlow is a channel's tick: it sends what gathered, and starts the
// next tick only if more came meanwhile or a viewer is still owed a frame.
// The next tick is due one tick after this one began, not after it
// ended, so a long fan-out does not stretch the ticks (and the wait).
func (h *Hub) flushFlow(hc *hubChannel) {
	began := time.Now()
	q := hc.flow
	q.mu.Lock()
	pubs, total := q.pending, len(q.pending)+q.overflow
	q.pending, q.overflow = nil, 0
	q.mu.Unlock()

	h.flowTick(hc, pubs, total)

	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = false
	if !q.closed && (len(q.pending) > 0 || q.overflow > 0 || len(q.lagging) > 0) {
		q.armed = true
		q.stop = h.after(max(q.tick-time.Since(began), 0), func() { h.flushFlow(hc) })
	}
}

// flowTick samples one tick's publications and delivers the frame: the
// shared bytes to every viewer that can take them, a frame of its own to
// a viewer owed one (it skipped earlier ticks) once it can. A tick with
// nothing new (total 0) visits only the viewers owed a frame.
func (h *Hub) flowTick(hc *hubChannel, pubs []Publication, total int) {
	q := hc.flow
	var shown []Publication
	var shared *SharedFrame
	subs := q.lagging
	if total > 0 {
		shown = q.sampler.sample(pubs)
		shared = hc.nextFrame(protocol.EncodeTick(hc.name, total, 0, shown))
		subs = hc.snapshot()
	}
	parts := min(runtime.GOMAXPROCS(0), len(subs)/flowFanoutChunk)
	if parts <= 1 {
		n, lagging := deliverTickAll(subs, shared, shown, total)
		q.lagging = lagging
		h.stats.deliveries.Add(n)
		return
	}
	// Split among the cores as fanoutTo does; each viewer is in one part,
	// so its lag is still touched by one goroutine. Waiting for every
	// part keeps the ticks of a channel in order.
	per := (len(subs) + parts - 1) / parts
	type result struct {
		n       uint64
		lagging []*Subscription
	}
	chunks := slices.Collect(slices.Chunk(subs, per))
	results := make([]result, len(chunks))
	var wg sync.WaitGroup
	for i, part := range chunks[1:] {
		wg.Go(func() {
			n, l := deliverTickAll(part, shared, shown, total)
			results[i+1] = result{n, l}
		})
	}
	n0, l0 := deliverTickAll(chunks[0], shared, shown, total)
	results[0] = result{n0, l0}
	wg.Wait()
	var n uint64
	q.lagging = nil
	for _, r := range results {
		n += r.n
		q.lagging = append(q.lagging, r.lagging...)
	}
	h.stats.deliveries.Add(n)
}

// deliverTickAll hands one tick to every subscription of subs, and
// returns how many were delivered and which are owed a frame.
func deliverTickAll(subs []*Subscription, shared *SharedFrame, shown []Publication, total int) (n uint64, lagging []*Subscription) {
	for _, s := range subs {
		delivered, owed := s.deliverTick(shared, shown, total)
		if delivered {
			n++
		}
		if owed {
			lagging = append(lagging, s)
		}
	}
	return n, lagging
}

// deliverTick hands one tick to s: shared (nil when the tick had
// nothing) if s is owed nothing, a frame of its own if it is. A
// backlogged s gets nothing and is owed what the tick showed: its
// priority publications (up to flowMaxCarried), the count of the others.
// owed says s still waits for a frame. Called by the channel's tick only.
func (s *Subscription) deliverTick(shared *SharedFrame, shown []Publication, total int) (delivered, owed bool) {
	if !s.active.Load() {
		s.lag = nil
		return false, false
	}
	if s.backlog != nil && s.backlog.Backlogged() {
		if total == 0 {
			return false, s.lag != nil
		}
		lag := s.lag
		if lag == nil {
			lag = &flowLag{}
			s.lag = lag
		}
		for i := range shown {
			if shown[i].Priority && len(lag.carried) < flowMaxCarried {
				lag.carried = append(lag.carried, shown[i])
			} else {
				lag.missed++
			}
		}
		return false, true
	}
	if lag := s.lag; lag != nil {
		s.lag = nil
		pubs := append(lag.carried, shown...)
		return s.deliver(0, NewSharedFrame(protocol.EncodeTick(s.name, total, lag.missed, pubs))), false
	}
	if shared == nil {
		return false, false
	}
	return s.deliver(0, shared), false
}

// echoOwn sends a client its own publication of a flow-controlled
// channel at once, as a publication push, whether or not the channel's
// next tick shows it (the tick may show it again: same offset). Only to
// a client subscribed to the channel; never dropped, like a reply.
func (c *Client) echoOwn(channel string, pos StreamPosition, data []byte, info *ClientInfo) {
	if c.subscription(channel) == nil {
		return
	}
	c.reply(protocol.EncodePublication(channel, Publication{Offset: pos.Offset, Data: data, Info: info}))
}

// FlushTicks sends every flow-controlled channel's waiting tick now
// instead of at its time. The server calls it at shutdown, before the
// connections are sent their close, so that publications it accepted are
// not lost with a tick that never came. A tick whose timer is firing
// already goes out by itself. Safe for concurrent use.
func (h *Hub) FlushTicks() {
	for i := range h.shards {
		sh := &h.shards[i]
		var flows []*hubChannel
		sh.mu.RLock()
		for _, hc := range sh.channels {
			if hc.flow != nil {
				flows = append(flows, hc)
			}
		}
		sh.mu.RUnlock()
		for _, hc := range flows {
			q := hc.flow
			q.mu.Lock()
			// stop reports whether it stopped the timer before it fired:
			// then this call owns the flush (armed stays set meanwhile).
			own := q.armed && !q.closed && q.stop != nil && q.stop()
			q.mu.Unlock()
			if own {
				h.flushFlow(hc)
			}
		}
	}
}
