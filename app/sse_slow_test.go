package app

import (
	"fmt"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime/protocol"
)

// sseStalledRcvBuf is the receive buffer of a stalled SSE client, so that
// the server's socket to it backs up soon.
const sseStalledRcvBuf = 64 << 10

// stalledSSE starts a server with env, a reading socket client and an SSE
// client in ch, and stops the SSE client's reader.
func stalledSSE(t *testing.T, env map[string]string, ch string) (*testServer, *rtClient, *sseClient) {
	t.Helper()
	s := startServer(t, env)
	reader := dialRT(t, s, "name=reader")
	reader.Subscribe(ch)
	slow := openSSE(t, s, "name=slow", sseOptions{RcvBuf: sseStalledRcvBuf})
	slow.subscribe(ch)
	slow.pauseReading()
	return s, reader, slow
}

// floodUntil publishes bigPad publications to ch until metric counts
// something (checked every 8) or 600 are out, with a reading socket
// client keeping up throughout, and returns how many it published.
func floodUntil(t *testing.T, s *testServer, reader *rtClient, ch, metric string) int {
	t.Helper()
	published := 0
	for published < 600 {
		published++
		off := apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d,"pad":%q}`, published, bigPad)).Offset
		if !reader.WaitOffset(ch, off, replyTimeout) {
			t.Fatalf("reader stuck before offset %d (reader: %v)", off, reader.ReadErr())
		}
		if published%8 == 0 && scrapeMetric(t, s, metric) > 0 {
			return published
		}
	}
	t.Fatalf("%s still 0 after %d publications", metric, published)
	return 0
}

// TestSSESlowConsumerDisconnect: on chat (policy disconnect) an SSE
// client that stops reading is closed with 1013 once its queue is full;
// when it reads again it finds what was sent before, in order with no
// gap, then the close event. A reading socket client loses nothing.
func TestSSESlowConsumerDisconnect(t *testing.T) {
	const ch = "chat:sse-slow"
	s, reader, slow := stalledSSE(t, slowEnv(), ch)

	published := floodUntil(t, s, reader, ch, "duplex_realtime_refused_total")
	t.Logf("stalled SSE client overflowed after %d publications of %d bytes", published, len(bigPad))
	slow.resumeReading()
	if ev := slow.waitClose(10 * time.Second); ev.Code != 1013 {
		t.Fatalf("stalled SSE client: close %+v, want 1013", ev)
	}
	got := slow.pubs(ch)
	if len(got) == 0 || len(got) >= published {
		t.Fatalf("stalled SSE client got %d of %d publications", len(got), published)
	}
	wantContiguous(t, "stalled SSE client", got, 1)
	reader.Ping()
	wantReaderGotAll(t, reader, ch, published)
	waitFor(t, "one connection left", 3*time.Second, func() bool { return s.app.Connections() == 1 })
}

// TestSSESlowConsumerDropOldest: on live (policy drop-oldest) a stalled
// SSE client stays connected; when it reads again it is told exactly how
// many publications it missed, ahead of what it gets next, and ends with
// the newest.
func TestSSESlowConsumerDropOldest(t *testing.T) {
	env := slowEnv()
	env["NAMESPACES"] = `{"live":{"flow_tick":"0s"}}`
	const ch = "live:sse-slow"
	s, reader, slow := stalledSSE(t, env, ch)

	published := floodUntil(t, s, reader, ch, "duplex_realtime_dropped_total")
	for range 10 { // more, that must drop older ones
		published++
		off := apiPublish(t, s, ch, fmt.Sprintf(`{"n":%d,"pad":%q}`, published, bigPad)).Offset
		if !reader.WaitOffset(ch, off, replyTimeout) {
			t.Fatalf("reader stuck before offset %d", off)
		}
	}
	if n := s.app.Connections(); n != 2 {
		t.Fatalf("%d connections, want 2: drop-oldest must not close", n)
	}
	slow.resumeReading()
	slow.waitMsg("the newest publication", func(m protocol.ServerMessage) bool {
		return m.Channel == ch && m.Offset == uint64(published)
	})
	slow.call(protocol.Command{Op: protocol.OpPing}, nil) // still open
	told, received := 0, 0
	for _, m := range slow.messages() {
		told += m.Missed
		if m.Channel == ch && m.Data != nil {
			if lost := int(m.Offset) - 1 - received; told < lost {
				t.Fatalf("publication %d came after %d losses, but only %d were told", m.Offset, lost, told)
			}
			received++
		}
	}
	if told == 0 || told != published-received {
		t.Fatalf("told it missed %d; lost %d of %d", told, published-received, published)
	}
}
