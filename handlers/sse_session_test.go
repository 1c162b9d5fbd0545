package handlers

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSessionIDs(t *testing.T) {
	tab := newSSESessions("a1b2c3d4", nil)
	seen := map[string]bool{}
	for range 1000 {
		sid := tab.newID()
		node, ok := parseSessionID(sid)
		if !ok || node != "a1b2c3d4" || len(sid) != len("a1b2c3d4.")+22 || seen[sid] {
			t.Fatalf("session id %q: node %q ok %v (or repeated)", sid, node, ok)
		}
		seen[sid] = true
	}
	for _, bad := range []string{"", ".", "a1b2c3d4", "a1b2c3d4.", ".AAAAAAAAAAAAAAAAAAAAAA",
		"a1b2c3d4.AAAAAAAAAAAAAAAAAAAAA", "a1b2c3d4.AAAAAAAAAAAAAAAAAAAAAAA", "a1b2c3d4.AAAAAAAAAAAAAAAAAAAA+/",
		"a1b2c3d4.AAAAAAAAAAAAAAAAAAAA==", "a1b2c3d4.AAAAAAAAAAAAAAAAAAAAA\xff"} {
		if _, ok := parseSessionID(bad); ok {
			t.Errorf("%q parsed as a session id", bad)
		}
	}
}

// An ended session is 410 for sseEndedKeep, then 404, and the ended ids
// do not pile up.
func TestEndedSessionsAreForgotten(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newSSESessions("n", nil)
	tab.now = func() time.Time { return now }
	first := &sseSession{id: tab.newID()}
	tab.add(first)
	if s, _ := tab.find(first.id); s != first {
		t.Fatal("an open session is not found")
	}
	tab.end(first)
	if _, status := tab.find(first.id); status != http.StatusGone {
		t.Fatalf("just ended: %d, want 410", status)
	}
	now = now.Add(sseEndedKeep + time.Second)
	second := &sseSession{id: tab.newID()}
	tab.add(second)
	tab.end(second) // forgets the first
	if _, status := tab.find(first.id); status != http.StatusNotFound {
		t.Fatalf("ended long ago: %d, want 404", status)
	}
	if _, status := tab.find(second.id); status != http.StatusGone {
		t.Fatalf("the second: %d, want 410", status)
	}
	if len(tab.ended) != 1 || len(tab.order) != 1 || strings.Contains(tab.order[0], first.id) {
		t.Fatalf("ended %d, order %q", len(tab.ended), tab.order)
	}
}
