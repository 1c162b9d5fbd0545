package wsconn

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/wstest"
)

// contextInflater reads a server's frames as a browser that let the
// server keep its context does (RFC 7692 section 7.2.2): every compressed
// message is inflated with the window of the compressed ones before it,
// plain messages are not part of that window. It uses the standard
// library's flate, another implementation than the server's.
type contextInflater struct {
	r      *bufio.Reader
	window []byte
}

// serverMessage is one message as the client read it.
type serverMessage struct {
	compressed bool
	wire       []byte // the payload as it came
	data       []byte // inflated
}

func (c *contextInflater) next(t *testing.T) serverMessage {
	t.Helper()
	b0, wire := wstest.ReadFrame(t, c.r)
	if b0&0x80 == 0 || b0&0x0F != opText {
		t.Fatalf("frame %#x, want a final text frame", b0)
	}
	if b0&rsv1Bit == 0 {
		return serverMessage{wire: wire, data: wire}
	}
	f := flate.NewReaderDict(io.MultiReader(bytes.NewReader(wire), bytes.NewReader(inflateTail)), c.window)
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("inflating %d bytes against a %d-byte window: %v", len(wire), len(c.window), err)
	}
	c.window = append(c.window, data...)
	if over := len(c.window) - 32<<10; over > 0 {
		c.window = c.window[over:]
	}
	return serverMessage{compressed: true, wire: wire, data: data}
}

// A shared message goes out compressed against the one it follows only to
// a session whose last compressed message that was, and which negotiated
// context takeover; everyone else gets it compressed on its own. The
// client inflates all of them, in both write modes.
func TestSharedMessagesFollowOnlyWhatTheClientGot(t *testing.T) {
	for _, mode := range writeModes {
		for _, context := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/context=%v", mode.name, context), func(t *testing.T) {
				testSharedMessagesFollow(t, mode.direct, context)
			})
		}
	}
}

func testSharedMessagesFollow(t *testing.T, direct, context bool) {
	lim := testLimits
	lim.Deflate, lim.DeflateContext, lim.DeflateMinBytes = true, context, 128
	url, got := sessionsMode(t, direct, newTestRegistry(t, 10), lim)
	r := wstest.UpgradeSendingFrame(t, strings.TrimPrefix(url, "ws://"), "/", wstest.ClientFrame(true, false, opText, []byte("hello")), 5*time.Second)
	s := <-got
	client := &contextInflater{r: r}

	pub := func(i int) []byte { return chatJSON(1000 + i) }
	shared := func(id, after uint64) *SharedMessage {
		var prev []byte
		if after != 0 {
			prev = pub(int(after))
		}
		return NewSharedMessage(TextMessage, pub(int(id)), id, after, prev)
	}
	steps := []struct {
		send      func() error
		want      []byte
		followsIt bool // with context: sent compressed against the one before
	}{
		{func() error { _, err := s.SendShared(shared(1, 0), false); return err }, pub(1), false},
		{func() error { _, err := s.SendShared(shared(2, 1), false); return err }, pub(2), true},
		// A message of this session alone, compressed: what the next
		// follows is not the client's last compressed message.
		{func() error { return s.Send(TextMessage, chatJSON(500)) }, chatJSON(500), false},
		{func() error { _, err := s.SendShared(shared(3, 2), false); return err }, pub(3), false},
		{func() error { _, err := s.SendShared(shared(4, 3), true); return err }, pub(4), true},
		// A plain message (under DeflateMinBytes) is not in the window.
		{func() error { return s.Send(TextMessage, []byte("tiny")) }, []byte("tiny"), false},
		{func() error { _, err := s.SendShared(shared(5, 4), false); return err }, pub(5), true},
		// One that follows a message this client never got.
		{func() error { _, err := s.SendShared(shared(7, 6), false); return err }, pub(7), false},
	}
	for i, st := range steps {
		if err := st.send(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		m := client.next(t)
		if !bytes.Equal(m.data, st.want) {
			t.Fatalf("step %d: got %.80q, want %.80q", i, m.data, st.want)
		}
		alone := DeflateMessage(st.want)
		followed := m.compressed && !bytes.Equal(m.wire, alone)
		if followed != (context && st.followsIt) {
			t.Fatalf("step %d: compressed against the one before: %v (%d bytes, alone %d)", i, followed, len(m.wire), len(alone))
		}
	}
}

// A queued message that is dropped (drop-oldest) is not what the client
// got last: the next one, which follows it, goes out compressed on its
// own. Its form is chosen when it is written, not when it is queued.
func TestSharedMessageAfterADroppedOneGoesAlone(t *testing.T) {
	lim := testLimits
	lim.Deflate, lim.DeflateContext, lim.DeflateMinBytes = true, true, 128
	lim.MissedNotice = missedNotice
	m1 := NewSharedMessage(TextMessage, chatJSON(3000), 1, 0, nil)
	m2 := NewSharedMessage(TextMessage, chatJSON(3001), 2, 1, chatJSON(3000))
	m3 := NewSharedMessage(TextMessage, chatJSON(3002), 3, 2, chatJSON(3001))
	// Room for one of them queued, not two.
	lim.SendQueueBytes = len(m1.compressedAlone()) + len(m2.compressedAlone()) - 1
	url, got := sessions(newTestRegistry(t, 10), lim, t)
	r := wstest.UpgradeSendingFrame(t, strings.TrimPrefix(url, "ws://"), "/", wstest.ClientFrame(true, false, opText, []byte("hello")), 5*time.Second)
	s := <-got
	client := &contextInflater{r: r}

	if _, err := s.SendShared(m1, true); err != nil {
		t.Fatal(err)
	}
	if m := client.next(t); !bytes.Equal(m.data, m1.Data()) {
		t.Fatalf("first: %.80q", m.data)
	}
	s.writeMu.Lock() // as during a write: what follows queues
	_, err1 := s.SendShared(m2, true)
	dropped, err2 := s.SendShared(m3, true) // drops m2 to make room
	s.writeMu.Unlock()
	if err1 != nil || err2 != nil || dropped != 1 {
		t.Fatalf("dropped %d: %v %v", dropped, err1, err2)
	}
	if m := client.next(t); string(m.data) != string(missedNotice(1)) {
		t.Fatalf("want the missed notice first, got %.80q", m.data)
	}
	m := client.next(t)
	if !bytes.Equal(m.data, m3.Data()) {
		t.Fatalf("third: %.80q", m.data)
	}
	if !bytes.Equal(m.wire, m3.compressedAlone()) {
		t.Fatal("sent compressed against a message the client never got")
	}
}

// Compressed against the message before it, chat-like JSON is much
// smaller than alone: the reason the forms are shared at all.
func TestFollowingFormIsSmaller(t *testing.T) {
	prev, next := chatJSON(1024), chatJSON(1025)
	m := NewSharedMessage(TextMessage, next, 2, 1, prev)
	after, alone := len(m.compressedAfter()), len(m.compressedAlone())
	if after*4 > alone*3 {
		t.Fatalf("against the previous message %d bytes, alone %d", after, alone)
	}
	if m.prev != nil {
		t.Fatal("kept the previous message once no longer needed")
	}
}

// What a queue holds of a shared message is its compressed bytes, charged
// at what they are: nothing of the plain data, and no forms at all for a
// session that cannot follow messages.
func TestQueuedSharedMessageHoldsOnlyCompressedBytes(t *testing.T) {
	m := NewSharedMessage(TextMessage, chatJSON(2000), 2, 1, chatJSON(1999))
	plainOnly := &Session{lim: &Limits{Deflate: true}}
	if out := plainOnly.queuedForm(opText|rsv1Bit, m); out.forms != nil || !bytes.Equal(out.data, m.compressedAlone()) || out.size() != len(out.data) {
		t.Fatalf("without context: forms %v, %d bytes charged", out.forms != nil, out.size())
	}
	following := &Session{lim: &Limits{Deflate: true, DeflateContext: true}}
	out := following.queuedForm(opText|rsv1Bit, m)
	if out.forms != m.forms || out.size() != len(m.compressedAlone())+len(m.compressedAfter()) {
		t.Fatalf("with context: %d bytes charged, forms %d + %d", out.size(), len(m.compressedAlone()), len(m.compressedAfter()))
	}
	if m.prev != nil {
		t.Fatal("the previous message is kept once both forms are made")
	}
	alone := NewSharedMessage(TextMessage, chatJSON(2000), 0, 0, nil)
	if out := following.queuedForm(opText|rsv1Bit, alone); out.forms != nil {
		t.Fatal("a message nothing follows and that follows nothing kept its forms")
	}
}
