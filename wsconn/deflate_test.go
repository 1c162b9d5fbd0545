package wsconn

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// clientDeflate compresses msg as a browser does for permessage-deflate,
// with the standard library's flate (another implementation than the
// server's): a sync flush, its tail stripped.
func clientDeflate(t testing.TB, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, deflateTail) {
		t.Fatalf("sync flush without its tail: % x", out[max(0, len(out)-8):])
	}
	return out[:len(out)-len(deflateTail)]
}

// compressedFrame is one client frame with RSV1 set (the first frame of a
// compressed message).
func compressedFrame(fin bool, opcode int, payload []byte) []byte {
	f := clientFrame(fin, opcode, payload)
	f[0] |= rsv1Bit
	return f
}

// parseDeflateInPieces is parseInPieces on a parser that negotiated
// deflate.
func parseDeflateInPieces(stream []byte, n int, limit int64) ([]string, *violation) {
	p := &frameParser{maxMessage: limit, deflate: true}
	r := &recorder{}
	for len(stream) > 0 {
		k := min(n, len(stream))
		piece := bytes.Clone(stream[:k])
		stream = stream[k:]
		if v := p.feed(piece, r); v != nil {
			return r.events, v
		}
	}
	return r.events, nil
}

// chatJSON is n bytes of chat-like JSON lines, which is what deflate is
// for: different users and texts, so that it compresses as real chat
// does rather than to nothing. Calls with different n differ.
func chatJSON(n int) []byte {
	users := []string{"李旺", "王芳", "张伟", "alice", "bob_42", "夜猫子", "路人甲", "momo"}
	texts := []string{"大家好", "今天的比赛太精彩了", "主播加油!", "哈哈哈哈", "这个操作666", "good game",
		"前方高能", "求BGM", "刚下班,来晚了", "nice shot", "明天几点开播?", "笑死我了"}
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"channel":"chat:lobby","pub":{"offset":%d,"data":{"uid":%d,"user":"%s","text":"%s %s"}}}`+"\n",
			rng.IntN(1e6), 100000+rng.IntN(900000), users[rng.IntN(len(users))], texts[rng.IntN(len(texts))], texts[rng.IntN(len(texts))])
	}
	return b[:n]
}

func TestParserInflatesCompressedMessagesOfEverySize(t *testing.T) {
	for _, size := range []int{0, 16, 125, 126, 1 << 10, 4 << 10, 64 << 10, 128 << 10} {
		text := bytes.ToValidUTF8(chatJSON(size), nil) // a character cut at the end goes
		binary := bytes.Repeat([]byte{0, 1, 2, 3, 250}, size/5+1)[:size]
		var stream []byte
		stream = append(stream, compressedFrame(true, opText, clientDeflate(t, text))...)
		stream = append(stream, clientFrame(true, opText, []byte("plain between"))...)
		stream = append(stream, compressedFrame(true, opBinary, clientDeflate(t, binary))...)
		// Fragmented: RSV1 on the first fragment only, a ping between.
		z := clientDeflate(t, text)
		half := len(z) / 2
		stream = append(stream, compressedFrame(false, opText, z[:half])...)
		stream = append(stream, clientFrame(true, opPing, []byte("p"))...)
		stream = append(stream, clientFrame(true, opContinuation, z[half:])...)
		want := []string{
			fmt.Sprintf("msg 1 %q", text), `msg 1 "plain between"`, fmt.Sprintf("msg 2 %q", binary),
			`ping "p"`, fmt.Sprintf("msg 1 %q", text),
		}
		for _, n := range []int{1, 7, 4096, len(stream)} {
			if size > 4<<10 && n < 4096 {
				continue // byte by byte is covered by the small sizes
			}
			got, v := parseDeflateInPieces(stream, n, 256<<10)
			if v != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("size %d, pieces of %d: violation %+v, %d events", size, n, v, len(got))
			}
		}
	}
}

func TestParserInflatesWhatDeflateMessageCompressed(t *testing.T) {
	msg := chatJSON(1000)
	z := DeflateMessage(msg)
	if len(z) >= len(msg)/2 {
		t.Fatalf("1000 bytes of chat JSON compressed to %d", len(z))
	}
	got, v := parseDeflateInPieces(compressedFrame(true, opText, z), 1<<20, 1<<20)
	if v != nil || len(got) != 1 || got[0] != fmt.Sprintf("msg 1 %q", msg) {
		t.Fatalf("violation %+v, events %.200v", v, got)
	}
}

func TestParserRefusesBadCompressedInput(t *testing.T) {
	bomb := clientDeflate(t, make([]byte, 8<<20)) // 8 MiB of zeros in a few KiB
	withPing := compressedFrame(true, opPing, nil)
	plainRSV1 := compressedFrame(true, opText, []byte("hi"))
	cases := []struct {
		name    string
		deflate bool
		stream  []byte
		code    CloseCode
	}{
		{"RSV1 without deflate negotiated", false, plainRSV1, CloseProtocolError},
		{"RSV1 on a ping", true, withPing, CloseProtocolError},
		{"RSV1 on a close", true, compressedFrame(true, opClose, nil), CloseProtocolError},
		{"RSV1 on a continuation", true,
			append(compressedFrame(false, opText, clientDeflate(t, []byte("ab"))), compressedFrame(true, opContinuation, nil)...), CloseProtocolError},
		{"RSV1 on a continuation of a plain message", true,
			append(clientFrame(false, opText, []byte("a")), compressedFrame(true, opContinuation, nil)...), CloseProtocolError},
		{"RSV2", true, func() []byte { f := clientFrame(true, opText, []byte("a")); f[0] |= 0x20; return f }(), CloseProtocolError},
		{"decompression bomb", true, compressedFrame(true, opBinary, bomb), CloseMessageTooBig},
		{"inflated just over the limit", true, compressedFrame(true, opBinary, clientDeflate(t, make([]byte, 1025))), CloseMessageTooBig},
		{"invalid UTF-8 inflated", true, compressedFrame(true, opText, clientDeflate(t, []byte("ok\xff"))), CloseInvalidPayload},
		{"text ending inside a character", true, compressedFrame(true, opText, clientDeflate(t, []byte("李")[:2])), CloseInvalidPayload},
		{"not deflate data", true, compressedFrame(true, opText, []byte{0xff, 0xff, 0xff}), CloseInvalidPayload},
	}
	for _, tc := range cases {
		for _, n := range []int{1, 5, len(tc.stream)} {
			p := &frameParser{maxMessage: 1024, deflate: tc.deflate}
			var v *violation
			for s := bytes.Clone(tc.stream); len(s) > 0 && v == nil; {
				k := min(n, len(s))
				v = p.feed(s[:k], &recorder{})
				s = s[k:]
			}
			if v == nil || v.code != tc.code {
				t.Errorf("%s (pieces of %d): violation %+v, want code %d", tc.name, n, v, tc.code)
			}
		}
	}
	// At the exact limit, it is a message.
	got, v := parseDeflateInPieces(compressedFrame(true, opBinary, clientDeflate(t, make([]byte, 1024))), 1<<20, 1024)
	if v != nil || len(got) != 1 {
		t.Fatalf("1024 bytes at a 1024 limit: %+v %d", v, len(got))
	}
}

// inflateCost is the bytes allocated by parsing stream with the given
// limit, and the violation.
func inflateCost(stream []byte, limit int64) (uint64, *violation) {
	p := &frameParser{maxMessage: limit, deflate: true}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := p.feed(stream, &recorder{})
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, v
}

func TestDecompressionBombCostsTheLimitNotItsSize(t *testing.T) {
	bomb := compressedFrame(true, opBinary, clientDeflate(t, make([]byte, 64<<20)))
	alloc, v := inflateCost(bomb, 64<<10)
	if v == nil || v.code != CloseMessageTooBig {
		t.Fatalf("64 MiB bomb at a 64 KiB limit: %+v", v)
	}
	// The limit, what the buffer grows by, and a pooled decompressor.
	if alloc > 1<<20 {
		t.Fatalf("a 64 MiB bomb cost %d bytes at a 64 KiB limit", alloc)
	}
}

func TestCompressedInvalidUTF8FailsFast(t *testing.T) {
	// Invalid at byte 1 of 32 MiB: refused before the rest is inflated.
	text := append([]byte{'a', 0xff}, bytes.Repeat([]byte("a"), 32<<20)...)
	stream := compressedFrame(true, opText, clientDeflate(t, text))
	alloc, v := inflateCost(stream, 64<<20)
	if v == nil || v.code != CloseInvalidPayload {
		t.Fatalf("violation %+v", v)
	}
	if alloc > 1<<20 {
		t.Fatalf("invalid UTF-8 at byte 1 cost %d bytes before it was refused", alloc)
	}
}

func TestParserWithDeflateHoldsNothingBetweenMessages(t *testing.T) {
	p := &frameParser{maxMessage: 1 << 20, deflate: true}
	for range 3 {
		if v := p.feed(compressedFrame(true, opText, clientDeflate(t, chatJSON(8<<10))), &recorder{}); v != nil {
			t.Fatal(v)
		}
		if p.partial != nil || p.msg != nil || p.msgRSV1 {
			t.Fatalf("held between messages: partial %d, msg %d, rsv1 %v", len(p.partial), len(p.msg), p.msgRSV1)
		}
	}
}
