package main

import (
	"strings"
	"testing"
)

func TestPayloadSizeASCIIAndUnique(t *testing.T) {
	for _, size := range []int{1, 5, 12, 16, 100, 4096} {
		seen := map[string]bool{}
		var buf []byte
		for conn := range 20 {
			for seq := uint64(0); seq < 200; seq++ {
				buf = appendPayload(buf[:0], conn, seq, size)
				if len(buf) != size {
					t.Fatalf("size %d: got %d bytes", size, len(buf))
				}
				for _, c := range buf {
					if c < 0x21 || c > 0x7e {
						t.Fatalf("non-printable-ASCII byte %q in %q", c, buf)
					}
				}
				if size >= 12 {
					if seen[string(buf)] {
						t.Fatalf("size %d: duplicate payload %q", size, buf)
					}
					seen[string(buf)] = true
				}
			}
		}
	}
	// The prefix names the connection and sequence number.
	if got := string(appendPayload(nil, 49, 35, 16)); got != "1d-z-xxxxxxxxxxx" {
		t.Fatalf("payload = %q", got)
	}
	// Large ids still fit in 12 bytes.
	if got := string(appendPayload(nil, maxConns-1, 2_000_000_000, 12)); !strings.HasSuffix(got, "-") {
		t.Fatalf("12-byte payload cut its prefix: %q", got)
	}
}

func TestCheckReply(t *testing.T) {
	msg := []byte("0-1-xxxxxxxxxxxx")
	tutorial := "服务端已收到消息:0-1-xxxxxxxxxxxx服务端发来消息: Hello,0-1-xxxxxxxxxxxx"
	cases := []struct {
		name  string
		mode  expectMode
		reply string
		ok    bool
	}{
		{"tutorial exact", expectTutorial, tutorial, true},
		{"verbatim exact", expectVerbatim, string(msg), true},
		{"tutorial given verbatim", expectTutorial, string(msg), false},
		{"verbatim given tutorial", expectVerbatim, tutorial, false},
		{"empty", expectTutorial, "", false},
		{"other message's reply", expectTutorial, strings.ReplaceAll(tutorial, "0-1-", "0-2-"), false},
		{"other connection's reply", expectVerbatim, "1-1-xxxxxxxxxxxx", false},
		{"missing second copy", expectTutorial, "服务端已收到消息:0-1-xxxxxxxxxxxx服务端发来消息: Hello,", false},
		{"ascii comma", expectTutorial, strings.Replace(tutorial, "Hello,", "Hello, ", 1), false},
		{"no space after colon", expectTutorial, strings.Replace(tutorial, "消息: Hello", "消息:Hello", 1), false},
		{"trailing newline", expectTutorial, tutorial + "\n", false},
		{"truncated", expectVerbatim, string(msg[:15]), false},
	}
	var scratch []byte
	for _, c := range cases {
		var err error
		scratch, err = checkReply(c.mode, msg, []byte(c.reply), scratch)
		if (err == nil) != c.ok {
			t.Errorf("%s: checkReply error = %v, want ok=%v", c.name, err, c.ok)
		}
		if len(appendExpected(nil, c.mode, msg)) != expectedLen(c.mode, len(msg)) {
			t.Errorf("%s: expectedLen disagrees with appendExpected", c.name)
		}
	}
	if got := string(appendExpected(nil, expectTutorial, []byte("hi"))); got != "服务端已收到消息:hi服务端发来消息: Hello,hi" {
		t.Fatalf("tutorial reply = %q", got)
	}
}

func TestClip(t *testing.T) {
	if got := clip([]byte("abc")); got != `"abc"` {
		t.Fatalf("clip = %s", got)
	}
	long := clip([]byte(strings.Repeat("a", 500)))
	if len(long) > 160 || !strings.Contains(long, "(500 bytes)") {
		t.Fatalf("clip of 500 bytes = %s", long)
	}
}
