package realtime

import (
	"fmt"
	"testing"
)

// tickOf makes one tick's publications: for each sender (client id, ""
// for the server), n of them, interleaved round by round as they would
// arrive, numbered from *offset on.
func tickOf(offset *uint64, senders map[string]int, order []string) []Publication {
	var out []Publication
	for round := 0; ; round++ {
		more := false
		for _, s := range order {
			if round >= senders[s] {
				continue
			}
			more = true
			*offset++
			p := Publication{Offset: *offset, Data: []byte(`1`)}
			if s != "" {
				p.Info = &ClientInfo{Client: s}
			}
			out = append(out, p)
		}
		if !more {
			return out
		}
	}
}

func TestFlowSamplerFairUnderOneFlooder(t *testing.T) {
	const budget, ticks = 5, 200
	s := newFlowSampler(budget)
	senders := map[string]int{"flooder": 100}
	order := []string{"flooder"} // the flooder publishes first in every tick
	for i := range 9 {
		k := fmt.Sprintf("quiet%d", i)
		senders[k] = 1
		order = append(order, k)
	}
	shown := map[string]int{}
	var offset uint64
	for range ticks {
		out := s.sample(tickOf(&offset, senders, order))
		if len(out) != budget {
			t.Fatalf("a tick over budget showed %d, want %d", len(out), budget)
		}
		for _, p := range out {
			shown[p.Info.Client]++
		}
	}
	fair := float64(budget*ticks) / float64(len(senders))
	for _, k := range order {
		if got := float64(shown[k]); got < fair/2 || got > fair*2 {
			t.Errorf("%s was shown %v times, fair share %v (must be within 2x)", k, got, fair)
		}
	}
}

func TestFlowSamplerKeepsOrderPerSender(t *testing.T) {
	s := newFlowSampler(4)
	last := map[string]uint64{}
	var offset uint64
	senders := map[string]int{"a": 7, "b": 3, "c": 5, "": 2}
	order := []string{"a", "b", "c", ""}
	for range 50 {
		out := s.sample(tickOf(&offset, senders, order))
		for _, p := range out {
			k := senderKey(&p)
			if p.Offset <= last[k] {
				t.Fatalf("sender %q: offset %d shown after %d", k, p.Offset, last[k])
			}
			last[k] = p.Offset
		}
		for i := 1; i < len(out); i++ {
			if out[i].Offset <= out[i-1].Offset {
				t.Fatalf("tick not in offset order: %v", out)
			}
		}
	}
	// Within a tick a sender's earliest come first: the flooder "a" gets
	// its first publication of the tick, never a later one alone.
	offset = 0
	one := newFlowSampler(1)
	out := one.sample(tickOf(&offset, map[string]int{"a": 5}, []string{"a"}))
	if len(out) != 1 || out[0].Offset != 1 {
		t.Fatalf("budget 1 over one sender's 5 showed %+v, want offset 1", out)
	}
}

func TestFlowSamplerNeverDropsPriority(t *testing.T) {
	s := newFlowSampler(5)
	var offset uint64
	pubs := tickOf(&offset, map[string]int{"a": 40, "b": 40}, []string{"a", "b"})
	for i := 0; i < len(pubs); i += 10 { // 8 priority ones, more than the budget
		pubs[i].Priority = true
	}
	out := s.sample(pubs)
	prio := 0
	for _, p := range out {
		if p.Priority {
			prio++
		}
	}
	// The budget is for the others: all 8 priority ones, and 5 more.
	if prio != 8 || len(out) != 13 {
		t.Fatalf("showed %d (%d priority), want all 8 priority and 5 others", len(out), prio)
	}
	// Priority ones do not make a tick within the budget sampled.
	pubs = tickOf(&offset, map[string]int{"a": 3, "b": 2}, []string{"a", "b"})
	pubs[1].Priority, pubs[3].Priority = true, true
	pubs = append(pubs, Publication{Offset: 1000, Data: []byte(`1`), Info: &ClientInfo{Client: "c"}})
	if out = s.sample(pubs); len(out) != 6 {
		t.Fatalf("2 priority and 4 others within a budget of 5: showed %d of 6", len(out))
	}
}

func TestFlowSamplerShowsAllWithinBudget(t *testing.T) {
	s := newFlowSampler(5)
	var offset uint64
	pubs := tickOf(&offset, map[string]int{"a": 3, "b": 2}, []string{"a", "b"})
	if out := s.sample(pubs); len(out) != 5 {
		t.Fatalf("5 within a budget of 5: showed %d", len(out))
	}
}

func TestFlowSamplerForgetsOldSenders(t *testing.T) {
	s := newFlowSampler(1)
	var offset uint64
	for i := range flowSenderMemory + flowSenderForget + 10 {
		s.sample(tickOf(&offset, map[string]int{fmt.Sprint(i): 1}, []string{fmt.Sprint(i)}))
	}
	if len(s.lastShown) > flowSenderMemory+1 {
		t.Fatalf("sampler remembers %d senders, want at most %d", len(s.lastShown), flowSenderMemory+1)
	}
}
