package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func testIdleConfig(f *fakeServer, conns int) idleConfig {
	return idleConfig{
		targetConfig: targetConfig{Target: f.target, URL: f.wsURL, Channel: f.target.defaultChannel(),
			DialParallel: 8, Timeout: 2 * time.Second, SetupTimeout: 10 * time.Second, ServerPID: os.Getpid()},
		Conns: conns, Settle: 200 * time.Millisecond, Baseline: 200 * time.Millisecond,
		MetricsURL: f.apiURL + "/metrics",
	}
}

func TestIdleBothTargets(t *testing.T) {
	for _, target := range []targetKind{targetDuplex, targetCentrifugo} {
		t.Run(string(target), func(t *testing.T) {
			f := startFake(t, target, "k")
			res, err := runIdle(context.Background(), testIdleConfig(f, 20))
			if err != nil {
				t.Fatal(err)
			}
			if res.ConnsOpen != 20 || res.ConnsAlive != 20 || res.Disconnects != 0 {
				t.Fatalf("open %d alive %d disconnects %d: %v", res.ConnsOpen, res.ConnsAlive, res.Disconnects, res.ErrorSamples)
			}
			// The fake reports 10 + 2 per subscriber.
			if res.GoroutinesPerConn == nil || *res.GoroutinesPerConn != 2 || res.GoroutinesBase != 10 {
				t.Fatalf("goroutines: base %v per conn %v (%v)", res.GoroutinesBase, res.GoroutinesPerConn, res.ErrorSamples)
			}
			// The "server" is this test process: some RSS, a per-connection
			// figure derived from it.
			if res.RSSBaseKB <= 0 || res.RSSKB <= 0 || res.PID != os.Getpid() {
				t.Fatalf("rss %d -> %d", res.RSSBaseKB, res.RSSKB)
			}
			want := float64(res.RSSKB-res.RSSBaseKB) * 1024 / 20
			if res.RSSPerConnB != want {
				t.Fatalf("rss per conn %v, want %v", res.RSSPerConnB, want)
			}
			if target == targetCentrifugo && f.pongs.Load() != 20 {
				t.Errorf("pongs %d, want 20", f.pongs.Load())
			}
			var js bytes.Buffer
			if err := writeIdleReport(&js, res, true); err != nil {
				t.Fatal(err)
			}
			var back IdleResult
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.ConnsOpen != 20 || *back.GoroutinesPerConn != 2 {
				t.Fatalf("JSON: %v %s", err, js.String())
			}
			var text bytes.Buffer
			if err := writeIdleReport(&text, res, false); err != nil || !strings.Contains(text.String(), "2.00 per connection") {
				t.Fatalf("text: %v\n%s", err, text.String())
			}
		})
	}
}

func TestIdleWithoutMetricsOrPID(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	cfg := testIdleConfig(f, 3)
	cfg.ServerPID = 0
	cfg.MetricsURL = ""
	res, err := runIdle(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.GoroutinesPerConn != nil || res.RSSKB != 0 || res.ConnsAlive != 3 {
		t.Fatalf("%+v", res)
	}
	var text bytes.Buffer
	if err := writeIdleReport(&text, res, false); err != nil || !strings.Contains(text.String(), "not exposed") {
		t.Fatalf("%v\n%s", err, text.String())
	}
	// A metrics URL that fails is reported, not fatal.
	cfg.MetricsURL = f.apiURL + "/nope"
	f2 := startFake(t, targetDuplex, "k")
	cfg.URL = f2.wsURL
	cfg.MetricsURL = "http://127.0.0.1:1/metrics"
	res, err = runIdle(context.Background(), cfg)
	if err != nil || res.GoroutinesPerConn != nil || len(res.ErrorSamples) == 0 {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestIdleNoServer(t *testing.T) {
	cfg := idleConfig{
		targetConfig: targetConfig{Target: targetDuplex, URL: "ws://127.0.0.1:1/realtime", Channel: "push:x",
			DialParallel: 2, Timeout: time.Second, SetupTimeout: 5 * time.Second},
		Conns: 2,
	}
	if _, err := runIdle(context.Background(), cfg); err == nil {
		t.Fatal("no error without a server")
	}
}

func TestParseIdleFlags(t *testing.T) {
	cfg, err := parseIdleFlags(strings.Fields("-target centrifugo -url ws://127.0.0.1:9004/connection/websocket -conns 15000"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Conns != 15000 || cfg.Channel != "bench" || cfg.MetricsURL != "http://127.0.0.1:9004/metrics" || cfg.Settle != 10*time.Second {
		t.Fatalf("%+v", cfg)
	}
	cfg, err = parseIdleFlags(strings.Fields("-metrics none"), io.Discard)
	if err != nil || cfg.MetricsURL != "" || cfg.URL != "ws://127.0.0.1:8088/realtime" {
		t.Fatalf("%v %+v", err, cfg)
	}
	for _, args := range []string{"-conns 0", "-settle -1s", "-baseline 2m", "-metrics ftp://x", "-target x", "extra"} {
		if _, err := parseIdleFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
