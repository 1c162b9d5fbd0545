package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/duplex/duplex/internal/wsclient"
	"github.com/duplex/duplex/internal/wstest"
)

// A server that compresses every message alone (fasthttp/websocket, as
// gorilla-style servers do): the answer has server_no_context_takeover and
// the client inflates without a window.
func TestNoContextTakeoverServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	up := websocket.FastHTTPUpgrader{EnableCompression: true}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		_ = up.Upgrade(ctx, func(c *websocket.Conn) {
			defer c.Close()
			c.EnableWriteCompression(true)
			for i := range n {
				if err := c.WriteMessage(websocket.TextMessage, chat(i)); err != nil {
					t.Errorf("server write: %v", err)
					return
				}
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(time.Second))
			_, _, _ = c.ReadMessage() // the client's close answer
		})
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	var wire bytes.Buffer
	var wireMu sync.Mutex
	c := dial(t, "ws://"+ln.Addr().String()+"/", wsclient.Options{
		Extensions: chromeOffer,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return teeConn{nc, &wire, &wireMu}, err
		},
	})
	if !c.Deflate() || c.ContextTakeover() || !strings.Contains(c.Extensions(), "server_no_context_takeover") {
		t.Fatalf("deflate %v, context takeover %v, answer %q", c.Deflate(), c.ContextTakeover(), c.Extensions())
	}
	var total int
	for i := range n {
		_, data, err := c.ReadMessage()
		if err != nil || !bytes.Equal(data, chat(i)) {
			t.Fatalf("message %d: %.60q, %v", i, data, err)
		}
		total += len(data)
	}
	_, _, err = c.ReadMessage()
	var ce *wsclient.CloseError
	if !errors.As(err, &ce) || ce.Code != wsclient.CloseNormal || ce.Reason != "done" {
		t.Fatalf("got %v, want close 1000 done", err)
	}
	wireMu.Lock()
	defer wireMu.Unlock()
	if wire.Len() > total*3/4 {
		t.Fatalf("%d bytes on the wire for %d of messages: not compressed", wire.Len(), total)
	}
}

// teeConn copies what it reads into w.
type teeConn struct {
	net.Conn
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (c teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.w.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// An answer a strict browser refuses fails the dial; the answers it
// accepts succeed.
func TestExtensionAnswers(t *testing.T) {
	for _, tc := range []struct {
		offer, answer string
		ok, takeover  bool
	}{
		{chromeOffer, takeoverAnswer, true, true},
		{chromeOffer, "permessage-deflate", true, true},
		{chromeOffer, "", true, false},
		{chromeOffer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, false},
		{chromeOffer, `permessage-deflate; server_max_window_bits="10"; client_max_window_bits=12`, true, true},
		{"permessage-deflate", "Permessage-Deflate; Server_Max_Window_Bits=15", true, true},
		{chromeOffer, "permessage-deflate; foo", false, false},
		{chromeOffer, "permessage-deflate; server_max_window_bits=16", false, false},
		{chromeOffer, "permessage-deflate; server_max_window_bits=7", false, false},
		{chromeOffer, "permessage-deflate; server_max_window_bits", false, false},
		{chromeOffer, "permessage-deflate; server_max_window_bits=010", false, false},
		{chromeOffer, "permessage-deflate; client_max_window_bits", false, false},
		{chromeOffer, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", false, false},
		{chromeOffer, "permessage-deflate; server_no_context_takeover=1", false, false},
		{chromeOffer, "permessage-deflate, permessage-deflate", false, false},
		{chromeOffer, "x-webkit-deflate-frame", false, false},
		{"permessage-deflate", "permessage-deflate; client_max_window_bits=10", false, false},
		{"", "permessage-deflate", false, false},
	} {
		t.Run(tc.offer+" -> "+tc.answer, func(t *testing.T) {
			url := serve(t, tc.answer, func(s *wstest.ServerConn, _ *http.Request) {
				_, _, _, _ = s.ReadFrame() // until the client closes
			})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			c, err := wsclient.Dial(ctx, url, wsclient.Options{Extensions: tc.offer})
			if !tc.ok {
				if c != nil {
					c.Close()
				}
				if !errors.Is(err, wsclient.ErrBadExtensions) {
					t.Fatalf("got %v, want %v", err, wsclient.ErrBadExtensions)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.ContextTakeover() != tc.takeover || c.Deflate() != (tc.answer != "") {
				t.Fatalf("deflate %v, context takeover %v", c.Deflate(), c.ContextTakeover())
			}
		})
	}
}

// RSV1 where permessage-deflate does not allow it (not negotiated, or on
// a continuation frame) is a protocol error, answered with close 1002.
func TestRSV1OutOfPlaceIsAProtocolError(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		frames       func(s *wstest.ServerConn)
	}{
		{"not negotiated", "", func(s *wstest.ServerConn) {
			_ = s.WriteFrame(true, true, wsclient.TextMessage, s.Compress([]byte("hello")))
		}},
		{"on a continuation", takeoverAnswer, func(s *wstest.ServerConn) {
			z := s.Compress([]byte("hello hello hello"))
			_ = s.WriteFrame(false, true, wsclient.TextMessage, z[:2])
			_ = s.WriteFrame(true, true, 0, z[2:])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			done := make(chan struct{})
			url := serve(t, tc.answer, func(s *wstest.ServerConn, _ *http.Request) {
				defer close(done)
				tc.frames(s)
				got = readFrames(t, s)
			})
			c := dial(t, url, wsclient.Options{Extensions: chromeOffer})
			if _, data, err := c.ReadMessage(); !errors.Is(err, wsclient.ErrProtocol) {
				t.Fatalf("got %q, %v; want %v", data, err, wsclient.ErrProtocol)
			}
			<-done
			if fmt.Sprint(got) != "[8:1002]" {
				t.Fatalf("the server got %q, want a close 1002", got)
			}
		})
	}
}

// MaxMessageBytes bounds the inflated size: a small compressed frame that
// inflates past it fails with close 1009.
func TestMaxMessageBytesBoundsTheInflatedSize(t *testing.T) {
	var got []string
	done := make(chan struct{})
	url := serve(t, takeoverAnswer, func(s *wstest.ServerConn, _ *http.Request) {
		defer close(done)
		_ = s.WriteMessage(wsclient.TextMessage, bytes.Repeat([]byte("a"), 10_000))
		_ = s.WriteMessage(wsclient.TextMessage, bytes.Repeat([]byte("a"), 10_001))
		got = readFrames(t, s)
	})
	c := dial(t, url, wsclient.Options{Extensions: chromeOffer, MaxMessageBytes: 10_000})
	if _, data, err := c.ReadMessage(); err != nil || len(data) != 10_000 {
		t.Fatalf("a message of the limit: %d bytes, %v", len(data), err)
	}
	if _, _, err := c.ReadMessage(); !errors.Is(err, wsclient.ErrMessageTooBig) {
		t.Fatalf("a message over the limit: %v", err)
	}
	<-done
	if fmt.Sprint(got) != "[8:1009]" {
		t.Fatalf("the server got %q, want a close 1009", got)
	}
}

// A non-101 answer is a *HandshakeError naming the status; a 101 with a
// wrong Sec-WebSocket-Accept is refused.
func TestHandshakeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		check        func(error) bool
	}{
		{"403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", func(err error) bool {
			var he *wsclient.HandshakeError
			return errors.As(err, &he) && he.StatusCode == 403 && strings.Contains(err.Error(), "403 Forbidden")
		}},
		{"bad accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: eA==\r\n\r\n",
			func(err error) bool { return errors.Is(err, wsclient.ErrBadHandshake) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveRaw(t, func(conn net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					_, _ = conn.Write([]byte(tc.answer))
				}
			})
			_, err := wsclient.Dial(context.Background(), url, wsclient.Options{})
			if !tc.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// Frames the server sends in the same write as its 101 are read, not
// lost with the handshake's buffer.
func TestFramesRightAfterThe101AreKept(t *testing.T) {
	url := serveRaw(t, func(conn net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		frame := append([]byte{0x81, 5}, "early"...)
		_, _ = conn.Write(append([]byte(answer), frame...))
		_, _ = conn.Read(make([]byte, 64)) // until the client closes
	})
	c := dial(t, url, wsclient.Options{})
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "early" {
		t.Fatalf("got %q, %v", data, err)
	}
}

// Writes from another goroutine interleave safely with the pongs the
// reader sends: the server gets every message and every pong intact.
func TestWritesConcurrentWithPongs(t *testing.T) {
	const n = 200
	var msgs, pongs []string
	done := make(chan struct{})
	url := serve(t, takeoverAnswer, func(s *wstest.ServerConn, _ *http.Request) {
		defer close(done)
		// The handler's return ends the connection: not before "last"
		// is written.
		var pinger sync.WaitGroup
		defer pinger.Wait()
		pinger.Go(func() {
			for i := range n {
				_ = s.WriteFrame(true, false, wsclient.PingMessage, fmt.Appendf(nil, "ping %d", i))
			}
			_ = s.WriteFrame(true, false, wsclient.TextMessage, []byte("last"))
		})
		for len(msgs) < n || len(pongs) < n {
			_, op, p, err := s.ReadFrame()
			if err != nil {
				t.Errorf("server read: %v", err)
				return
			}
			if op == wsclient.PongMessage {
				pongs = append(pongs, string(p))
			} else {
				msgs = append(msgs, fmt.Sprintf("%d:%s", op, p))
			}
		}
	})
	c := dial(t, url, wsclient.Options{Extensions: chromeOffer})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := range n {
			if err := c.WriteMessage(wsclient.TextMessage, fmt.Appendf(nil, "message %d", i)); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	})
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "last" {
		t.Fatalf("got %q, %v", data, err)
	}
	writer.Wait()
	<-done
	for i := range n {
		if msgs[i] != fmt.Sprintf("1:message %d", i) || pongs[i] != fmt.Sprintf("ping %d", i) {
			t.Fatalf("frame %d: message %q, pong %q", i, msgs[i], pongs[i])
		}
	}
}

// A server that pings but never reads cannot block the reader for good:
// once the pongs fill the socket, the blocked pong times out and
// ReadMessage returns the timeout.
func TestBlockedPongEndsTheRead(t *testing.T) {
	url := serve(t, "", func(s *wstest.ServerConn, _ *http.Request) {
		_ = s.Conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		ping := bytes.Repeat([]byte("p"), 125)
		for s.WriteFrame(true, false, wsclient.PingMessage, ping) == nil {
		}
	})
	c := dial(t, url, wsclient.Options{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = nc.(*net.TCPConn).SetWriteBuffer(4 << 10)
		}
		return nc, err
	}})
	_, _, err := c.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want the pong's write timeout", err)
	}
	c.Close() // ends the server's writes
}
