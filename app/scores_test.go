package app

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// scoresEnv runs the simulator every 10 ms on a football match and a
// basketball match, both kicking off at once or nearly.
func scoresEnv(broker string, t *testing.T) map[string]string {
	env := rtEnv(map[string]string{"SCORES_SIMULATOR": "on", "SCORES_INTERVAL": "10ms",
		"SCORES_MATCHES": "nba-1:basketball:NBA:湖人:勇士,csl-1:football:中超:上海海港:山东泰山"})
	if broker == "nats" {
		env = natsEnv(natstest.Start(t).URL(), env)
	}
	return env
}

// TestScoresLatestOnSubscribe: with the simulator playing and a backend
// publishing through the API beside it, a page that subscribes to a
// match with latest: 1 gets the newest score in the reply and then every
// later publication, with no gap and no duplicate, on the memory broker
// and on NATS. A client cannot publish scores.
func TestScoresLatestOnSubscribe(t *testing.T) {
	for _, broker := range []string{"memory", "nats"} {
		t.Run(broker, func(t *testing.T) {
			s := startServer(t, scoresEnv(broker, t))
			const ch = features.ScoreNamespace + ":nba-1"
			// Something to be the latest from the first round on, before
			// the simulator's first score, as the ticker's test does (CI
			// saw round 0 on NATS get an empty reply).
			apiPublish(t, s, ch, `{"first":true}`)
			pubErrs, stop := publishUntilStopped(s, ch, 1)
			defer stop()
			for i := range 5 {
				c := dialRT(t, s, "")
				var res protocol.SubscribeResult
				c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: 1}, &res)
				if len(res.Publications) != 1 || res.Publications[0].Offset != res.Offset {
					t.Fatalf("round %d: reply at %d holds %+v, want the score at its position", i, res.Offset, res.Publications)
				}
				sentinel := apiPublish(t, s, ch, `{"sentinel":true}`)
				if !c.WaitOffset(ch, sentinel.Offset, replyTimeout) {
					select {
					case err := <-pubErrs:
						t.Fatal(err)
					default:
					}
					t.Fatalf("round %d: no sentinel at %d", i, sentinel.Offset)
				}
				wantContiguous(t, fmt.Sprintf("round %d (reply at %d)", i, res.Offset), c.Pubs(ch), res.Offset+1)
				c.Fails(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"home":9,"away":0}`)}, protocol.CodeForbidden)
			}
		})
	}
}

// TestScoresSimulatedMatchPlaysThrough: a page that opens on a simulated
// football match sees it played through to 90′: every score in order,
// never lower than the one before, ending 已结束; a page that opens later
// gets that final score as the latest.
func TestScoresSimulatedMatchPlaysThrough(t *testing.T) {
	s := startServer(t, scoresEnv("memory", t))
	const ch = features.ScoreNamespace + ":csl-1"
	c := dialRT(t, s, "")
	var res protocol.SubscribeResult
	c.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: 1}, &res)
	if len(res.Publications) != 1 {
		t.Fatalf("reply holds %+v, want the simulator's latest score", res.Publications)
	}
	final := c.WaitPush("the match's final score", func(m protocol.ServerMessage) bool {
		var sc features.Score
		return m.Channel == ch && json.Unmarshal(m.Data, &sc) == nil && sc.Status == features.StatusFinished
	})
	pubs := c.Pubs(ch)
	wantContiguous(t, "the match", pubs, res.Offset+1)
	var prev features.Score
	if err := json.Unmarshal(res.Publications[0].Data, &prev); err != nil {
		t.Fatal(err)
	}
	for _, m := range pubs {
		var sc features.Score
		if err := json.Unmarshal(m.Data, &sc); err != nil || sc.Match != "csl-1" {
			t.Fatalf("publication %s is not a score of csl-1 (%v)", m.Data, err)
		}
		if sc.Home < prev.Home || sc.Away < prev.Away || sc.Minute < prev.Minute {
			t.Fatalf("score went from %+v to %+v", prev, sc)
		}
		prev = sc
	}
	if prev.Minute != 90 {
		t.Errorf("the match ended at %d′, want 90′", prev.Minute)
	}

	late := dialRT(t, s, "")
	var lateRes protocol.SubscribeResult
	late.OK(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Latest: 1}, &lateRes)
	if len(lateRes.Publications) != 1 || lateRes.Offset != final.Offset || string(lateRes.Publications[0].Data) != string(final.Data) {
		t.Fatalf("a later page got %+v at %d, want the final score %s at %d", lateRes.Publications, lateRes.Offset, final.Data, final.Offset)
	}
}
