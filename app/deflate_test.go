package app

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/internal/wstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// dialRTDeflate is dialRT through a client that negotiates
// permessage-deflate (fasthttp/websocket's, strict about RSV1), counting
// the bytes it reads into wire.
func dialRTDeflate(t *testing.T, s *testServer, query string, deflate bool, wire *atomic.Int64) *rtClient {
	t.Helper()
	d := websocket.Dialer{
		EnableCompression: deflate,
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			return wstest.CountingConn{Conn: c, N: wire}, err
		},
	}
	return rttest.MustDial(t, realtimeURL(s, query), rttest.Options{Name: query, Dialer: &d})
}

// On /realtime, subscribers that negotiated deflate and subscribers that
// did not get the same publications, small and large, in order; the
// large ones cost the deflate subscribers a fraction of the bytes.
func TestRealtimeDeliversToDeflateAndPlainSubscribers(t *testing.T) {
	s := startServer(t, nil)
	var zipped, plain atomic.Int64
	z := dialRTDeflate(t, s, "name=zipped", true, &zipped)
	p := dialRTDeflate(t, s, "name=plain", false, &plain)
	pub := dialRT(t, s, "name=pub")
	for _, c := range []*rtClient{z, p, pub} {
		c.Subscribe("chat:deflate")
	}
	const n = 20 // the chat namespace's publish burst
	for i := range n {
		text := "短"
		if i%2 == 1 { // 1 KB of chat-like JSON
			text = strings.Repeat(fmt.Sprintf("李旺: 大家好, message %d. ", i), 30)
		}
		data, _ := json.Marshal(map[string]string{"user": "李旺", "text": text})
		pub.Send(protocol.Command{Op: protocol.OpPublish, Channel: "chat:deflate", Data: data})
	}
	zPubs := z.WaitPubs("chat:deflate", n, 10*time.Second)
	pPubs := p.WaitPubs("chat:deflate", n, 10*time.Second)
	for i := range n {
		if string(zPubs[i].Data) != string(pPubs[i].Data) || zPubs[i].Offset != uint64(i+1) {
			t.Fatalf("publication %d: deflate %s (offset %d), plain %s", i, zPubs[i].Data, zPubs[i].Offset, pPubs[i].Data)
		}
	}
	if zipped.Load()*2 > plain.Load() {
		t.Fatalf("deflate subscriber read %d bytes, plain %d: want well under half", zipped.Load(), plain.Load())
	}
}
