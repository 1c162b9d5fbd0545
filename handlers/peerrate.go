package handlers

import (
	"sync"
	"time"
)

// PeerRate limits how fast one client address may open WebSockets: a
// token bucket per address, holding up to burst tokens and refilled at
// rate per second. It keeps a bucket only for addresses seen recently:
// one that has been full (idle) for a while is forgotten at the next
// sweep, which runs when the map has doubled since the last one, so the
// memory is bounded by the addresses active within burst/rate seconds and
// no goroutine is needed.
//
// Concurrency: Allow may be called from any goroutine. A nil *PeerRate
// allows everything.
type PeerRate struct {
	rate, burst float64

	mu      sync.Mutex
	peers   map[string]peerBucket
	sweepAt int
}

type peerBucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// minSweep is the map size below which PeerRate never sweeps.
const minSweep = 1024

// NewPeerRate allows each address perSecond new connections a second,
// and as many at once; perSecond 0 returns nil (no limit).
func NewPeerRate(perSecond int) *PeerRate {
	if perSecond <= 0 {
		return nil
	}
	return &PeerRate{rate: float64(perSecond), burst: float64(perSecond), peers: make(map[string]peerBucket), sweepAt: minSweep}
}

// Allow takes a token for peer at now; when there is none it returns
// false and how long until there is one.
func (p *PeerRate) Allow(peer string, now time.Time) (ok bool, retry time.Duration) {
	if p == nil {
		return true, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, seen := p.peers[peer]
	if !seen {
		b = peerBucket{tokens: p.burst, at: now}
	}
	b.tokens = min(p.burst, b.tokens+now.Sub(b.at).Seconds()*p.rate)
	b.at = now
	if b.tokens < 1 {
		p.peers[peer] = b
		return false, time.Duration((1 - b.tokens) / p.rate * float64(time.Second))
	}
	b.tokens--
	if !seen && len(p.peers) >= p.sweepAt {
		p.sweep(now)
	}
	p.peers[peer] = b
	return true, 0
}

// sweep forgets the addresses whose bucket has refilled: a new bucket
// for them would be the same. p.mu is held.
func (p *PeerRate) sweep(now time.Time) {
	for peer, b := range p.peers {
		if b.tokens+now.Sub(b.at).Seconds()*p.rate >= p.burst {
			delete(p.peers, peer)
		}
	}
	p.sweepAt = max(minSweep, 2*len(p.peers))
}
