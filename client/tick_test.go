package client_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/duplex/duplex/client"
	"github.com/duplex/duplex/internal/testserver"
)

// TestFlowControlledChannelDeliversEachShownPublicationOnce: in live:
// (flow control, 100 ms ticks, 5 a tick) a client's own comment comes at
// once, and the tick that shows it again does not deliver it twice; the
// API's comments come in tick frames, whose counts reach OnTick; a flood
// past the budget is sampled, but priority ones are always shown.
func TestFlowControlledChannelDeliversEachShownPublicationOnce(t *testing.T) {
	s := testserver.Start(t, map[string]string{"NAMESPACES": `{"live":{"publish_rate":100,"publish_burst":100}}`})
	ctx := testCtx(t)
	const ch = "live:client-ticks"
	pubs, ticks := newRecorder[client.Publication](), newRecorder[client.Tick]()
	c := connect(t, s.RealtimeURL(), client.Options{Name: "viewer"})
	if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{NoRecover: true, OnPublication: pubs.add, OnTick: ticks.add}); err != nil {
		t.Fatal(err)
	}

	own, err := c.Publish(ctx, ch, json.RawMessage(`{"text":"我的"}`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		s.API(t, "POST", "/api/publish", map[string]any{"channel": ch, "data": map[string]any{"n": i}}, nil)
	}
	s.API(t, "POST", "/api/publish", map[string]any{"channel": ch, "data": map[string]any{"text": "sentinel"}, "priority": true}, nil)

	got := pubs.waitFor(t, "the priority sentinel", func(p client.Publication) bool { return p.Priority })
	total, shown := 0, 0
	for _, tk := range ticks.all() {
		total += tk.Total
		shown += tk.Shown
	}
	if total != 14 {
		t.Errorf("ticks counted %d publications, want 14 (own + 12 + sentinel)", total)
	}
	seen := map[uint64]int{}
	for _, p := range got {
		seen[p.Offset]++
		if seen[p.Offset] > 1 {
			t.Fatalf("offset %d delivered twice: %v", p.Offset, describe(got))
		}
	}
	if got[0].Offset != own.Offset || got[0].Tick {
		t.Errorf("first delivery %+v, want the own comment at offset %d at once", got[0], own.Offset)
	}
	if shown >= 14 || len(got) > shown+1 {
		t.Errorf("%d delivered, ticks showed %d of 14: want a sample (budget 5 a tick), the own comment delivered once", len(got), shown)
	}
}

func describe(pubs []client.Publication) string {
	s := ""
	for _, p := range pubs {
		s += fmt.Sprintf("%d(tick %v) ", p.Offset, p.Tick)
	}
	return s
}
