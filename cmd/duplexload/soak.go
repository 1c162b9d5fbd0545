package main

// soak mode: minutes of mixed load on a duplex cluster behind a proxy,
// checking what must never go wrong however long it runs (bench/soak.sh
// starts the cluster and runs this):
//
//   - every publication the HTTP API acknowledged (200) reaches a
//     subscriber on each node exactly once (push:soak, retried on 503, 504
//     and transport errors with the same Idempotency-Key);
//   - each node's goroutines and memory come back to where they started;
//   - every error is counted by kind (HTTP status, close code, dial error,
//     error code of a command reply).
//
// Around the checked publications runs the rest of a day's traffic: chat
// rooms with joins, messages and leaves; a live room (drop-oldest) with a
// fast publisher, a reader that keeps up and one that reads slowly; echo on
// /ws; connections opened and closed at a steady rate; and, with
// -restart-cmd, a NATS server restart every -restart-every. The parts live
// in soak_parts.go.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	registerMode(mode{
		name:    "soak",
		summary: "reliability: minutes of mixed load on a cluster; acknowledged publications lost or duplicated, leaks, errors by kind",
		run:     soakCmd,
	})
}

// Bounds of the soak mode.
const (
	maxSoakDuration  = 6 * time.Hour
	maxSoakWorkers   = 200
	maxSoakRate      = 1000
	soakMetricsEvery = 30 * time.Second
	// retryBudget is how long one API publication is retried. It stays
	// well inside the 2-minute idempotency window (docs/protocol.md), so a
	// retry can never be stored as a new publication.
	retryBudget = 60 * time.Second
)

type soakConfig struct {
	URL          string // proxy base, ws://127.0.0.1:PORT
	Nodes        []string
	APIKey       string
	Duration     time.Duration
	Grace        time.Duration
	Settle       time.Duration
	Timeout      time.Duration
	APIRate      float64
	APIWorkers   int
	ChatRooms    int
	ChatMembers  int
	LiveRate     float64
	LiveSize     int
	SlowBPS      []int
	EchoConns    int
	ChurnRate    float64
	RestartCmd   string
	RestartEvery time.Duration
	JSON         bool
	JSONFile     string

	wsBase, httpBase string
	nodeHTTP         []string
}

func parseSoakFlags(args []string, out io.Writer) (soakConfig, error) {
	var cfg soakConfig
	var nodes string
	fs := flag.NewFlagSet("duplexload soak", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8088", "the proxy in front of the nodes (ws://HOST:PORT); every client goes through it")
	fs.StringVar(&nodes, "nodes", "", "comma-separated http://HOST:PORT of each node: a checking subscriber on each, and /metrics")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("API_KEY"), "API key; default $API_KEY")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the load runs")
	fs.DurationVar(&cfg.Grace, "grace", 20*time.Second, "after the load, how long acknowledged publications may take to arrive")
	fs.DurationVar(&cfg.Settle, "settle", 15*time.Second, "after every connection closed, wait this long before the final goroutine and memory readings")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "deadline of each dial, HTTP request and command reply")
	fs.Float64Var(&cfg.APIRate, "api-rate", 20, "checked publications per second through POST /api/publish (push:soak)")
	fs.IntVar(&cfg.APIWorkers, "api-workers", 4, "API publishers in parallel (each retries its publication until 200)")
	fs.IntVar(&cfg.ChatRooms, "chat-rooms", 4, "chat rooms (chat:soak-N)")
	fs.IntVar(&cfg.ChatMembers, "chat-members", 24, "chat members, each joining, talking, leaving and coming back")
	fs.Float64Var(&cfg.LiveRate, "live-rate", 50, "publications per second to live:soak through the API")
	fs.IntVar(&cfg.LiveSize, "live-size", 8192, "bytes of each live publication's data")
	slow := "32768,196608"
	fs.StringVar(&slow, "slow-bps", slow, "comma-separated read rates (bytes/s) of the slow live readers, one reader each")
	fs.IntVar(&cfg.EchoConns, "echo-conns", 4, "echo connections on /ws")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", 5, "connections opened and closed per second")
	fs.StringVar(&cfg.RestartCmd, "restart-cmd", "", "shell command run every -restart-every with the restart number appended (e.g. one that kills and restarts a NATS server); empty: none")
	fs.DurationVar(&cfg.RestartEvery, "restart-every", 3*time.Minute, "interval of -restart-cmd (none in the last half interval of the run)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the result as one JSON object on stdout")
	fs.StringVar(&cfg.JSONFile, "json-file", "", "also write the result as JSON to this file")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload soak -url ws://PROXY -nodes http://NODE1,http://NODE2 -api-key KEY [flags]")
		fmt.Fprintln(out, "Mixed load for -duration; reports acknowledged publications lost and duplicated, goroutines and RSS")
		fmt.Fprintln(out, "of each node at start and end, and errors by kind. Only loopback (127.0.0.0/8) addresses are accepted.")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		return cfg, err
	}
	for _, f := range strings.Split(slow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1024 || len(cfg.SlowBPS) >= 8 {
			return cfg, fmt.Errorf("-slow-bps: want up to 8 rates of at least 1024 bytes/s, got %q", slow)
		}
		cfg.SlowBPS = append(cfg.SlowBPS, n)
	}
	var err error
	if cfg.wsBase, cfg.httpBase, err = loopbackBase(cfg.URL); err != nil {
		return cfg, fmt.Errorf("-url: %w", err)
	}
	for _, n := range strings.Split(nodes, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		_, hb, err := loopbackBase(n)
		if err != nil {
			return cfg, fmt.Errorf("-nodes: %w", err)
		}
		cfg.Nodes = append(cfg.Nodes, n)
		cfg.nodeHTTP = append(cfg.nodeHTTP, hb)
	}
	switch {
	case len(cfg.Nodes) == 0 || len(cfg.Nodes) > maxNodes:
		return cfg, fmt.Errorf("-nodes: want 1 to %d nodes, got %d", maxNodes, len(cfg.Nodes))
	case cfg.APIKey == "":
		return cfg, errors.New("-api-key (or $API_KEY) is required")
	case cfg.Duration <= 0 || cfg.Duration > maxSoakDuration:
		return cfg, fmt.Errorf("-duration must be in (0, %s], got %s", maxSoakDuration, cfg.Duration)
	case cfg.Grace < 0 || cfg.Grace > 10*time.Minute, cfg.Settle < 0 || cfg.Settle > 10*time.Minute:
		return cfg, errors.New("-grace and -settle must be in [0, 10m]")
	case cfg.Timeout <= 0 || cfg.Timeout > time.Minute:
		return cfg, fmt.Errorf("-timeout must be in (0, 1m], got %s", cfg.Timeout)
	case !(cfg.APIRate > 0 && cfg.APIRate <= maxSoakRate), !(cfg.LiveRate >= 0 && cfg.LiveRate <= maxSoakRate),
		!(cfg.ChurnRate >= 0 && cfg.ChurnRate <= maxSoakRate):
		return cfg, fmt.Errorf("-api-rate must be in (0, %d], -live-rate and -churn-rate in [0, %d]", maxSoakRate, maxSoakRate)
	case cfg.APIWorkers < 1 || cfg.APIWorkers > maxSoakWorkers, cfg.ChatRooms < 1 || cfg.ChatRooms > maxSoakWorkers,
		cfg.ChatMembers < 0 || cfg.ChatMembers > maxSoakWorkers, cfg.EchoConns < 0 || cfg.EchoConns > maxSoakWorkers:
		return cfg, fmt.Errorf("-api-workers, -chat-rooms (at least 1), -chat-members and -echo-conns must be at most %d", maxSoakWorkers)
	case cfg.LiveSize < 16 || cfg.LiveSize > 16000:
		return cfg, fmt.Errorf("-live-size must be in [16, 16000] (data is at most 16 KiB), got %d", cfg.LiveSize)
	case cfg.RestartCmd != "" && (cfg.RestartEvery < 10*time.Second || cfg.RestartEvery > maxSoakDuration):
		return cfg, fmt.Errorf("-restart-every must be in [10s, %s], got %s", maxSoakDuration, cfg.RestartEvery)
	}
	return cfg, nil
}

// loopbackBase checks that u is ws(s):// or http(s):// on a 127.0.0.0/8
// address (the soak must never send traffic anywhere else) and returns its
// ws:// and http:// bases.
func loopbackBase(u string) (wsBase, httpBase string, err error) {
	p, err := url.Parse(strings.TrimSuffix(u, "/"))
	if err != nil {
		return "", "", err
	}
	ip := net.ParseIP(p.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("%q: only 127.0.0.0/8 addresses are allowed", u)
	}
	switch p.Scheme {
	case "ws", "http":
		return "ws://" + p.Host, "http://" + p.Host, nil
	case "wss", "https":
		return "wss://" + p.Host, "https://" + p.Host, nil
	}
	return "", "", fmt.Errorf("%q: scheme must be ws, wss, http or https", u)
}

// ---------------------------------------------------------------------------
// Errors by kind

// soakErrors counts errors by kind ("api publish: HTTP 503", "chat: close
// 1013", "churn dial: HTTP 502", ...) and keeps the first message of each.
type soakErrors struct {
	mu      sync.Mutex
	n       map[string]uint64
	samples map[string]string
}

func newSoakErrors() *soakErrors {
	return &soakErrors{n: map[string]uint64{}, samples: map[string]string{}}
}

// add counts one error of kind; err (may be nil) is the sample.
func (e *soakErrors) add(kind string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[kind]++
	if _, ok := e.samples[kind]; !ok && err != nil {
		e.samples[kind] = clip([]byte(err.Error()))
	}
}

func (e *soakErrors) snapshot() (map[string]uint64, map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := make(map[string]uint64, len(e.n))
	s := make(map[string]string, len(e.samples))
	for k, v := range e.n {
		n[k] = v
	}
	for k, v := range e.samples {
		s[k] = v
	}
	return n, s
}

// ---------------------------------------------------------------------------
// Node metrics

// NodeMetrics is one reading of a node's /metrics.
type NodeMetrics struct {
	Goroutines  float64 `json:"goroutines"`
	RSSBytes    float64 `json:"rss_bytes"`
	HeapInuse   float64 `json:"heap_inuse_bytes"`
	Connections float64 `json:"connections_open"`
	Error       string  `json:"error,omitempty"`
}

// SoakNode is what the soak saw of one node.
type SoakNode struct {
	URL   string      `json:"url"`
	Start NodeMetrics `json:"start"` // before any load
	End   NodeMetrics `json:"end"`   // after every connection closed and -settle
	// Peak is the largest reading of each figure during the run (every
	// 30 s).
	Peak NodeMetrics `json:"peak"`
	// The checking subscriber on this node.
	Checker CheckerResult `json:"checker"`
}

func readNodeMetrics(ctx context.Context, client *http.Client, base string) NodeMetrics {
	var m NodeMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	resp, err := client.Do(req)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		m.Error = fmt.Sprintf("GET /metrics: %s %v", resp.Status, err)
		return m
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{
		{"go_goroutines", &m.Goroutines},
		{"process_resident_memory_bytes", &m.RSSBytes},
		{"go_memstats_heap_inuse_bytes", &m.HeapInuse},
		{"duplex_websocket_connections_open", &m.Connections},
	} {
		v, err := parseMetric(strings.NewReader(string(body)), f.name)
		if err != nil && m.Error == "" {
			m.Error = err.Error()
		}
		*f.dst = v
	}
	return m
}

func (m *NodeMetrics) maxOf(o NodeMetrics) {
	if o.Error != "" {
		return
	}
	m.Goroutines = max(m.Goroutines, o.Goroutines)
	m.RSSBytes = max(m.RSSBytes, o.RSSBytes)
	m.HeapInuse = max(m.HeapInuse, o.HeapInuse)
	m.Connections = max(m.Connections, o.Connections)
}

// ---------------------------------------------------------------------------
// Result

// SoakResult is what soak -json prints. Fields are only ever added.
type SoakResult struct {
	Mode      string    `json:"mode"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
	DurationS float64   `json:"duration_s"` // load actually run
	// API: the checked publications (push:soak).
	API APIResult `json:"api"`
	// Lost: acknowledged publications missing on some node's checker (each
	// counted once, however many nodes missed it); Duplicated: acknowledged
	// publications some checker saw at two offsets (stored twice). Goals: 0.
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	// LostIDs, DuplicatedIDs: the first few, for the evidence.
	LostIDs       []uint64 `json:"lost_ids,omitempty"`
	DuplicatedIDs []uint64 `json:"duplicated_ids,omitempty"`
	// SharedOffsets counts positions the API gave, in a 200 answer, to two
	// or more different publications (a channel's offsets are 1, 2, 3…
	// across all nodes, so each should name one publication only); Lost
	// details the first lost ones: the position the API gave and what each
	// node's checker got at that offset.
	SharedOffsets uint64       `json:"shared_offsets"`
	LostDetail    []LostDetail `json:"lost_detail,omitempty"`
	Nodes         []SoakNode   `json:"nodes"`
	Chat          ChatResult   `json:"chat"`
	Live          LiveResult   `json:"live"`
	Echo          EchoResult   `json:"echo"`
	Churn         ChurnResult  `json:"churn"`
	Restarts      []RestartRun `json:"restarts"`
	// Errors by kind over the whole run; ErrorSamples: the first message
	// of each kind.
	Errors       map[string]uint64 `json:"errors"`
	ErrorsTotal  uint64            `json:"errors_total"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Interrupted  bool              `json:"interrupted,omitempty"`
	GoMaxProcs   int               `json:"gomaxprocs"`
}

// LostDetail is the evidence for one lost acknowledged publication.
type LostDetail struct {
	ID     uint64 `json:"id"`
	Offset uint64 `json:"offset"` // from the API's 200 answer
	// SameOffset: other publications the API also answered with Offset.
	SameOffset []uint64 `json:"same_offset_ids,omitempty"`
	// AtOffset: per node, the publication id its checker got at Offset
	// (0: none).
	AtOffset []uint64 `json:"checker_ids_at_offset"`
}

// RestartRun is one run of -restart-cmd.
type RestartRun struct {
	N      int     `json:"n"`
	AtS    float64 `json:"at_s"` // since the load started
	TookS  float64 `json:"took_s"`
	Output string  `json:"output"`
	Error  string  `json:"error,omitempty"`
}

func soakCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("soak", args, stdout, stderr, parseSoakFlags,
		func(ctx context.Context, cfg soakConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runSoak(ctx, cfg, warnf)
			if err != nil {
				return err
			}
			if res.Lost+res.Duplicated > 0 {
				warnf("acknowledged publications lost %d, duplicated %d", res.Lost, res.Duplicated)
			}
			if cfg.JSONFile != "" {
				f, err := os.Create(cfg.JSONFile)
				if err != nil {
					return err
				}
				err = writeSoakReport(f, res, true)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			}
			return writeSoakReport(stdout, res, cfg.JSON)
		})
}

// runSoak runs the load and the checks. It returns an error only when the
// run could not be set up (a checker could not subscribe).
func runSoak(ctx context.Context, cfg soakConfig, warnf func(string, ...any)) (SoakResult, error) {
	res := SoakResult{Mode: "soak", URL: cfg.URL, StartedAt: time.Now().UTC(), GoMaxProcs: runtime.GOMAXPROCS(0)}
	errs := newSoakErrors()
	mclient := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil}}

	res.Nodes = make([]SoakNode, len(cfg.Nodes))
	for i, base := range cfg.nodeHTTP {
		res.Nodes[i].URL = cfg.Nodes[i]
		res.Nodes[i].Start = readNodeMetrics(ctx, mclient, base)
		if e := res.Nodes[i].Start.Error; e != "" {
			return res, fmt.Errorf("node %s: %s", base, e)
		}
		res.Nodes[i].Peak = res.Nodes[i].Start
	}

	// The checkers subscribe before the first publication: from then on
	// each must see every acknowledged one.
	maxID := uint64(cfg.APIRate*(cfg.Duration.Seconds()+1)) + 16
	checkers := make([]*checker, len(cfg.Nodes))
	checkCtx, stopCheckers := context.WithCancel(context.Background())
	defer stopCheckers()
	var checkWG sync.WaitGroup
	for i, base := range cfg.nodeHTTP {
		c := newChecker(&cfg, strings.Replace(base, "http", "ws", 1)+"/realtime", maxID, errs)
		if err := c.subscribe(ctx); err != nil {
			stopCheckers()
			for _, o := range checkers[:i] {
				o.close()
			}
			return res, fmt.Errorf("checker on %s: %w", base, err)
		}
		checkers[i] = c
		checkWG.Add(1)
		go func() { defer checkWG.Done(); c.run(checkCtx) }()
	}

	loadCtx, cancelLoad := context.WithTimeout(ctx, cfg.Duration)
	defer cancelLoad()
	start := time.Now()
	var wg sync.WaitGroup
	goPart := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	api := newAPIPublisher(&cfg, maxID, errs)
	goPart(func() { api.run(loadCtx, ctx) })
	chat := &chatLoad{cfg: &cfg, errs: errs}
	goPart(func() { chat.run(loadCtx) })
	live := &liveLoad{cfg: &cfg, errs: errs}
	goPart(func() { live.run(loadCtx) })
	echo := &echoLoad{cfg: &cfg, errs: errs}
	goPart(func() { echo.run(loadCtx) })
	churn := &churnLoad{cfg: &cfg, errs: errs}
	goPart(func() { churn.run(loadCtx) })
	var restarts []RestartRun
	if cfg.RestartCmd != "" {
		goPart(func() { restarts = runRestarts(loadCtx, &cfg, start, warnf) })
	}
	goPart(func() {
		t := time.NewTicker(soakMetricsEvery)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
				for i, base := range cfg.nodeHTTP {
					res.Nodes[i].Peak.maxOf(readNodeMetrics(loadCtx, mclient, base))
				}
			}
		}
	})
	wg.Wait()
	res.DurationS = time.Since(start).Seconds()
	res.Interrupted = ctx.Err() != nil

	// Drain: every acknowledged publication on every checker, or -grace.
	grace := cfg.Grace
	if res.Interrupted {
		grace = min(grace, 2*time.Second)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		done := true
		for _, c := range checkers {
			if c.missing(api.acked) > 0 {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopCheckers()
	for _, c := range checkers {
		c.close()
	}
	checkWG.Wait()

	// Tally the checked publications.
	res.API = api.result()
	lost := make([]bool, maxID+1)
	dup := make([]bool, maxID+1)
	for i, c := range checkers {
		res.Nodes[i].Checker = c.result(api.acked, api.offsets)
		for id := uint64(1); id <= maxID; id++ {
			if !api.acked[id] {
				continue
			}
			switch n := c.count[id]; {
			case n == 0:
				lost[id] = true
			case n > 1:
				dup[id] = true
			}
		}
	}
	byOffset := map[uint64][]uint64{} // acknowledged offset -> ids
	for id := uint64(1); id <= maxID; id++ {
		if api.acked[id] {
			byOffset[api.offsets[id]] = append(byOffset[api.offsets[id]], id)
		}
	}
	for _, ids := range byOffset {
		if len(ids) > 1 {
			res.SharedOffsets++
		}
	}
	for id := uint64(1); id <= maxID; id++ {
		if lost[id] {
			res.Lost++
			if len(res.LostIDs) < 20 {
				res.LostIDs = append(res.LostIDs, id)
				d := LostDetail{ID: id, Offset: api.offsets[id]}
				for _, o := range byOffset[d.Offset] {
					if o != id {
						d.SameOffset = append(d.SameOffset, o)
					}
				}
				for _, c := range checkers {
					d.AtOffset = append(d.AtOffset, c.idAt(d.Offset))
				}
				res.LostDetail = append(res.LostDetail, d)
			}
		}
		if dup[id] {
			res.Duplicated++
			if len(res.DuplicatedIDs) < 20 {
				res.DuplicatedIDs = append(res.DuplicatedIDs, id)
			}
		}
	}
	res.Chat, res.Live, res.Echo, res.Churn = chat.result(), live.result(), echo.result(), churn.result()
	res.Restarts = restarts

	// Final readings, once the nodes have seen every connection go.
	if !res.Interrupted {
		sleepUntil(ctx, time.Now().Add(cfg.Settle))
	}
	for i, base := range cfg.nodeHTTP {
		res.Nodes[i].End = readNodeMetrics(context.Background(), mclient, base)
		res.Nodes[i].Peak.maxOf(res.Nodes[i].End)
	}
	res.Errors, res.ErrorSamples = errs.snapshot()
	for _, n := range res.Errors {
		res.ErrorsTotal += n
	}
	return res, nil
}

// runRestarts runs cfg.RestartCmd with the restart number appended at
// every RestartEvery, except in the last half interval of the run (so the
// cluster has settled before the end). A command that has started is let
// finish (bounded by its own timeout), so a NATS server is never left
// half-restarted by the end of the load.
func runRestarts(ctx context.Context, cfg *soakConfig, start time.Time, warnf func(string, ...any)) []RestartRun {
	var out []RestartRun
	for n := 1; n <= int(cfg.Duration/cfg.RestartEvery)+1; n++ {
		at := start.Add(time.Duration(n) * cfg.RestartEvery)
		if at.Add(cfg.RestartEvery / 2).After(start.Add(cfg.Duration)) {
			break
		}
		sleepUntil(ctx, at)
		if ctx.Err() != nil {
			break
		}
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(cctx, "/bin/sh", "-c", cfg.RestartCmd+" "+strconv.Itoa(n))
		t0 := time.Now()
		b, err := cmd.CombinedOutput()
		cancel()
		r := RestartRun{N: n, AtS: t0.Sub(start).Seconds(), TookS: time.Since(t0).Seconds(), Output: strings.TrimSpace(string(b))}
		if len(r.Output) > 500 {
			r.Output = r.Output[:500]
		}
		if err != nil {
			r.Error = err.Error()
			warnf("restart %d failed: %v: %s", n, err, r.Output)
		}
		out = append(out, r)
	}
	return out
}

func writeSoakReport(w io.Writer, r SoakResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       soak  %s  %.0fs of load", r.URL, r.DurationS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	a := r.API
	p("\napi        %d publications attempted, %d acknowledged (%d after a retry, %d replayed), %d given up, %d retries; publish rtt us p50 %.0f p99 %.0f max %.0f\n",
		a.Attempted, a.Acked, a.AckedAfterRetry, a.Replayed, a.GaveUp, a.Retries, a.LatencyUS.P50, a.LatencyUS.P99, a.LatencyUS.Max)
	verdict := "ok"
	if r.Lost+r.Duplicated > 0 {
		verdict = "FAIL"
	}
	p("checked    acknowledged publications lost %d, duplicated %d (goal 0 and 0): %s\n", r.Lost, r.Duplicated, verdict)
	p("           positions the API gave to two or more publications: %d\n", r.SharedOffsets)
	for _, d := range r.LostDetail {
		p("           lost id %d: acknowledged at offset %d, also given to ids %v; the checkers got ids %v there\n",
			d.ID, d.Offset, d.SameOffset, d.AtOffset)
	}
	if len(r.DuplicatedIDs) > 0 {
		p("           duplicated ids %v\n", r.DuplicatedIDs)
	}
	for i, n := range r.Nodes {
		c := n.Checker
		p("node %d     %s: checker got %d of %d acknowledged (missing %d, at two offsets %d, same offset twice %d, offset mismatch %d, unacknowledged seen %d), %d reconnects, %d unrecovered\n",
			i+1, n.URL, c.Received, c.Expected, c.Missing, c.TwoOffsets, c.Redelivered, c.OffsetMismatch, c.Unacked, c.Reconnects, c.Unrecovered)
		p("           goroutines %.0f -> %.0f (peak %.0f); rss %.1f -> %.1f MB (peak %.1f); heap in use %.1f -> %.1f MB; connections %.0f -> %.0f (peak %.0f)\n",
			n.Start.Goroutines, n.End.Goroutines, n.Peak.Goroutines, n.Start.RSSBytes/1e6, n.End.RSSBytes/1e6, n.Peak.RSSBytes/1e6,
			n.Start.HeapInuse/1e6, n.End.HeapInuse/1e6, n.Start.Connections, n.End.Connections, n.Peak.Connections)
		if n.End.Error != "" {
			p("           end reading failed: %s\n", n.End.Error)
		}
	}
	ch := r.Chat
	p("chat       %d sessions, %d joins sent, %d leaves sent; %d messages acknowledged of %d sent; seen: %d messages, %d join and %d leave events\n",
		ch.Sessions, ch.Subscribes, ch.Unsubscribes, ch.Acked, ch.Sent, ch.Received, ch.JoinEvents, ch.LeaveEvents)
	lv := r.Live
	p("live       %d published (%d errors); fast reader: %d received, %d in gaps, %d in missed notices, %d sessions\n",
		lv.Published, lv.PublishErrors, lv.Fast.Received, lv.Fast.GapSum, lv.Fast.Missed, lv.Fast.Sessions)
	for _, sr := range lv.Slow {
		p("           slow reader at %d B/s: %d received, %d in gaps, %d in missed notices, %d backwards, %d sessions\n",
			sr.BPS, sr.Received, sr.GapSum, sr.Missed, sr.Backward, sr.Sessions)
	}
	e := r.Echo
	p("echo       %d replies correct, %d wrong, %d sessions; rtt us p50 %.0f p99 %.0f max %.0f\n", e.OK, e.Wrong, e.Sessions, e.LatencyUS.P50, e.LatencyUS.P99, e.LatencyUS.Max)
	cu := r.Churn
	p("churn      %d connections opened and closed (%d subscribed), %d failed\n", cu.Opened, cu.Subscribed, cu.Failed)
	for _, rs := range r.Restarts {
		p("restart %-2d at %.0fs, took %.1fs: %s", rs.N, rs.AtS, rs.TookS, strings.ReplaceAll(rs.Output, "\n", "; "))
		if rs.Error != "" {
			p(" (error: %s)", rs.Error)
		}
		p("\n")
	}
	p("errors     %d in all\n", r.ErrorsTotal)
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p("  %-40s %6d   e.g. %s\n", k, r.Errors[k], r.ErrorSamples[k])
	}
	return out.err
}
