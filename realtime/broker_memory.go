package realtime

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

var _ Broker = (*MemoryBroker)(nil)

// memShards is the number of stream-map shards of a MemoryBroker.
const memShards = 64

// MemoryBroker is a Broker for a single node: publications go straight to
// this node's handler, and each channel keeps a ring of its last
// publications with a TTL. Its streams are lost when the process exits,
// so after a restart every channel has a new epoch and clients recovering
// an old position get recovered=false.
//
// Offsets start at 1 and grow by 1 per publication of a channel. A
// stream is created by the channel's first publish or subscribe, never by
// a read: history of a channel the broker does not hold answers offset 0
// in the epoch the stream will get when it is created, so that position
// stays valid, and keeps nothing (reads of never-seen channels would
// otherwise hold memory until the idle sweep). That epoch is a keyed hash
// of the channel name and the sweep generation, which Sweep advances
// before it forgets any stream: a re-created stream always gets a new
// epoch, and the key is random per broker, so a restart does too.
//
// Concurrency: all methods are safe for concurrent use. Publications of
// one channel are numbered and handed to the handler under that channel's
// ordering lock, so the handler sees them one at a time, in offset order.
type MemoryBroker struct {
	handler atomic.Pointer[BrokerHandler]
	control atomic.Pointer[ControlHandler] // broker_memory_control.go
	now     func() time.Time
	// newTicker makes StartSweeper's ticks (a time.Ticker; tests drive
	// their own with the clock of WithClock).
	newTicker func(time.Duration) (<-chan time.Time, func())
	idleTTL   time.Duration
	dedup     *dedupWindow
	seed      maphash.Seed
	// epochKey and gen derive epochs (see the type's doc). Sweep advances
	// gen before it deletes a stream, under that stream's shard lock, and
	// creators read it under theirs, so a stream made after its channel
	// was forgotten always sees the new generation.
	epochKey maphash.Seed
	gen      atomic.Uint64
	shards   [memShards]memShard
}

type memShard struct {
	mu      sync.Mutex
	streams map[string]*memStream
}

// memStream is one channel. order serializes publish+deliver so the
// handler sees publications in offset order; mu guards the fields and is
// held only briefly, never while calling the handler.
type memStream struct {
	order sync.Mutex

	mu         sync.RWMutex
	removed    bool // swept; callers holding the pointer must look again
	subscribed bool
	epoch      string
	top        uint64
	ring       []memEntry // circular, len(ring) == capacity
	head, n    int        // oldest entry and number of entries
	lastActive time.Time
}

type memEntry struct {
	pub     Publication
	expires time.Time
}

// MemoryBrokerOption configures a MemoryBroker.
type MemoryBrokerOption func(*MemoryBroker)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) MemoryBrokerOption {
	return func(b *MemoryBroker) { b.now = now }
}

// WithIdleTTL sets how long a channel with no subscribers and no kept
// history survives before Sweep forgets it (default 10 minutes).
func WithIdleTTL(d time.Duration) MemoryBrokerOption {
	return func(b *MemoryBroker) { b.idleTTL = d }
}

// WithIdempotencyWindow sets how long, and for how many keys at most, a
// PublishOnce key is remembered (default IdempotencyWindow and
// DefaultIdempotencyKeys).
func WithIdempotencyWindow(d time.Duration, keys int) MemoryBrokerOption {
	return func(b *MemoryBroker) { b.dedup = newDedupWindow(d, keys) }
}

// NewMemoryBroker makes an empty broker.
func NewMemoryBroker(opts ...MemoryBrokerOption) *MemoryBroker {
	b := &MemoryBroker{now: time.Now, newTicker: realTicker, idleTTL: 10 * time.Minute, seed: maphash.MakeSeed(),
		epochKey: maphash.MakeSeed(), dedup: newDedupWindow(IdempotencyWindow, DefaultIdempotencyKeys)}
	for i := range b.shards {
		b.shards[i].streams = make(map[string]*memStream)
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// SetHandler implements Broker.
func (b *MemoryBroker) SetHandler(h BrokerHandler) { b.handler.Store(&h) }

func (b *MemoryBroker) getHandler() BrokerHandler {
	if p := b.handler.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *MemoryBroker) shard(channel string) *memShard {
	return &b.shards[maphash.String(b.seed, channel)%memShards]
}

// stream returns the channel's stream, creating it when create is set.
func (b *MemoryBroker) stream(channel string, create bool) *memStream {
	s, _ := b.streamOrEpoch(channel, create)
	return s
}

// streamOrEpoch returns the channel's stream, creating it when create is
// set; without one it returns the epoch the stream would be created
// with now. Both are decided under the shard lock, as Sweep forgets.
func (b *MemoryBroker) streamOrEpoch(channel string, create bool) (*memStream, string) {
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.streams[channel]
	if s != nil {
		return s, ""
	}
	epoch := b.epochFor(channel)
	if create {
		s = &memStream{epoch: epoch, lastActive: b.now()}
		sh.streams[channel] = s
	}
	return s, epoch
}

// epochFor is the epoch a stream of channel created now gets: 12 hex
// digits of a keyed hash of the name and the sweep generation.
func (b *MemoryBroker) epochFor(channel string) string {
	var h maphash.Hash
	h.SetSeed(b.epochKey)
	h.WriteString(channel)
	var g [8]byte
	binary.LittleEndian.PutUint64(g[:], b.gen.Load())
	h.Write(g[:])
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], h.Sum64())
	return hex.EncodeToString(out[2:])
}

func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand docs)
	return hex.EncodeToString(b[:])
}

// Publish implements Broker. data and info must not be modified afterwards.
func (b *MemoryBroker) Publish(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions) (StreamPosition, error) {
	pos, _, err := b.PublishOnce(ctx, channel, data, info, opts, "")
	return pos, err
}

// PublishOnce implements Broker. Keys are remembered in memory, bounded
// in time and count (WithIdempotencyWindow); the check and the publish
// happen under the channel's ordering lock, so concurrent repeats of a
// key publish once.
func (b *MemoryBroker) PublishOnce(_ context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions, key string) (StreamPosition, bool, error) {
	if info != nil {
		c := *info
		info = &c
	}
	for {
		s := b.stream(channel, true)
		s.order.Lock()
		s.mu.Lock()
		if s.removed {
			s.mu.Unlock()
			s.order.Unlock()
			continue
		}
		now := b.now()
		if key != "" {
			if pos, ok := b.dedup.get(channel, key, now); ok {
				s.mu.Unlock()
				s.order.Unlock()
				return pos, true, nil
			}
		}
		s.top++
		pub := Publication{Offset: s.top, Data: data, Info: info, Priority: opts.Priority}
		s.appendPub(pub, now, opts)
		s.lastActive = now
		pos := StreamPosition{Offset: s.top, Epoch: s.epoch}
		subscribed := s.subscribed
		s.mu.Unlock()
		if key != "" {
			b.dedup.put(channel, key, pos, now)
		}
		if h := b.getHandler(); subscribed && h != nil {
			h.HandlePublication(channel, pub)
		}
		s.order.Unlock()
		return pos, false, nil
	}
}

// appendPub stores pub in the ring, resizing it to opts.HistorySize.
// Called with s.mu held.
func (s *memStream) appendPub(pub Publication, now time.Time, opts PublishOptions) {
	size := opts.HistorySize
	if size <= 0 {
		s.ring, s.head, s.n = nil, 0, 0
		return
	}
	if len(s.ring) != size {
		s.resize(size)
	}
	e := memEntry{pub: pub, expires: now.Add(opts.HistoryTTL)}
	if s.n == size {
		s.ring[s.head] = e
		s.head = (s.head + 1) % size
	} else {
		s.ring[(s.head+s.n)%size] = e
		s.n++
	}
	s.expire(now)
}

func (s *memStream) resize(size int) {
	keep := min(s.n, size)
	ring := make([]memEntry, size)
	for i := 0; i < keep; i++ {
		ring[i] = s.ring[(s.head+s.n-keep+i)%len(s.ring)]
	}
	s.ring, s.head, s.n = ring, 0, keep
}

// expire drops expired entries from the oldest end. Called with s.mu held.
func (s *memStream) expire(now time.Time) {
	for s.n > 0 && !now.Before(s.ring[s.head].expires) {
		s.ring[s.head] = memEntry{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
}

// live returns the kept, unexpired entries in offset order (a view of
// indexes: first and count). Called with s.mu held (read is enough).
func (s *memStream) live(now time.Time) (first, count int) {
	first, count = s.head, s.n
	for count > 0 && !now.Before(s.ring[first].expires) {
		first = (first + 1) % len(s.ring)
		count--
	}
	return first, count
}

// PublishJoin implements Broker.
func (b *MemoryBroker) PublishJoin(_ context.Context, channel string, info ClientInfo) error {
	b.event(channel, func(h BrokerHandler) { h.HandleJoin(channel, info) })
	return nil
}

// PublishLeave implements Broker.
func (b *MemoryBroker) PublishLeave(_ context.Context, channel string, info ClientInfo) error {
	b.event(channel, func(h BrokerHandler) { h.HandleLeave(channel, info) })
	return nil
}

func (b *MemoryBroker) event(channel string, deliver func(BrokerHandler)) {
	s := b.stream(channel, false)
	if s == nil {
		return // nobody subscribed, nothing kept: nobody to tell
	}
	s.order.Lock()
	defer s.order.Unlock()
	s.mu.RLock()
	ok := s.subscribed && !s.removed
	s.mu.RUnlock()
	if h := b.getHandler(); ok && h != nil {
		deliver(h)
	}
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(_ context.Context, channel string) error {
	for {
		s := b.stream(channel, true)
		s.mu.Lock()
		if s.removed {
			s.mu.Unlock()
			continue
		}
		s.subscribed = true
		s.lastActive = b.now()
		s.mu.Unlock()
		return nil
	}
}

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(_ context.Context, channel string) error {
	if s := b.stream(channel, false); s != nil {
		s.mu.Lock()
		s.subscribed = false
		s.lastActive = b.now()
		s.mu.Unlock()
	}
	return nil
}

// History implements Broker. A channel the broker does not hold is read
// as an empty stream in the epoch it would be created with, and is not
// created.
func (b *MemoryBroker) History(_ context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	for {
		s, epoch := b.streamOrEpoch(channel, false)
		if s == nil {
			empty := memStream{epoch: epoch}
			return empty.history(b.now(), req), nil
		}
		s.mu.RLock()
		if s.removed {
			s.mu.RUnlock()
			continue
		}
		res := s.history(b.now(), req)
		s.mu.RUnlock()
		return res, nil
	}
}

// history implements the selection and recovery rules of HistoryRequest.
// Called with s.mu held for reading.
func (s *memStream) history(now time.Time, req HistoryRequest) HistoryResult {
	res := HistoryResult{Position: StreamPosition{Offset: s.top, Epoch: s.epoch}}
	var first, count int
	if len(s.ring) > 0 {
		first, count = s.live(now)
	}
	// Offsets in the ring are consecutive: the newest is s.top.
	oldest := s.top - uint64(count) + 1
	at := func(i int) Publication { return s.ring[(first+i)%len(s.ring)].pub }
	collect := func(from, n int) []Publication {
		out := make([]Publication, n)
		for i := range out {
			out[i] = at(from + i)
		}
		return out
	}

	if req.Since == nil {
		n := count
		if req.Limit >= 0 {
			n = min(n, req.Limit)
		}
		if n > 0 {
			res.Publications = collect(count-n, n)
		}
		return res
	}

	since := *req.Since
	switch {
	case since.Epoch != "" && since.Epoch != s.epoch:
		return res // another stream: nothing after since can be known
	case since.Offset > s.top:
		return res // from the future: this stream lost data
	case since.Offset == s.top:
		res.Recovered = true
		return res
	case since.Offset+1 < oldest:
		return res // the gap is older than what is kept
	}
	missing := int(s.top - since.Offset)
	n := missing
	if req.Limit >= 0 {
		n = min(n, req.Limit)
	}
	res.Recovered = n == missing
	if n > 0 {
		res.Publications = collect(int(since.Offset+1-oldest), n)
	}
	return res
}

// Sweep forgets channels that have no subscriber, no unexpired history
// and no activity for the idle TTL, and drops expired entries elsewhere.
// Call it periodically (StartSweeper does).
func (b *MemoryBroker) Sweep() {
	now := b.now()
	advanced := false
	b.dedup.sweep(now)
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for name, s := range sh.streams {
			s.mu.Lock()
			if len(s.ring) > 0 {
				s.expire(now)
			}
			if !s.subscribed && s.n == 0 && now.Sub(s.lastActive) >= b.idleTTL {
				// A new generation before the first stream is forgotten:
				// its next stream must not get its old epoch back.
				if !advanced {
					b.gen.Add(1)
					advanced = true
				}
				s.removed = true
				delete(sh.streams, name)
			}
			s.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// StartSweeper runs Sweep every interval on its own goroutine until stop
// is called; stop waits for that goroutine to end.
func (b *MemoryBroker) StartSweeper(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	ticks, stopTicks := b.newTicker(interval)
	go func() {
		defer close(finished)
		defer stopTicks()
		for {
			select {
			case <-done:
				return
			case <-ticks:
				b.Sweep()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-finished
	}
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Len is the number of channel streams the broker currently keeps.
func (b *MemoryBroker) Len() int {
	n := 0
	for i := range b.shards {
		b.shards[i].mu.Lock()
		n += len(b.shards[i].streams)
		b.shards[i].mu.Unlock()
	}
	return n
}
