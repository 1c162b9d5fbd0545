package realtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var _ Broker = (*NATSBroker)(nil)

// Headers of the messages the broker writes. A stored publication carries
// its offset, its channel's epoch, the stream sequence of the previous
// message of its subject (so history can be walked backwards), and the
// history size and TTL it was published with.
const (
	hdrKind   = "Duplex-Kind" // "" (publication), "mark", "join", "leave"
	hdrOffset = "Duplex-Offset"
	hdrEpoch  = "Duplex-Epoch"
	hdrPrev   = "Duplex-Prev"
	hdrKeep   = "Duplex-Keep"
	hdrTTL    = "Duplex-TTL" // milliseconds
	hdrInfo   = "Duplex-Info"
	// hdrPriority is "1" on a priority publication (PublishOptions.Priority).
	hdrPriority = "Duplex-Priority"

	kindMark  = "mark"
	kindJoin  = "join"
	kindLeave = "leave"
)

// maxPublishAttempts bounds the optimistic-concurrency retries of one
// Publish (each lost race means another node stored a publication).
const maxPublishAttempts = 64

// NATSBroker is a Broker for several nodes over NATS with JetStream
// (nats-server 2.9 or later).
//
// Streams: one JetStream stream per namespace, "<prefix>_ch_<ns>", on the
// subjects "<prefix>.ch.<ns>.>" with MaxMsgsPerSubject = history size + 1
// and MaxAge = max(history TTL, ChannelIdleTTL). The stream is created or
// updated at start-up from NATSOptions.Namespaces, else on the first
// publish of the namespace from its PublishOptions (and updated when a
// publish brings other limits). The history TTL itself is applied when
// reading, from each message's stored time and Duplex-TTL header, so that
// a channel's last message (its position) outlives its history.
//
// Offsets: Publish reads the channel subject's last message (cached per
// channel on this node) and stores offset+1 with JetStream's
// Nats-Expected-Last-Subject-Sequence; when another node won the race the
// server rejects it, the broker re-reads and retries. Offsets are thus
// contiguous per channel across nodes, and Publish returns only after the
// publication is stored (the publish ack).
//
// Epochs: a channel whose subject is empty (never published, or every
// message aged out) has the epoch emptyEpoch derives, the same on every
// node, from the stream's creation time, the channel and the current
// ChannelIdleTTL period; its first publication stores it, and every later
// message repeats it. So History of a channel that has nothing answers
// offset 0 in the epoch its first publication will get, and stores
// nothing (a read creates nothing: issue 10). A re-created stream, or a
// channel whose messages all aged out, starts over at offset 1 with a new
// epoch, so a client recovering an old position gets recovered=false.
// (Older versions stored a marker message with a random epoch on a read;
// such markers are still honoured.)
//
// Live fan-out: the stream republishes every stored message (RePublish,
// server-side, only once stored) to "<prefix>.live.<ns>.<tok>", where this
// node holds a core NATS subscription only while it has local
// subscribers. Per channel, messages are handled by that subscription's
// one goroutine: offsets already delivered are dropped, an offset ahead of
// the next expected one is parked for GapWait and then the gap is read
// from the stream. After a reconnect (or a slow-consumer drop) every
// subscribed channel is checked against its stream's last offset and any
// gap is filled, so live subscribers miss nothing the stream still keeps
// (a namespace without history keeps only its last message).
//
// Join/leave events are core NATS messages published straight to the live
// subject: at most once, ordered with other events of the same node, but
// not with publications (those go through the stream first).
//
// Concurrency: all methods are safe for concurrent use. Publishes of one
// channel from one node are serialized (one round trip each).
type NATSBroker struct {
	opts NATSOptions
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream

	handler atomic.Pointer[BrokerHandler]

	streamsMu sync.Mutex
	streams   map[string]*natsStream // by namespace

	pubMu sync.Mutex
	pubs  map[string]*natsPubState // by channel

	subsMu sync.Mutex
	subs   map[string]*natsSub // by channel

	resyncMu  sync.Mutex
	resyncDue map[*natsSub]time.Time
	wake      chan struct{}

	// nodeSubsMu guards nodeSubs: the control and emit subscriptions
	// that answer for this node, which Close withdraws first.
	nodeSubsMu sync.Mutex
	nodeSubs   []*nats.Subscription

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type natsStream struct {
	name string
	st   jetstream.Stream
	keep int
	ttl  time.Duration
}

// natsPubState caches a channel's last stored message for Publish. mu
// serializes this node's publishes of the channel.
type natsPubState struct {
	mu       sync.Mutex
	refs     int // guarded by NATSBroker.pubMu
	lastUsed time.Time
	known    bool
	seq      uint64 // stream sequence of the channel's last message
	offset   uint64
	epoch    string
}

// natsSub is this node's interest in one channel. mu is held while the
// handler is called, so deliveries of the channel are sequential. closed
// is atomic so that Unsubscribe never waits for a delivery: the hub calls
// Unsubscribe under its channel lock, which a delivery may need.
type natsSub struct {
	b       *NATSBroker
	channel string
	ns      string
	subject string // data subject

	closed atomic.Bool

	mu      sync.Mutex
	sub     *nats.Subscription
	epoch   string
	next    uint64 // next offset to deliver
	pending map[uint64]Publication
}

// NewNATSBroker connects to NATS (see NATSOptions.WaitForNATS for an
// unreachable server), checks JetStream and creates or updates the
// streams of opts.Namespaces. Close releases it.
func NewNATSBroker(ctx context.Context, opts NATSOptions) (*NATSBroker, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	b := &NATSBroker{
		opts: opts, log: opts.Logger,
		streams:   make(map[string]*natsStream),
		pubs:      make(map[string]*natsPubState),
		subs:      make(map[string]*natsSub),
		resyncDue: make(map[*natsSub]time.Time),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	nc, err := opts.connect(ctx,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("NATS disconnected; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
			b.resyncAll()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Warn("NATS async error", "err", err)
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.resyncAll()
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	b.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := b.setUpStreams(ctx)
		if err == nil {
			break
		}
		// A fresh cluster may still be electing its JetStream leader, and
		// nodes starting together race to create the streams: with
		// WaitForNATS both are waited out, like an unreachable server.
		if !opts.WaitForNATS || ctx.Err() != nil {
			nc.Close()
			return nil, err
		}
		b.log.Warn("JetStream not ready at start-up; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("nats: gave up waiting for JetStream: %w", err)
		case <-time.After(opts.ReconnectWait):
		}
	}
	b.wg.Add(1)
	go b.worker()
	return b, nil
}

// setUpStreams checks that JetStream answers and creates or updates the
// stream of every configured namespace.
func (b *NATSBroker) setUpStreams(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, max(b.opts.ConnectWait, 5*time.Second))
	defer cancel()
	if _, err := b.js.AccountInfo(actx); err != nil {
		return fmt.Errorf("nats: JetStream is not available at %s: %w", b.opts.redactedURL(), err)
	}
	for _, ns := range sortedKeys(b.opts.Namespaces) {
		o := b.opts.Namespaces[ns]
		if _, err := b.streamFor(actx, ns, &PublishOptions{HistorySize: o.HistorySize, HistoryTTL: o.HistoryTTL}); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(n Namespaces) []string {
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Close stops the broker's goroutines and closes its NATS connection.
// Calls after the first do nothing.
func (b *NATSBroker) Close() {
	b.closeOnce.Do(func() {
		close(b.done)
		b.wg.Wait()
		b.subsMu.Lock()
		subs := maps.Clone(b.subs)
		b.subsMu.Unlock()
		for _, s := range subs {
			s.closed.Store(true)
		}
		b.withdrawNode()
		b.nc.Close()
	})
}

// keepNodeSub records a control or emit subscription of this node.
func (b *NATSBroker) keepNodeSub(sub *nats.Subscription) {
	b.nodeSubsMu.Lock()
	b.nodeSubs = append(b.nodeSubs, sub)
	b.nodeSubsMu.Unlock()
}

// withdrawNode unsubscribes this node's control and emit subjects and
// waits for the server to have seen it. A bare Close leaves the server
// to notice the closed socket on its own: a request sent meanwhile (an
// emit for a stream of this node) goes to the dying connection, is never
// answered, and the requester waits out its timeout (503) instead of
// learning at once that no node answers (404).
func (b *NATSBroker) withdrawNode() {
	b.nodeSubsMu.Lock()
	subs := b.nodeSubs
	b.nodeSubs = nil
	b.nodeSubsMu.Unlock()
	if len(subs) == 0 || b.nc.Status() != nats.CONNECTED {
		return
	}
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	if err := b.nc.FlushTimeout(b.opts.PublishTimeout); err != nil {
		b.log.Warn("withdrawing the node's subscriptions not confirmed", "err", err)
	}
}

// Healthy reports whether the broker is connected to NATS.
func (b *NATSBroker) Healthy() bool { return b.nc.Status() == nats.CONNECTED }

// State is the connection state for readiness: connected, connecting,
// reconnecting, draining or closed.
func (b *NATSBroker) State() string { return stateName(b.nc.Status()) }

// SetHandler implements Broker.
func (b *NATSBroker) SetHandler(h BrokerHandler) { b.handler.Store(&h) }

func (b *NATSBroker) getHandler() BrokerHandler {
	if p := b.handler.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *NATSBroker) connected() error {
	if b.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("%w (%s)", ErrBrokerUnavailable, b.State())
	}
	return nil
}

func (b *NATSBroker) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= b.opts.PublishTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.opts.PublishTimeout)
}

func (b *NATSBroker) streamName(ns string) string { return b.opts.Prefix + "_ch_" + ns }
func (b *NATSBroker) dataSubject(ns, channel string) string {
	return b.opts.Prefix + ".ch." + ns + "." + encodeToken(channel)
}
func (b *NATSBroker) liveSubject(ns, channel string) string {
	return b.opts.Prefix + ".live." + ns + "." + encodeToken(channel)
}

// streamFor returns the namespace's stream. With opts it creates the
// stream, or updates its limits when they differ from opts; without, it
// uses NATSOptions.Namespaces or an existing stream, and returns nil when
// there is none yet (nothing was ever published in the namespace).
func (b *NATSBroker) streamFor(ctx context.Context, ns string, opts *PublishOptions) (*natsStream, error) {
	b.streamsMu.Lock()
	s := b.streams[ns]
	b.streamsMu.Unlock()
	if s != nil && (opts == nil || opts.HistorySize == s.keep && opts.HistoryTTL == s.ttl) {
		return s, nil
	}
	if opts == nil {
		if o, ok := b.opts.Namespaces[ns]; ok {
			opts = &PublishOptions{HistorySize: o.HistorySize, HistoryTTL: o.HistoryTTL}
		}
	}
	name := b.streamName(ns)
	if opts == nil {
		st, err := b.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		cfg := st.CachedInfo().Config
		s = &natsStream{name: name, st: st, keep: int(max(cfg.MaxMsgsPerSubject-1, 0)), ttl: -1}
	} else {
		keep := max(opts.HistorySize, 0)
		maxAge := max(opts.HistoryTTL, b.opts.ChannelIdleTTL)
		src := b.opts.Prefix + ".ch." + ns + ".>"
		cfg := jetstream.StreamConfig{
			Name:              name,
			Description:       fmt.Sprintf("duplex channels of namespace %s: history %d, ttl %s", ns, keep, opts.HistoryTTL),
			Subjects:          []string{src},
			Retention:         jetstream.LimitsPolicy,
			Discard:           jetstream.DiscardOld,
			MaxMsgsPerSubject: int64(keep + 1),
			MaxAge:            maxAge,
			Duplicates:        min(IdempotencyWindow, maxAge), // PublishOnce's window
			Storage:           jetstream.FileStorage,
			Replicas:          b.opts.Replicas,
			RePublish:         &jetstream.RePublish{Source: src, Destination: b.opts.Prefix + ".live." + ns + ".>"},
		}
		st, err := b.js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("nats: stream %s: %w", name, err)
		}
		s = &natsStream{name: name, st: st, keep: keep, ttl: opts.HistoryTTL}
	}
	b.streamsMu.Lock()
	b.streams[ns] = s
	b.streamsMu.Unlock()
	return s, nil
}

// forgetStream drops the cached stream of ns (after it was deleted).
func (b *NATSBroker) forgetStream(ns string) {
	b.streamsMu.Lock()
	delete(b.streams, ns)
	b.streamsMu.Unlock()
}

// storedMsg is what the broker reads back from a message's headers.
type storedMsg struct {
	kind   string
	offset uint64
	epoch  string
	prev   uint64
	keep   int
	ttl    time.Duration
}

func parseStored(h nats.Header) storedMsg {
	m := storedMsg{kind: h.Get(hdrKind), epoch: h.Get(hdrEpoch)}
	m.offset, _ = strconv.ParseUint(h.Get(hdrOffset), 10, 64)
	m.prev, _ = strconv.ParseUint(h.Get(hdrPrev), 10, 64)
	m.keep, _ = strconv.Atoi(h.Get(hdrKeep))
	ms, _ := strconv.ParseInt(h.Get(hdrTTL), 10, 64)
	m.ttl = time.Duration(ms) * time.Millisecond
	return m
}

// storedPub is a publication read back with its stored time and TTL.
type storedPub struct {
	p   Publication
	at  time.Time
	ttl time.Duration
}

func decodePublication(m storedMsg, h nats.Header, data []byte) Publication {
	p := Publication{Offset: m.offset, Data: data, Priority: h.Get(hdrPriority) == "1"}
	if s := h.Get(hdrInfo); s != "" {
		var info ClientInfo
		if json.Unmarshal([]byte(s), &info) == nil {
			p.Info = &info
		}
	}
	return p
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func (b *NATSBroker) pubState(channel string) *natsPubState {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	ps := b.pubs[channel]
	if ps == nil {
		ps = &natsPubState{}
		b.pubs[channel] = ps
	}
	ps.refs++
	return ps
}

func (b *NATSBroker) releasePubState(ps *natsPubState) {
	b.pubMu.Lock()
	ps.refs--
	ps.lastUsed = time.Now()
	b.pubMu.Unlock()
}

// readTop loads the subject's last message into ps (known=false on error).
func (ps *natsPubState) readTop(ctx context.Context, st *natsStream, subject string) error {
	last, err := st.st.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		ps.seq, ps.offset, ps.epoch = 0, 0, ""
	case err != nil:
		return err
	default:
		m := parseStored(last.Header)
		ps.seq, ps.offset, ps.epoch = last.Sequence, m.offset, m.epoch
	}
	ps.known = true
	return nil
}

// Publish implements Broker. It returns once JetStream acknowledged the
// stored publication; when NATS is not connected it fails at once, and
// otherwise within ctx or PublishTimeout. Nothing is delivered unless it
// was stored. A publish that was sent but not acknowledged fails with
// ErrOutcomeUnknown; every other error means it was not stored.
func (b *NATSBroker) Publish(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions) (StreamPosition, error) {
	pos, _, err := b.PublishOnce(ctx, channel, data, info, opts, "")
	return pos, err
}

// PublishOnce implements Broker with JetStream's own de-duplication: the
// key becomes the message id (Nats-Msg-Id, scoped by channel), and the
// stream's Duplicates window (IdempotencyWindow) makes the server store
// a repeat not at all, on whichever node it arrives, and answer with the
// first one's sequence, whose position is then read back.
func (b *NATSBroker) PublishOnce(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions, key string) (StreamPosition, bool, error) {
	if err := b.connected(); err != nil {
		return StreamPosition{}, false, err
	}
	ns, err := namespaceOf(channel)
	if err != nil {
		return StreamPosition{}, false, err
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	st, err := b.streamFor(ctx, ns, &opts)
	if err != nil {
		return StreamPosition{}, false, err
	}
	var infoJSON []byte
	if info != nil {
		infoJSON, _ = json.Marshal(info)
	}
	subject := b.dataSubject(ns, channel)
	ps := b.pubState(channel)
	defer b.releasePubState(ps)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for range maxPublishAttempts {
		if !ps.known {
			if err := ps.readTop(ctx, st, subject); err != nil {
				return StreamPosition{}, false, fmt.Errorf("nats: reading %s: %w", channel, err)
			}
		}
		epoch := ps.epoch
		if epoch == "" {
			if epoch, err = b.emptyEpoch(ctx, st, channel); err != nil {
				return StreamPosition{}, false, fmt.Errorf("nats: publish to %s: %w", channel, err)
			}
		}
		msg := nats.NewMsg(subject)
		msg.Data = data
		msg.Header.Set(hdrOffset, strconv.FormatUint(ps.offset+1, 10))
		msg.Header.Set(hdrEpoch, epoch)
		msg.Header.Set(hdrPrev, strconv.FormatUint(ps.seq, 10))
		msg.Header.Set(hdrKeep, strconv.Itoa(opts.HistorySize))
		msg.Header.Set(hdrTTL, strconv.FormatInt(opts.HistoryTTL.Milliseconds(), 10))
		if infoJSON != nil {
			msg.Header.Set(hdrInfo, string(infoJSON))
		}
		if opts.Priority {
			msg.Header.Set(hdrPriority, "1")
		}
		if key != "" {
			msg.Header.Set(jetstream.MsgIDHeader, channel+"/"+key)
		}
		ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(ps.seq), jetstream.WithRetryAttempts(1))
		if isWrongLastSeq(err) {
			ps.known = false // another node published: re-read
			continue
		}
		if err != nil {
			ps.known = false // maybe stored after all: re-read next time
			if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) {
				b.forgetStream(ns)
			}
			if publishOutcomeUnknown(err) {
				return StreamPosition{}, false, fmt.Errorf("nats: publish to %s: %w: %w", channel, ErrOutcomeUnknown, err)
			}
			return StreamPosition{}, false, fmt.Errorf("nats: publish to %s: %w", channel, err)
		}
		if ack.Duplicate {
			pos, err := b.storedPosition(ctx, st, ack.Sequence)
			return pos, true, err
		}
		ps.seq, ps.offset, ps.epoch = ack.Sequence, ps.offset+1, epoch
		return StreamPosition{Offset: ps.offset, Epoch: epoch}, false, nil
	}
	return StreamPosition{}, false, fmt.Errorf("nats: publish to %s: too much contention", channel)
}

// PublishJoin implements Broker (core NATS, at most once).
func (b *NATSBroker) PublishJoin(_ context.Context, channel string, info ClientInfo) error {
	return b.event(channel, kindJoin, info)
}

// PublishLeave implements Broker (core NATS, at most once).
func (b *NATSBroker) PublishLeave(_ context.Context, channel string, info ClientInfo) error {
	return b.event(channel, kindLeave, info)
}

func (b *NATSBroker) event(channel, kind string, info ClientInfo) error {
	if err := b.connected(); err != nil {
		return err
	}
	ns, err := namespaceOf(channel)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(b.liveSubject(ns, channel))
	msg.Header.Set(hdrKind, kind)
	msg.Data, _ = json.Marshal(info)
	return b.nc.PublishMsg(msg)
}

// Subscribe implements Broker: it subscribes this node to the channel's
// live subject, then reads the channel's position; publications after it
// are delivered (the hub's History call covers the rest).
func (b *NATSBroker) Subscribe(ctx context.Context, channel string) error {
	if err := b.connected(); err != nil {
		return err
	}
	ns, err := namespaceOf(channel)
	if err != nil {
		return err
	}
	b.subsMu.Lock()
	_, dup := b.subs[channel]
	b.subsMu.Unlock()
	if dup {
		return nil
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	s := &natsSub{b: b, channel: channel, ns: ns, subject: b.dataSubject(ns, channel), next: 1, pending: map[uint64]Publication{}}
	s.mu.Lock() // deliveries wait until the position is known
	defer s.mu.Unlock()
	s.sub, err = b.nc.Subscribe(b.liveSubject(ns, channel), s.onMsg)
	if err != nil {
		return fmt.Errorf("nats: subscribe %s: %w", channel, err)
	}
	fail := func(err error) error {
		_ = s.sub.Unsubscribe()
		return fmt.Errorf("nats: subscribe %s: %w", channel, err)
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fail(err)
	}
	st, err := b.streamFor(ctx, ns, nil)
	if err != nil {
		return fail(err)
	}
	if st != nil {
		last, err := st.st.GetLastMsgForSubject(ctx, s.subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return fail(err)
		default:
			m := parseStored(last.Header)
			s.epoch, s.next = m.epoch, m.offset+1
		}
	}
	b.subsMu.Lock()
	b.subs[channel] = s
	b.subsMu.Unlock()
	return nil
}

// Unsubscribe implements Broker. It does not wait for a delivery in
// progress (which may still complete); no new one starts afterwards.
func (b *NATSBroker) Unsubscribe(_ context.Context, channel string) error {
	b.subsMu.Lock()
	s := b.subs[channel]
	delete(b.subs, channel)
	b.subsMu.Unlock()
	if s == nil {
		return nil
	}
	s.closed.Store(true)
	b.resyncMu.Lock()
	delete(b.resyncDue, s)
	b.resyncMu.Unlock()
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return err
	}
	return nil
}

// subscribedChannels lists the channels this node is subscribed to.
func (b *NATSBroker) subscribedChannels() []string {
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	out := make([]string, 0, len(b.subs))
	for ch := range b.subs {
		out = append(out, ch)
	}
	slices.Sort(out)
	return out
}

// onMsg handles one message of the live subject (the subscription's
// goroutine).
func (s *natsSub) onMsg(m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.b.getHandler()
	if s.closed.Load() || h == nil {
		return
	}
	stored := parseStored(m.Header)
	switch stored.kind {
	case kindJoin, kindLeave:
		var info ClientInfo
		if json.Unmarshal(m.Data, &info) != nil {
			return
		}
		if stored.kind == kindJoin {
			h.HandleJoin(s.channel, info)
		} else {
			h.HandleLeave(s.channel, info)
		}
	case kindMark:
		s.checkEpoch(stored.epoch)
	case "":
		if stored.offset == 0 {
			return
		}
		s.checkEpoch(stored.epoch)
		p := decodePublication(stored, m.Header, m.Data)
		switch {
		case p.Offset < s.next:
			// already delivered, or covered by the subscriber's position
		case p.Offset == s.next:
			s.deliver(h, p)
			s.drain(h)
		default:
			s.pending[p.Offset] = p
			delay := s.b.opts.GapWait
			if len(s.pending) > 10000 {
				delay = 0
			}
			s.b.requestResync(s, delay)
		}
	}
}

// checkEpoch adopts the channel's epoch, and starts over at offset 1 when
// it changed (the stream was re-created or the channel aged out). Called
// with s.mu held.
func (s *natsSub) checkEpoch(epoch string) {
	switch {
	case epoch == "" || epoch == s.epoch:
	case s.epoch == "":
		s.epoch = epoch
	default:
		s.b.log.Warn("channel restarted with a new epoch", "channel", s.channel, "old", s.epoch, "new", epoch)
		s.epoch, s.next = epoch, 1
		clear(s.pending)
	}
}

func (s *natsSub) deliver(h BrokerHandler, p Publication) {
	s.next = p.Offset + 1
	if !s.closed.Load() {
		h.HandlePublication(s.channel, p)
	}
}

// drain delivers the parked publications that are next in line.
func (s *natsSub) drain(h BrokerHandler) {
	for {
		p, ok := s.pending[s.next]
		if !ok {
			break
		}
		delete(s.pending, s.next)
		s.deliver(h, p)
	}
	for off := range s.pending {
		if off < s.next {
			delete(s.pending, off)
		}
	}
}

// resync fills the gap between what was delivered and the stream's last
// offset. It returns false when it should be tried again.
func (s *natsSub) resync(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.b.getHandler()
	if s.closed.Load() || h == nil {
		return true
	}
	if s.b.connected() != nil {
		return false
	}
	st, err := s.b.streamFor(ctx, s.ns, nil)
	if err != nil {
		return false
	}
	if st == nil {
		return true
	}
	last, err := st.st.GetLastMsgForSubject(ctx, s.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		clear(s.pending)
		return true
	}
	if err != nil {
		return false
	}
	top := parseStored(last.Header)
	s.checkEpoch(top.epoch)
	if top.offset >= s.next {
		recs, err := s.b.collect(ctx, st, s.subject, last, s.next)
		if err != nil {
			return false
		}
		if len(recs) == 0 || recs[0].p.Offset > s.next {
			first := top.offset + 1
			if len(recs) > 0 {
				first = recs[0].p.Offset
			}
			s.b.log.Warn("live gap no longer in the stream; skipped", "channel", s.channel, "from", s.next, "to", first-1)
		}
		for _, r := range recs {
			if r.p.Offset >= s.next {
				s.deliver(h, r.p)
			}
		}
		if s.next <= top.offset {
			s.next = top.offset + 1
		}
	}
	s.drain(h)
	if len(s.pending) > 0 {
		// Parked offsets beyond what the stream's leader reported: read
		// again shortly.
		s.b.requestResync(s, s.b.opts.GapWait)
	}
	return true
}

// collect returns the subject's stored publications with offsets from lo
// up to last's, in offset order. When some were already dropped, it
// returns the contiguous run that ends at last. It walks back one message
// at a time through each message's previous-sequence header: a request per
// message, but every one bounded by ctx. (An ordered consumer was tried
// for long ranges; after a stream leader failover its resets ignore the
// caller's deadline and a history read could hang past shutdown.)
func (b *NATSBroker) collect(ctx context.Context, st *natsStream, subject string, last *jetstream.RawStreamMsg, lo uint64) ([]storedPub, error) {
	top := parseStored(last.Header)
	if top.kind != "" || top.offset < lo {
		return nil, nil
	}
	var rev []storedPub
	m, cur := last, top
	for {
		rev = append(rev, storedPub{decodePublication(cur, m.Header, m.Data), m.Time, cur.ttl})
		if cur.offset == lo || cur.prev == 0 {
			break
		}
		prev, err := st.st.GetMsg(ctx, cur.prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		pm := parseStored(prev.Header)
		if prev.Subject != subject || pm.kind != "" || pm.offset+1 != cur.offset || pm.epoch != cur.epoch {
			break
		}
		m, cur = prev, pm
	}
	out := make([]storedPub, len(rev))
	for i, p := range rev {
		out[len(rev)-1-i] = p
	}
	return out, nil
}

// History implements Broker. A channel with no stored message answers
// offset 0 in the epoch its first publication will get (emptyEpoch), and
// nothing is stored.
func (b *NATSBroker) History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	if err := b.connected(); err != nil {
		return HistoryResult{}, err
	}
	ns, err := namespaceOf(channel)
	if err != nil {
		return HistoryResult{}, err
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	st, err := b.streamFor(ctx, ns, nil)
	if err != nil {
		return HistoryResult{}, err
	}
	var res HistoryResult
	if st == nil {
		// No stream yet (no namespace table, nothing published).
		res.Recovered = req.Since != nil && req.Since.Offset == 0
		return res, nil
	}
	subject := b.dataSubject(ns, channel)
	last, err := st.st.GetLastMsgForSubject(ctx, subject)
	var top storedMsg
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Nothing stored: an empty stream in the epoch of the first
		// publication. keep stays 0, and with offset 0 nothing below
		// reads from the stream (collect, which needs last).
		epoch, err := b.emptyEpoch(ctx, st, channel)
		if err != nil {
			return HistoryResult{}, fmt.Errorf("nats: history of %s: %w", channel, err)
		}
		top = storedMsg{kind: kindMark, epoch: epoch}
	case err != nil:
		return HistoryResult{}, fmt.Errorf("nats: history of %s: %w", channel, err)
	default:
		top = parseStored(last.Header)
	}
	keep := top.keep
	if top.kind == kindMark {
		keep = 0
	}
	res.Position = StreamPosition{Offset: top.offset, Epoch: top.epoch}
	oldestKept := top.offset - min(uint64(keep), top.offset) + 1

	var lo, hi uint64 // the range wanted
	if req.Since == nil {
		n := uint64(keep)
		if req.Limit >= 0 {
			n = min(n, uint64(req.Limit))
		}
		n = min(n, top.offset)
		if n == 0 {
			return res, nil
		}
		lo, hi = top.offset-n+1, top.offset
	} else {
		since := *req.Since
		switch {
		case since.Epoch != "" && since.Epoch != top.epoch:
			return res, nil
		case since.Offset > top.offset:
			return res, nil
		case since.Offset == top.offset:
			res.Recovered = true
			return res, nil
		case since.Offset+1 < oldestKept:
			return res, nil
		}
		lo, hi = since.Offset+1, top.offset
		if req.Limit >= 0 {
			hi = min(hi, since.Offset+uint64(req.Limit))
		}
	}
	recs, err := b.collect(ctx, st, subject, last, lo)
	if err != nil {
		return HistoryResult{}, fmt.Errorf("nats: history of %s: %w", channel, err)
	}
	// Keep what is within the history TTL: the stored time plus the TTL
	// each publication was made with. Expiry runs from the oldest end.
	now := time.Now()
	for len(recs) > 0 && !now.Before(recs[0].at.Add(recs[0].ttl)) {
		recs = recs[1:]
	}
	complete := len(recs) > 0 && recs[0].p.Offset == lo
	if req.Since != nil {
		if !complete {
			return res, nil
		}
		res.Recovered = hi == top.offset
	}
	for len(recs) > 0 && recs[len(recs)-1].p.Offset > hi {
		recs = recs[:len(recs)-1]
	}
	for _, r := range recs {
		res.Publications = append(res.Publications, r.p)
	}
	return res, nil
}

// emptyEpoch is the epoch of channel while its subject in st holds
// nothing: what History answers and what the first publication stores.
// Every node derives the same one without writing anything: 12 hex digits
// of a hash of the stream's name and creation time (read fresh, since a
// stream re-created under this node's cached handle must give new
// epochs), the channel, and the number of the ChannelIdleTTL period now is
// in.
//
// The period is what gives a channel that aged out a new epoch in the
// same stream: its subject empties only once its last message is older
// than the stream's MaxAge, at least ChannelIdleTTL, so its next first
// publication falls in a later period than its previous one did. The
// price: a position read just before a period ends, whose channel's first
// publication comes just after (or a node's clock differs that much),
// is of another epoch, and recovering it gives recovered=false, as for a
// channel forgotten.
func (b *NATSBroker) emptyEpoch(ctx context.Context, st *natsStream, channel string) (string, error) {
	info, err := st.st.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("reading stream %s for a new channel's epoch: %w", st.name, err)
	}
	return derivedEpoch(st.name, info.Created, channel, time.Now(), b.opts.ChannelIdleTTL), nil
}

// derivedEpoch is emptyEpoch's hash, for a stream created at created and
// the time now.
func derivedEpoch(stream string, created time.Time, channel string, now time.Time, period time.Duration) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d", stream, created.UnixNano(), channel, now.UnixNano()/int64(period))
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// requestResync schedules s.resync after delay (or sooner when already
// scheduled sooner).
func (b *NATSBroker) requestResync(s *natsSub, delay time.Duration) {
	at := time.Now().Add(delay)
	b.resyncMu.Lock()
	if due, ok := b.resyncDue[s]; !ok || at.Before(due) {
		b.resyncDue[s] = at
	}
	b.resyncMu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *NATSBroker) resyncAll() {
	b.subsMu.Lock()
	subs := make([]*natsSub, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.subsMu.Unlock()
	for _, s := range subs {
		b.requestResync(s, 0)
	}
}

// worker runs the scheduled resyncs and forgets idle publish caches. It
// is the broker's only goroutine (the NATS client runs one per
// subscription) and stops on Close.
func (b *NATSBroker) worker() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-b.done:
			return
		case <-b.wake:
		case <-timer.C:
		}
		now := time.Now()
		var due []*natsSub
		next := now.Add(time.Minute)
		b.resyncMu.Lock()
		for s, at := range b.resyncDue {
			if !at.After(now) {
				due = append(due, s)
				delete(b.resyncDue, s)
			} else if at.Before(next) {
				next = at
			}
		}
		b.resyncMu.Unlock()
		for _, s := range due {
			ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
			ok := s.resync(ctx)
			cancel()
			if !ok {
				b.requestResync(s, b.opts.ReconnectWait)
			}
			select {
			case <-b.done:
				return
			default:
			}
		}
		if now.Sub(lastSweep) >= time.Minute {
			lastSweep = now
			b.sweepPubStates(now.Add(-5 * time.Minute))
		}
		b.resyncMu.Lock()
		for _, at := range b.resyncDue {
			if at.Before(next) {
				next = at
			}
		}
		b.resyncMu.Unlock()
		timer.Reset(max(time.Until(next), 0))
	}
}

func (b *NATSBroker) sweepPubStates(idleSince time.Time) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	for ch, ps := range b.pubs {
		if ps.refs == 0 && ps.lastUsed.Before(idleSince) {
			delete(b.pubs, ch)
		}
	}
}
