package e2e

// The HTTP API and /realtime helpers of the cluster tests: calls to one
// node's API, acknowledged publications, and a recording /realtime client
// (internal/rttest) of one node.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime/protocol"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// httpGet returns the status and body of GET url (0 when it failed).
func httpGet(url string) (int, string) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// api sends an authorized request to base (a node or the proxy) and
// returns the status and body; status 0 means the request failed.
func api(base, method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiOK is api that requires 200 and decodes the answer into out.
func apiOK(t *testing.T, base, method, path string, body, out any) {
	t.Helper()
	status, b := api(base, method, path, body)
	if status != 200 {
		t.Fatalf("%s %s%s: %d %s", method, base, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

// localChannels is what GET /api/channels of one node lists (channels
// with subscribers on that node); nil when the node does not answer.
func localChannels(base string) map[string]int {
	status, b := api(base, "GET", "/api/channels", nil)
	if status != 200 {
		return nil
	}
	var r struct {
		Channels []struct {
			Channel     string `json:"channel"`
			Subscribers int    `json:"subscribers"`
		} `json:"channels"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	m := map[string]int{}
	for _, ch := range r.Channels {
		m[ch.Channel] = ch.Subscribers
	}
	return m
}

// acked is a publication the API acknowledged.
type acked struct {
	n      int
	offset uint64
	epoch  string
}

// publishN publishes {"n":n} to channel through the API of the node that
// target returns (it is asked again for every attempt). A publish that was
// not acknowledged (any answer but 200) is retried, up to attempts times,
// 100 ms apart; an acknowledged one never is. ok is false when every
// attempt failed; fails lists the failed answers.
func publishN(target func() string, channel string, n, attempts int) (a acked, ok bool, fails []string) {
	for range attempts {
		status, b := api(target(), "POST", "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"n": n}})
		if status == 200 {
			var r protocol.PublishResult
			if err := json.Unmarshal(b, &r); err == nil && r.Offset > 0 && r.Epoch != "" {
				return acked{n: n, offset: r.Offset, epoch: r.Epoch}, true, fails
			}
		}
		fails = append(fails, fmt.Sprintf("%d %s", status, b))
		time.Sleep(100 * time.Millisecond)
	}
	return acked{}, false, fails
}

// dataN is the n of {"n":N} publication data (-1 if it has none).
func dataN(data json.RawMessage) int {
	var v struct {
		N *int `json:"n"`
	}
	if json.Unmarshal(data, &v) != nil || v.N == nil {
		return -1
	}
	return *v.N
}

// realtimeURL is the /realtime socket of base (http://host:port).
func realtimeURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/realtime" }

// mustDialRT connects a recording /realtime client to base with query; it
// fails t if the upgrade is refused and closes the connection at cleanup.
func mustDialRT(t *testing.T, base, query string) *rttest.Conn {
	t.Helper()
	u := realtimeURL(base)
	if query != "" {
		u += "?" + query
	}
	return rttest.MustDial(t, u, rttest.Options{Name: query + " on " + base})
}
