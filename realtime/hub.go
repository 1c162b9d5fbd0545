package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// hubShards is the number of channel-map shards.
const hubShards = 64

// DefaultMaxRecover caps the publications one subscribe may recover.
const DefaultMaxRecover = 300

// TokenVerifier checks a client's token and returns the identity it carries. It must
// be safe for concurrent use. See TokenVerifierHS256.
type TokenVerifier func(token string) (Identity, error)

// HubConfig configures a Hub. Zero fields get defaults.
type HubConfig struct {
	// Namespaces are the namespaces channels may be in; required.
	Namespaces Namespaces
	// Broker defaults to a new MemoryBroker.
	Broker Broker
	// Presence defaults to a new MemoryPresence.
	Presence PresenceStore
	// VerifyToken authenticates connect commands with a token; when nil,
	// such commands are answered unauthorized.
	VerifyToken TokenVerifier
	// MaxRecover caps the publications recovered by one subscribe
	// (default DefaultMaxRecover); a longer gap gives recovered=false.
	MaxRecover int
	// NodeID prefixes this node's client ids, which must be unique across
	// the cluster; default random.
	NodeID string
	// GuestNamePrefix and UserNamePrefix, followed by the client id,
	// name a guest or a user who gave no display name (defaults
	// DefaultGuestNamePrefix and DefaultUserNamePrefix).
	GuestNamePrefix string
	UserNamePrefix  string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Hooks are the backend hooks (nil fields: off); a namespace that
	// enables the subscribe or publish hook needs it here.
	Hooks Hooks
	// HookTimeout bounds every hook call (default DefaultHookTimeout).
	HookTimeout time.Duration
	// Control configures the server API's control of connections
	// (control.go).
	Control ControlConfig
}

// Hub is the local fan-out of one node: which connections are subscribed
// to which channels here, and delivery of what the broker brings.
//
// Concurrency: every exported method may be called from any goroutine.
// Channels are kept in 64 shards (by hash of name) under RWMutexes held
// only for map access. Each channel keeps an immutable snapshot of its
// subscribers; a publication is encoded once and the same bytes are
// handed to every subscriber of the snapshot with no lock held. Per
// channel, deliveries happen in offset order because the broker calls the
// handler sequentially per channel.
type Hub struct {
	ns         Namespaces
	broker     Broker
	presence   PresenceStore
	verify     TokenVerifier
	maxRecover int
	log        *slog.Logger
	nodeID     string

	guestNamePrefix, userNamePrefix string

	seed   maphash.Seed
	shards [hubShards]hubShard

	// nsOpts are ns by pointer, which every subscription of a namespace
	// shares; limits holds one *ClientLimits per distinct value, which
	// every client with those limits shares (sharedLimits).
	nsOpts     map[string]*NamespaceOptions
	limits     sync.Map                     // ClientLimits → *ClientLimits
	lastLimits atomic.Pointer[ClientLimits] // the last sharedLimits answer

	// after starts a channel's join/leave tick (time.AfterFunc; tests
	// fire their own) and returns what stops it.
	after func(d time.Duration, f func()) (stop func() bool)

	stats hubStats

	hooks *hubHooks
	users userIndex  // this node's clients by user id (control_index.go)
	ctl   hubControl // control.go
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]*hubChannel
}

// hubChannel is one channel with local subscribers. mu guards subs,
// removed and brokerSubscribed, and orders membership changes with the
// broker's Subscribe/Unsubscribe; deliveries read snap without locking.
type hubChannel struct {
	name string

	mu               sync.Mutex
	subs             map[*Subscription]struct{}
	removed          bool // dropped from the shard map; look again
	brokerSubscribed bool

	dirty atomic.Bool // subs changed since snap was built
	snap  atomic.Pointer[[]*Subscription]
	count atomic.Int64

	presence atomic.Pointer[presenceList] // the encoded member list, while current

	events joinLeaveQueue // join/leave events waiting for their tick

	flow *flowQueue // publications waiting for their tick; nil without flow control

	fan atomic.Pointer[fanoutQueue] // made once the channel is large (hub_fanout.go)

	// last is the channel's last publication fanned out, which the next
	// one follows (frame_follow.go); kept only while the channel has
	// followMinSubscribers.
	last atomic.Pointer[followed]
}

type hubStats struct {
	publications atomic.Uint64
	deliveries   atomic.Uint64
	dropped      atomic.Uint64
	refused      atomic.Uint64
}

// HubStats are counters since the hub was made, for metrics.
type HubStats struct {
	// Publications is the number of publications fanned out locally.
	Publications uint64
	// Deliveries is the number of frames enqueued to subscribers.
	Deliveries uint64
	// Dropped is the number of frames dropped by drop-oldest queues.
	Dropped uint64
	// Refused is the number of enqueues refused (full queue under the
	// disconnect policy, or a closing connection).
	Refused uint64
}

var _ BrokerHandler = (*Hub)(nil)

// NewHub makes a hub and registers it as cfg.Broker's handler.
func NewHub(cfg HubConfig) (*Hub, error) {
	if len(cfg.Namespaces) == 0 {
		return nil, errors.New("no namespaces: a hub needs at least one")
	}
	if err := cfg.Namespaces.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Namespaces.checkHooks(cfg.Hooks); err != nil {
		return nil, err
	}
	if cfg.Broker == nil {
		cfg.Broker = NewMemoryBroker()
	}
	if cfg.Presence == nil {
		cfg.Presence = NewMemoryPresence()
	}
	if cfg.MaxRecover <= 0 {
		cfg.MaxRecover = DefaultMaxRecover
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = randomNodeID()
	}
	if cfg.GuestNamePrefix == "" {
		cfg.GuestNamePrefix = DefaultGuestNamePrefix
	}
	if cfg.UserNamePrefix == "" {
		cfg.UserNamePrefix = DefaultUserNamePrefix
	}
	h := &Hub{
		ns: cfg.Namespaces, broker: cfg.Broker, presence: cfg.Presence,
		verify: cfg.VerifyToken, maxRecover: cfg.MaxRecover, log: cfg.Logger, nodeID: cfg.NodeID,
		seed: maphash.MakeSeed(), after: afterFunc,
		guestNamePrefix: cfg.GuestNamePrefix, userNamePrefix: cfg.UserNamePrefix,
		hooks: newHubHooks(cfg.Hooks, cfg.HookTimeout),
	}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*hubChannel)
	}
	h.nsOpts = make(map[string]*NamespaceOptions, len(h.ns))
	for name, o := range h.ns {
		h.nsOpts[name] = &o
	}
	h.broker.SetHandler(h)
	if err := h.initControl(cfg.Control); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return h, nil
}

// Namespaces returns the hub's namespaces (do not modify).
func (h *Hub) Namespaces() Namespaces { return h.ns }

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Publications: h.stats.publications.Load(),
		Deliveries:   h.stats.deliveries.Load(),
		Dropped:      h.stats.dropped.Load(),
		Refused:      h.stats.refused.Load(),
	}
}

// sharedLimits returns the one *ClientLimits the hub keeps for the value
// l, so that clients share their limits instead of carrying a copy each.
// There are as many as distinct values (one per route in the server).
func (h *Hub) sharedLimits(l ClientLimits) *ClientLimits {
	// The usual case, without boxing l into the map's key (garbage per
	// connection): the same limits as the last client's.
	if p := h.lastLimits.Load(); p != nil && *p == l {
		return p
	}
	p, _ := h.limits.LoadOrStore(l, &l)
	shared := p.(*ClientLimits)
	h.lastLimits.Store(shared)
	return shared
}

func (h *Hub) shard(name string) *hubShard {
	return &h.shards[maphash.String(h.seed, name)%hubShards]
}

func (h *Hub) lookup(name string) *hubChannel {
	sh := h.shard(name)
	sh.mu.RLock()
	hc := sh.channels[name]
	sh.mu.RUnlock()
	return hc
}

func (h *Hub) getOrCreate(name string, o NamespaceOptions) *hubChannel {
	if hc := h.lookup(name); hc != nil {
		return hc
	}
	sh := h.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	hc := sh.channels[name]
	if hc == nil {
		hc = &hubChannel{name: name, subs: make(map[*Subscription]struct{}), flow: newFlowQueue(o)}
		hc.snap.Store(&[]*Subscription{})
		sh.channels[name] = hc
	}
	return hc
}

// forget drops hc from its shard, and its pending join/leave events
// with it. Called with hc.mu held.
func (h *Hub) forget(hc *hubChannel) {
	hc.removed = true
	hc.events.close()
	hc.flow.close()
	sh := h.shard(hc.name)
	sh.mu.Lock()
	if sh.channels[hc.name] == hc {
		delete(sh.channels, hc.name)
	}
	sh.mu.Unlock()
}

// snapshot returns the current subscribers, rebuilding the immutable
// slice if membership changed since it was last built. Rebuilding once
// per publication (not per subscribe) makes subscribe storms cheap.
func (hc *hubChannel) snapshot() []*Subscription {
	if hc.dirty.Load() {
		hc.mu.Lock()
		if hc.dirty.Load() {
			list := make([]*Subscription, 0, len(hc.subs))
			for s := range hc.subs {
				list = append(list, s)
			}
			hc.snap.Store(&list)
			hc.dirty.Store(false)
		}
		hc.mu.Unlock()
	}
	return *hc.snap.Load()
}

// send enqueues one frame to one subscriber. The transport tells the
// client how many droppable frames it lost (Subscriber.Enqueue); here
// they are only counted.
func (h *Hub) send(sub Subscriber, frame *SharedFrame, policy SlowPolicy) bool {
	dropped, ok := sub.Enqueue(frame, policy)
	if !ok {
		h.stats.refused.Add(1)
	}
	if dropped > 0 {
		h.stats.dropped.Add(uint64(dropped))
	}
	return ok
}

// fanoutPublication delivers a publication's encoded frame to hc's
// subscribers, as the frame that follows the channel's previous
// publication.
func (h *Hub) fanoutPublication(hc *hubChannel, offset uint64, encoded []byte) {
	h.fanoutTo(hc, offset, hc.nextFrame(encoded))
}

// fanoutTo delivers frame to hc's subscribers. Publications of a channel
// come from the broker one at a time; join/leave frames come from the
// channel's tick, never two at once (joinLeaveQueue), but possibly while a
// publication is fanned out: Subscription.deliver allows that.
func (h *Hub) fanoutTo(hc *hubChannel, offset uint64, frame *SharedFrame) {
	subs := hc.snapshot()
	workers := min(runtime.GOMAXPROCS(0), len(subs)/fanoutChunk)
	if workers <= 1 {
		h.stats.deliveries.Add(deliverAll(subs, offset, frame))
		return
	}
	// A delivery to an idle client is a write system call on this
	// goroutine, so a large channel is split among the cores. Waiting for
	// every part before returning keeps each subscriber's order: the next
	// publication of the channel is not fanned out before this one is.
	var wg sync.WaitGroup
	var n atomic.Uint64
	per := (len(subs) + workers - 1) / workers
	for part := range slices.Chunk(subs[per:], per) {
		wg.Go(func() { n.Add(deliverAll(part, offset, frame)) })
	}
	n.Add(deliverAll(subs[:per], offset, frame))
	wg.Wait()
	h.stats.deliveries.Add(n.Load())
}

// fanoutChunk is the fewest subscribers worth a goroutine of their own in
// a fan-out: from twice as many, a fan-out is split among the cores, in
// min(GOMAXPROCS, subscribers / fanoutChunk) parts. A channel of 1,000 is
// then split in two on a 2-core machine, and its last subscriber no longer
// waits for all of its ~7 ms of writes, nor for all of the previous
// publication's before its own began. One goroutine woken per
// publication is little beside hundreds of writes: interleaved at
// 1,000 x 100/s against no split below 8,192, CPU per delivery did not
// rise while p99 fell (docs/benchmarks.md, session 7; session 5 had
// measured 7% more CPU for this split, before hub_fanout.go's hand-over).
const fanoutChunk = 256

// deliverAll delivers frame to every subscription in subs, in order, and
// counts the deliveries. It goes prefetchGroup subscriptions at a time,
// reading ahead what their deliveries will read (the subscription, and
// the subscriber's state: Prefetcher) before it delivers to each.
func deliverAll(subs []*Subscription, offset uint64, frame *SharedFrame) (n uint64) {
	for len(subs) > 0 {
		group := subs[:min(len(subs), prefetchGroup)]
		subs = subs[len(group):]
		// Two passes, so that each one's loads are independent of one
		// another and overlap: the subscriptions first, then what their
		// subscribers point to.
		var ahead [prefetchGroup]Prefetcher
		for i, s := range group {
			if s.active.Load() {
				ahead[i] = s.ahead
			}
		}
		for _, p := range ahead[:len(group)] {
			if p != nil {
				p.Prefetch()
			}
		}
		for _, s := range group {
			if s.deliver(offset, frame) {
				n++
			}
		}
	}
	return n
}

// prefetchGroup is how many subscriptions a fan-out reads ahead at once:
// enough for their cache misses to overlap, few enough that what was read
// is still cached when its turn comes (every send in between runs the
// kernel's TCP path through the same caches).
const prefetchGroup = 16

// HandlePublication implements BrokerHandler: it encodes pub once and
// hands the bytes to every local subscriber of channel (on the channel's
// own goroutine for a large channel, hub_fanout.go), or, in a
// flow-controlled namespace, keeps it for the channel's next tick.
func (h *Hub) HandlePublication(channel string, pub Publication) {
	h.stats.publications.Add(1)
	hc := h.lookup(channel)
	if hc == nil {
		return
	}
	if hc.flow != nil {
		h.queueFlow(hc, pub)
		return
	}
	h.fanout(hc, pub.Offset, protocol.EncodePublication(channel, pub))
}

// SubscribeOptions are the details of one Hub.Subscribe.
type SubscribeOptions struct {
	// Info is the subscriber's identity for presence and join/leave;
	// Info.Client must be unique per connection (Client uses the
	// Subscriber's ID).
	Info ClientInfo
	// Recover, when set, asks for the publications after this position.
	Recover *StreamPosition
	// Latest, when > 0, asks for the newest Latest kept publications (at
	// most the namespace's HistorySize). With Recover, only when the gap
	// cannot be recovered.
	Latest int
	// OnReady, when set, is called once the subscription is registered and
	// its result known, before any push of the channel reaches the
	// subscriber: enqueue the subscribe reply here so it comes first.
	OnReady func(SubscribeResult)

	// sharedInfo, when set, is Info in memory that stays unchanged as long
	// as the subscription lasts (a Client's own), which the subscription
	// then points to instead of keeping a copy.
	sharedInfo *ClientInfo
}

// SubscribeResult is the outcome of Hub.Subscribe.
type SubscribeResult struct {
	// Position is the channel's position at subscribe time: every
	// publication after it will be delivered.
	Position StreamPosition
	// Recovered is true when Recover was asked and every publication after
	// it is in Publications (in offset order). When false, Publications is
	// empty and the client must reload, unless Latest was asked: then
	// Publications holds the newest Latest kept ones (fewer when fewer are
	// kept), in offset order, the last at Position.
	Recovered    bool
	Publications []Publication
}

// Subscribe adds sub to channel. The first local subscriber of a channel
// subscribes the node to it at the broker. Permission checks are the
// caller's (Client does them); the hub checks only the name.
//
// Errors: bad_channel (name or namespace), bad_request (Latest below 0,
// above the namespace's history size, or in a namespace without history),
// unavailable (broker/presence).
func (h *Hub) Subscribe(ctx context.Context, sub Subscriber, channel string, opts SubscribeOptions) (*Subscription, SubscribeResult, error) {
	ch, nsOpts, err := h.ns.Lookup(channel)
	if err != nil {
		return nil, SubscribeResult{}, err
	}
	if err := checkLatest(opts.Latest, nsOpts); err != nil {
		return nil, SubscribeResult{}, err
	}
	info := opts.sharedInfo
	if info == nil {
		info = new(ClientInfo)
		*info = opts.Info
	}
	s := &Subscription{hub: h, name: ch.Name, opts: h.nsOpts[ch.Namespace], policy: nsOpts.SlowPolicy, sub: sub, info: info}
	s.ahead, _ = sub.(Prefetcher)
	if nsOpts.FlowTick > 0 {
		// A flow-controlled channel never disconnects a slow viewer: it
		// skips ticks for it (flow.go), which needs to see its backlog.
		s.policy = PolicyDropOldest
		s.backlog, _ = sub.(Backlogger)
	}
	s.active.Store(true)
	s.buffering.Store(true)

	for {
		hc := h.getOrCreate(ch.Name, nsOpts)
		hc.mu.Lock()
		if hc.removed {
			hc.mu.Unlock()
			continue
		}
		if !hc.brokerSubscribed {
			if err := h.broker.Subscribe(ctx, ch.Name); err != nil {
				if len(hc.subs) == 0 {
					h.forget(hc)
				}
				hc.mu.Unlock()
				return nil, SubscribeResult{}, h.unavailable("subscribe", ch.Name, err)
			}
			hc.brokerSubscribed = true
		}
		hc.subs[s] = struct{}{}
		hc.count.Add(1)
		hc.dirty.Store(true)
		s.hc = hc
		s.name = hc.name // one string per channel, not one per subscription
		hc.mu.Unlock()
		break
	}

	// The subscription is in place: from here every new publication is
	// parked in s. The position read now splits what the reply covers
	// from what the pushes will.
	hist, err := h.subscribeHistory(ctx, ch.Name, opts)
	if err != nil {
		h.unsubscribe(ctx, s, false)
		return nil, SubscribeResult{}, h.unavailable("history", ch.Name, err)
	}
	if nsOpts.Presence != PresenceOff {
		if err := h.presence.Add(ctx, ch.Name, opts.Info); err != nil {
			h.unsubscribe(ctx, s, false)
			return nil, SubscribeResult{}, h.unavailable("presence", ch.Name, err)
		}
	}
	res := SubscribeResult{Position: hist.Position, Recovered: opts.Recover != nil && hist.Recovered}
	if res.Recovered || opts.Latest > 0 {
		res.Publications = hist.Publications
	}
	// The join goes out while s is still parked, so the subscriber's own
	// join follows its reply like every other push.
	if nsOpts.JoinLeave {
		if err := h.broker.PublishJoin(ctx, ch.Name, opts.Info); err != nil {
			h.log.Warn("publishing join failed", "channel", ch.Name, "err", err)
		}
	}
	// The reply and the parked pushes are enqueued in one step: once the
	// client can see the reply, everything published before it acted on
	// the reply is already queued (so a close right after cannot drop it).
	s.start(hist.Position.Offset, func() {
		if opts.OnReady != nil {
			opts.OnReady(res)
		}
	})
	return s, res, nil
}

// Unsubscribe ends s: no more deliveries (a publication already being
// fanned out may still arrive), presence removed, leave pushed where the
// namespace wants it. The last local subscriber unsubscribes the node at
// the broker. Calling it again does nothing.
func (h *Hub) Unsubscribe(ctx context.Context, s *Subscription) {
	h.unsubscribe(ctx, s, true)
}

func (h *Hub) unsubscribe(ctx context.Context, s *Subscription, started bool) {
	if s == nil || !s.ended.CompareAndSwap(false, true) {
		return
	}
	s.active.Store(false)
	hc := s.hc
	hc.mu.Lock()
	delete(hc.subs, s)
	hc.count.Add(-1)
	hc.dirty.Store(true)
	if len(hc.subs) == 0 {
		if hc.brokerSubscribed {
			if err := h.broker.Unsubscribe(ctx, hc.name); err != nil {
				h.log.Warn("broker unsubscribe failed", "channel", hc.name, "err", err)
			}
			hc.brokerSubscribed = false
		}
		h.forget(hc)
	}
	hc.mu.Unlock()
	s.mu.Lock()
	s.buf = nil
	s.mu.Unlock()

	if s.opts.Presence != PresenceOff {
		if err := h.presence.Remove(ctx, s.name, s.info.Client); err != nil {
			h.log.Warn("presence remove failed", "channel", s.name, "err", err)
		}
	}
	if started && s.opts.JoinLeave {
		if err := h.broker.PublishLeave(ctx, s.name, *s.info); err != nil {
			h.log.Warn("publishing leave failed", "channel", s.name, "err", err)
		}
	}
}

// Publish publishes data (any JSON value; it is compacted) to channel as
// the server, whatever the namespace's ClientPublish says, and returns the
// new stream position. info may be nil.
//
// Errors: bad_channel, bad_request (data not JSON), unavailable (not
// stored), outcome_unknown (maybe stored; see PublishOnce).
func (h *Hub) Publish(ctx context.Context, channel string, data []byte, info *ClientInfo) (StreamPosition, error) {
	res, err := h.PublishOnce(ctx, channel, data, info, "")
	return res.StreamPosition, err
}

// publish sends already compacted data.
func (h *Hub) publish(ctx context.Context, channel string, nsOpts NamespaceOptions, data []byte, info *ClientInfo) (StreamPosition, error) {
	pos, _, err := h.publishOnce(ctx, channel, nsOpts, data, info, "")
	return pos, err
}

// Broadcast publishes the same data to several channels. Every name is
// checked before anything is published; on a broker failure the positions
// of the channels already published are returned with the error.
func (h *Hub) Broadcast(ctx context.Context, channels []string, data []byte, info *ClientInfo) ([]StreamPosition, error) {
	res, err := h.BroadcastOnce(ctx, channels, data, info, "")
	if res == nil {
		return nil, err
	}
	out := make([]StreamPosition, len(res))
	for i, p := range res {
		out[i] = p.StreamPosition
	}
	return out, err
}

// clientID names a connection across the cluster: the hub's node id, then
// the connection's id. Connection ids alone repeat from node to node, and
// presence and join/leave are keyed by client id.
func (h *Hub) clientID(sub Subscriber) string {
	return h.nodeID + "-" + strconv.FormatUint(sub.ID(), 10)
}

// clientIDAndName is clientID and a default display name, prefix then
// the connection's id, cut from one string: one allocation for both, so
// an idle connection keeps one small object fewer alive.
func (h *Hub) clientIDAndName(sub Subscriber, prefix string) (id, name string) {
	var buf [64]byte // on the stack for any usual node id and prefix
	b := append(buf[:0], h.nodeID...)
	b = append(b, '-')
	b = strconv.AppendUint(b, sub.ID(), 10)
	idLen := len(b)
	b = append(b, prefix...)
	b = strconv.AppendUint(b, sub.ID(), 10)
	both := string(b)
	return both[:idLen], both[idLen:]
}

func randomNodeID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
