package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/realtime"
)

// farewellService publishes one last message when it is stopped: it gets
// through to a subscriber only if the service stops while the connections
// and the broker are still open.
type farewellService struct {
	channel string

	mu      sync.Mutex
	hub     *realtime.Hub
	events  *[]string
	stopErr error // what Publish answered in Stop
}

func (s *farewellService) Start(_ context.Context, hub *realtime.Hub) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hub = hub
	*s.events = append(*s.events, "start "+s.channel)
	return nil
}

func (s *farewellService) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.events = append(*s.events, "stop "+s.channel)
	_, s.stopErr = s.hub.Publish(ctx, s.channel, []byte(`{"bye":true}`), nil)
	return s.stopErr
}

type failingService struct{ events *[]string }

func (s failingService) Start(context.Context, *realtime.Hub) error {
	*s.events = append(*s.events, "start failing")
	return errors.New("quote feed unreachable")
}

func (s failingService) Stop(context.Context) error {
	*s.events = append(*s.events, "stop failing") // never: it did not start
	return nil
}

func serviceFeature(name string, svcs ...features.Service) *features.Feature {
	return &features.Feature{
		Name:       name,
		Namespaces: realtime.Namespaces{name: {SlowPolicy: realtime.PolicyDisconnect}},
		Services:   svcs,
	}
}

func TestServicesStopBeforeConnectionsAndBroker(t *testing.T) {
	var events []string
	first := &farewellService{channel: "first:x", events: &events}
	second := &farewellService{channel: "second:x", events: &events}
	s := startServerWith(t, nil, []*features.Feature{serviceFeature("first", first), serviceFeature("second", second)})

	c := dialRT(t, s, "name=viewer")
	c.Subscribe("first:x")
	c.Subscribe("second:x")
	if err := s.shutdown(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := c.WaitClose(replyTimeout); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	// The client got both farewells, newest service's first, then 1001.
	var got []string
	for _, m := range c.AllPushes() {
		got = append(got, m.Channel)
	}
	if strings.Join(got, " ") != "second:x first:x" {
		t.Errorf("client saw publications on %v, want second:x then first:x before its 1001", got)
	}
	if first.stopErr != nil || second.stopErr != nil {
		t.Errorf("publish during Stop: %v, %v (the broker closed first?)", first.stopErr, second.stopErr)
	}
	if strings.Join(events, ", ") != "start first:x, start second:x, stop second:x, stop first:x" {
		t.Errorf("lifecycle = %v", events)
	}
}

func TestFailedServiceStartStopsTheServer(t *testing.T) {
	var events []string
	started := &farewellService{channel: "first:x", events: &events}
	fs := []*features.Feature{serviceFeature("first", started), serviceFeature("quotes", failingService{&events})}
	cfg, err := config.Load(nil, testEnv(nil), io.Discard, features.ConfigExtensions(fs)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, fs, slog.New(slog.DiscardHandler), "test")
	if err == nil || !strings.Contains(err.Error(), "feature quotes: start") || !strings.Contains(err.Error(), "quote feed unreachable") {
		t.Fatalf("New = %v, want an error naming the feature and its cause", err)
	}
	if strings.Join(events, ", ") != "start first:x, start failing, stop first:x" {
		t.Errorf("lifecycle = %v, want the started service stopped again", events)
	}
}
