package app

import (
	"encoding/json"
	"fmt"
	"testing"

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
			pubErrs, stop := publishUntilStopped(s, ch, 1)
			defer stop()
			for i := range 5 {
				c := dialRT(t, s, "")
				var res protocol.SubscribeResult
				c.ok(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: 1}, &res)
				if len(res.Publications) != 1 || res.Publications[0].Offset != res.Offset {
					t.Fatalf("round %d: reply at %d holds %+v, want the quote at its position", i, res.Offset, res.Publications)
				}
				c.waitPush("a simulated quote", func(m protocol.ServerMessage) bool {
					var q features.Quote
					return m.Channel == ch && json.Unmarshal(m.Data, &q) == nil && q.Symbol == "AAPL" && q.Price > 0
				})
				sentinel := apiPublish(t, s, ch, `{"sentinel":true}`)
				if !c.waitOffset(ch, sentinel.Offset, replyTimeout) {
					select {
					case err := <-pubErrs:
						t.Fatal(err)
					default:
					}
					t.Fatalf("round %d: no sentinel at %d", i, sentinel.Offset)
				}
				pubs := c.pubs(ch)
				wantContiguous(t, fmt.Sprintf("round %d (reply at %d)", i, res.Offset), pubs, res.Offset+1)
				c.fails(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"price":1}`)}, protocol.CodeForbidden)
			}
		})
	}
}
