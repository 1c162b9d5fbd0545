package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestTickerLatestOnSubscribe: with the simulator publishing every 10 ms
// (and a backend publishing through the API beside it), a page that
// subscribes to quote:AAPL with latest: 1 gets the newest quote in the
// reply and then every later one, simulated quotes among them, with no
// gap and no duplicate, on the memory broker and on NATS. A client cannot
// publish quotes.
func TestTickerLatestOnSubscribe(t *testing.T) {
	for _, broker := range []string{"memory", "nats"} {
		t.Run(broker, func(t *testing.T) {
			env := rtEnv(map[string]string{"TICKER_SIMULATOR": "on", "TICKER_INTERVAL": "10ms"})
			if broker == "nats" {
				env = natsEnv(natstest.Start(t).URL(), env)
			}
			s := startServer(t, env)
			const ch = features.QuoteNamespace + ":AAPL"
			// Something to be the latest from the first round on, before
			// the simulator's first tick.
			apiPublish(t, s, ch, `{"first":true}`)
			pubErrs, stop := publishUntilStopped(s, ch, 1)
			defer stop()
			for i := range 5 {
				c := dialRT(t, s, "")
				var res protocol.SubscribeResult
				c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: 1}, &res)
				if len(res.Publications) != 1 || res.Publications[0].Offset != res.Offset {
					t.Fatalf("round %d: reply at %d holds %+v, want the quote at its position", i, res.Offset, res.Publications)
				}
				c.WaitPush("a simulated quote", func(m protocol.ServerMessage) bool {
					var q features.Quote
					return m.Channel == ch && json.Unmarshal(m.Data, &q) == nil && q.Symbol == "AAPL" && q.Price > 0
				})
				sentinel := apiPublish(t, s, ch, `{"sentinel":true}`)
				if !c.WaitOffset(ch, sentinel.Offset, replyTimeout) {
					select {
					case err := <-pubErrs:
						t.Fatal(err)
					default:
					}
					t.Fatalf("round %d: no sentinel at %d", i, sentinel.Offset)
				}
				pubs := c.Pubs(ch)
				wantContiguous(t, fmt.Sprintf("round %d (reply at %d)", i, res.Offset), pubs, res.Offset+1)
				c.Fails(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"price":1}`)}, protocol.CodeForbidden)
			}
		})
	}
}

// TestTickerStopsBeforeTheBroker: a server whose simulator publishes every
// 10 ms over NATS shuts down with a subscriber connected. The simulator
// stops before the broker closes, so none of its publications fails (a
// failure is logged), and the subscriber's last frame is its 1001.
func TestTickerStopsBeforeTheBroker(t *testing.T) {
	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	env := natsEnv(natstest.Start(t).URL(), map[string]string{"TICKER_SIMULATOR": "on", "TICKER_INTERVAL": "10ms"})
	s := startServer(t, env)
	c := dialRT(t, s, "")
	c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: features.QuoteNamespace + ":AAPL", Latest: 1}, nil)
	c.WaitPubs(features.QuoteNamespace+":AAPL", 3, replyTimeout)
	if err := s.shutdown(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := c.WaitClose(replyTimeout); code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want 1001", code)
	}
	if strings.Contains(logs.String(), "ticker simulator") {
		t.Errorf("the simulator outlived the broker:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer that slog may write from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
