package handlers

import (
	"fmt"
	"testing"
	"time"
)

func TestPeerRateBurstThenRate(t *testing.T) {
	p := NewPeerRate(10)
	now := time.Unix(1000, 0)
	for i := range 10 {
		if ok, _ := p.Allow("a", now); !ok {
			t.Fatalf("connection %d of the burst refused", i)
		}
	}
	ok, retry := p.Allow("a", now)
	if ok || retry <= 0 || retry > 100*time.Millisecond {
		t.Fatalf("11th at once: ok %v, retry %v; want refused, retry within 100ms", ok, retry)
	}
	if ok, _ := p.Allow("b", now); !ok {
		t.Fatal("another address was refused")
	}
	if ok, _ := p.Allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Fatal("a token 100ms later was refused")
	}
	if ok, _ := p.Allow("a", now.Add(100*time.Millisecond)); ok {
		t.Fatal("a second token 100ms later was allowed")
	}
	if NewPeerRate(0) != nil {
		t.Fatal("rate 0 is not off")
	}
	var off *PeerRate
	if ok, _ := off.Allow("a", now); !ok {
		t.Fatal("a nil PeerRate refused")
	}
}

// Addresses that went idle are forgotten, so many addresses seen once
// cost nothing for long; busy ones keep their bucket.
func TestPeerRateForgetsIdleAddresses(t *testing.T) {
	p := NewPeerRate(5)
	now := time.Unix(1000, 0)
	for range 5 {
		p.Allow("busy", now)
	}
	for i := range 10 * minSweep {
		now = now.Add(time.Millisecond)
		p.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	p.mu.Lock()
	n := len(p.peers)
	p.mu.Unlock()
	if n > 4*minSweep {
		t.Fatalf("%d buckets kept for %d addresses seen once over %v", n, 10*minSweep, time.Duration(10*minSweep)*time.Millisecond)
	}
	if ok, _ := p.Allow("busy", now); !ok {
		t.Fatal("busy's bucket did not refill")
	}
}
