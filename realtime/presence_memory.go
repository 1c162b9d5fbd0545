package realtime

import (
	"context"
	"hash/maphash"
	"maps"
	"sync"
)

var _ PresenceStore = (*MemoryPresence)(nil)

// MemoryPresence is a PresenceStore for a single node.
//
// Concurrency: safe for concurrent use; channels are spread over 64
// shards, each under its own RWMutex.
type MemoryPresence struct {
	seed   maphash.Seed
	shards [64]presenceShard
}

type presenceShard struct {
	mu       sync.RWMutex
	channels map[string]map[string]ClientInfo
}

// NewMemoryPresence makes an empty store.
func NewMemoryPresence() *MemoryPresence {
	p := &MemoryPresence{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]map[string]ClientInfo)
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
	m := sh.channels[channel]
	if m == nil {
		m = make(map[string]ClientInfo)
		sh.channels[channel] = m
	}
	m[info.Client] = info
	return nil
}

// Remove implements PresenceStore. An emptied channel is forgotten.
func (p *MemoryPresence) Remove(_ context.Context, channel, client string) error {
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.channels[channel]; m != nil {
		delete(m, client)
		if len(m) == 0 {
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
	out := maps.Clone(sh.channels[channel])
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
	return len(sh.channels[channel]), nil
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
