package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
	"github.com/duplex/duplex/realtime/protocol"
)

// natsEnv is the environment of a node on the NATS broker at url.
func natsEnv(url string, extra map[string]string) map[string]string {
	env := rtEnv(map[string]string{"BROKER": "nats", "NATS_URL": url, "NATS_STARTUP": "fail", "PRESENCE_TTL": "3s"})
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func readyz(t *testing.T, s *testServer) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(s.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestTwoNodesShareChannelsThroughNATS(t *testing.T) {
	n := natstest.Start(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	b := startServer(t, natsEnv(n.URL(), nil))

	onA, onB := dialRT(t, a, "name=甲"), dialRT(t, b, "name=乙")
	onA.Subscribe("chat:cluster")
	onB.Subscribe("chat:cluster")

	// A client publish on A and an API publish on B reach both, in order.
	onA.Publish("chat:cluster", `{"n":1}`)
	apiPublish(t, b, "chat:cluster", `{"n":2}`)
	for _, c := range []*rtClient{onA, onB} {
		got := c.WaitPubs("chat:cluster", 2, 5*time.Second)
		if pubN(t, got[0]) != 1 || pubN(t, got[1]) != 2 || got[0].Offset != 1 || got[1].Offset != 2 {
			t.Fatalf("%s: got %s", c.Name(), describePushes(got))
		}
	}

	// Presence and history agree whichever node answers.
	for _, s := range []*testServer{a, b} {
		var pr protocol.PresenceResult
		apiJSON(t, s, "GET", "/api/presence/chat:cluster", "", &pr)
		if pr.Count != 2 {
			t.Errorf("presence on one node = %+v, want both clients", pr)
		}
		var h protocol.HistoryResult
		apiJSON(t, s, "GET", "/api/history/chat:cluster", "", &h)
		if len(h.Publications) != 2 || h.Offset != 2 {
			t.Errorf("history on one node = %+v", h)
		}
	}
	if status, body := readyz(t, a); status != 200 || body["broker"] != "connected" {
		t.Fatalf("/readyz = %d %v", status, body)
	}
}

func TestNATSOutageFailsPublishesThenRecovers(t *testing.T) {
	n := natstest.Start(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	sub := dialRT(t, a, "name=watcher")
	sub.Subscribe("push:outage")
	apiPublish(t, a, "push:outage", `{"n":1}`)
	sub.WaitPubs("push:outage", 1, 5*time.Second)

	n.Shutdown()
	waitFor(t, "/readyz to report the broker down", 5*time.Second, func() bool {
		status, body := readyz(t, a)
		return status == 503 && body["status"] == "broker_unavailable"
	})
	// Publishing fails at once and clearly, from the API and from a client.
	status, _, body := apiRequest(t, a, "POST", "/api/publish", testAPIKey, `{"channel":"push:outage","data":{"n":2}}`)
	if status != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("API publish during the outage: %d %s", status, body)
	}
	chat := dialRT(t, a, "name=talker")
	chat.Fails(protocol.Command{Op: protocol.OpSubscribe, Channel: "chat:outage-probe"}, protocol.CodeUnavailable)
	chat.Fails(protocol.Command{Op: protocol.OpPublish, Channel: "chat:outage-probe", Data: json.RawMessage(`{"x":1}`)}, protocol.CodeUnavailable)
	chat.Ping() // the connection survives

	n.Restart()
	waitFor(t, "/readyz to recover", 10*time.Second, func() bool {
		status, _ := readyz(t, a)
		return status == 200
	})
	apiPublish(t, a, "push:outage", `{"n":3}`)
	got := sub.WaitPubs("push:outage", 2, 5*time.Second)
	if pubN(t, got[1]) != 3 || got[1].Offset != 2 {
		t.Fatalf("after the outage: %s (the failed publish must not have taken an offset)", describePushes(got))
	}
}

// A NATS server that hangs (SIGSTOP: its socket still accepts, nothing
// answers) is noticed within seconds, not at the client library's default
// two-minute ping: /readyz turns 503 so the balancer sends new clients
// elsewhere, publishes are refused at once as not stored, and once the
// server resumes the node is ready again by itself.
func TestNATSFreezeMakesTheNodeUnreadyThenRecovers(t *testing.T) {
	n := natstest.StartProcess(t)
	a := startServer(t, natsEnv(n.URL(), nil))
	apiPublish(t, a, "push:freeze", `{"n":1}`)
	if status, body := readyz(t, a); status != 200 || body["broker"] != "connected" {
		t.Fatalf("/readyz before the freeze = %d %v", status, body)
	}

	n.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			n.Thaw()
		}
	}()
	// The defaults (NATS_PING_INTERVAL 2s, NATS_MAX_PINGS_OUTSTANDING 2)
	// notice it within 6 s; the wait is longer only to bound a failure.
	waitFor(t, "/readyz to report the frozen broker", 15*time.Second, func() bool {
		status, body := readyz(t, a)
		return status == 503 && body["status"] == "broker_unavailable" && body["broker"] == "reconnecting"
	})
	status, _, body := apiRequest(t, a, "POST", "/api/publish", testAPIKey, `{"channel":"push:freeze","data":{"n":2}}`)
	if status != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("API publish while frozen: %d %s", status, body)
	}

	n.Thaw()
	thawed = true
	waitFor(t, "/readyz to recover after the thaw", 20*time.Second, func() bool {
		status, _ := readyz(t, a)
		return status == 200
	})
	if got := apiPublish(t, a, "push:freeze", `{"n":3}`); got.Offset != 2 {
		t.Fatalf("publish after the thaw got offset %d, want 2 (the refused one must not have been stored)", got.Offset)
	}
}
