package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/natstest"
)

// keyedResult is the answer of a publish with an idempotency key.
type keyedResult struct {
	Offset   uint64 `json:"offset"`
	Epoch    string `json:"epoch"`
	Replayed bool   `json:"replayed"`
}

// apiPost posts body with the test key and extra headers, and returns the
// status, headers and body.
func apiPost(t *testing.T, s *testServer, path, body string, headers map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.url(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func keyedPublish(t *testing.T, s *testServer, body string, headers map[string]string) (keyedResult, http.Header) {
	t.Helper()
	status, hdr, resp := apiPost(t, s, "/api/publish", body, headers)
	if status != 200 {
		t.Fatalf("publish %s: %d %s", body, status, resp)
	}
	var r keyedResult
	if err := json.Unmarshal([]byte(resp), &r); err != nil {
		t.Fatalf("publish %s: %s: %v", body, resp, err)
	}
	return r, hdr
}

// A backend that retries a publish with the same key, in the header or
// the body, gets the first answer back and its subscribers see the
// publication once.
func TestAPIPublishWithIdempotencyKey(t *testing.T) {
	s := startServer(t, rtEnv(nil))
	sub := dialRT(t, s, "name=watcher")
	sub.Subscribe("push:orders")

	first, hdr := keyedPublish(t, s, `{"channel":"push:orders","data":{"n":1}}`, map[string]string{"Idempotency-Key": "order-1"})
	if first.Offset != 1 || first.Replayed || hdr.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first publish: %+v %v", first, hdr)
	}
	again, hdr := keyedPublish(t, s, `{"channel":"push:orders","data":{"n":1}}`, map[string]string{"Idempotency-Key": "order-1"})
	if again.Offset != 1 || again.Epoch != first.Epoch || !again.Replayed || hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %+v (header %q), want the first result replayed", again, hdr.Get("Idempotent-Replayed"))
	}
	// The same key as a field is the same key.
	if r, _ := keyedPublish(t, s, `{"channel":"push:orders","data":{"n":1},"idempotency_key":"order-1"}`, nil); r.Offset != 1 || !r.Replayed {
		t.Fatalf("retry with the field: %+v", r)
	}
	if r, _ := keyedPublish(t, s, `{"channel":"push:orders","data":{"n":2},"idempotency_key":"order-2"}`, nil); r.Offset != 2 || r.Replayed {
		t.Fatalf("another key: %+v", r)
	}
	// A sentinel without a key: once it arrives, the retries' pushes would
	// have arrived before it (one channel is delivered in order).
	apiPublish(t, s, "push:orders", `{"n":3}`)
	got := sub.WaitPubs("push:orders", 3, 5*time.Second)
	if len(got) != 3 || pubN(t, got[0]) != 1 || pubN(t, got[1]) != 2 || pubN(t, got[2]) != 3 {
		t.Fatalf("subscriber saw %s, want n=1, 2, 3 once each", describePushes(got))
	}

	// A retried broadcast publishes only where the first did not.
	var b struct {
		Positions []keyedResult `json:"positions"`
	}
	status, _, resp := apiPost(t, s, "/api/broadcast", `{"channels":["push:orders","push:audit"],"data":{"n":4},"idempotency_key":"order-2"}`, nil)
	if err := json.Unmarshal([]byte(resp), &b); status != 200 || err != nil || len(b.Positions) != 2 {
		t.Fatalf("broadcast: %d %s", status, resp)
	}
	if p := b.Positions; !p[0].Replayed || p[0].Offset != 2 || p[1].Replayed || p[1].Offset != 1 {
		t.Fatalf("broadcast with a key used on push:orders: %+v", p)
	}

	for _, tc := range []struct {
		name, body string
		headers    map[string]string
	}{
		{"header and field differ", `{"channel":"push:orders","data":1,"idempotency_key":"a"}`, map[string]string{"Idempotency-Key": "b"}},
		{"space in key", `{"channel":"push:orders","data":1,"idempotency_key":"a b"}`, nil},
		{"non-ASCII key", `{"channel":"push:orders","data":1,"idempotency_key":"订单"}`, nil},
		{"key too long", `{"channel":"push:orders","data":1,"idempotency_key":"` + strings.Repeat("k", 129) + `"}`, nil},
	} {
		status, _, resp := apiPost(t, s, "/api/publish", tc.body, tc.headers)
		wantAPIError(t, tc.name, status, resp, 400, "")
	}
}

// The case: NATS stops answering while a publish is in flight.
// The API cannot know whether it was stored and says so (504
// outcome_unknown, not 503); it was, once the server resumes, and the
// backend's retry with the same key returns that publication instead of
// making a second one.
func TestNATSUnconfirmedPublishIs504AndItsRetryIsNoDuplicate(t *testing.T) {
	n := natstest.StartProcess(t)
	// Pings slower than the publish timeout: the publish must be sent to
	// the frozen server, not refused because the node noticed it first.
	a := startServer(t, natsEnv(n.URL(), map[string]string{"NATS_PING_INTERVAL": "1m"}))
	sub := dialRT(t, a, "name=watcher")
	sub.Subscribe("push:unknown")
	apiPublish(t, a, "push:unknown", `{"n":1}`)
	sub.WaitPubs("push:unknown", 1, 5*time.Second)

	n.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			n.Thaw()
		}
	}()
	body, key := `{"channel":"push:unknown","data":{"n":2}}`, map[string]string{"Idempotency-Key": "retry-me"}
	status, _, resp := apiPost(t, a, "/api/publish", body, key)
	wantAPIError(t, "publish to a frozen NATS", status, resp, 504, "outcome_unknown")
	n.Thaw()
	thawed = true

	// The frozen server stored it after all, and delivers it.
	got := sub.WaitPubs("push:unknown", 2, 10*time.Second)
	if pubN(t, got[1]) != 2 || got[1].Offset != 2 {
		t.Fatalf("after the thaw: %s", describePushes(got))
	}
	retry, _ := keyedPublish(t, a, body, key)
	if retry.Offset != 2 || !retry.Replayed {
		t.Fatalf("retry: %+v, want offset 2 replayed", retry)
	}
	apiPublish(t, a, "push:unknown", `{"n":3}`) // a sentinel: it follows any duplicate
	got = sub.WaitPubs("push:unknown", 3, 5*time.Second)
	if len(got) != 3 || pubN(t, got[2]) != 3 || got[2].Offset != 3 {
		t.Fatalf("subscriber saw %s, want n=1, 2, 3 once each", describePushes(got))
	}
}
