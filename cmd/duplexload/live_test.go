package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

const liveTestKey = "live-test-key"

// startLiveDuplex runs the real binary with the live namespace's publish
// rate raised for a load, and extra NAMESPACES fields for live.
func startLiveDuplex(t *testing.T, liveExtra string) *testbin.Server {
	t.Helper()
	return testbin.Start(t, testbin.Options{Env: []string{"HOST=127.0.0.1", "API_KEY=" + liveTestKey,
		"MAX_CONNECTIONS_PER_IP=0", "CONNECT_RATE_PER_IP=0",
		`NAMESPACES={"live":{"publish_rate":100,"publish_burst":100` + liveExtra + `}}`}})
}

func liveTestConfig(s *testbin.Server) liveConfig {
	cfg, err := parseLiveFlags([]string{"-url", strings.Replace(s.URL, "http", "ws", 1) + "/realtime",
		"-api-key", liveTestKey, "-viewers", "30", "-senders", "10", "-rate", "10",
		"-prio-senders", "1", "-prio-rate", "5", "-warmup", "500ms", "-duration", "2s", "-grace", "1s"}, &bytes.Buffer{})
	if err != nil {
		panic(err)
	}
	return cfg
}

// Against the real server with the live namespace's flow control: 105
// comments/s into a room that shows 50/s (5 a tick) plus priority ones.
// Every sender sees all its own, every connection every priority one,
// senders share what is shown fairly, nobody is disconnected, and a
// viewer's deliveries are bounded by the budget, not by the room's rate.
func TestLiveFlowControlledRoom(t *testing.T) {
	s := startLiveDuplex(t, "")
	res, err := runLive(context.Background(), liveTestConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.ViewersOpen != 30 || res.SendersOpen != 10 || res.Disconnects != 0 || res.Rejected != 0 {
		t.Fatalf("open %d/%d, disconnects %d, rejected %d: %v", res.ViewersOpen, res.SendersOpen, res.Disconnects, res.Rejected, res.ErrorSamples)
	}
	if res.OwnShareMin != 1 || res.PrioDeliveredMin != 1 || !res.FairOK {
		t.Errorf("own min %v, priority min %v, fair %v..%v", res.OwnShareMin, res.PrioDeliveredMin, res.FairShareMin, res.FairShareMax)
	}
	if res.RoomPerS < 80 || res.ShownPerS > 60 || res.DeliveriesPerViewerPerS > 60 || res.TicksPerS < 5 || res.TicksPerS > 11 {
		t.Errorf("room %.1f/s, shown %.1f/s, delivered %.1f/s per viewer, ticks %.1f/s: want the room sampled to about 55/s",
			res.RoomPerS, res.ShownPerS, res.DeliveriesPerViewerPerS, res.TicksPerS)
	}
	if res.LatencyUS.P99 > float64((300 * time.Millisecond).Microseconds()) {
		t.Errorf("p99 %.0f us, want within 300 ms", res.LatencyUS.P99)
	}
}

// With flow control off the same room delivers every comment to every
// viewer, one push each, and no tick frames.
func TestLiveFlowOffDeliversEverything(t *testing.T) {
	s := startLiveDuplex(t, `,"flow_tick":"0s"`)
	res, err := runLive(context.Background(), liveTestConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	if res.Disconnects != 0 || res.TicksPerS != 0 || res.OwnShareMin != 1 || res.PrioDeliveredMin != 1 {
		t.Fatalf("%+v", res)
	}
	if res.DeliveriesPerViewerPerS < 90 {
		t.Errorf("delivered %.1f/s per viewer, want every comment (about 105/s)", res.DeliveriesPerViewerPerS)
	}
}

func TestParseLiveFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-senders", "0"}, {"-rate", "0"}, {"-viewers", "-1"}, {"-prio-rate", "0"}, {"-size", "0"},
		{"-api", "ftp://x"}, {"extra"},
	} {
		if _, err := parseLiveFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	cfg, err := parseLiveFlags(nil, &bytes.Buffer{})
	if err != nil || cfg.Channel != defaultLiveChannel || cfg.URL != "ws://127.0.0.1:8088/realtime" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
}

func TestAppendLivePublish(t *testing.T) {
	d := string(appendLivePublish(nil, targetDuplex, "live:x", 11, 7, 5, 48))
	c := string(appendLivePublish(nil, targetCentrifugo, "live:x", 11, 7, 5, 48))
	if !strings.HasPrefix(d, `{"id":11,"op":"publish","channel":"live:x","data":{"dxseq":7,"dxts":5,`) {
		t.Errorf("duplex: %s", d)
	}
	if !strings.HasPrefix(c, `{"id":11,"publish":{"channel":"live:x","data":{"dxseq":7,"dxts":5,`) || !strings.HasSuffix(c, "}}") {
		t.Errorf("centrifugo: %s", c)
	}
}

// -deflate against the real server: viewers read through internal/wsclient,
// letting the server keep its context as browsers do (inflating what
// duplex compresses against each earlier comment), senders publish
// compressed through fasthttp/websocket; every comment still reaches
// every viewer.
func TestLiveDeflateAgainstTheRealServer(t *testing.T) {
	s := startLiveDuplex(t, `,"flow_tick":"0s"`)
	cfg := liveTestConfig(s)
	cfg.Deflate, cfg.Size = true, 512 // above WS_COMPRESSION_MIN_BYTES
	res, err := runLive(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Deflate || !res.DeflateContext || res.WireBytesPerConnPerS <= 0 || res.Disconnects != 0 || res.OwnShareMin != 1 || res.PrioDeliveredMin != 1 || res.DeliveriesPerViewerPerS < 90 {
		t.Fatalf("%+v", res)
	}
}
