package realtime

import (
	"testing"
	"time"
)

// indexedUsers is the number of user entries in the hub's index, and
// whether any shard has made its map.
func indexedUsers(h *Hub) (n int, maps bool) {
	for i := range h.users.shards {
		sh := &h.users.shards[i]
		sh.mu.RLock()
		n += len(sh.users)
		maps = maps || sh.users != nil
		sh.mu.RUnlock()
	}
	return n, maps
}

func TestGuestsCostTheUserIndexNothing(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	for range 100 {
		c := NewClient(h, newTestSub(1<<20), Identity{Name: "访客"}, ClientLimits{})
		defer c.Close()
	}
	if n, maps := indexedUsers(h); n != 0 || maps {
		t.Fatalf("100 guests: %d users indexed, maps made %v; want none and no map", n, maps)
	}
	if c := NewClient(h, newTestSub(1<<20), Identity{Name: "访客"}, ClientLimits{}); c.auth != nil {
		t.Fatal("a guest has token state")
	}

	u1 := NewClient(h, newTestSub(1<<20), Identity{User: "42", Expires: time.Now().Add(time.Hour)}, ClientLimits{})
	u2 := NewClient(h, newTestSub(1<<20), Identity{User: "42", Expires: time.Now().Add(time.Hour)}, ClientLimits{})
	if got := len(h.users.lookup("42")); got != 2 {
		t.Fatalf("user 42 has %d clients indexed, want 2", got)
	}
	u1.Close()
	u2.Close()
	if n, _ := indexedUsers(h); n != 0 {
		t.Fatalf("after the user's clients closed, %d users are indexed", n)
	}
	if info := h.NodeInfo(); info.Connections != 101 || info.Users != 0 {
		t.Fatalf("node info %+v, want the 101 guests and no user", info)
	}
}

func TestSplitClientID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		node string
		id   uint64
		ok   bool
	}{
		{"3f2a9c1b-17", "3f2a9c1b", 17, true},
		{"a-b-2", "a-b", 2, true},
		{"-2", "", 0, false},
		{"node", "", 0, false},
		{"node-", "", 0, false},
		{"node-x", "", 0, false},
	} {
		node, id, ok := splitClientID(tc.in)
		if node != tc.node || id != tc.id || ok != tc.ok {
			t.Errorf("splitClientID(%q) = %q %d %v, want %q %d %v", tc.in, node, id, ok, tc.node, tc.id, tc.ok)
		}
	}
}
