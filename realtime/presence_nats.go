package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var _ PresenceStore = (*NATSPresence)(nil)

// NATSPresenceOptions configure a NATSPresence. Zero fields get defaults.
type NATSPresenceOptions struct {
	// TTL is how long an entry lives in NATS without being refreshed
	// (default 30 s): the bound on how long a crashed node's entries stay
	// visible.
	TTL time.Duration
	// RefreshInterval is how often this node rewrites its own entries
	// (default TTL/3; must be below TTL).
	RefreshInterval time.Duration
	// NodeID names this node in the entries' subjects (one token of
	// A-Z a-z 0-9 _ -; default random). It must differ between nodes.
	NodeID string
}

// NATSPresence is a cluster-wide PresenceStore on a JetStream stream
// "<prefix>_presence" (subjects "<prefix>.pr.<channel>.<node>.<client>",
// one message per subject, MaxAge = TTL). Each node keeps a copy of its
// own entries and rewrites them every RefreshInterval, so an entry of a
// node that crashed disappears at most TTL after that node's last
// refresh, i.e. within TTL of the crash (JetStream expires messages on a
// timer; add its granularity, well under a second in practice). Remove
// purges the entry at once.
//
// Costs: Add is one stored publish; Remove one purge; Get and Count
// create one ephemeral consumer (last message per subject under the
// channel's prefix) and delete it: Count reads only the consumer's
// pending count (O(1) messages, the server scans the channel's subjects);
// Get fetches one message per entry. Refreshing costs each node one
// publish per local entry per RefreshInterval (pipelined).
//
// Concurrency: all methods are safe for concurrent use; the refresher
// goroutine is owned by the store and stopped by Close.
type NATSPresence struct {
	b       *NATSBroker
	node    string
	ttl     time.Duration
	refresh time.Duration
	stream  string

	stMu sync.Mutex
	st   jetstream.Stream

	mu      sync.Mutex
	entries map[string]*presenceEntry // by subject

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type presenceEntry struct {
	data []byte
	seq  uint64 // stream sequence of our last write
}

// NewNATSPresence makes a presence store on b's connection and starts
// its refresher. Close it before closing b.
func NewNATSPresence(ctx context.Context, b *NATSBroker, opts NATSPresenceOptions) (*NATSPresence, error) {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = opts.TTL / 3
	}
	if opts.RefreshInterval >= opts.TTL {
		return nil, fmt.Errorf("nats presence: refresh interval %s must be below the TTL %s", opts.RefreshInterval, opts.TTL)
	}
	if opts.NodeID == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		opts.NodeID = hex.EncodeToString(r[:])
	}
	if !validToken(opts.NodeID) {
		return nil, fmt.Errorf("nats presence: node id %q must be one token of A-Z a-z 0-9 _ -", opts.NodeID)
	}
	p := &NATSPresence{
		b: b, node: opts.NodeID, ttl: opts.TTL, refresh: opts.RefreshInterval,
		stream:  b.opts.Prefix + "_presence",
		entries: make(map[string]*presenceEntry),
		done:    make(chan struct{}),
	}
	if _, err := p.ensureStream(ctx); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go p.refresher()
	return p, nil
}

func (p *NATSPresence) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	p.stMu.Lock()
	defer p.stMu.Unlock()
	st, err := p.b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              p.stream,
		Description:       "duplex presence entries",
		Subjects:          []string{p.b.opts.Prefix + ".pr.>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		MaxAge:            p.ttl,
		Duplicates:        min(p.ttl, 2*time.Minute),
		Storage:           jetstream.FileStorage,
		Replicas:          p.b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("nats presence: stream %s: %w", p.stream, err)
	}
	p.st = st
	return st, nil
}

func (p *NATSPresence) getStream() jetstream.Stream {
	p.stMu.Lock()
	defer p.stMu.Unlock()
	return p.st
}

// Close stops refreshing. It does not remove this node's entries (they
// expire within the TTL); remove them first for a clean shutdown.
func (p *NATSPresence) Close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.wg.Wait()
	})
}

// NodeID is this node's id in presence subjects.
func (p *NATSPresence) NodeID() string { return p.node }

func (p *NATSPresence) channelFilter(channel string) string {
	return p.b.opts.Prefix + ".pr." + encodeToken(channel) + ".>"
}

func (p *NATSPresence) subject(channel, client string) string {
	return p.b.opts.Prefix + ".pr." + encodeToken(channel) + "." + p.node + "." + encodeToken(client)
}

// Add implements PresenceStore.
func (p *NATSPresence) Add(ctx context.Context, channel string, info ClientInfo) error {
	if err := p.b.connected(); err != nil {
		return err
	}
	ctx, cancel := p.b.withTimeout(ctx)
	defer cancel()
	subj := p.subject(channel, info.Client)
	data, _ := json.Marshal(info)
	ack, err := p.b.js.Publish(ctx, subj, data, jetstream.WithRetryAttempts(1))
	if err != nil {
		return fmt.Errorf("nats presence: add: %w", err)
	}
	p.mu.Lock()
	p.entries[subj] = &presenceEntry{data: data, seq: ack.Sequence}
	p.mu.Unlock()
	return nil
}

// Remove implements PresenceStore. The local entry goes at once (it is no
// longer refreshed); when NATS is unreachable, the stored one expires
// within the TTL.
func (p *NATSPresence) Remove(ctx context.Context, channel, client string) error {
	subj := p.subject(channel, client)
	p.mu.Lock()
	delete(p.entries, subj)
	p.mu.Unlock()
	if err := p.b.connected(); err != nil {
		return err
	}
	ctx, cancel := p.b.withTimeout(ctx)
	defer cancel()
	if err := p.getStream().Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("nats presence: remove: %w", err)
	}
	return nil
}

// scan creates an ephemeral consumer of the channel's entries, one per
// subject; fetch, when set, receives each entry.
// presenceFetchRetryWait is how long scan waits before asking again a
// consumer that had no responders.
const presenceFetchRetryWait = 20 * time.Millisecond

func (p *NATSPresence) scan(ctx context.Context, channel string, fetch func(ClientInfo)) (int, error) {
	if err := p.b.connected(); err != nil {
		return 0, err
	}
	ctx, cancel := p.b.withTimeout(ctx)
	defer cancel()
	st := p.getStream()
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     p.channelFilter(channel),
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
		HeadersOnly:       fetch == nil,
	})
	if err != nil {
		return 0, fmt.Errorf("nats presence: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		_ = st.DeleteConsumer(dctx, cons.CachedInfo().Name)
		dcancel()
	}()
	n := int(cons.CachedInfo().NumPending)
	if fetch == nil || n == 0 {
		return n, nil
	}
	got := 0
	for got < n {
		wait := time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = max(min(wait, time.Until(d)), 10*time.Millisecond)
		}
		batch, err := cons.Fetch(n-got, jetstream.FetchMaxWait(wait))
		if err != nil {
			return 0, fmt.Errorf("nats presence: %w", err)
		}
		k := 0
		for msg := range batch.Messages() {
			k++
			var info ClientInfo
			if json.Unmarshal(msg.Data(), &info) == nil {
				fetch(info)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			// The consumer was just made, perhaps on another server, whose
			// interest in its pull requests has not reached this server
			// yet (nats-server 2.10 and later answer "no responders" then):
			// ask again shortly, within ctx.
			if k == 0 && errors.Is(err, nats.ErrNoResponders) {
				select {
				case <-ctx.Done():
				case <-time.After(presenceFetchRetryWait):
					continue
				}
			}
			return 0, fmt.Errorf("nats presence: %w", err)
		}
		if k == 0 {
			break // entries expired or removed since the consumer was made
		}
		got += k
	}
	return got, nil
}

// Get implements PresenceStore. Entries are keyed by client id; client
// ids must be unique across nodes (two nodes' entries with one id show as
// one here, while Count counts both).
func (p *NATSPresence) Get(ctx context.Context, channel string) (map[string]ClientInfo, error) {
	out := map[string]ClientInfo{}
	if _, err := p.scan(ctx, channel, func(info ClientInfo) { out[info.Client] = info }); err != nil {
		return nil, err
	}
	return out, nil
}

// Count implements PresenceStore.
func (p *NATSPresence) Count(ctx context.Context, channel string) (int, error) {
	return p.scan(ctx, channel, nil)
}

func (p *NATSPresence) refresher() {
	defer p.wg.Done()
	t := time.NewTicker(p.refresh)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.refresh)
			p.refreshAll(ctx)
			cancel()
		}
	}
}

// refreshAll rewrites every local entry, expecting our last write to be
// the subject's last message: a Remove (purge) in between makes it fail,
// so a removed entry is never brought back. An entry that expired in NATS
// meanwhile (NATS was away longer than the TTL) is written again.
func (p *NATSPresence) refreshAll(ctx context.Context) {
	if p.b.connected() != nil {
		return
	}
	type item struct {
		subj string
		e    presenceEntry
	}
	p.mu.Lock()
	items := make([]item, 0, len(p.entries))
	for subj, e := range p.entries {
		items = append(items, item{subj, *e})
	}
	p.mu.Unlock()
	const batch = 1000
	for start := 0; start < len(items); start += batch {
		chunk := items[start:min(start+batch, len(items))]
		futures := make([]jetstream.PubAckFuture, len(chunk))
		for i, it := range chunk {
			msg := nats.NewMsg(it.subj)
			msg.Data = it.e.data
			f, err := p.b.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(it.e.seq))
			if err != nil {
				p.b.log.Warn("presence refresh failed", "err", err)
				return
			}
			futures[i] = f
		}
		for i, f := range futures {
			it := chunk[i]
			select {
			case ack := <-f.Ok():
				p.setSeq(it.subj, it.e.seq, ack.Sequence)
			case err := <-f.Err():
				if isWrongLastSeq(err) {
					p.rewrite(ctx, it.subj, it.e.seq)
				} else {
					p.b.log.Warn("presence refresh failed", "err", err)
				}
			case <-ctx.Done():
				p.b.log.Warn("presence refresh timed out", "entries", len(items))
				return
			case <-p.done:
				return
			}
		}
	}
}

func (p *NATSPresence) setSeq(subj string, old, seq uint64) {
	p.mu.Lock()
	if e := p.entries[subj]; e != nil && e.seq == old {
		e.seq = seq
	}
	p.mu.Unlock()
}

// rewrite stores an entry again when it is still ours and unchanged
// (under p.mu, so a concurrent Remove either comes first and wins, or
// comes after and purges it).
func (p *NATSPresence) rewrite(ctx context.Context, subj string, old uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[subj]
	if e == nil || e.seq != old {
		return
	}
	ack, err := p.b.js.Publish(ctx, subj, e.data, jetstream.WithRetryAttempts(1))
	if err != nil {
		p.b.log.Warn("presence rewrite failed", "err", err)
		return
	}
	e.seq = ack.Sequence
}
