package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/duplex/duplex/internal/wstest"
)

// fakeServer speaks just enough of duplex's or Centrifugo's protocol for
// the load tool: subscribe (and connect), POST /api/publish fanned out to
// every subscriber with several messages per frame, JSON pings for
// Centrifugo, and /metrics with go_goroutines.
type fakeServer struct {
	target targetKind
	key    string
	// copies says how many copies of publication seq subscriber sub gets
	// (default 1): 0 drops it, 2 duplicates it.
	copies func(sub int, seq uint64) int
	// delay slows every publish request down.
	delay time.Duration
	// upgradeDelay slows every WebSocket handshake down.
	upgradeDelay time.Duration
	// takeover (set before the first dial, with deflate) answers an offer
	// without server_no_context_takeover with context takeover, as duplex
	// answers browsers, and compresses against the connection's previous
	// messages (one flate writer per connection: wstest.ServerConn); any
	// other offer gets no deflate.
	takeover bool

	mu    sync.Mutex
	subs  []chan []byte
	pongs atomic.Int64

	wsURL, apiURL string
}

func startFake(t *testing.T, target targetKind, key string) *fakeServer {
	t.Helper()
	return startFakeWith(t, target, key, false)
}

// startFakeWith is startFake; with deflate, the fake accepts
// permessage-deflate offers and compresses what it sends.
func startFakeWith(t *testing.T, target targetKind, key string, deflate bool) *fakeServer {
	t.Helper()
	f := &fakeServer{target: target, key: key}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.FastHTTPUpgrader{EnableCompression: deflate}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/api/publish":
			f.publish(ctx)
		case "/metrics":
			f.mu.Lock()
			n := len(f.subs)
			f.mu.Unlock()
			fmt.Fprintf(ctx, "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines_other 1\ngo_goroutines %d\n", 10+2*n)
		default:
			time.Sleep(f.upgradeDelay)
			if f.takeover {
				f.upgradeTakeover(ctx)
				return
			}
			_ = up.Upgrade(ctx, func(c *websocket.Conn) {
				defer c.Close()
				f.serve(c)
			})
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	f.apiURL = "http://" + ln.Addr().String()
	f.wsURL = "ws://" + ln.Addr().String() + "/ws"
	return f
}

// fakeConn is the server side of one connection: fasthttp/websocket's, or
// wstest's with context takeover.
type fakeConn interface {
	ReadMessage() (kind int, msg []byte, err error)
	WriteMessage(kind int, msg []byte) error
}

// upgradeTakeover answers the upgrade by hand: with context takeover when
// the offer allows it, else without deflate.
func (f *fakeServer) upgradeTakeover(ctx *fasthttp.RequestCtx) {
	offer := string(ctx.Request.Header.Peek("Sec-WebSocket-Extensions"))
	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	ctx.Response.Header.Set("Sec-WebSocket-Accept", wstest.AcceptKey(string(ctx.Request.Header.Peek("Sec-WebSocket-Key"))))
	deflate := strings.HasPrefix(offer, "permessage-deflate") && !strings.Contains(offer, "server_no_context_takeover")
	if deflate {
		ctx.Response.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover")
	}
	ctx.Hijack(func(nc net.Conn) {
		s := wstest.NewServerConn(nc, nil)
		s.Deflate = deflate
		f.serve(s)
	})
}

// serve runs one connection: a reader goroutine handles commands, this
// goroutine is the only writer and batches what is queued.
func (f *fakeServer) serve(c fakeConn) {
	out := make(chan []byte, 1<<14)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			for line := range splitLines(msg) {
				if f.target == targetCentrifugo && string(line) == "{}" {
					f.pongs.Add(1)
					continue
				}
				var cmd struct {
					ID        int    `json:"id"`
					Op        string `json:"op"`
					Channel   string `json:"channel"`
					Connect   any    `json:"connect"`
					Subscribe *struct {
						Channel string `json:"channel"`
					} `json:"subscribe"`
				}
				if err := json.Unmarshal(line, &cmd); err != nil {
					return
				}
				switch {
				// Subscribed before the reply goes out, as a real server
				// does: a client that has the reply may publish at once.
				case f.target == targetDuplex && cmd.Op == "subscribe":
					f.addSub(out)
					out <- fmt.Appendf(nil, `{"id":%d,"result":{"offset":0,"epoch":"e"}}`, cmd.ID)
				case f.target == targetCentrifugo && cmd.Connect != nil:
					out <- fmt.Appendf(nil, `{"id":%d,"connect":{"client":"c","version":"0","ping":25,"pong":true}}`, cmd.ID)
				case f.target == targetCentrifugo && cmd.Subscribe != nil:
					f.addSub(out)
					out <- fmt.Appendf(nil, `{"id":%d,"subscribe":{}}`, cmd.ID)
					out <- []byte(`{}`) // a server ping, to be answered with {}
				default:
					out <- fmt.Appendf(nil, `{"id":%d,"error":{"code":"bad_request","message":"?"}}`, cmd.ID)
				}
			}
		}
	}()
	var frame []byte
	for {
		select {
		case <-done:
			return
		case m := <-out:
			frame = append(frame[:0], m...)
			for more := true; more; {
				select {
				case m := <-out:
					frame = append(append(frame, '\n'), m...)
				default:
					more = false
				}
			}
			if err := c.WriteMessage(websocket.TextMessage, frame); err != nil {
				return
			}
		}
	}
}

func (f *fakeServer) addSub(out chan []byte) {
	f.mu.Lock()
	f.subs = append(f.subs, out)
	f.mu.Unlock()
}

func (f *fakeServer) publish(ctx *fasthttp.RequestCtx) {
	time.Sleep(f.delay)
	var authOK bool
	if f.target == targetCentrifugo {
		authOK = string(ctx.Request.Header.Peek("X-API-Key")) == f.key
	} else {
		authOK = string(ctx.Request.Header.Peek("Authorization")) == "Bearer "+f.key
	}
	if !authOK {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		return
	}
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil || req.Channel == "" || len(req.Data) == 0 {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	var push []byte
	if f.target == targetCentrifugo {
		push = fmt.Appendf(nil, `{"push":{"channel":%q,"pub":{"data":%s}}}`, req.Channel, req.Data)
	} else {
		push = fmt.Appendf(nil, `{"channel":%q,"offset":1,"data":%s}`, req.Channel, req.Data)
	}
	seq, _ := findUint(req.Data, seqKey)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, out := range f.subs {
		n := 1
		if f.copies != nil {
			n = f.copies(i, seq)
		}
		for range n {
			out <- push
		}
	}
	if f.target == targetCentrifugo {
		ctx.SetBodyString(`{"result":{}}`)
	} else {
		ctx.SetBodyString(`{"offset":1,"epoch":"e"}`)
	}
}

func testBroadcastConfig(f *fakeServer) broadcastConfig {
	return broadcastConfig{
		targetConfig: targetConfig{Target: f.target, URL: f.wsURL, Channel: f.target.defaultChannel(),
			DialParallel: 8, Timeout: 2 * time.Second, SetupTimeout: 10 * time.Second},
		Subs: 6, Rate: 200, Size: 64,
		Duration: 600 * time.Millisecond, Warmup: 200 * time.Millisecond, Grace: time.Second,
		APIURL: f.apiURL, APIKey: "k",
	}
}

func TestBroadcastBothTargetsNoLoss(t *testing.T) {
	for _, target := range []targetKind{targetDuplex, targetCentrifugo} {
		t.Run(string(target), func(t *testing.T) {
			f := startFake(t, target, "k")
			cfg := testBroadcastConfig(f)
			cfg.ServerPID = os.Getpid() // the fake runs in this process
			start := time.Now()
			res, err := runBroadcast(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("a 0.8 s run took %v", took)
			}
			if res.SubsOpen != 6 || res.PublishErrors != 0 || res.Disconnects != 0 {
				t.Fatalf("subs %d, publish errors %d, disconnects %d: %v", res.SubsOpen, res.PublishErrors, res.Disconnects, res.ErrorSamples)
			}
			// 0.8 s at 200/s: 160 scheduled; allow a slow machine to lag.
			if res.Published < 100 || res.Published > 160 || res.PublishedWindow == 0 || res.PublishedWindow >= res.Published {
				t.Fatalf("published %d (%d in window)", res.Published, res.PublishedWindow)
			}
			if res.Lost != 0 || res.Duplicated != 0 || res.Unexpected != 0 || res.Reordered != 0 {
				t.Fatalf("lost %d dup %d unexpected %d reordered %d: %v", res.Lost, res.Duplicated, res.Unexpected, res.Reordered, res.ErrorSamples)
			}
			if res.Expected != res.Published*6 || res.DeliveriesTotal != res.Expected {
				t.Fatalf("expected %d, delivered %d, published %d", res.Expected, res.DeliveriesTotal, res.Published)
			}
			if res.Deliveries != res.PublishedWindow*6 {
				t.Fatalf("window deliveries %d, want %d", res.Deliveries, res.PublishedWindow*6)
			}
			l := res.LatencyUS
			if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) {
				t.Fatalf("latency not ordered: %+v", l)
			}
			if res.Server == nil || res.Server.RSSKB <= 0 || res.Server.CPUS < 0 {
				t.Fatalf("server stats: %+v (%v)", res.Server, res.ErrorSamples)
			}
			if res.DrainS >= cfg.Grace.Seconds() {
				t.Errorf("drain took the whole grace period (%.2fs) though nothing was lost", res.DrainS)
			}
			if target == targetCentrifugo && f.pongs.Load() != 6 {
				t.Errorf("pongs = %d, want one per subscriber", f.pongs.Load())
			}
			var text bytes.Buffer
			if err := writeBroadcastReport(&text, res, false); err != nil || !strings.Contains(text.String(), "lost 0") {
				t.Fatalf("text report: %v\n%s", err, text.String())
			}
			var js bytes.Buffer
			if err := writeBroadcastReport(&js, res, true); err != nil {
				t.Fatal(err)
			}
			var back BroadcastResult
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Deliveries != res.Deliveries || back.Server.CPUSPerMillion != res.Server.CPUSPerMillion {
				t.Fatalf("JSON round trip: %v\n%s", err, js.String())
			}
		})
	}
}

func TestBroadcastCountsLossAndDuplicates(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	// Subscriber 0 (the first to subscribe) misses every 10th message
	// (seq 3, 13, …); subscriber 1 gets every 7th twice.
	f.copies = func(sub int, seq uint64) int {
		switch {
		case sub == 0 && seq%10 == 3:
			return 0
		case sub == 1 && seq%7 == 0:
			return 2
		}
		return 1
	}
	cfg := testBroadcastConfig(f)
	cfg.Grace = 300 * time.Millisecond
	res, err := runBroadcast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishErrors != 0 {
		t.Fatalf("publish errors: %v", res.ErrorSamples)
	}
	var wantLost, wantDup uint64
	for seq := uint64(1); seq <= res.Published; seq++ {
		if seq%10 == 3 {
			wantLost++
		}
		if seq%7 == 0 {
			wantDup++
		}
	}
	if res.Lost != wantLost || res.LostSubs != 1 || res.Duplicated != wantDup {
		t.Fatalf("lost %d in %d subs, dup %d; want lost %d in 1, dup %d", res.Lost, res.LostSubs, res.Duplicated, wantLost, wantDup)
	}
	if res.DeliveriesTotal != res.Expected-wantLost {
		t.Fatalf("delivered %d of %d expected, lost %d", res.DeliveriesTotal, res.Expected, wantLost)
	}
	// The lossy subscriber never completes, so the drain waits out the grace.
	if res.DrainS < cfg.Grace.Seconds() {
		t.Errorf("drain %.2fs ended before the grace period %.2fs", res.DrainS, cfg.Grace.Seconds())
	}
}

func TestBroadcastSetupFailures(t *testing.T) {
	f := startFake(t, targetCentrifugo, "k")
	cfg := testBroadcastConfig(f)
	cfg.APIKey = "wrong"
	if _, err := runBroadcast(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("wrong key: err = %v", err)
	}
	// Centrifugo-style refusal: 200 with an error object.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString(`{"error":{"code":102,"message":"unknown channel"}}`)
	}}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()
	cfg = testBroadcastConfig(f)
	cfg.APIURL = "http://" + ln.Addr().String()
	if _, err := runBroadcast(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "unknown channel") {
		t.Fatalf("API error object: err = %v", err)
	}
	// A subscribe refused by the server: no subscriber opens.
	d := startFake(t, targetDuplex, "k")
	cfg = testBroadcastConfig(d)
	cfg.Target = targetCentrifugo // speaks the wrong protocol: every handshake is refused
	cfg.APIKey = ""
	cfg.APIURL = f.apiURL
	cfg.APIKey = "k"
	if _, err := runBroadcast(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused subscribe: err = %v", err)
	}
}

func TestBroadcastInterrupted(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	cfg := testBroadcastConfig(f)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := runBroadcast(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || !res.Interrupted {
		t.Fatalf("took %v, interrupted %v", time.Since(start), res.Interrupted)
	}
	if res.Lost != 0 || res.DurationS >= 60 {
		t.Fatalf("lost %d, window %.1fs", res.Lost, res.DurationS)
	}
}

func TestBroadcastData(t *testing.T) {
	for _, size := range []int{1, 30, 64, 200} {
		d := appendBroadcastData(nil, 12345, 1_700_000_000_123_456_789, size)
		var v struct {
			Seq uint64 `json:"dxseq"`
			TS  int64  `json:"dxts"`
			Pad string `json:"pad"`
		}
		if err := json.Unmarshal(d, &v); err != nil || v.Seq != 12345 || v.TS != 1_700_000_000_123_456_789 {
			t.Fatalf("size %d: %s: %v %+v", size, d, err, v)
		}
		if size >= 60 && len(d) != size {
			t.Fatalf("size %d: got %d bytes: %s", size, len(d), d)
		}
	}
	body := appendPublishBody(nil, "push:bench", payloadPad, 7, 42, 64)
	var b struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Channel != "push:bench" || len(b.Data) != 64 {
		t.Fatalf("body %s: %v", body, err)
	}
}

func TestFindUint(t *testing.T) {
	for _, c := range []struct {
		line string
		v    uint64
		ok   bool
	}{
		{`{"push":{"channel":"bench","pub":{"data":{"dxseq":42,"dxts":7}}}}`, 42, true},
		{`{"channel":"push:bench","offset":3,"data":{"dxseq": 9,"dxts":1}}`, 9, true},
		{`{"dxseq":"x"}`, 0, false},
		{`{}`, 0, false},
		{`{"dxseq":18446744073709551615}`, 18446744073709551615, true},
	} {
		v, ok := findUint([]byte(c.line), seqKey)
		if v != c.v || ok != c.ok {
			t.Errorf("%s: got %d %v, want %d %v", c.line, v, ok, c.v, c.ok)
		}
	}
}

func TestSplitLines(t *testing.T) {
	var got []string
	for l := range splitLines([]byte("a\n\nb\r\nc")) {
		got = append(got, string(l))
	}
	if strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("got %q", got)
	}
	if !isCentrifugoPing([]byte("{}")) || isCentrifugoPing([]byte(`{"id":1}`)) {
		t.Fatal("isCentrifugoPing")
	}
}

func TestProcParsers(t *testing.T) {
	stat := []byte("1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 2000 300")
	cpu, err := parseProcStatCPU(stat)
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("cpu %v %v", cpu, err)
	}
	if _, err := parseProcStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short stat accepted")
	}
	st, err := parseProcStatus([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t7\n"))
	if err != nil || st != (procStatus{RSSKB: 1024, HWMKB: 2048, Threads: 7}) {
		t.Fatalf("%+v %v", st, err)
	}
	// The real thing.
	if cpu, err := readProcCPU(os.Getpid()); err != nil || cpu < 0 {
		t.Fatalf("self cpu %v %v", cpu, err)
	}
	if st, err := readProcStatus(os.Getpid()); err != nil || st.RSSKB <= 0 || st.Threads < 1 {
		t.Fatalf("self status %+v %v", st, err)
	}
	v, err := parseMetric(strings.NewReader("# HELP go_goroutines x\ngo_goroutines_total 5\ngo_goroutines{a=\"b\"} 9\ngo_goroutines 17\n"), "go_goroutines")
	if err != nil || v != 17 {
		t.Fatalf("metric %v %v", v, err)
	}
	if _, err := parseMetric(strings.NewReader("x 1\n"), "go_goroutines"); err == nil {
		t.Fatal("missing metric found")
	}
}

func TestSourceAddrs(t *testing.T) {
	if ips := sourceAddrs("ws://127.0.0.1:9/x", 0, 4000); ips != nil {
		t.Fatalf("4000 conns: %v", ips)
	}
	ips := sourceAddrs("ws://127.0.0.1:9/x", 0, 12000)
	if len(ips) != 3 || ips[2].String() != "127.0.0.3" {
		t.Fatalf("12000 conns: %v", ips)
	}
	if ips := sourceAddrs("ws://localhost:9/x", 4, 10); ips != nil {
		t.Fatalf("a host name: %v", ips)
	}
	if ips := sourceAddrs("ws://10.0.0.1:9/x", 4, 10); ips != nil {
		t.Fatalf("not loopback: %v", ips)
	}
	// Dialing from 127.0.0.2 works on Linux loopback.
	f := startFake(t, targetDuplex, "k")
	cfg := testBroadcastConfig(f)
	cfg.SourceIPs = 3
	cfg.Subs = 5
	res, err := runBroadcast(context.Background(), cfg)
	if err != nil || res.SubsOpen != 5 || res.SourceIPs != 3 || res.Lost != 0 {
		t.Fatalf("%v: open %d, ips %d, lost %d %v", err, res.SubsOpen, res.SourceIPs, res.Lost, res.ErrorSamples)
	}
}

func TestParseBroadcastFlags(t *testing.T) {
	cfg, err := parseBroadcastFlags([]string{"-api-key", "k"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Target != targetDuplex || cfg.URL != "ws://127.0.0.1:8088/realtime" || cfg.Channel != "push:bench" ||
		cfg.APIURL != "http://127.0.0.1:8088" || cfg.Subs != 1000 || cfg.Rate != 100 || cfg.Size != 64 {
		t.Fatalf("duplex defaults: %+v", cfg)
	}
	cfg, err = parseBroadcastFlags(strings.Fields("-target centrifugo -url ws://127.0.0.1:9004/connection/websocket -subs 10 -rate 2.5 -json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Channel != "bench" || cfg.APIURL != "http://127.0.0.1:9004" || cfg.Rate != 2.5 || !cfg.JSON || cfg.interval() != 400*time.Millisecond {
		t.Fatalf("centrifugo: %+v", cfg)
	}
	if got := cfg.maxSeq(); got != 31 { // 12 s / 0.4 s + 1
		t.Fatalf("maxSeq %d", got)
	}
	for _, args := range []string{
		"-target nats", "-subs 0", "-rate 0", "-rate -1", "-size 0", "-size 1000000", "-duration 0s",
		"-warmup -1s", "-grace -1s", "-api ftp://x", "-channel a\"b", "-src-ips 300", "-dial-parallel 0",
		"-server-pid -1", "-server-pid 999999999", "-subs 100000 -rate 100000 -duration 1h", "extra",
	} {
		if _, err := parseBroadcastFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestBroadcastCmdUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"broadcast", "-h"}, &out, &out); code != 0 || !strings.Contains(out.String(), "-subs") {
		t.Fatalf("code %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"broadcast", "-rate", "0"}, &out, &out); code != 2 {
		t.Fatalf("bad flag: code %d", code)
	}
}

func TestBroadcastWindowBySchedule(t *testing.T) {
	for _, c := range []struct {
		warmup time.Duration
		rate   float64
		want   uint64
	}{
		{2 * time.Second, 100, 201}, {0, 100, 1}, {250 * time.Millisecond, 3, 2}, {time.Second, 1, 2},
	} {
		cfg := broadcastConfig{Warmup: c.warmup, Rate: c.rate}
		if got := cfg.firstWindowSeq(); got != c.want {
			t.Errorf("warmup %v rate %v: first window seq %d, want %d", c.warmup, c.rate, got, c.want)
		}
	}
	// A publisher slower than the schedule (20 ms per request at 200/s):
	// the window's publications are those scheduled in it, and the rates
	// are per the time they actually took.
	f := startFake(t, targetDuplex, "k")
	f.delay = 20 * time.Millisecond
	cfg := testBroadcastConfig(f)
	cfg.Subs = 2
	res, err := runBroadcast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishedWindow != 120 || res.Deliveries != 240 || res.Lost != 0 {
		t.Fatalf("window %d, deliveries %d, lost %d; want all 120 scheduled in the window, delivered twice", res.PublishedWindow, res.Deliveries, res.Lost)
	}
	if res.SpanS < 2 || res.PublishLagMaxMS < 1000 || res.DeliveriesPerS > 240/2.0 {
		t.Fatalf("span %.2fs, lag %.0f ms, deliveries/s %.0f", res.SpanS, res.PublishLagMaxMS, res.DeliveriesPerS)
	}
}
