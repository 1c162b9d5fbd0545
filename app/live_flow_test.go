package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime/protocol"
)

// stalledRcvBuf is the receive buffer of the viewer that stops reading:
// fixed (no autotuning to tens of MB), so the server's socket to it
// backs up within a second or two of ticks, but not below a few
// loopback segments (MSS 32 KiB), with which the window would reopen
// only on the 200 ms persist timer and the backlog drain at 40 KB/s.
const stalledRcvBuf = 128 << 10

// dialRTSmallBuffer opens /realtime with a receive buffer of rcvbuf bytes.
func dialRTSmallBuffer(t *testing.T, s *testServer, query string, rcvbuf int) *rtClient {
	t.Helper()
	d := *websocket.DefaultDialer
	d.HandshakeTimeout = replyTimeout
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return rttest.MustDial(t, realtimeURL(s, query), rttest.Options{Name: query, Dialer: &d})
}

// liveComments returns the comments of a flow-controlled channel that c
// was shown in tick frames, in order.
func liveComments(c *rtClient, channel string) []protocol.Publication {
	var out []protocol.Publication
	for _, m := range c.AllPushes() {
		if m.Channel == channel && m.Tick != nil {
			out = append(out, m.Tick.Publications...)
		}
	}
	return out
}

// tickTally adds up what a viewer's tick frames of channel showed and
// what they said it missed, and whether a publication with data
// containing mark was shown.
func tickTally(c *rtClient, channel, mark string) (shown, missed, ticks int, seen bool) {
	for _, m := range c.AllPushes() {
		if m.Channel != channel || m.Tick == nil {
			continue
		}
		ticks++
		shown += len(m.Tick.Publications)
		missed += m.Tick.Missed
		for _, p := range m.Tick.Publications {
			if strings.Contains(string(p.Data), mark) {
				seen = true
			}
		}
	}
	return shown, missed, ticks, seen
}

// A flooded live room over real sockets: a reading viewer, a viewer that
// stops reading (small receive buffer) and a sender. The stalled viewer
// is not disconnected; while stalled it is queued nothing new, and once
// it reads again it is told exactly how many comments it missed and gets
// fresh ticks: what it was shown plus what it missed equals what the
// reading viewer was shown plus missed. The sender sees each of its own
// comments at once, before the reply.
func TestLiveFlowStalledViewerResumesWithFreshTicks(t *testing.T) {
	s := startServer(t, manyClientsEnv(map[string]string{"WS_WRITE_TIMEOUT": "60s",
		// A budget of 20 a tick: every tick frame is up to 1 MiB, so the
		// stalled socket and the server's send buffer (which the kernel
		// grows to a few MB) fill within a few ticks, however fast the
		// flood goes in (a fast one puts more comments in fewer ticks).
		"NAMESPACES": `{"live":{"publish_rate":100,"publish_burst":100,"flow_budget":20}}`}))
	const ch = "live:flood"
	reader := dialRT(t, s, "name=reader")
	stalled := dialRTSmallBuffer(t, s, "name=stalled", stalledRcvBuf)
	sender := dialRT(t, s, "name=sender")
	for _, c := range []*rtClient{reader, stalled, sender} {
		c.Subscribe(ch)
	}

	stalled.PauseReading()
	// 48 KiB comments through the API, many a tick.
	pad := strings.Repeat("d", 48<<10)
	flood := func(n int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range n / 4 {
					apiPublish(t, s, ch, fmt.Sprintf(`{"text":"w%d-%d","pad":%q}`, w, i, pad))
				}
			})
		}
		wg.Wait()
	}
	for range 20 {
		flood(20)
		// The sender's own comment comes at once, before its reply,
		// whatever the sample shows.
		id := sender.Send(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"text":"我的"}`)})
		rep := sender.Await(id)
		var pos protocol.PublishResult
		if rep.Error != nil || json.Unmarshal(rep.Result, &pos) != nil {
			t.Fatalf("sender's publish: %+v", rep)
		}
		own := sender.WaitPush("own comment", func(m protocol.ServerMessage) bool {
			return m.Channel == ch && m.Tick == nil && m.Offset == pos.Offset
		})
		if own.Info == nil || own.Info.Name != "sender" {
			t.Fatalf("own comment %+v", own)
		}
		time.Sleep(150 * time.Millisecond) // let ticks pass while stalled
	}
	_, readerMissedDuring, readerTicks, _ := tickTally(reader, ch, "")
	_, _, stalledTicks, _ := tickTally(stalled, ch, "")
	if stalledTicks > 1 || readerTicks < 5 {
		t.Fatalf("while stalled: stalled viewer read %d ticks, reader %d (missed %d)", stalledTicks, readerTicks, readerMissedDuring)
	}

	stalled.ResumeReading()
	// Barrier: a priority comment (never sampled out) after the flood.
	status, _, body := apiRequest(t, s, "POST", "/api/publish", testAPIKey,
		`{"channel":"`+ch+`","data":{"text":"sentinel"},"priority":true}`)
	if status != 200 {
		t.Fatalf("priority publish: %d %s", status, body)
	}
	for _, c := range []*rtClient{reader, stalled} {
		if !c.WaitState(10*time.Second, func() bool {
			_, _, _, seen := tickTally(c, ch, "sentinel")
			return seen
		}) {
			sh, mi, tk, _ := tickTally(c, ch, "")
			var tail []string
			pushes := c.AllPushes()
			for _, m := range pushes[max(0, len(pushes)-5):] {
				if m.Tick != nil {
					tail = append(tail, fmt.Sprintf("tick shown=%d total=%d missed=%d", m.Tick.Shown, m.Tick.Total, m.Tick.Missed))
				} else {
					tail = append(tail, fmt.Sprintf("%+v", m))
				}
			}
			t.Fatalf("%s never saw the sentinel (reader: %v); ticks %d shown %d missed %d; last %v", c.Name(), c.ReadErr(), tk, sh, mi, tail)
		}
	}
	rs, rm, _, _ := tickTally(reader, ch, "")
	ss, sm, _, _ := tickTally(stalled, ch, "")
	if sm == 0 {
		t.Fatalf("the stalled viewer was told of no missed comments (shown %d): the stall did not skip ticks", ss)
	}
	if ss+sm != rs+rm {
		t.Errorf("stalled viewer: shown %d + missed %d != reader: shown %d + missed %d", ss, sm, rs, rm)
	}
	stalled.Ping() // still connected
	if err := stalled.ReadErr(); err != nil {
		t.Fatalf("stalled viewer's connection: %v", err)
	}
	// Fresh ticks after the recovery: a later comment arrives as usual.
	apiPublish(t, s, ch, `{"text":"after"}`)
	stalled.WaitPush("a fresh tick", func(m protocol.ServerMessage) bool {
		return m.Tick != nil && len(m.Tick.Publications) == 1 && strings.Contains(string(m.Tick.Publications[0].Data), "after") && m.Tick.Missed == 0
	})
}
