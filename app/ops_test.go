package app

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// scrapeMetric reads one sample from /metrics, by its full name with
// labels; a sample not exposed yet reads as 0.
func scrapeMetric(t *testing.T, s *testServer, sample string) float64 {
	t.Helper()
	status, _, body := s.get(t, "/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: %d", status)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == sample {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return v
		}
	}
	return 0
}

func TestHealthEndpoints(t *testing.T) {
	s := startServer(t, nil)
	s.dial(t, "/ws")
	waitFor(t, "one connection", 2*time.Second, func() bool { return s.app.Connections() == 1 })

	status, hdr, body := s.get(t, "/healthz")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/healthz: %d %s", status, hdr.Get("Content-Type"))
	}
	var h struct {
		Status      string `json:"status"`
		Version     string `json:"version"`
		Uptime      *int64 `json:"uptime_seconds"`
		Connections int    `json:"connections"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if h.Status != "ok" || h.Version != "test" || h.Uptime == nil || h.Connections != 1 {
		t.Fatalf("/healthz = %+v", h)
	}
	for _, path := range []string{"/livez", "/readyz"} {
		if status, _, _ := s.get(t, path); status != 200 {
			t.Errorf("%s: %d, want 200", path, status)
		}
	}
}

func TestMetricsCountTraffic(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(t, "/ws")
	assertEchoes(t, c)
	assertEchoes(t, c)
	if got := scrapeMetric(t, s, "duplex_websocket_connections_open"); got != 1 {
		t.Errorf("connections_open = %v, want 1", got)
	}
	if got := scrapeMetric(t, s, "duplex_websocket_messages_received_total"); got != 2 {
		t.Errorf("messages_received = %v, want 2", got)
	}
	// Sends are counted once the write returns, which may be just after
	// the client has read the reply.
	waitFor(t, "messages_sent to be 2", 2*time.Second, func() bool {
		return scrapeMetric(t, s, "duplex_websocket_messages_sent_total") == 2
	})
	wantOut := 2 * len(tutorialReply)
	if got := scrapeMetric(t, s, "duplex_websocket_sent_bytes_total"); got != float64(wantOut) {
		t.Errorf("sent_bytes = %v, want %d", got, wantOut)
	}
	if got := scrapeMetric(t, s, "duplex_websocket_received_bytes_total"); got != float64(2*len("李旺")) {
		t.Errorf("received_bytes = %v, want %d", got, 2*len("李旺"))
	}

	bad := dialRaw(t, s.addr, "/ws")
	bad.send(frame{fin: true, opcode: opText, payload: []byte{0xff}})
	if code := bad.expectClose(3 * time.Second); code != 1007 {
		t.Fatalf("close = %d", code)
	}
	// The count moves once the server's write returns, which may be just
	// after the client has read the frame.
	waitFor(t, "close_frames_sent{1007} to be 1", 2*time.Second, func() bool {
		return scrapeMetric(t, s, `duplex_websocket_close_frames_sent_total{code="1007"}`) == 1
	})
}

func TestShutdownSendsGoingAway(t *testing.T) {
	s := startServer(t, map[string]string{"SHUTDOWN_TIMEOUT": "3s"})
	clients := []*websocket.Conn{s.dial(t, "/ws"), s.dial(t, "/"), s.dial(t, "/ws")}
	waitFor(t, "three connections", 2*time.Second, func() bool { return s.app.Connections() == 3 })
	assertEchoes(t, clients[0])

	codes := make(chan int, len(clients))
	for _, c := range clients {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					if ce, ok := err.(*websocket.CloseError); ok {
						codes <- ce.Code
					} else {
						codes <- -1
					}
					return
				}
			}
		}()
	}

	start := time.Now()
	if err := s.shutdown(t, 3*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown took %v, over its timeout", took)
	}
	for range clients {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Fatalf("client got close %d, want 1001", code)
		}
	}
}

func TestReadinessFailsDuringShutdown(t *testing.T) {
	s := startServer(t, map[string]string{"SHUTDOWN_TIMEOUT": "5s", "SHUTDOWN_DRAIN_DELAY": "1s"})
	if status, _, _ := s.get(t, "/readyz"); status != 200 {
		t.Fatalf("/readyz before shutdown: %d", status)
	}
	done := make(chan error, 1)
	go func() { done <- s.shutdown(t, 5*time.Second) }()

	// During the drain delay the listener still answers, so a load
	// balancer can see the server is leaving.
	waitFor(t, "/readyz to answer 503", 900*time.Millisecond, func() bool {
		status, _, body := s.get(t, "/readyz")
		return status == 503 && strings.Contains(body, "shutting_down")
	})
	if status, _, _ := s.get(t, "/livez"); status != 200 {
		t.Fatalf("/livez while draining: %d, want 200", status)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestShutdownForceClosesStubbornClients(t *testing.T) {
	s := startServer(t, nil)
	// A client that reads nothing and never answers the close frame.
	stubborn := dialRaw(t, s.addr, "/ws")
	waitFor(t, "one connection", 2*time.Second, func() bool { return s.app.Connections() == 1 })

	a := s.app
	start := time.Now()
	if err := s.shutdown(t, 500*time.Millisecond); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %v with a 500ms deadline", took)
	}
	if got := a.Connections(); got != 0 {
		t.Fatalf("connections after forced shutdown = %d", got)
	}
	// The stubborn client was sent 1001, then its socket was dropped.
	if code := stubborn.expectClose(time.Second); code != 1001 {
		t.Fatalf("close = %d, want 1001", code)
	}
	if _, _, err := stubborn.tryRead(time.Second); err == nil {
		t.Fatal("socket still open after forced shutdown")
	}
}

func TestMetricsCountRealtimeTraffic(t *testing.T) {
	s := startServer(t, map[string]string{"API_KEY": "metrics-test-key"})
	c := s.dial(t, "/realtime?name=m")
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"push:news"}`)); err != nil {
		t.Fatal(err)
	}
	readText(t, c) // the subscribe reply
	if got := scrapeMetric(t, s, "duplex_realtime_channels"); got != 1 {
		t.Fatalf("channels = %v, want 1", got)
	}
	req, _ := http.NewRequest("POST", s.url("/api/publish"), strings.NewReader(`{"channel":"push:news","data":{"n":1}}`))
	req.Header.Set("Authorization", "Bearer metrics-test-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := readText(t, c); !strings.Contains(got, `"data":{"n":1}`) {
		t.Fatalf("push = %q", got)
	}
	if got := scrapeMetric(t, s, "duplex_realtime_publications_total"); got != 1 {
		t.Errorf("publications = %v, want 1", got)
	}
	if got := scrapeMetric(t, s, "duplex_realtime_deliveries_total"); got < 1 {
		t.Errorf("deliveries = %v, want at least 1", got)
	}
}
