package main

// idle mode: open N subscribed connections that then stay quiet, and
// report what each one costs the server in memory (RSS) and goroutines.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	registerMode(mode{
		name:    "idle",
		summary: "memory: N idle subscribed connections; server RSS and goroutines per connection (duplex or centrifugo)",
		run:     idleCmd,
	})
}

type idleConfig struct {
	targetConfig
	Conns      int
	Settle     time.Duration
	Baseline   time.Duration
	MetricsURL string
}

func parseIdleFlags(args []string, out io.Writer) (idleConfig, error) {
	var cfg idleConfig
	fs := flag.NewFlagSet("duplexload idle", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.targetConfig.register(fs)
	fs.IntVar(&cfg.Conns, "conns", 10000, "number of connections, each subscribed to -channel")
	fs.DurationVar(&cfg.Settle, "settle", 10*time.Second, "wait after the last subscription before measuring")
	fs.DurationVar(&cfg.Baseline, "baseline", time.Second, "sampling time of the baseline (before connecting) and of the final measurement")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", `Prometheus endpoint to read go_goroutines from (default: the -url host + /metrics; "none" to skip)`)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload idle [flags]")
		fmt.Fprintln(out, "Measures the server (-server-pid) before connecting, opens -conns subscribed connections, waits -settle,")
		fmt.Fprintln(out, "and reports the RSS and goroutine deltas per connection.")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		return cfg, err
	}
	if err := cfg.targetConfig.finish(); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Conns < 1 || cfg.Conns > maxConns:
		return cfg, fmt.Errorf("-conns must be in [1, %d], got %d", maxConns, cfg.Conns)
	case cfg.Settle < 0 || cfg.Settle > time.Hour:
		return cfg, fmt.Errorf("-settle must be in [0, 1h], got %s", cfg.Settle)
	case cfg.Baseline < 0 || cfg.Baseline > time.Minute:
		return cfg, fmt.Errorf("-baseline must be in [0, 1m], got %s", cfg.Baseline)
	}
	switch cfg.MetricsURL {
	case "none":
		cfg.MetricsURL = ""
	case "":
		base, _ := httpBase(cfg.URL)
		cfg.MetricsURL = base + "/metrics"
	default:
		if !strings.HasPrefix(cfg.MetricsURL, "http://") && !strings.HasPrefix(cfg.MetricsURL, "https://") {
			return cfg, fmt.Errorf("-metrics must be an http(s) URL or none, got %q", cfg.MetricsURL)
		}
	}
	return cfg, nil
}

// IdleResult is what idle -json prints. Fields are only ever added.
type IdleResult struct {
	Mode      string    `json:"mode"`
	Target    string    `json:"target"`
	URL       string    `json:"url"`
	Channel   string    `json:"channel"`
	StartedAt time.Time `json:"started_at"`
	Conns     int       `json:"conns"`      // requested
	ConnsOpen int       `json:"conns_open"` // subscribed
	// ConnsAlive: still open when measured (a server may drop idle ones).
	ConnsAlive int     `json:"conns_alive"`
	SourceIPs  int     `json:"source_ips"`
	SetupS     float64 `json:"setup_s"`
	// ConnectRate is subscribed connections per second during set-up
	// (dials in flight: -dial-parallel); informative only.
	ConnectRate float64 `json:"connect_rate"`
	SettleS     float64 `json:"settle_s"`

	// Deflate: the connections offered permessage-deflate (-deflate);
	// DeflateContext: every one negotiated it with context takeover.
	Deflate        bool `json:"deflate"`
	DeflateContext bool `json:"deflate_context"`

	// Server memory, from /proc/PID/status: the median of the samples taken
	// over -baseline before connecting and after settling.
	PID            int     `json:"pid,omitempty"`
	RSSBaseKB      int64   `json:"rss_base_kb,omitempty"`
	RSSKB          int64   `json:"rss_kb,omitempty"`
	HWMKB          int64   `json:"hwm_kb,omitempty"`
	RSSPerConnB    float64 `json:"rss_per_conn_bytes,omitempty"` // (RSS - base) / conns alive
	ThreadsBase    int64   `json:"threads_base,omitempty"`
	Threads        int64   `json:"threads,omitempty"`
	CPUSSetup      float64 `json:"cpu_s_setup,omitempty"`  // server CPU while connecting
	CPUSSettle     float64 `json:"cpu_s_settle,omitempty"` // server CPU while idle
	GoroutinesBase float64 `json:"goroutines_base,omitempty"`
	Goroutines     float64 `json:"goroutines,omitempty"`
	// GoroutinesPerConn is (goroutines - base) / conns alive; absent when
	// the target exposes no go_goroutines.
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`

	Disconnects  int      `json:"disconnects"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	Interrupted  bool     `json:"interrupted,omitempty"`
	GoMaxProcs   int      `json:"gomaxprocs"`
}

func idleCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("idle", args, stdout, stderr, parseIdleFlags,
		func(ctx context.Context, cfg idleConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runIdle(ctx, cfg)
			if err != nil {
				return err
			}
			if res.ConnsOpen < res.Conns {
				warnf("warning: only %d of %d connections opened", res.ConnsOpen, res.Conns)
			}
			return writeIdleReport(stdout, res, cfg.JSON)
		})
}

// sampleStatus reads /proc/PID/status every 100 ms for d (at least once)
// and returns the median RSS and threads and the last peak.
func sampleStatus(ctx context.Context, pid int, d time.Duration) (procStatus, error) {
	var rss, thr []int64
	var last procStatus
	deadline := time.Now().Add(d)
	for {
		s, err := readProcStatus(pid)
		if err != nil {
			return s, err
		}
		rss, thr, last = append(rss, s.RSSKB), append(thr, s.Threads), s
		if !time.Now().Add(100*time.Millisecond).Before(deadline) || ctx.Err() != nil {
			break
		}
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
	med := func(v []int64) int64 {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	return procStatus{RSSKB: med(rss), HWMKB: last.HWMKB, Threads: med(thr)}, nil
}

// runIdle runs the idle measurement. It returns an error only when nothing
// could be measured (no connection opened, or the server's /proc entry
// could not be read).
func runIdle(ctx context.Context, cfg idleConfig) (IdleResult, error) {
	res := IdleResult{
		Mode: "idle", Target: string(cfg.Target), URL: cfg.URL, Channel: cfg.Channel, Deflate: cfg.Deflate,
		StartedAt: time.Now().UTC(), Conns: cfg.Conns, PID: cfg.ServerPID,
		SourceIPs:  max(len(sourceAddrs(cfg.URL, cfg.SourceIPs, cfg.Conns)), 1),
		GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	errs := &errSamples{}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil}}
	goroutines := func() (float64, bool) {
		if cfg.MetricsURL == "" {
			return 0, false
		}
		v, err := scrapeMetric(ctx, client, cfg.MetricsURL, "go_goroutines")
		if err != nil {
			errs.add("metrics: %v", err)
			return 0, false
		}
		return v, true
	}

	// Baseline.
	var base procStatus
	var cpu0 time.Duration
	if cfg.ServerPID > 0 {
		var err error
		if base, err = sampleStatus(ctx, cfg.ServerPID, cfg.Baseline); err != nil {
			return res, fmt.Errorf("server pid %d: %w", cfg.ServerPID, err)
		}
		cpu0, _ = readProcCPU(cfg.ServerPID)
		res.RSSBaseKB, res.ThreadsBase = base.RSSKB, base.Threads
	}
	g0, haveG0 := goroutines()

	// Connect. Each connection's reader answers Centrifugo's pings and
	// notices a drop; the server's WebSocket pings are answered by the
	// library's default ping handler while it reads.
	conns := make([]subConn, cfg.Conns)
	var readers sync.WaitGroup
	var opened, alive, disconnects atomic.Int64
	var stopping atomic.Bool
	setupStart := time.Now()
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	openAll(setupCtx, &cfg.targetConfig, cfg.Conns,
		func(i int, c subConn, rest []byte) {
			conns[i] = c
			opened.Add(1)
			alive.Add(1)
			readers.Add(1)
			go func() {
				defer readers.Done()
				defer alive.Add(-1)
				buf := rest
				var err error
				for first := true; ; first = false {
					if !first {
						buf, err = c.readFrame(buf[:0])
					}
					if err != nil {
						if !stopping.Load() {
							disconnects.Add(1)
							errs.add("connection %d: %v", i, err)
						}
						return
					}
					if cfg.Target != targetCentrifugo {
						continue
					}
					for line := range splitLines(buf) {
						if isCentrifugoPing(line) {
							_ = c.SetWriteDeadline(time.Now().Add(cfg.Timeout))
							_ = c.writeText(centrifugoPong)
						}
					}
				}
			}()
		},
		func(i int, err error) { errs.add("connection %d: %v", i, err) })
	cancelSetup()
	setup := time.Since(setupStart)
	res.SetupS = setup.Seconds()
	res.ConnsOpen = int(opened.Load())
	res.DeflateContext = countContextTakeover(conns, func(c subConn) subConn { return c }, errs)
	if setup > 0 {
		res.ConnectRate = float64(res.ConnsOpen) / setup.Seconds()
	}
	stopAll := func() {
		stopping.Store(true)
		for _, c := range conns {
			if c != nil {
				_ = c.SetReadDeadline(time.Now())
			}
		}
		readers.Wait()
		closeAll(conns)
	}
	if res.ConnsOpen == 0 {
		stopAll()
		return res, fmt.Errorf("no connection could be opened to %s: %v", cfg.URL, errs.list())
	}
	var cpuSetup time.Duration
	if cfg.ServerPID > 0 {
		cpuSetup, _ = readProcCPU(cfg.ServerPID)
	}

	// Settle, then measure.
	settleStart := time.Now()
	sleepUntil(ctx, settleStart.Add(cfg.Settle))
	res.Interrupted = ctx.Err() != nil
	if cfg.ServerPID > 0 {
		st, err := sampleStatus(context.WithoutCancel(ctx), cfg.ServerPID, cfg.Baseline)
		if err != nil {
			errs.add("server pid %d: %v", cfg.ServerPID, err)
		} else {
			res.RSSKB, res.HWMKB, res.Threads = st.RSSKB, st.HWMKB, st.Threads
			if cpu, err := readProcCPU(cfg.ServerPID); err == nil {
				res.CPUSSetup = (cpuSetup - cpu0).Seconds()
				res.CPUSSettle = (cpu - cpuSetup).Seconds()
			}
		}
	}
	g1, haveG1 := goroutines()
	res.SettleS = time.Since(settleStart).Seconds()
	res.ConnsAlive = int(alive.Load())
	if n := float64(res.ConnsAlive); n > 0 {
		if res.RSSKB > 0 {
			res.RSSPerConnB = float64(res.RSSKB-res.RSSBaseKB) * 1024 / n
		}
		if haveG0 && haveG1 {
			res.GoroutinesBase, res.Goroutines = g0, g1
			per := (g1 - g0) / n
			res.GoroutinesPerConn = &per
		}
	}
	stopAll()
	res.Disconnects = int(disconnects.Load())
	res.ErrorSamples = errs.list()
	return res, nil
}

func writeIdleReport(w io.Writer, r IdleResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       idle  target %s  %s  channel %s\n", r.Target, r.URL, r.Channel)
	p("conns      %d subscribed of %d (from %d source addresses) in %.1fs = %.0f/s; %d alive after %.1fs settle",
		r.ConnsOpen, r.Conns, r.SourceIPs, r.SetupS, r.ConnectRate, r.ConnsAlive, r.SettleS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	p("\n")
	if r.Deflate {
		p("deflate    permessage-deflate, context takeover %v\n", r.DeflateContext)
	}
	if r.PID > 0 {
		p("server     pid %d: rss %d kB -> %d kB (peak %d kB) = %.0f bytes per connection; threads %d -> %d\n",
			r.PID, r.RSSBaseKB, r.RSSKB, r.HWMKB, r.RSSPerConnB, r.ThreadsBase, r.Threads)
		p("           cpu %.2fs while connecting, %.2fs while idle\n", r.CPUSSetup, r.CPUSSettle)
	}
	if r.GoroutinesPerConn != nil {
		p("goroutines %.0f -> %.0f = %.2f per connection\n", r.GoroutinesBase, r.Goroutines, *r.GoroutinesPerConn)
	} else {
		p("goroutines not exposed by the target\n")
	}
	p("errors     %d disconnects\n", r.Disconnects)
	for _, s := range r.ErrorSamples {
		p("  e.g. %s\n", s)
	}
	return out.err
}
