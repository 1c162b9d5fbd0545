package wsclient_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/wsclient"
	"github.com/duplex/duplex/internal/wstest"
)

// chromeOffer is what Chrome offers; duplex answers it with context
// takeover (no server_no_context_takeover).
const (
	chromeOffer    = "permessage-deflate; client_max_window_bits"
	takeoverAnswer = "permessage-deflate; client_no_context_takeover"
	testTimeout    = 5 * time.Second
)

// serve starts a listener whose connections get a hand-written handshake
// answering extensions, then run handler; it returns the ws:// URL. The
// listener and handlers end with the test.
func serve(t *testing.T, extensions string, handler func(s *wstest.ServerConn, req *http.Request)) string {
	t.Helper()
	return serveRaw(t, func(conn net.Conn) {
		s, req, err := wstest.Handshake(conn, extensions)
		if err != nil {
			t.Errorf("server handshake: %v", err)
			return
		}
		handler(s, req)
	})
}

// serveRaw is serve with the handshake left to handler.
func serveRaw(t *testing.T, handler func(conn net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(testTimeout))
				handler(conn)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "ws://" + ln.Addr().String() + "/ws?x=1"
}

func dial(t *testing.T, url string, opt wsclient.Options) *wsclient.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := wsclient.Dial(ctx, url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	return c
}

// chat is a chat-like JSON message; messages with near seqs share most of
// their bytes, as a channel's publications do.
func chat(seq int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"channel":"room:lobby","offset":%d,"data":{"msgs":[`, seq)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"user":"user%d","text":"message %d of %d: the weather in town is %s today","ts":%d}`,
			(seq+i)%7, i, seq, []string{"fine", "grey", "windy"}[(seq*i)%3], 1_700_000_000+seq*10+i)
	}
	b.WriteString("]}}")
	return b.Bytes()
}

// readFrames reads the client's frames until its close frame and returns
// them as "opcode:payload" strings.
func readFrames(t *testing.T, s *wstest.ServerConn) []string {
	var got []string
	for {
		_, op, p, err := s.ReadFrame()
		if err != nil {
			t.Errorf("server: reading the client: %v (after %q)", err, got)
			return got
		}
		if op == wsclient.CloseMessage && len(p) >= 2 {
			got = append(got, fmt.Sprintf("%d:%d", op, binary.BigEndian.Uint16(p)))
			return got
		}
		got = append(got, fmt.Sprintf("%d:%s", op, p))
		if op == wsclient.CloseMessage {
			return got
		}
	}
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// A server with context takeover: compressed messages refer to earlier
// ones (across uncompressed messages, pings and fragments, and beyond the
// 32 KiB window); the client returns exactly what was sent, answers the
// pings and reports the close.
func TestContextTakeoverMessagesArriveExactly(t *testing.T) {
	type sent struct {
		kind int
		data []byte
	}
	var want []sent
	for i := range 3 {
		want = append(want, sent{wsclient.TextMessage, chat(i)})
	}
	plain := []byte(`{"plain":"not compressed, not part of the window: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}`)
	want = append(want, sent{wsclient.TextMessage, plain}, sent{wsclient.TextMessage, chat(3)})
	fragmented := chat(4)
	want = append(want, sent{wsclient.TextMessage, fragmented}, sent{wsclient.BinaryMessage, chat(5)})
	for i := 6; i < 120; i++ { // about 80 KiB: the window is cut, keeping its end
		want = append(want, sent{wsclient.TextMessage, chat(i)})
	}
	var serverGot []string
	var offer string
	done := make(chan struct{})
	url := serve(t, takeoverAnswer, func(s *wstest.ServerConn, req *http.Request) {
		defer close(done)
		offer = req.Header.Get("Sec-WebSocket-Extensions")
		w := func(fin, rsv1 bool, op byte, p []byte) {
			if err := s.WriteFrame(fin, rsv1, op, p); err != nil {
				t.Errorf("server write: %v", err)
			}
		}
		for _, m := range want {
			switch {
			case bytes.Equal(m.data, plain):
				w(true, false, byte(m.kind), m.data)
				w(true, false, wsclient.PingMessage, []byte("p1"))
			case bytes.Equal(m.data, fragmented):
				z := s.Compress(m.data)
				third := len(z) / 3
				w(false, true, byte(m.kind), z[:third])
				w(true, false, wsclient.PingMessage, []byte("p2"))
				w(false, false, 0, z[third:2*third])
				w(true, false, 0, z[2*third:])
			default:
				w(true, true, byte(m.kind), s.Compress(m.data))
			}
		}
		w(true, false, wsclient.CloseMessage, closePayload(4001, "bye"))
		serverGot = readFrames(t, s)
	})
	c := dial(t, url, wsclient.Options{Extensions: chromeOffer})
	if !c.ContextTakeover() || c.Extensions() != takeoverAnswer {
		t.Fatalf("context takeover %v, answer %q", c.ContextTakeover(), c.Extensions())
	}
	for i, m := range want {
		kind, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if kind != m.kind || !bytes.Equal(data, m.data) {
			t.Fatalf("message %d: got kind %d %.80q, want kind %d %.80q", i, kind, data, m.kind, m.data)
		}
	}
	_, _, err := c.ReadMessage()
	var ce *wsclient.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" {
		t.Fatalf("after the messages: %v, want close 4001 bye", err)
	}
	if _, _, again := c.ReadMessage(); again != err {
		t.Fatalf("a read after the close: %v", again)
	}
	<-done
	if offer != chromeOffer {
		t.Errorf("offer %q, want %q", offer, chromeOffer)
	}
	if w := []string{"10:p1", "10:p2", "8:4001"}; fmt.Sprint(serverGot) != fmt.Sprint(w) {
		t.Errorf("the server got %q, want %q", serverGot, w)
	}
}
