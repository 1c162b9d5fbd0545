package handlers

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/wstest"
	"github.com/duplex/duplex/wsconn"
)

// deflateLimits are testLimits with compression on, as WS_COMPRESSION
// sets it, and room for a 128 KiB message.
var deflateLimits = func() wsconn.Limits {
	lim := testLimits
	lim.Deflate = true
	lim.DeflateMinBytes = 128
	lim.MaxMessageBytes = 256 << 10
	lim.SendQueueBytes = 4 << 20
	return lim
}()

// rawClient is a WebSocket client written byte by byte, to send what no
// well-behaved library would and to see each frame's RSV1 bit.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	resp *http.Response
}

// dialRaw opens /ws on addr, offering extensions (none if empty).
func dialRaw(t *testing.T, addr, extensions string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.resp, err = http.ReadResponse(c.r, nil)
	if err != nil || c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", c.resp, err)
	}
	return c
}

// send writes one masked frame; rsv1 sets the RSV1 bit.
func (c *rawClient) send(fin, rsv1 bool, opcode byte, payload []byte) {
	c.t.Helper()
	out := wstest.ClientFrame(fin, rsv1, opcode, payload)
	if _, err := c.conn.Write(out); err != nil {
		c.t.Fatal(err)
	}
}

// frame reads one server frame.
func (c *rawClient) frame() (b0 byte, payload []byte) {
	c.t.Helper()
	return wstest.ReadFrame(c.t, c.r)
}

// closeCode reads frames until the server's close frame and returns its
// code.
func (c *rawClient) closeCode() int {
	c.t.Helper()
	for {
		b0, p := c.frame()
		if b0&0x0F == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// deflate compresses msg as a browser does: a sync flush, its tail cut.
func deflate(t *testing.T, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(msg)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflate undoes deflate.
func inflate(t *testing.T, payload []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload),
		bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
	if err != nil {
		t.Fatalf("inflating the server's frame: %v", err)
	}
	return out
}

const deflateAnswerHeader = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

func TestUpgradeNegotiatesDeflateWithBrowserOffers(t *testing.T) {
	addr, _ := serveRouteWith(t, deflateLimits, Echo)
	off := deflateLimits
	off.Deflate = false
	addrOff, _ := serveRouteWith(t, off, Echo)
	cases := []struct {
		name, addr, offer, want string
	}{
		{"Chrome", addr, "permessage-deflate; client_max_window_bits", deflateAnswerHeader},
		{"Firefox", addr, "permessage-deflate", deflateAnswerHeader},
		{"Safari 15+", addr, "permessage-deflate; client_max_window_bits", deflateAnswerHeader},
		{"a window duplex cannot honour", addr, "permessage-deflate; server_max_window_bits=10", ""},
		{"no offer", addr, "", ""},
		{"WS_COMPRESSION off", addrOff, "permessage-deflate; client_max_window_bits", ""},
	}
	for _, tc := range cases {
		c := dialRaw(t, tc.addr, tc.offer)
		if got := c.resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
			t.Errorf("%s: answered %q, want %q", tc.name, got, tc.want)
			continue
		}
		// A compressed message is understood exactly when it was agreed.
		c.send(true, true, 0x1, deflate(t, []byte(strings.Repeat("李旺", 100))))
		b0, p := c.frame()
		switch {
		case tc.want != "" && (b0&0x40 == 0 || !strings.HasPrefix(string(inflate(t, p)), echoReceivedPrefix+"李旺")):
			t.Errorf("%s: compressed echo answered with frame %#x", tc.name, b0)
		case tc.want == "" && (b0&0x0F != 0x8 || binary.BigEndian.Uint16(p) != 1002):
			t.Errorf("%s: RSV1 without deflate answered with frame %#x % x, want close 1002", tc.name, b0, p[:min(len(p), 4)])
		}
	}
}

func TestSmallMessagesStayPlain(t *testing.T) {
	addr, _ := serveRouteWith(t, deflateLimits, Echo)
	c := dialRaw(t, addr, "permessage-deflate")
	small := []byte("0123456789abcdef") // 16 B: the reply is 85 B, under 128
	c.send(true, false, 0x2, small)
	if b0, p := c.frame(); b0 != 0x82 || !bytes.Equal(p, small) {
		t.Fatalf("16-byte binary echo: frame %#x %q, want plain", b0, p)
	}
	big := bytes.Repeat([]byte(`{"user":"李旺","text":"你好"}`), 20)
	c.send(true, false, 0x2, big) // a plain message gets a compressed answer all the same
	if b0, p := c.frame(); b0 != 0xC2 || !bytes.Equal(inflate(t, p), big) {
		t.Fatalf("%d-byte binary echo: frame %#x, want compressed", len(big), b0)
	}
}

func TestCompressedBadInputClosesWithItsCode(t *testing.T) {
	addr, _ := serveRouteWith(t, deflateLimits, Echo)
	cases := []struct {
		name string
		send func(c *rawClient)
		code int
	}{
		{"RSV1 on a ping", func(c *rawClient) { c.send(true, true, 0x9, nil) }, 1002},
		{"RSV1 on a continuation", func(c *rawClient) {
			z := deflate(t, []byte("hello hello"))
			c.send(false, true, 0x1, z[:2])
			c.send(true, true, 0x0, z[2:])
		}, 1002},
		{"decompression bomb", func(c *rawClient) { c.send(true, true, 0x2, deflate(t, make([]byte, 16<<20))) }, 1009},
		{"invalid UTF-8 inflated", func(c *rawClient) { c.send(true, true, 0x1, deflate(t, []byte("李旺\xff"))) }, 1007},
		{"not deflate data", func(c *rawClient) { c.send(true, true, 0x1, []byte{0xff, 0xfe, 0xfd}) }, 1007},
	}
	for _, tc := range cases {
		c := dialRaw(t, addr, "permessage-deflate")
		tc.send(c)
		if got := c.closeCode(); got != tc.code {
			t.Errorf("%s: closed with %d, want %d", tc.name, got, tc.code)
		}
	}
	// The server goes on serving others.
	c := dialRaw(t, addr, "permessage-deflate")
	c.send(true, true, 0x1, deflate(t, []byte("still here")))
	if b0, p := c.frame(); b0 != 0x81 || !strings.Contains(string(p), "still here") {
		t.Fatalf("after the bad inputs: frame %#x %q", b0, p)
	}
}

// A strict client (fasthttp/websocket, as gorilla's, with
// EnableCompression) echoes compressed text and binary messages of every
// size through /ws, fragmented ones included, and reads them back.
func TestStrictClientEchoesCompressedMessages(t *testing.T) {
	addr, _ := serveRouteWith(t, deflateLimits, Echo)
	var wire atomic.Int64
	d := fastws.Dialer{
		EnableCompression: true,
		NetDial: func(network, a string) (net.Conn, error) {
			c, err := net.Dial(network, a)
			return wstest.CountingConn{Conn: c, N: &wire}, err
		},
	}
	c, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateAnswerHeader {
		t.Fatalf("answered %q", got)
	}
	c.EnableWriteCompression(true)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, size := range []int{16, 125, 1 << 10, 16 << 10, 64 << 10, 128 << 10} {
		chat := []byte(strings.Repeat(`{"user":"李旺","text":"大家好"}`, size/32+1))
		text := []byte(strings.ToValidUTF8(string(chat[:size]), ""))
		binaryMsg := chat[:size]
		if err := c.WriteMessage(fastws.TextMessage, text); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != string(EchoReply(nil, text)) {
			t.Fatalf("text of %d: %d bytes back, %v", size, len(got), err)
		}
		if err := c.WriteMessage(fastws.BinaryMessage, binaryMsg); err != nil {
			t.Fatal(err)
		}
		before := wire.Load()
		if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, binaryMsg) {
			t.Fatalf("binary of %d: %d bytes back, %v", size, len(got), err)
		}
		if read := wire.Load() - before; size >= 1<<10 && read*3 > int64(size) {
			t.Errorf("binary echo of %d chat-like bytes took %d on the wire", size, read)
		}
	}
	// A message the client fragments: its writer splits what it compresses.
	w, err := c.NextWriter(fastws.BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.Repeat([]byte("fragment "), 20000)
	for p := range slices.Chunk(parts, 4096) {
		_, _ = w.Write(p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, parts) {
		t.Fatalf("fragmented: %d bytes back, %v", len(got), err)
	}
}
