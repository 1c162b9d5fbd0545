package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// startServer runs a fasthttp/websocket server on 127.0.0.1:0 that hands
// every connection to handle, and returns its ws:// URL.
func startServer(t *testing.T, handle func(c *websocket.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.FastHTTPUpgrader{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		_ = up.Upgrade(ctx, func(c *websocket.Conn) {
			defer c.Close()
			c.SetReadLimit(1 << 20)
			handle(c)
		})
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "ws://" + ln.Addr().String() + "/ws"
}

// replyLoop answers each message with reply(n, msg), n counting from 0 per
// connection; a nil reply sends nothing.
func replyLoop(reply func(n int, msg []byte) []byte) func(c *websocket.Conn) {
	return func(c *websocket.Conn) {
		for n := 0; ; n++ {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if r := reply(n, msg); r != nil {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if err := c.WriteMessage(websocket.TextMessage, r); err != nil {
					return
				}
			}
		}
	}
}

func tutorialReply(_ int, msg []byte) []byte { return appendExpected(nil, expectTutorial, msg) }

func testConfig(url string) echoConfig {
	return echoConfig{
		commonConfig: commonConfig{URL: url, Conns: 8, Duration: time.Second, Warmup: 200 * time.Millisecond, Timeout: 2 * time.Second},
		Size:         16,
		Expect:       expectTutorial,
	}
}

func TestEchoAgainstCorrectServer(t *testing.T) {
	url := startServer(t, replyLoop(tutorialReply))
	start := time.Now()
	res, err := runEcho(context.Background(), testConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a 0.2s+1s run took %v", took)
	}
	if res.Errors != 0 || res.WarmupErrors != 0 {
		t.Fatalf("errors = %d (warmup %d): %v", res.Errors, res.WarmupErrors, res.ErrorSamples)
	}
	if res.Msgs == 0 || res.MsgsPerS <= 0 {
		t.Fatalf("no messages measured: %+v", res)
	}
	if res.MsgsTotal <= res.Msgs {
		t.Fatalf("msgs_total %d should exceed the measured %d after a warmup", res.MsgsTotal, res.Msgs)
	}
	if res.ConnsOpen != 8 || res.DurationS != 1 || res.Interrupted {
		t.Fatalf("conns_open %d, duration %v, interrupted %v", res.ConnsOpen, res.DurationS, res.Interrupted)
	}
	l := res.LatencyUS
	if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) {
		t.Fatalf("latency summary not ordered: %+v", l)
	}
}

func TestEchoCountsWrongReplies(t *testing.T) {
	// Every other reply is wrong: the reply to the previous message instead
	// of this one (a stale reply, well-formed but for the wrong message).
	url := startServer(t, func(c *websocket.Conn) {
		var last []byte
		replyLoop(func(n int, msg []byte) []byte {
			defer func() { last = msg }()
			if n%2 == 1 {
				return appendExpected(nil, expectTutorial, last)
			}
			return appendExpected(nil, expectTutorial, msg)
		})(c)
	})
	cfg := testConfig(url)
	cfg.Warmup = 0
	res, err := runEcho(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := res.ErrorsByKind
	if e.Wrong == 0 || res.Msgs == 0 {
		t.Fatalf("wrong %d, ok %d: want both > 0", e.Wrong, res.Msgs)
	}
	if e.Timeout+e.IO+e.Dial != 0 {
		t.Fatalf("unexpected non-wrong errors: %+v %v", e, res.ErrorSamples)
	}
	// Alternating per connection: the counts differ by at most one per conn.
	if d := int64(e.Wrong) - int64(res.Msgs); d < -int64(cfg.Conns) || d > int64(cfg.Conns) {
		t.Fatalf("wrong %d vs ok %d: not alternating", e.Wrong, res.Msgs)
	}
	if res.Errors != e.Wrong || len(res.ErrorSamples) == 0 || !strings.Contains(res.ErrorSamples[0], "wrong reply") {
		t.Fatalf("errors %d, samples %v", res.Errors, res.ErrorSamples)
	}
}

func TestEchoVerbatimAgainstTutorialServerIsAllWrong(t *testing.T) {
	url := startServer(t, replyLoop(tutorialReply))
	cfg := testConfig(url)
	cfg.Warmup, cfg.Duration, cfg.Expect = 0, 300*time.Millisecond, expectVerbatim
	res, err := runEcho(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Msgs != 0 || res.ErrorsByKind.Wrong == 0 {
		t.Fatalf("verbatim against tutorial: ok %d wrong %d", res.Msgs, res.ErrorsByKind.Wrong)
	}
}

func TestEchoCountsMissingRepliesAsTimeouts(t *testing.T) {
	url := startServer(t, replyLoop(func(int, []byte) []byte { return nil }))
	cfg := testConfig(url)
	cfg.Conns, cfg.Warmup, cfg.Duration, cfg.Timeout = 2, 0, 700*time.Millisecond, 200*time.Millisecond
	res, err := runEcho(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Msgs != 0 || res.ErrorsByKind.Timeout == 0 {
		t.Fatalf("silent server: ok %d, errors %+v", res.Msgs, res.ErrorsByKind)
	}
	if res.Reconnects == 0 {
		t.Fatalf("a timed-out connection should be redialled")
	}
}

func TestEchoCountsServerCloseAsIOError(t *testing.T) {
	// The server answers once, then drops the connection.
	url := startServer(t, func(c *websocket.Conn) {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		_ = c.WriteMessage(websocket.TextMessage, tutorialReply(0, msg))
		_, _, _ = c.ReadMessage()
		// return: the socket is closed without a reply
	})
	cfg := testConfig(url)
	cfg.Conns, cfg.Warmup, cfg.Duration = 2, 0, 500*time.Millisecond
	res, err := runEcho(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorsByKind.IO == 0 || res.Msgs == 0 || res.ErrorsByKind.Wrong != 0 {
		t.Fatalf("ok %d, errors %+v", res.Msgs, res.ErrorsByKind)
	}
}

func TestEchoSetupFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := testConfig("ws://" + addr + "/ws")
	if _, err := runEcho(context.Background(), cfg); err == nil {
		t.Fatal("runEcho succeeded with no server")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"echo", "-url", cfg.URL, "-duration", "1s"}, &out, &errOut); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %q", code, errOut.String())
	}
}

func TestEchoInterruptEndsEarly(t *testing.T) {
	url := startServer(t, replyLoop(tutorialReply))
	cfg := testConfig(url)
	cfg.Warmup, cfg.Duration = 0, time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := runEcho(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("interrupted run took %v", took)
	}
	if !res.Interrupted || res.DurationS <= 0 || res.DurationS > 5 || res.Msgs == 0 {
		t.Fatalf("interrupted %v, duration %v, msgs %d", res.Interrupted, res.DurationS, res.Msgs)
	}
}

func TestEchoCommandPrintsOneJSONObject(t *testing.T) {
	url := startServer(t, replyLoop(func(_ int, msg []byte) []byte { return msg }))
	var out, errOut bytes.Buffer
	code := run([]string{"echo", "-url", url, "-conns", "4", "-size", "32", "-duration", "300ms",
		"-expect", "verbatim", "-json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	dec := json.NewDecoder(&out)
	var r Result
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	if dec.More() {
		t.Fatal("stdout holds more than one JSON value")
	}
	if r.Mode != "echo" || r.Size != 32 || r.Expect != "verbatim" || r.Conns != 4 || r.Msgs == 0 || r.Errors != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestEchoCommandTextReportShowsErrors(t *testing.T) {
	url := startServer(t, replyLoop(func(_ int, msg []byte) []byte { return msg }))
	var out, errOut bytes.Buffer
	// Tutorial expected, verbatim served: all wrong, yet exit status 0.
	code := run([]string{"echo", "-url", url, "-conns", "2", "-duration", "200ms"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, want 0 even with errors; stderr %q", code, errOut.String())
	}
	for _, want := range []string{"msgs/s", "p99", "wrong reply", "errors"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "errors in the measured window") {
		t.Errorf("stderr does not mention the errors: %q", errOut.String())
	}
}
