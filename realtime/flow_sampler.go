package realtime

import "sort"

const (
	// flowSenderMemory bounds how many senders a channel's sampler
	// remembers for fairness across ticks; past it, those not shown for
	// flowSenderForget ticks are forgotten (they count as never shown,
	// which only favours them).
	flowSenderMemory = 10_000
	flowSenderForget = 100
)

// flowSampler picks what one tick frame of a channel shows when the tick
// had more publications than the budget:
//
//   - every priority publication, outside the budget;
//   - then, up to the budget, round-robin between senders (the client id
//     of the publication's info; the server's own publications are one
//     sender), each sender's earliest first, so a flooder gets one turn a
//     round like everyone else and a sender's publications keep their
//     order;
//   - the senders' turns in a round go to the least recently shown first,
//     so that over many ticks every sender gets its fair share, not just
//     those who happen to publish early in each tick.
//
// The picks are returned in their arrival (offset) order.
//
// Concurrency: none; a sampler belongs to one channel's flush, and
// flushes of a channel never overlap (flowQueue).
type flowSampler struct {
	budget    int
	tick      uint64            // ticks sampled so far
	lastShown map[string]uint64 // sender → the tick it was last shown in
}

func newFlowSampler(budget int) flowSampler {
	return flowSampler{budget: budget, lastShown: make(map[string]uint64)}
}

// flowSender is one sender's publications in a tick, by index.
type flowSender struct {
	key  string
	last uint64 // when it was last shown (0: never, or forgotten)
	idx  []int
}

func senderKey(p *Publication) string {
	if p.Info == nil {
		return ""
	}
	return p.Info.Client
}

// sample returns what the tick frame shows of pubs (in offset order):
// all of them when those without priority fit the budget. pubs is not
// modified; the result may share its backing array.
func (s *flowSampler) sample(pubs []Publication) []Publication {
	s.tick++
	defer s.forget()
	plain := 0
	for i := range pubs {
		if !pubs[i].Priority {
			plain++
		}
	}
	if plain <= s.budget {
		for i := range pubs {
			s.lastShown[senderKey(&pubs[i])] = s.tick
		}
		return pubs
	}
	picked := make([]bool, len(pubs))
	n := 0 // picked without priority
	var senders []*flowSender
	byKey := make(map[string]*flowSender)
	for i := range pubs {
		if pubs[i].Priority {
			picked[i] = true
			continue
		}
		k := senderKey(&pubs[i])
		sd := byKey[k]
		if sd == nil {
			sd = &flowSender{key: k, last: s.lastShown[k]}
			byKey[k] = sd
			senders = append(senders, sd)
		}
		sd.idx = append(sd.idx, i)
	}
	// Stable: among senders shown equally long ago, the first to publish
	// in this tick goes first.
	sort.SliceStable(senders, func(a, b int) bool { return senders[a].last < senders[b].last })
	for round := 0; n < s.budget; round++ {
		more := false
		for _, sd := range senders {
			if round >= len(sd.idx) || n >= s.budget {
				continue
			}
			more = true
			picked[sd.idx[round]] = true
			n++
			s.lastShown[sd.key] = s.tick
		}
		if !more {
			break
		}
	}
	out := make([]Publication, 0, n+len(pubs)-plain)
	for i := range pubs {
		if picked[i] {
			out = append(out, pubs[i])
		}
	}
	return out
}

// forget drops senders not shown for a while once there are many, so a
// long-lived room's memory stays bounded.
func (s *flowSampler) forget() {
	if len(s.lastShown) <= flowSenderMemory {
		return
	}
	for k, t := range s.lastShown {
		if t+flowSenderForget < s.tick {
			delete(s.lastShown, k)
		}
	}
}
