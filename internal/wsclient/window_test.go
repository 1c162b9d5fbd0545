package wsclient

import (
	"bytes"
	"testing"
)

// The window starts empty (an idle connection carries none), grows with
// what it must keep, never past 2^windowBits, and keeps the last bytes.
func TestWindowKeepsTheLastBytesLazily(t *testing.T) {
	c := newConn(nil, nil, "", deflateParams{on: true, contextTakeover: true, windowBits: 9}, 1<<20)
	if c.window != nil {
		t.Fatal("a window before any compressed message")
	}
	var all []byte
	for i := range 40 {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 7+i*3)
		c.remember(msg)
		all = append(all, msg...)
		want := all[max(0, len(all)-512):]
		if !bytes.Equal(c.window, want) || cap(c.window) > 512 {
			t.Fatalf("after message %d: window of %d (cap %d), want the last %d bytes", i, len(c.window), cap(c.window), len(want))
		}
	}
	c.remember(bytes.Repeat([]byte("z"), 2000))
	if !bytes.Equal(c.window, bytes.Repeat([]byte("z"), 512)) {
		t.Fatalf("after a message longer than the window: %d bytes", len(c.window))
	}
}
