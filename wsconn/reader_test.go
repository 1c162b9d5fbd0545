package wsconn

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/internal/wstest"
)

// clientFrame builds one masked client frame, as a browser sends it.
func clientFrame(fin bool, opcode int, payload []byte) []byte {
	return wstest.ClientFrame(fin, false, byte(opcode), payload)
}

// recorder writes down every event as a line.
type recorder struct{ events []string }

func (r *recorder) message(op int, data []byte) {
	r.events = append(r.events, fmt.Sprintf("msg %d %q", op, data))
}
func (r *recorder) ping(p []byte) { r.events = append(r.events, fmt.Sprintf("ping %q", p)) }
func (r *recorder) pong()         { r.events = append(r.events, "pong") }
func (r *recorder) closeFrame(code CloseCode) {
	r.events = append(r.events, fmt.Sprintf("close %d", code))
}

// parseInPieces feeds stream to a new parser in pieces of size n (every
// read the network might deliver) and returns the events and the first
// violation.
func parseInPieces(stream []byte, n int, limit int64) ([]string, *violation) {
	p := &frameParser{maxMessage: limit}
	r := &recorder{}
	stream = bytes.Clone(stream)
	for len(stream) > 0 {
		k := min(n, len(stream))
		piece := bytes.Clone(stream[:k]) // the parser owns and unmasks its input
		stream = stream[k:]
		if v := p.feed(piece, r); v != nil {
			return r.events, v
		}
	}
	return r.events, nil
}

func TestParserReadsEveryFrameKindInAnyPieces(t *testing.T) {
	long := bytes.Repeat([]byte("長"), 100) // 300 bytes: the 16-bit length form
	huge := bytes.Repeat([]byte{7}, 70000) // the 64-bit length form
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte("李旺"))...)
	stream = append(stream, clientFrame(true, opText, nil)...)
	stream = append(stream, clientFrame(false, opText, []byte("frag"))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p1"))...) // control frames may interleave
	stream = append(stream, clientFrame(false, opContinuation, []byte("ment"))...)
	stream = append(stream, clientFrame(true, opContinuation, []byte("ed"))...)
	stream = append(stream, clientFrame(true, opBinary, long)...)
	stream = append(stream, clientFrame(true, opBinary, huge)...)
	stream = append(stream, clientFrame(true, opPong, nil)...)
	stream = append(stream, clientFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})...)
	stream = append(stream, clientFrame(true, opText, []byte("after close: ignored"))...)
	want := []string{
		`msg 1 "李旺"`, `msg 1 ""`, `ping "p1"`, `msg 1 "fragmented"`,
		fmt.Sprintf("msg 2 %q", long), fmt.Sprintf("msg 2 %q", huge), "pong", "close 1000",
	}
	for _, n := range []int{1, 2, 3, 7, 13, 64, 4096, len(stream)} {
		got, v := parseInPieces(stream, n, 1<<20)
		if v != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("pieces of %d: violation %v, events:\n%.300s", n, v, strings.Join(got, "\n"))
		}
	}
}

func TestParserRefusesWhatTheProtocolForbids(t *testing.T) {
	withRSV := clientFrame(true, opText, []byte("hi"))
	withRSV[0] |= 0x40
	unmasked := clientFrame(true, opText, []byte("hi"))
	unmasked[1] &^= 0x80
	topBit := clientFrame(true, opBinary, bytes.Repeat([]byte{1}, 70000))
	topBit[2] |= 0x80
	cases := []struct {
		name   string
		stream []byte
		code   CloseCode
	}{
		{"invalid UTF-8 text", clientFrame(true, opText, []byte{'o', 'k', 0xff}), CloseInvalidPayload},
		{"UTF-8 split across fragments is fine, truncated is not",
			append(clientFrame(false, opText, []byte("李")[:2]), clientFrame(true, opContinuation, nil)...), CloseInvalidPayload},
		{"over the size limit", clientFrame(true, opBinary, bytes.Repeat([]byte{1}, 1025)), CloseMessageTooBig},
		{"over the size limit across fragments",
			append(clientFrame(false, opBinary, bytes.Repeat([]byte{1}, 1000)), clientFrame(true, opContinuation, bytes.Repeat([]byte{1}, 25))...), CloseMessageTooBig},
		{"unmasked client frame", unmasked, CloseProtocolError},
		{"RSV1 without an extension", withRSV, CloseProtocolError},
		{"reserved opcode", clientFrame(true, 0x3, nil), CloseProtocolError},
		{"continuation with nothing to continue", clientFrame(true, opContinuation, []byte("x")), CloseProtocolError},
		{"new message inside a fragmented one",
			append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), CloseProtocolError},
		{"fragmented control frame", clientFrame(false, opPing, nil), CloseProtocolError},
		{"control frame over 125 bytes", clientFrame(true, opPing, bytes.Repeat([]byte{1}, 126)), CloseProtocolError},
		{"64-bit length with its top bit set", topBit, CloseProtocolError},
		{"close with a 1-byte payload", clientFrame(true, opClose, []byte{3}), CloseProtocolError},
		{"close with an invalid code", clientFrame(true, opClose, []byte{0x03, 0xe7}), CloseProtocolError}, // 999
		{"close with code 1005", clientFrame(true, opClose, []byte{0x03, 0xed}), CloseProtocolError},
		{"close with an invalid UTF-8 reason", clientFrame(true, opClose, []byte{0x03, 0xe8, 0xff}), CloseInvalidPayload},
	}
	for _, tc := range cases {
		for _, n := range []int{1, 5, len(tc.stream)} {
			events, v := parseInPieces(tc.stream, n, 1024)
			if v == nil || v.code != tc.code {
				t.Errorf("%s (pieces of %d): violation %+v, want code %d; events %v", tc.name, n, v, tc.code, events)
			}
		}
	}
	// The size limit is enforced from the header, before the payload is
	// buffered: 2 bytes of a frame that announces 1 MiB are enough.
	p := &frameParser{maxMessage: 1024}
	if v := p.feed(clientFrame(true, opBinary, make([]byte, 1<<20))[:14], &recorder{}); v == nil || v.code != CloseMessageTooBig {
		t.Fatalf("oversized header: %+v", v)
	}
}

func TestParserHoldsNothingBetweenMessages(t *testing.T) {
	p := &frameParser{maxMessage: 1 << 20}
	r := &recorder{}
	frame := clientFrame(true, opText, bytes.Repeat([]byte("x"), 5000))
	if p.feed(frame[:3000], r) != nil || p.partial == nil {
		t.Fatal("half a frame not kept")
	}
	if p.feed(frame[3000:], r) != nil || len(r.events) != 1 {
		t.Fatalf("events %d", len(r.events))
	}
	if p.partial != nil || p.msg != nil {
		t.Fatal("buffers kept after the message")
	}
}

func TestUnmaskMatchesBytewiseXOR(t *testing.T) {
	key := []byte{0xa1, 0xb2, 0xc3, 0xd4}
	for n := 0; n < 40; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[i%4]
		}
		unmask(b, key)
		if !bytes.Equal(b, want) {
			t.Fatalf("n=%d: %x, want %x", n, b, want)
		}
	}
}

// FuzzParser: any input, cut anywhere, must neither panic nor depend on
// how it was cut: the events and the violation are the same as when the
// whole input arrives at once. `go test` runs the seeds; `go test -fuzz
// FuzzParser ./wsconn` searches further.
func FuzzParser(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("李旺")), uint8(1))
	f.Add(append(clientFrame(false, opBinary, []byte("ab")), clientFrame(true, opContinuation, []byte("cd"))...), uint8(3))
	f.Add(clientFrame(true, opClose, []byte{0x03, 0xe8}), uint8(2))
	f.Add(clientFrame(true, opBinary, make([]byte, 300)), uint8(7))
	f.Add([]byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1}, uint8(4))
	f.Fuzz(func(t *testing.T, stream []byte, piece uint8) {
		whole, wholeV := parseInPieces(stream, max(len(stream), 1), 512)
		cut, cutV := parseInPieces(stream, int(piece)%16+1, 512)
		if strings.Join(whole, "\n") != strings.Join(cut, "\n") || (wholeV == nil) != (cutV == nil) ||
			(wholeV != nil && wholeV.code != cutV.code) {
			t.Fatalf("whole: %v %+v\ncut in %d: %v %+v", whole, wholeV, int(piece)%16+1, cut, cutV)
		}
	})
}

// Text that can no longer be UTF-8 is refused with 1007 as soon as the
// bytes that make it so arrive (Autobahn 6.4.1–6.4.4): in a later
// fragment, or in a later part of one frame, before the message ends.
func TestParserFailsFastOnInvalidUTF8(t *testing.T) {
	valid := []byte("κόσμε, 李旺 ")
	bad := []byte{0xF4, 0x90, 0x80, 0x80} // past U+10FFFF
	rest := []byte("edited, and more text after it")
	cases := []struct {
		name   string
		pieces [][]byte // fed one by one; the violation must come with the last
	}{
		{"fragment by fragment", [][]byte{
			clientFrame(false, opText, valid),
			clientFrame(false, opContinuation, append(bytes.Clone(valid[:2]), bad...)),
		}},
		{"within one frame", func() [][]byte {
			f := clientFrame(true, opText, append(append(bytes.Clone(valid), bad...), rest...))
			cut := len(f) - len(rest) - len(bad) + 2 // the first two bad bytes are in
			return [][]byte{f[:len(f)-len(rest)-len(bad)], f[len(f)-len(rest)-len(bad) : cut]}
		}()},
		{"within a continuation frame", func() [][]byte {
			first := clientFrame(false, opText, valid)
			f := clientFrame(true, opContinuation, append(append([]byte("ok "), bad...), rest...))
			return [][]byte{first, f[:6+3], f[6+3 : 6+3+2]} // header, "ok ", two bad bytes
		}()},
		{"a sequence split across fragments", [][]byte{
			clientFrame(false, opText, append(bytes.Clone(valid), bad[:1]...)),
			clientFrame(false, opContinuation, bad[1:2]),
		}},
	}
	for _, tc := range cases {
		p := &frameParser{maxMessage: 1 << 16}
		r := &recorder{}
		for i, piece := range tc.pieces {
			v := p.feed(bytes.Clone(piece), r)
			last := i == len(tc.pieces)-1
			if !last && v != nil {
				t.Fatalf("%s: piece %d refused early: %+v", tc.name, i, v)
			}
			if last && (v == nil || v.code != CloseInvalidPayload) {
				t.Fatalf("%s: after the invalid bytes: %+v, want 1007 at once", tc.name, v)
			}
		}
		if len(r.events) != 0 {
			t.Fatalf("%s: events %v, want none", tc.name, r.events)
		}
	}
}

// Valid text in many pieces is delivered whole, exactly once.
func TestParserJoinsValidTextCheckedInPieces(t *testing.T) {
	text := strings.Repeat("李旺 κόσμε 🙂 ", 40)
	stream := append(clientFrame(false, opText, []byte(text[:101])), clientFrame(true, opContinuation, []byte(text[101:]))...)
	for n := 1; n <= 17; n++ {
		events, v := parseInPieces(stream, n, 1<<16)
		if v != nil || len(events) != 1 || events[0] != fmt.Sprintf("msg %d %q", opText, text) {
			t.Fatalf("pieces of %d: %v %+v", n, events, v)
		}
	}
}

// onlyPings lets the poller feed only whole, valid pings and pongs: any
// other frame, a piece of one, or a parser holding a piece is refused.
func TestParserOnlyPingsAcceptsWholePingsAndPongsAlone(t *testing.T) {
	ping, pong := clientFrame(true, opPing, []byte("p")), clientFrame(true, opPong, nil)
	rsv := clientFrame(true, opPong, nil)
	rsv[0] |= 0x40
	unmasked := clientFrame(true, opPing, nil)
	unmasked[1] &^= 0x80
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	cases := []struct {
		name string
		data []byte
		want bool
	}{
		{"ping", ping, true},
		{"pongs and pings", join(pong, ping, pong, clientFrame(true, opPing, bytes.Repeat([]byte{1}, 125))), true},
		{"nothing", nil, false},
		{"cut short", ping[:len(ping)-1], false},
		{"header only", pong[:1], false},
		{"then text", join(pong, clientFrame(true, opText, []byte("hi"))), false},
		{"close", clientFrame(true, opClose, nil), false},
		{"over 125 bytes", clientFrame(true, opPing, make([]byte, 126)), false},
		{"not final", clientFrame(false, opPing, nil), false},
		{"reserved bit", rsv, false},
		{"unmasked", unmasked, false},
	}
	for _, c := range cases {
		var p frameParser
		if got := p.onlyPings(c.data); got != c.want {
			t.Errorf("%s: onlyPings %v, want %v", c.name, got, c.want)
		}
	}
	var p frameParser
	if p.feed(bytes.Clone(ping[:3]), &recorder{}) != nil || p.onlyPings(ping[3:]) {
		t.Error("onlyPings with a piece of a frame held: true, want false")
	}
}
