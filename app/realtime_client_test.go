package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/realtime/protocol"
)

// replyTimeout bounds how long a test waits for one reply or push.
const replyTimeout = rttest.ReplyTimeout

// rtClient is the suites' /realtime test client (internal/rttest, on the
// Go client's Conn): replies awaited by id, every push recorded, a reader
// that can be paused to play a client that stops reading.
type rtClient = rttest.Conn

// dialRT opens /realtime with the given query (for example "name=李旺").
// It fails the test if the upgrade is refused.
func dialRT(t *testing.T, s *testServer, query string) *rtClient {
	t.Helper()
	return dialRTWith(t, s, query, nil)
}

// dialRTWith is dialRT with extra request headers for the upgrade.
func dialRTWith(t *testing.T, s *testServer, query string, header http.Header) *rtClient {
	t.Helper()
	return rttest.MustDial(t, realtimeURL(s, query), rttest.Options{Name: query, Header: header})
}

// tryDialRT opens a raw WebSocket on /realtime (no protocol client: for
// upgrade statuses, and tests that play the socket's end themselves) and
// returns the HTTP status of a refusal.
func tryDialRT(s *testServer, query string) (*websocket.Conn, int, error) {
	return tryDialRTWith(s, query, nil)
}

func tryDialRTWith(s *testServer, query string, header http.Header) (*websocket.Conn, int, error) {
	d := *websocket.DefaultDialer
	d.HandshakeTimeout = replyTimeout
	conn, resp, err := d.Dial(realtimeURL(s, query), header)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return conn, status, err
}

func realtimeURL(s *testServer, query string) string {
	u := s.wsURL("/realtime")
	if query != "" {
		u += "?" + query
	}
	return u
}

// isPresenceEvent tells join, leave and presence_count pushes from
// publications.
func isPresenceEvent(m protocol.ServerMessage) bool {
	return m.Join != nil || m.Leave != nil || m.PresenceCount != 0
}

// pubN is the "n" field of test publications ({"n":N,...}).
func pubN(t *testing.T, m protocol.ServerMessage) int {
	t.Helper()
	var v struct {
		N *int `json:"n"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil || v.N == nil {
		t.Fatalf("publication data %s has no n", m.Data)
	}
	return *v.N
}

// publishUntilStopped publishes {"n":…} to channel through the HTTP API
// from workers goroutines, as fast as the server answers, until stop is
// called (stop waits for them). A worker that fails sends its error on
// errs and ends.
func publishUntilStopped(s *testServer, channel string, workers int) (errs <-chan error, stop func()) {
	failed := make(chan error, workers)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: replyTimeout}
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequest("POST", s.url("/api/publish"), strings.NewReader(fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, channel, n)))
				req.Header.Set("Authorization", "Bearer "+testAPIKey)
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("publish: HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed <- err
					return
				}
			}
		})
	}
	return failed, func() { close(done); wg.Wait() }
}
