package main

// connect mode: how fast a server accepts new subscribed connections.
//
// -conns connections are opened with -inflight of them in flight at any
// time. Each one is timed from the moment its TCP connect starts:
//
//	tcp         the TCP connection is established
//	upgraded    the WebSocket handshake's 101 response has arrived
//	subscribed  the reply to the subscribe command has arrived (for
//	            Centrifugo, after the connect command's reply): the first
//	            message the connection gets as a subscriber
//
// "subscribed" is the headline latency (issue 5: "time from TCP connect to
// the first subscribed message"). Neither server pushes anything on its own
// after a subscribe here (no history recovery is asked for), so the
// subscribe reply is that first message.
//
// A publication's arrival time depends on when the next one is published,
// not on the server, so the tool does not add "time to the first
// publication" to the connect time. With -publish-rate R > 0 it publishes R
// messages/s through the HTTP API while connecting and reports, per
// connection, the delivery latency (receipt minus send time) of the first
// publication it gets: a check that a just-subscribed connection is served
// at once. It is off by default, because fanning out to the connections
// already open costs the server CPU that the per-1,000-connections figure
// would then include.
//
// Connections stay open until every one has finished (and for -hold
// after), each with a reader that answers Centrifugo's pings and counts
// drops; then all are closed. Rates: completed (subscribed) connections
// divided by the wall time from the first dial to the last completion.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/selfcpu"
)

func init() {
	registerMode(mode{
		name:    "connect",
		summary: "connection rate: N connections, K in flight, each TCP connect -> handshake -> subscribe reply timed (duplex or centrifugo)",
		run:     connectCmd,
	})
}

const (
	defaultConnectConns    = 5000
	defaultConnectInflight = 100
	maxPublishRate         = 1000
)

type connectConfig struct {
	targetConfig
	Conns       int
	Hold        time.Duration
	PublishRate float64
	APIURL      string
	APIKey      string
}

func parseConnectFlags(args []string, out io.Writer) (connectConfig, error) {
	var cfg connectConfig
	fs := flag.NewFlagSet("duplexload connect", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.targetConfig.register(fs)
	// -inflight is this mode's name for -dial-parallel (either works).
	fs.IntVar(&cfg.DialParallel, "inflight", defaultConnectInflight, "connections being opened at once (TCP connect to subscribe reply); alias -dial-parallel")
	if f := fs.Lookup("dial-parallel"); f != nil {
		f.DefValue = fmt.Sprint(defaultConnectInflight)
		f.Usage = "same as -inflight"
	}
	fs.IntVar(&cfg.Conns, "conns", defaultConnectConns, "connections to open, each subscribed to -channel")
	fs.DurationVar(&cfg.Hold, "hold", time.Second, "keep every connection open this long after the last one finished, then close them all")
	fs.Float64Var(&cfg.PublishRate, "publish-rate", 0, "publish this many messages/s through the HTTP API while connecting and time each connection's first publication (0: off)")
	fs.StringVar(&cfg.APIURL, "api", "", "HTTP base URL of the publish API, with -publish-rate (default: the -url host over http)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("API_KEY"), "API key, with -publish-rate (duplex: Authorization: Bearer; centrifugo: X-API-Key); default $API_KEY")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload connect [flags]")
		fmt.Fprintln(out, "Opens -conns connections, -inflight at a time; each is timed from the start of its TCP connect to the")
		fmt.Fprintln(out, "reply to its subscribe command. Reports connections/s, p50/p99/max, errors and the server's CPU per 1,000 connections.")
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
	case cfg.Hold < 0 || cfg.Hold > time.Hour:
		return cfg, fmt.Errorf("-hold must be in [0, 1h], got %s", cfg.Hold)
	case !(cfg.PublishRate >= 0 && cfg.PublishRate <= maxPublishRate):
		return cfg, fmt.Errorf("-publish-rate must be in [0, %d], got %v", maxPublishRate, cfg.PublishRate)
	}
	if cfg.APIURL == "" {
		cfg.APIURL, _ = httpBase(cfg.URL)
	}
	return cfg, nil
}

// ConnectResult is what connect -json prints. Fields are only ever added.
type ConnectResult struct {
	Mode      string    `json:"mode"`
	Target    string    `json:"target"`
	URL       string    `json:"url"`
	Channel   string    `json:"channel"`
	StartedAt time.Time `json:"started_at"`
	Conns     int       `json:"conns"` // requested
	Inflight  int       `json:"inflight"`
	SourceIPs int       `json:"source_ips"`
	Deflate   bool      `json:"deflate"`
	// DeflateContext: every completed connection negotiated
	// permessage-deflate with context takeover.
	DeflateContext bool `json:"deflate_context"`

	// Completed: connections whose subscribe reply arrived. WallS: from the
	// first dial to the last completion (or failure). ConnsPerS =
	// Completed / WallS.
	Completed int     `json:"completed"`
	WallS     float64 `json:"wall_s"`
	ConnsPerS float64 `json:"conns_per_s"`

	// Latencies from the start of each completed connection's TCP connect.
	TCPUS        Latency `json:"tcp_us"`
	UpgradedUS   Latency `json:"upgraded_us"`
	SubscribedUS Latency `json:"subscribed_us"`

	// Errors: connections that did not complete, by the step that failed
	// (a failure inside the TCP dial counts as tcp; a timeout inside the
	// WebSocket dial after TCP connected counts as upgrade). Disconnects:
	// completed connections dropped before the tool closed them.
	Errors         int            `json:"errors"`
	ErrorsByStep   map[string]int `json:"errors_by_step"`
	Disconnects    int            `json:"disconnects"`
	ConnsAliveHeld int            `json:"conns_alive_held"` // still open at the end of -hold
	HoldS          float64        `json:"hold_s"`

	// Server: CPU over the connecting phase (first dial to last
	// completion), per 1,000 completed connections; RSS at the end of it.
	Server *ConnectServer `json:"server,omitempty"`
	// LoaderCPUS: this tool's CPU over the same phase (it shares the cores).
	LoaderCPUS float64 `json:"loader_cpu_s"`

	// With -publish-rate: publications accepted while connecting, and the
	// delivery latency of each connection's first publication.
	PublishRate       float64  `json:"publish_rate,omitempty"`
	Published         uint64   `json:"published,omitempty"`
	PublishErrors     uint64   `json:"publish_errors,omitempty"`
	FirstPub          int      `json:"first_pub,omitempty"` // connections that got one
	FirstPubLatencyUS *Latency `json:"first_pub_latency_us,omitempty"`

	ErrorSamples []string `json:"error_samples,omitempty"`
	Interrupted  bool     `json:"interrupted,omitempty"`
	GoMaxProcs   int      `json:"gomaxprocs"`
}

// ConnectServer is what the tool measured of the server process.
type ConnectServer struct {
	PID           int     `json:"pid"`
	CPUS          float64 `json:"cpu_s"`
	CPUSPer1000   float64 `json:"cpu_s_per_1000_conns"`
	CPUSHold      float64 `json:"cpu_s_hold"` // while the connections were held open
	procStatus            // after the connecting phase
	RSSPerConnB   float64 `json:"rss_per_conn_bytes"` // (RSS after - RSS before) / completed; informative
	RSSBeforeKB   int64   `json:"rss_before_kb"`
	ThreadsBefore int64   `json:"threads_before"`
}

func connectCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("connect", args, stdout, stderr, parseConnectFlags,
		func(ctx context.Context, cfg connectConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runConnect(ctx, cfg)
			if err != nil {
				return err
			}
			if res.Completed < res.Conns || res.Disconnects > 0 {
				warnf("warning: %d of %d connections completed, %d errors, %d disconnects",
					res.Completed, res.Conns, res.Errors, res.Disconnects)
			}
			return writeConnectReport(stdout, res, cfg.JSON)
		})
}

// Steps a connection goes through; errors are counted by the failing one.
const (
	stepTCP       = "tcp"
	stepUpgrade   = "upgrade"
	stepConnect   = "connect" // Centrifugo's connect command
	stepSubscribe = "subscribe"
)

// connTimes are one connection's milestones.
type connTimes struct {
	start, tcp, upgraded, subscribed time.Time
}

// tcpDoneKey carries a *time.Time through the dial's context: the timed
// dialer sets it when the TCP connection is established.
type tcpDoneKey struct{}

// timeTCP makes every dialer record, through the context, when its TCP
// connect finished.
func timeTCP(ds []*websocket.Dialer, timeout time.Duration) {
	for _, d := range ds {
		inner := d.NetDialContext
		if inner == nil {
			inner = (&net.Dialer{Timeout: timeout}).DialContext
		}
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := inner(ctx, network, addr)
			if p, ok := ctx.Value(tcpDoneKey{}).(*time.Time); ok && err == nil {
				*p = time.Now()
			}
			return c, err
		}
	}
}

// connectOne opens one connection and subscribes it, recording its
// milestones in t. On failure it returns the failing step.
func connectOne(ctx context.Context, d subDialer, cfg *targetConfig, t *connTimes) (c subConn, rest []byte, step string, err error) {
	t.start = time.Now()
	c, err = d.dial(context.WithValue(ctx, tcpDoneKey{}, &t.tcp), cfg.URL, cfg.Timeout)
	if err != nil {
		if t.tcp.IsZero() {
			return nil, nil, stepTCP, err
		}
		return nil, nil, stepUpgrade, err
	}
	t.upgraded = time.Now()
	type command struct{ step, text string }
	var cmds []command
	if cfg.Target == targetCentrifugo {
		cmds = []command{
			{stepConnect, `{"id":1,"connect":{}}`},
			{stepSubscribe, `{"id":2,"subscribe":{"channel":"` + cfg.Channel + `"}}`},
		}
	} else {
		cmds = []command{{stepSubscribe, `{"id":1,"op":"subscribe","channel":"` + cfg.Channel + `"}`}}
	}
	for i, cmd := range cmds {
		deadline := time.Now().Add(cfg.Timeout)
		_ = c.SetWriteDeadline(deadline)
		if err := c.writeText([]byte(cmd.text)); err != nil {
			c.closeNow()
			return nil, nil, cmd.step, fmt.Errorf("write %s: %w", cmd.text, err)
		}
		_ = c.SetReadDeadline(deadline)
		if rest, err = awaitReply(c, cfg.Target, i+1); err != nil {
			c.closeNow()
			return nil, nil, cmd.step, err
		}
	}
	t.subscribed = time.Now()
	_ = c.SetReadDeadline(time.Time{})
	_ = c.SetWriteDeadline(time.Time{})
	return c, rest, "", nil
}

// connectRun is the state shared by the connections of one run.
type connectRun struct {
	cfg                       *connectConfig
	tcp, upgraded, subscribed *shardedHistogram
	firstPub                  *shardedHistogram
	firstPubN                 atomic.Int64
	errs                      *errSamples
	stepMu                    sync.Mutex
	steps                     map[string]int
	stopping                  atomic.Bool
	disconnects, alive        atomic.Int64
}

func (r *connectRun) failed(i int, step string, err error) {
	r.stepMu.Lock()
	r.steps[step]++
	r.stepMu.Unlock()
	r.errs.add("connection %d: %s: %v", i, step, err)
}

// read is a connection's loop after it subscribed: it answers Centrifugo's
// pings, times the first publication (with -publish-rate) and counts a
// drop, until the run stops it with a read deadline.
func (r *connectRun) read(i int, c subConn, rest []byte) {
	defer r.alive.Add(-1)
	gotPub := false
	handle := func(buf []byte) {
		now := time.Now().UnixNano()
		for line := range splitLines(buf) {
			if r.cfg.Target == targetCentrifugo && isCentrifugoPing(line) {
				_ = c.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
				_ = c.writeText(centrifugoPong)
				continue
			}
			if gotPub {
				continue
			}
			if ts, ok := findUint(line, tsKey); ok {
				gotPub = true
				r.firstPubN.Add(1)
				r.firstPub.Record(i, time.Duration(now-int64(ts)))
			}
		}
	}
	handle(rest)
	var buf []byte
	for {
		var err error
		buf, err = c.readFrame(buf[:0])
		if err != nil {
			if !r.stopping.Load() {
				r.disconnects.Add(1)
				r.errs.add("connection %d: dropped: %v", i, err)
			}
			return
		}
		handle(buf)
	}
}

// runConnect runs the connect load. It returns an error only when nothing
// could be measured: no connection completed, or the -publish-rate probe
// publication was refused.
func runConnect(ctx context.Context, cfg connectConfig) (ConnectResult, error) {
	ips := sourceAddrs(cfg.URL, cfg.SourceIPs, cfg.Conns)
	res := ConnectResult{
		Mode: "connect", Target: string(cfg.Target), URL: cfg.URL, Channel: cfg.Channel,
		StartedAt: time.Now().UTC(), Conns: cfg.Conns, Inflight: cfg.DialParallel,
		SourceIPs: max(len(ips), 1), PublishRate: cfg.PublishRate, GoMaxProcs: runtime.GOMAXPROCS(0), Deflate: cfg.Deflate,
	}
	errs := &errSamples{}
	run := &connectRun{
		cfg: &cfg, errs: errs, steps: map[string]int{},
		tcp: newShardedHistogram(64), upgraded: newShardedHistogram(64),
		subscribed: newShardedHistogram(64), firstPub: newShardedHistogram(64),
	}
	wsDialers := newDialers(ips, cfg.Timeout, cfg.Deflate)
	timeTCP(wsDialers, cfg.Timeout)
	dialers := newSubDialers(wsDialers, cfg.Deflate)

	// The optional publisher (the broadcast mode's) and its probe.
	var pub *publisher
	if cfg.PublishRate > 0 {
		bc := broadcastConfig{targetConfig: cfg.targetConfig, Rate: cfg.PublishRate, Size: defaultBSize,
			Duration: cfg.SetupTimeout, APIURL: cfg.APIURL, APIKey: cfg.APIKey}
		pub = newPublisher(&bc, errs)
		probe := appendPublishBody(nil, cfg.Channel, payloadPad, 0, time.Now().UnixNano(), defaultBSize)
		if err := pub.post(ctx, probe); err != nil {
			return res, fmt.Errorf("probe publication to %s failed: %w", cfg.APIURL, err)
		}
	}

	var before procStatus
	var cpu0 time.Duration
	var cpuErr error
	if cfg.ServerPID > 0 {
		before, cpuErr = readProcStatus(cfg.ServerPID)
		if cpuErr == nil {
			cpu0, cpuErr = readProcCPU(cfg.ServerPID)
		}
	}
	self0 := selfcpu.Used()

	conns := make([]subConn, cfg.Conns)
	var readers sync.WaitGroup
	var completed atomic.Int64
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	var pubDone sync.WaitGroup
	if pub != nil {
		pubCtx, cancelPub := context.WithCancel(setupCtx)
		defer cancelPub()
		pubDone.Add(1)
		go func() {
			defer pubDone.Done()
			now := time.Now()
			pub.run(pubCtx, now, now, now.Add(cfg.SetupTimeout), func() {})
		}()
	}
	start := time.Now()
	sem := make(chan struct{}, cfg.DialParallel)
	var inflight sync.WaitGroup
	for i := range cfg.Conns {
		select {
		case sem <- struct{}{}:
		case <-setupCtx.Done():
		}
		if setupCtx.Err() != nil {
			for j := i; j < cfg.Conns; j++ {
				run.failed(j, "not dialled", setupCtx.Err())
			}
			break
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			var t connTimes
			c, rest, step, err := connectOne(setupCtx, dialers[i%len(dialers)], &cfg.targetConfig, &t)
			<-sem
			if err != nil {
				run.failed(i, step, err)
				return
			}
			run.tcp.Record(i, t.tcp.Sub(t.start))
			run.upgraded.Record(i, t.upgraded.Sub(t.start))
			run.subscribed.Record(i, t.subscribed.Sub(t.start))
			conns[i] = c
			completed.Add(1)
			run.alive.Add(1)
			readers.Add(1)
			go func() {
				defer readers.Done()
				run.read(i, c, rest)
			}()
		}()
	}
	inflight.Wait()
	wall := time.Since(start)
	var cpu1 time.Duration
	if cfg.ServerPID > 0 && cpuErr == nil {
		cpu1, cpuErr = readProcCPU(cfg.ServerPID)
	}
	res.LoaderCPUS = (selfcpu.Used() - self0).Seconds()
	var after procStatus
	if cfg.ServerPID > 0 && cpuErr == nil {
		after, cpuErr = readProcStatus(cfg.ServerPID)
	}
	cancelSetup()
	pubDone.Wait()

	// Hold, then close everything.
	holdStart := time.Now()
	if completed.Load() > 0 {
		sleepUntil(ctx, holdStart.Add(cfg.Hold))
	}
	res.HoldS = time.Since(holdStart).Seconds()
	res.ConnsAliveHeld = int(run.alive.Load())
	var cpu2 time.Duration
	if cfg.ServerPID > 0 && cpuErr == nil {
		cpu2, cpuErr = readProcCPU(cfg.ServerPID)
	}
	run.stopping.Store(true)
	for _, c := range conns {
		if c != nil {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	readers.Wait()
	closeAll(conns)
	res.Interrupted = ctx.Err() != nil

	res.Completed = int(completed.Load())
	res.DeflateContext = countContextTakeover(conns, func(c subConn) subConn { return c }, errs)
	res.WallS = wall.Seconds()
	if wall > 0 {
		res.ConnsPerS = float64(res.Completed) / wall.Seconds()
	}
	res.TCPUS = latencySummary(run.tcp.Merged())
	res.UpgradedUS = latencySummary(run.upgraded.Merged())
	res.SubscribedUS = latencySummary(run.subscribed.Merged())
	res.ErrorsByStep = run.steps
	for _, n := range run.steps {
		res.Errors += n
	}
	res.Disconnects = int(run.disconnects.Load())
	if pub != nil {
		res.Published, res.PublishErrors = pub.n, pub.errors
		res.FirstPub = int(run.firstPubN.Load())
		if res.FirstPub > 0 {
			l := latencySummary(run.firstPub.Merged())
			res.FirstPubLatencyUS = &l
		}
	}
	if cpuErr != nil {
		errs.add("server pid %d: %v", cfg.ServerPID, cpuErr)
	} else if cfg.ServerPID > 0 {
		st := &ConnectServer{PID: cfg.ServerPID, CPUS: (cpu1 - cpu0).Seconds(), CPUSHold: (cpu2 - cpu1).Seconds(),
			procStatus: after, RSSBeforeKB: before.RSSKB, ThreadsBefore: before.Threads}
		if res.Completed > 0 {
			st.CPUSPer1000 = st.CPUS / (float64(res.Completed) / 1000)
			st.RSSPerConnB = float64(after.RSSKB-before.RSSKB) * 1024 / float64(res.Completed)
		}
		res.Server = st
	}
	res.ErrorSamples = errs.list()
	if res.Completed == 0 {
		return res, fmt.Errorf("no connection could be opened and subscribed to %s: %v", cfg.URL, res.ErrorSamples)
	}
	return res, nil
}

func writeConnectReport(w io.Writer, r ConnectResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       connect  target %s  %s  channel %s\n", r.Target, r.URL, r.Channel)
	p("conns      %d subscribed of %d, %d in flight, from %d source addresses, in %.2fs = %.0f connections/s",
		r.Completed, r.Conns, r.Inflight, r.SourceIPs, r.WallS, r.ConnsPerS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	p("\n")
	if r.Deflate {
		p("deflate    permessage-deflate, context takeover %v\n", r.DeflateContext)
	}
	for _, l := range []struct {
		name string
		l    Latency
	}{{"tcp", r.TCPUS}, {"upgraded", r.UpgradedUS}, {"subscribed", r.SubscribedUS}} {
		p("%-10s us from TCP connect: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", l.name, l.l.P50, l.l.P90, l.l.P99, l.l.Max)
	}
	p("errors     %d (tcp %d, upgrade %d, connect %d, subscribe %d); %d disconnects; %d alive after %.1fs hold\n",
		r.Errors, r.ErrorsByStep[stepTCP], r.ErrorsByStep[stepUpgrade], r.ErrorsByStep[stepConnect], r.ErrorsByStep[stepSubscribe],
		r.Disconnects, r.ConnsAliveHeld, r.HoldS)
	if s := r.Server; s != nil {
		p("server     pid %d: cpu %.2fs while connecting = %.3f cpu-s per 1,000 connections (%.2fs while held); rss %d -> %d kB, threads %d -> %d\n",
			s.PID, s.CPUS, s.CPUSPer1000, s.CPUSHold, s.RSSBeforeKB, s.RSSKB, s.ThreadsBefore, s.Threads)
	}
	if r.PublishRate > 0 {
		p("publish    %.0f msg/s asked: %d accepted, %d errors; %d connections got one", r.PublishRate, r.Published, r.PublishErrors, r.FirstPub)
		if l := r.FirstPubLatencyUS; l != nil {
			p("; first-publication delivery us p50 %.0f  p99 %.0f  max %.0f", l.P50, l.P99, l.Max)
		}
		p("\n")
	}
	p("loader     cpu %.2fs while connecting\n", r.LoaderCPUS)
	for _, s := range r.ErrorSamples {
		p("  e.g. %s\n", s)
	}
	return out.err
}
