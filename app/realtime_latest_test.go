package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// pushHistory is how many publications the push: namespace keeps by
// default, the most a subscribe there may ask for with latest.
const pushHistory = 20

// TestRealtimeSubscribeLatest subscribes with latest through the real
// /realtime socket, on the memory broker and on NATS, while the API
// publishes as fast as it can: each reply holds the newest publications
// up to its position, and the pushes continue right after it, up to a
// sentinel, with no gap and no duplicate. A fresh channel answers an
// empty list; latest past the history size, or in a namespace without
// history, is a bad_request.
func TestRealtimeSubscribeLatest(t *testing.T) {
	for _, broker := range []string{"memory", "nats"} {
		t.Run(broker, func(t *testing.T) {
			env := rtEnv(nil)
			if broker == "nats" {
				env = natsEnv(natstest.Start(t).URL(), nil)
			}
			s := startServer(t, env)
			c := dialRT(t, s, "")

			// Nothing published yet: an empty list, then the live pushes.
			m := c.Call(protocol.Command{Op: protocol.OpSubscribe, Channel: "push:fresh", Latest: 3})
			if m.Error != nil || !strings.Contains(string(m.Result), `"publications":[]`) {
				t.Fatalf("latest on a fresh channel: %+v %s", m.Error, m.Result)
			}
			apiPublish(t, s, "push:fresh", `{"n":1}`)
			apiPublish(t, s, "push:fresh", `{"n":2}`)
			wantContiguous(t, "fresh channel", c.WaitPubs("push:fresh", 2, replyTimeout), 1)

			// Refused, with the connection still working.
			for _, cmd := range []protocol.Command{
				{Op: protocol.OpSubscribe, Channel: "push:a", Latest: pushHistory + 1},
				{Op: protocol.OpSubscribe, Channel: "live:a", Latest: 1},
			} {
				c.Fails(cmd, protocol.CodeBadRequest)
			}
			c.Ping()

			const ch, latest = "push:ticker", 5
			apiPublish(t, s, ch, `{"n":-1}`)
			pubErrs, stop := publishUntilStopped(s, ch, 3)
			defer stop()
			for i := range 10 {
				c := dialRT(t, s, "")
				var res protocol.SubscribeResult
				c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: latest}, &res)
				got := len(res.Publications)
				// Memory reads history atomically; NATS walks it back and
				// a channel this busy may discard the oldest first, but
				// the newest one is always there.
				if got == 0 || got > latest || broker == "memory" && got != min(latest, int(res.Offset)) {
					t.Fatalf("iteration %d: reply at %d holds %d publications, want the newest %d", i, res.Offset, got, latest)
				}
				for j, p := range res.Publications {
					if want := res.Offset - uint64(got-1-j); p.Offset != want {
						t.Fatalf("iteration %d: reply at %d: publication %d at %d, want %d", i, res.Offset, j, p.Offset, want)
					}
				}
				sentinel := apiPublish(t, s, ch, `{"n":"sentinel"}`)
				if !c.WaitOffset(ch, sentinel.Offset, replyTimeout) {
					select {
					case err := <-pubErrs:
						t.Fatal(err)
					default:
					}
					t.Fatalf("iteration %d: no sentinel at %d", i, sentinel.Offset)
				}
				wantContiguous(t, fmt.Sprintf("iteration %d (reply at offset %d)", i, res.Offset), c.Pubs(ch), res.Offset+1)
				c.Close()
			}
		})
	}
}
