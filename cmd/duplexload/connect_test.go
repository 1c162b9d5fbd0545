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

func testConnectConfig(f *fakeServer, conns int) connectConfig {
	return connectConfig{
		targetConfig: targetConfig{Target: f.target, URL: f.wsURL, Channel: f.target.defaultChannel(),
			DialParallel: 8, Timeout: 2 * time.Second, SetupTimeout: 10 * time.Second, ServerPID: os.Getpid()},
		Conns: conns, Hold: 100 * time.Millisecond, APIURL: f.apiURL, APIKey: "k",
	}
}

func TestConnectBothTargets(t *testing.T) {
	for _, target := range []targetKind{targetDuplex, targetCentrifugo} {
		t.Run(string(target), func(t *testing.T) {
			f := startFake(t, target, "k")
			res, err := runConnect(context.Background(), testConnectConfig(f, 40))
			if err != nil {
				t.Fatal(err)
			}
			if res.Completed != 40 || res.Errors != 0 || res.Disconnects != 0 || res.ConnsAliveHeld != 40 {
				t.Fatalf("completed %d errors %d disconnects %d alive %d: %v",
					res.Completed, res.Errors, res.Disconnects, res.ConnsAliveHeld, res.ErrorSamples)
			}
			if res.WallS <= 0 || res.ConnsPerS != float64(res.Completed)/res.WallS {
				t.Fatalf("rate %v over %vs", res.ConnsPerS, res.WallS)
			}
			// Milestones are in order, and the slowest connection ended
			// within the wall time.
			tc, up, sub := res.TCPUS, res.UpgradedUS, res.SubscribedUS
			if !(tc.Min > 0 && tc.Min <= up.Min && up.Min <= sub.Min && tc.P50 <= up.P50 && up.P50 <= sub.P50 &&
				sub.P50 <= sub.P99 && sub.P99 <= sub.Max && sub.Max <= res.WallS*1e6) {
				t.Fatalf("latencies out of order: tcp %+v upgraded %+v subscribed %+v wall %v", tc, up, sub, res.WallS)
			}
			if res.Server == nil || res.Server.CPUS < 0 || res.Server.RSSKB <= 0 ||
				res.Server.CPUSPer1000 != res.Server.CPUS/(40.0/1000) {
				t.Fatalf("server stats %+v (%v)", res.Server, res.ErrorSamples)
			}
			if res.FirstPubLatencyUS != nil || res.Published != 0 {
				t.Fatalf("publication figures without -publish-rate: %+v", res)
			}
			// The fake pings each Centrifugo subscriber once, right after
			// the subscribe reply; the reader answers.
			if target == targetCentrifugo {
				deadline := time.Now().Add(2 * time.Second)
				for f.pongs.Load() < 40 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if f.pongs.Load() != 40 {
					t.Errorf("pongs %d, want 40", f.pongs.Load())
				}
			}
			var js bytes.Buffer
			if err := writeConnectReport(&js, res, true); err != nil {
				t.Fatal(err)
			}
			var back ConnectResult
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Completed != 40 ||
				back.Server.CPUSPer1000 != res.Server.CPUSPer1000 || back.SubscribedUS.P99 != res.SubscribedUS.P99 {
				t.Fatalf("JSON round trip: %v\n%s", err, js.String())
			}
			for _, key := range []string{`"conns_per_s"`, `"subscribed_us"`, `"cpu_s_per_1000_conns"`, `"rss_kb"`} {
				if !strings.Contains(js.String(), key) {
					t.Errorf("JSON lacks %s: %s", key, js.String())
				}
			}
			var text bytes.Buffer
			if err := writeConnectReport(&text, res, false); err != nil ||
				!strings.Contains(text.String(), "40 subscribed of 40") || !strings.Contains(text.String(), "per 1,000 connections") {
				t.Fatalf("text: %v\n%s", err, text.String())
			}
		})
	}
}

func TestConnectFirstPublication(t *testing.T) {
	f := startFake(t, targetCentrifugo, "k")
	cfg := testConnectConfig(f, 30)
	cfg.DialParallel = 2
	cfg.PublishRate = 200
	// Slow the handshakes down (30 connections, 2 at a time, 20 ms each:
	// at least 300 ms), so that the publisher (200/s) runs while
	// connections open. Without the delay a fast machine finished all 30
	// in 13 ms, before the first publication after the probe.
	f.upgradeDelay = 20 * time.Millisecond
	res, err := runConnect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != 30 || res.PublishErrors != 0 {
		t.Fatalf("completed %d publish errors %d: %v", res.Completed, res.PublishErrors, res.ErrorSamples)
	}
	if res.Published == 0 || res.FirstPub == 0 || res.FirstPubLatencyUS == nil || res.FirstPubLatencyUS.Max <= 0 {
		t.Fatalf("published %d, first publications %d, latency %+v (wall %.3fs)", res.Published, res.FirstPub, res.FirstPubLatencyUS, res.WallS)
	}
	if res.FirstPub > res.Completed {
		t.Fatalf("first publications %d > connections %d", res.FirstPub, res.Completed)
	}
}

func TestConnectBadAPIKey(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	cfg := testConnectConfig(f, 2)
	cfg.PublishRate = 1
	cfg.APIKey = "wrong"
	if _, err := runConnect(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("err = %v, want a refused probe", err)
	}
}

func TestConnectCountsFailures(t *testing.T) {
	// No server: every connection fails at the TCP step.
	cfg := connectConfig{
		targetConfig: targetConfig{Target: targetDuplex, URL: "ws://127.0.0.1:1/realtime", Channel: "push:x",
			DialParallel: 3, Timeout: time.Second, SetupTimeout: 5 * time.Second},
		Conns: 5,
	}
	res, err := runConnect(context.Background(), cfg)
	if err == nil || res.Completed != 0 || res.Errors != 5 || res.ErrorsByStep[stepTCP] != 5 {
		t.Fatalf("err %v, completed %d, errors %d %v", err, res.Completed, res.Errors, res.ErrorsByStep)
	}

	// A subscribe the server refuses counts at the subscribe step.
	f := startFake(t, targetDuplex, "k")
	cfg = testConnectConfig(f, 4)
	cfg.Target = targetCentrifugo // the duplex fake refuses Centrifugo's commands
	res, err = runConnect(context.Background(), cfg)
	if err == nil || res.Errors != 4 || res.ErrorsByStep[stepConnect] != 4 {
		t.Fatalf("err %v, errors %v", err, res.ErrorsByStep)
	}
}

func TestConnectInterrupted(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	cfg := testConnectConfig(f, 20)
	cfg.Hold = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	res, err := runConnect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second || !res.Interrupted || res.Completed != 20 {
		t.Fatalf("took %v, interrupted %v, completed %d", took, res.Interrupted, res.Completed)
	}
}

func TestParseConnectFlags(t *testing.T) {
	cfg, err := parseConnectFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Conns != 5000 || cfg.DialParallel != 100 || cfg.URL != "ws://127.0.0.1:8088/realtime" ||
		cfg.Channel != "push:bench" || cfg.PublishRate != 0 || cfg.APIURL != "http://127.0.0.1:8088" {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = parseConnectFlags(strings.Fields("-target centrifugo -url ws://127.0.0.1:9016/connection/websocket -inflight 50 -conns 300"), io.Discard)
	if err != nil || cfg.DialParallel != 50 || cfg.Conns != 300 || cfg.Channel != "bench" || cfg.APIURL != "http://127.0.0.1:9016" {
		t.Fatalf("%v %+v", err, cfg)
	}
	cfg, err = parseConnectFlags(strings.Fields("-dial-parallel 7"), io.Discard)
	if err != nil || cfg.DialParallel != 7 {
		t.Fatalf("alias: %v %+v", err, cfg)
	}
	for _, args := range []string{"-conns 0", "-inflight 0", "-inflight 5000", "-hold -1s", "-publish-rate -1", "-publish-rate 1e6", "-target x", "extra"} {
		if _, err := parseConnectFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"connect", "-h"}, &out, &out); code != 0 || !strings.Contains(out.String(), "-inflight") {
		t.Fatalf("help: %d %s", code, out.String())
	}
}
