package realtime

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/realtime/protocol"
)

func TestParseChannel(t *testing.T) {
	good := map[string][3]string{
		"chat:lobby":                       {"chat:lobby", "chat", "lobby"},
		"live:room-1.a_b@x":                {"live:room-1.a_b@x", "live", "room-1.a_b@x"},
		"user:42":                          {"user:42", "user", "42"},
		"chat:a:b":                         {"chat:a:b", "chat", "a:b"},
		"ns_1-x:R":                         {"ns_1-x:R", "ns_1-x", "R"},
		"chat:" + strings.Repeat("x", 250): {"chat:" + strings.Repeat("x", 250), "chat", strings.Repeat("x", 250)},
	}
	for in, want := range good {
		ch, err := ParseChannel(in)
		if err != nil || ch.Name != want[0] || ch.Namespace != want[1] || ch.Rest != want[2] {
			t.Errorf("%q: %+v %v", in, ch, err)
		}
	}
	bad := []string{
		"", "lobby", "chat:", ":lobby", "Chat:x", "chat:a b", "chat:a#b", "chat:房间", "chat:a/b",
		"chat:a\x00", "chat:" + strings.Repeat("x", 251), strings.Repeat("n", 33) + ":x",
	}
	for _, in := range bad {
		_, err := ParseChannel(in)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadChannel {
			t.Errorf("%q: got %v, want bad_channel", in, err)
		}
	}
}

func TestNamespaces(t *testing.T) {
	ns := testNamespaces()
	if err := ns.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, o, err := ns.Lookup("live:x"); err != nil || o.SlowPolicy != PolicyDropOldest || o.Presence != PresenceCount || o.JoinLeave {
		t.Errorf("live: %+v %v", o, err)
	}
	if _, _, err := ns.Lookup("nope:x"); err == nil || err.(*Error).Code != protocol.CodeBadChannel {
		t.Errorf("unknown namespace: %v", err)
	}
	for name, o := range map[string]NamespaceOptions{
		"a": {HistorySize: 1},
		"b": {JoinLeave: true},
		"c": {PublishRate: 1},
		"d": {HistorySize: -1},
		"e": {SlowPolicy: 9},
		"F": {},
	} {
		if err := (Namespaces{name: o}).Validate(); err == nil {
			t.Errorf("%s %+v: no error", name, o)
		}
	}
	for s, want := range map[string]SlowPolicy{"disconnect": PolicyDisconnect, "drop-oldest": PolicyDropOldest} {
		if p, err := ParseSlowPolicy(s); err != nil || p != want || p.String() != s {
			t.Errorf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParseSlowPolicy("x"); err == nil {
		t.Error("bad policy parsed")
	}
}

func TestCleanName(t *testing.T) {
	if n, err := CleanName("  李旺 "); err != nil || n != "李旺" {
		t.Errorf("%q %v", n, err)
	}
	for _, bad := range []string{"", "  ", "a\nb", "a\u202eb", strings.Repeat("名", 33), "\xff"} {
		if _, err := CleanName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Names that show nothing (fillers, blank braille, lone combining marks,
// spaces of any width) are refused, on connect as everywhere; ordinary
// names in any script still work.
func TestBlankLookingNamesAreRefused(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	for _, blank := range []string{
		"\u3164", "\u2800", "\u115f", "\u1160", "\uffa0", "\u0301", "\u0301\u0302\u20dd",
		"\u3164\u3164 \u2800", "\u3000", "\u2003\u2003", "\u115f\u1160\u3164", "\u200b", "\ufe0f", "\u034f",
	} {
		if n, err := CleanName(blank); err == nil {
			t.Errorf("CleanName(%+q) = %+q, want an error", blank, n)
		}
		c, s := newClient(t, h, Identity{})
		msgs, _ := send(t, c, s, fmt.Sprintf(`{"id":1,"op":"connect","name":%q}`, blank))
		if len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != protocol.CodeBadRequest {
			t.Errorf("connect as %+q: %+v", blank, msgs)
		}
	}
	for name, want := range map[string]string{
		"李旺": "李旺", " 小明 ": "小明", "Zoë": "Zoë", "Ana María": "Ana María", "O'Brien": "O'Brien",
		"访客7": "访客7", "김민준": "김민준", "🙂": "🙂", "e\u0301": "é", "a\u3000b": "a b",
	} {
		if got, err := CleanName(name); err != nil || got != want {
			t.Errorf("CleanName(%+q) = %+q, %v; want %+q", name, got, err, want)
		}
	}
}
