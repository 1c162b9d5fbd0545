package realtime

import (
	"cmp"
	"context"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

var _ PresenceStore = (*MemoryPresence)(nil)

// MemoryPresence is a PresenceStore for a single node.
//
// Every change of a channel stamps it with a new number from one counter,
// so the hub can keep a channel's encoded member list until the stamp
// moves (see memberLister).
//
// Concurrency: safe for concurrent use; channels are spread over 64
// shards, each under its own RWMutex.
type MemoryPresence struct {
	seed   maphash.Seed
	stamps atomic.Uint64
	shards [64]presenceShard
}

type presenceShard struct {
	mu       sync.RWMutex
	channels map[string]*presenceChannel
}

// presenceChannel is one channel's entries and the stamp of their last
// change; guarded by its shard's mu.
type presenceChannel struct {
	members map[string]ClientInfo
	version uint64
}

// memberLister is a PresenceStore that can tell, cheaply, whether a
// channel's entries changed: version is a number that differs after every
// change (0 for a channel with no entries), and members returns the
// entries sorted by client id with the version they have. The hub caches
// encoded member lists of such stores. Both are safe for concurrent use.
type memberLister interface {
	version(channel string) uint64
	members(channel string) ([]ClientInfo, uint64)
}

var _ memberLister = (*MemoryPresence)(nil)

// NewMemoryPresence makes an empty store.
func NewMemoryPresence() *MemoryPresence {
	p := &MemoryPresence{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]*presenceChannel)
	}
	return p
}

func (p *MemoryPresence) shard(channel string) *presenceShard {
	return &p.shards[maphash.String(p.seed, channel)%uint64(len(p.shards))]
}

// Add implements PresenceStore.
func (p *MemoryPresence) Add(_ context.Context, channel string, info ClientInfo) error {
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.channels[channel]
	if c == nil {
		c = &presenceChannel{members: make(map[string]ClientInfo)}
		sh.channels[channel] = c
	}
	c.members[info.Client] = info
	c.version = p.stamps.Add(1)
	return nil
}

// Remove implements PresenceStore. An emptied channel is forgotten.
func (p *MemoryPresence) Remove(_ context.Context, channel, client string) error {
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.channels[channel]; c != nil {
		if _, ok := c.members[client]; !ok {
			return nil
		}
		delete(c.members, client)
		c.version = p.stamps.Add(1)
		if len(c.members) == 0 {
			delete(sh.channels, channel)
		}
	}
	return nil
}

// Get implements PresenceStore.
func (p *MemoryPresence) Get(_ context.Context, channel string) (map[string]ClientInfo, error) {
	sh := p.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	var out map[string]ClientInfo
	if c := sh.channels[channel]; c != nil {
		out = maps.Clone(c.members)
	}
	if out == nil {
		out = map[string]ClientInfo{}
	}
	return out, nil
}

// Count implements PresenceStore.
func (p *MemoryPresence) Count(_ context.Context, channel string) (int, error) {
	sh := p.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if c := sh.channels[channel]; c != nil {
		return len(c.members), nil
	}
	return 0, nil
}

func (p *MemoryPresence) version(channel string) uint64 {
	sh := p.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if c := sh.channels[channel]; c != nil {
		return c.version
	}
	return 0
}

func (p *MemoryPresence) members(channel string) ([]ClientInfo, uint64) {
	sh := p.shard(channel)
	sh.mu.RLock()
	c := sh.channels[channel]
	if c == nil {
		sh.mu.RUnlock()
		return nil, 0
	}
	list := slices.Collect(maps.Values(c.members))
	v := c.version
	sh.mu.RUnlock()
	slices.SortFunc(list, func(a, b ClientInfo) int { return cmp.Compare(a.Client, b.Client) })
	return list, v
}

// Channels is the number of channels with at least one entry.
func (p *MemoryPresence) Channels() int {
	n := 0
	for i := range p.shards {
		p.shards[i].mu.RLock()
		n += len(p.shards[i].channels)
		p.shards[i].mu.RUnlock()
	}
	return n
}
