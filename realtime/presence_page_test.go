package realtime

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/duplex/duplex/realtime/protocol"
)

// countingPresence counts the member-list reads that reach the store.
type countingPresence struct {
	*MemoryPresence
	reads atomic.Int64
}

func (p *countingPresence) Get(ctx context.Context, ch string) (map[string]ClientInfo, error) {
	p.reads.Add(1)
	return p.MemoryPresence.Get(ctx, ch)
}

func (p *countingPresence) members(ch string) ([]ClientInfo, uint64) {
	p.reads.Add(1)
	return p.MemoryPresence.members(ch)
}

// roomNamespaces has a member-presence namespace without join/leave, so
// thousands of members cost no join storm.
func roomNamespaces() Namespaces {
	ns := testNamespaces()
	ns["room"] = NamespaceOptions{Presence: PresenceMembers, SlowPolicy: PolicyDisconnect}
	return ns
}

// A member list larger than one reply comes in pages: each fits, carries
// the total count, and says more with the cursor to send as after; the
// pages together hold every member once.
func TestPresenceRepliesArePaged(t *testing.T) {
	ctx := context.Background()
	p := NewMemoryPresence()
	h := newTestHub(t, HubConfig{Namespaces: roomNamespaces(), Presence: p})
	const members = 3000
	for i := range members {
		p.Add(ctx, "room:big", ClientInfo{Client: fmt.Sprintf("n-%d", i), User: fmt.Sprint(i), Name: strings.Repeat("李", 32)})
	}
	c, s := newClient(t, h, Identity{Name: "a"})
	seen := map[string]bool{}
	cmd := `{"id":1,"op":"presence","channel":"room:big"}`
	for id := uint64(1); ; id++ {
		if id > 50 {
			t.Fatal("no end to the pages")
		}
		r := decodeResult[protocol.PresenceResult](t, oneReply(t, c, s, id, cmd))
		if r.Count != members || len(r.Clients) == 0 {
			t.Fatalf("page %d: count %d, %d clients", id, r.Count, len(r.Clients))
		}
		for k, v := range r.Clients {
			if seen[k] || v.Client != k {
				t.Fatalf("page %d: %q twice or wrong (%+v)", id, k, v)
			}
			seen[k] = true
		}
		if !r.More {
			break
		}
		if r.Next == "" {
			t.Fatalf("page %d: more without next", id)
		}
		cmd = fmt.Sprintf(`{"id":%d,"op":"presence","channel":"room:big","after":%q}`, id+1, r.Next)
	}
	if len(seen) != members {
		t.Errorf("pages held %d of %d members", len(seen), members)
	}
}

// The encoded member list is kept per channel until it changes: repeated
// presence calls on an unchanged room do not read the store again, and a
// change shows in the very next reply.
func TestPresenceListIsCachedUntilItChanges(t *testing.T) {
	ctx := context.Background()
	p := &countingPresence{MemoryPresence: NewMemoryPresence()}
	h := newTestHub(t, HubConfig{Presence: p})
	a, as := newClient(t, h, Identity{Name: "a"})
	oneReply(t, a, as, 1, `{"id":1,"op":"subscribe","channel":"chat:room"}`)
	for i := range 1000 {
		p.Add(ctx, "chat:room", ClientInfo{Client: fmt.Sprintf("x-%d", i), Name: "n"})
	}
	c, s := newClient(t, h, Identity{Name: "b"})
	get := func(id uint64) protocol.PresenceResult {
		t.Helper()
		return decodeResult[protocol.PresenceResult](t, oneReply(t, c, s, id, fmt.Sprintf(`{"id":%d,"op":"presence","channel":"chat:room"}`, id)))
	}
	before := p.reads.Load()
	for i := range 100 {
		if r := get(uint64(i + 1)); r.Count != 1001 || len(r.Clients) != 1001 {
			t.Fatalf("presence: count %d, %d clients", r.Count, len(r.Clients))
		}
	}
	if n := p.reads.Load() - before; n > 1 {
		t.Errorf("100 presence calls on an unchanged room read the store %d times", n)
	}
	oneReply(t, c, s, 200, `{"id":200,"op":"subscribe","channel":"chat:room"}`)
	if r := get(201); r.Count != 1002 || r.Clients[c.Info().Client].Name != "b" {
		t.Errorf("after a join: count %d, joined member %+v", r.Count, r.Clients[c.Info().Client])
	}
	p.Remove(ctx, "chat:room", "x-7")
	if r := get(202); r.Count != 1001 || len(r.Clients) != 1001 {
		t.Errorf("after a leave: count %d, %d clients", r.Count, len(r.Clients))
	} else if _, ok := r.Clients["x-7"]; ok {
		t.Error("the member who left is still listed")
	}
}
