package main

// broadcast mode: N subscribers on one channel and a publisher at a fixed
// rate through the server's HTTP API, against duplex or Centrifugo.
//
// The first half of this file is shared with the idle mode (idle.go): the
// two targets' protocols, dialing from several loopback source addresses,
// the subscriber read loop, and reading a server's CPU time, RSS and
// goroutines from /proc and /metrics.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/selfcpu"
)

func init() {
	registerMode(mode{
		name:    "broadcast",
		summary: "fan-out: N subscribers on one channel, a publisher at R msg/s through the HTTP API (duplex or centrifugo)",
		run:     broadcastCmd,
	})
}

// ---------------------------------------------------------------------------
// Targets

// targetKind names the server protocol the tool speaks.
type targetKind string

const (
	targetDuplex     targetKind = "duplex"
	targetCentrifugo targetKind = "centrifugo"
)

func (t *targetKind) String() string { return string(*t) }

func (t *targetKind) Set(s string) error {
	switch targetKind(s) {
	case targetDuplex, targetCentrifugo:
		*t = targetKind(s)
		return nil
	}
	return fmt.Errorf("must be %q or %q", targetDuplex, targetCentrifugo)
}

// Defaults per target.
func (t targetKind) defaultURL() string {
	if t == targetCentrifugo {
		return "ws://127.0.0.1:8000/connection/websocket"
	}
	return "ws://127.0.0.1:8088/realtime"
}

func (t targetKind) defaultChannel() string {
	if t == targetCentrifugo {
		return "bench" // no namespace: Centrifugo's defaults (no history, no presence)
	}
	// push: is server-publish-only; note it keeps a history of 20 (10 min),
	// so every publication is also appended to the channel's history.
	return "push:bench"
}

// Limits of the connection-oriented modes.
const (
	maxSourceIPs     = 250
	maxDialParallel  = 1024
	readLimitBytes   = 1 << 20
	maxSetupTimeout  = time.Hour
	handshakeMaxMsgs = 64 // lines read while waiting for one reply
)

// targetConfig holds what the broadcast and idle modes share: where and how
// to connect and subscribe, and which server process to watch.
type targetConfig struct {
	Target       targetKind
	URL          string
	Channel      string
	SourceIPs    int // 0 = auto
	DialParallel int
	Timeout      time.Duration
	SetupTimeout time.Duration
	ServerPID    int
	JSON         bool
	Deflate      bool // offer permessage-deflate, as browsers do
	// compressingSenders (live only): connections [0, n) publish over
	// the WebSocket, so with -deflate they stay on fasthttp/websocket,
	// which compresses what it sends as browsers do (internal/wsclient,
	// which the other connections use, never compresses).
	compressingSenders int
	// nodeURLs (broadcast only): connection i goes to nodeURLs[i%len]
	// when there are several (cluster.go); URL is the first.
	nodeURLs []string
}

func (c *targetConfig) register(fs *flag.FlagSet) {
	c.Target = targetDuplex
	fs.Var(&c.Target, "target", `server protocol: "duplex" (/realtime) or "centrifugo" (/connection/websocket, JSON protocol)`)
	fs.StringVar(&c.URL, "url", "", "WebSocket URL (default ws://127.0.0.1:8088/realtime for duplex, ws://127.0.0.1:8000/connection/websocket for centrifugo)")
	fs.StringVar(&c.Channel, "channel", "", `channel to subscribe to (default "push:bench" for duplex, "bench" for centrifugo)`)
	fs.IntVar(&c.SourceIPs, "src-ips", 0, "connect from 127.0.0.1..127.0.0.K when the server is on loopback (0: one address per 5,000 connections)")
	fs.IntVar(&c.DialParallel, "dial-parallel", 64, "handshakes (dial + subscribe) in flight at start-up")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "deadline for each dial, handshake reply and HTTP request")
	fs.DurationVar(&c.SetupTimeout, "setup-timeout", 2*time.Minute, "deadline for opening and subscribing every connection")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "server process to measure (CPU from /proc/PID/stat, RSS from /proc/PID/status); 0: none")
	fs.BoolVar(&c.JSON, "json", false, "print the result as one JSON object on stdout")
	fs.BoolVar(&c.Deflate, "deflate", false, "offer permessage-deflate as Chrome does ("+chromeDeflateOffer+"), and inflate with context takeover\n"+
		"when the server answers without server_no_context_takeover (the report says which it did); a server that declines\n"+
		"deflate fails the dial. live: senders use fasthttp/websocket, which compresses what it sends but never gets context takeover")
}

// finish fills the per-target defaults and validates.
func (c *targetConfig) finish() error {
	if c.URL == "" {
		c.URL = c.Target.defaultURL()
	}
	if c.Channel == "" {
		c.Channel = c.Target.defaultChannel()
	}
	cc := commonConfig{URL: c.URL, Conns: 1, Duration: time.Second, Timeout: c.Timeout}
	if err := cc.validate(); err != nil {
		return err
	}
	switch {
	case c.Channel == "" || len(c.Channel) > 255 || strings.ContainsAny(c.Channel, "\"\\\n\r\t "):
		return fmt.Errorf("-channel must be 1-255 bytes without quotes, backslashes or spaces, got %q", c.Channel)
	case c.SourceIPs < 0 || c.SourceIPs > maxSourceIPs:
		return fmt.Errorf("-src-ips must be in [0, %d], got %d", maxSourceIPs, c.SourceIPs)
	case c.DialParallel < 1 || c.DialParallel > maxDialParallel:
		return fmt.Errorf("-dial-parallel must be in [1, %d], got %d", maxDialParallel, c.DialParallel)
	case c.SetupTimeout <= 0 || c.SetupTimeout > maxSetupTimeout:
		return fmt.Errorf("-setup-timeout must be in (0, %s], got %s", maxSetupTimeout, c.SetupTimeout)
	case c.ServerPID < 0:
		return fmt.Errorf("-server-pid must be >= 0, got %d", c.ServerPID)
	}
	if c.ServerPID > 0 {
		if _, err := readProcCPU(c.ServerPID); err != nil {
			return fmt.Errorf("-server-pid %d: %w", c.ServerPID, err)
		}
	}
	return nil
}

// finishNodes is finish for the modes that take several node URLs in
// -url, further processes to measure (pids) and an API URL (*apiURL:
// by default the first node's host over http).
func (c *targetConfig) finishNodes(pids pidList, apiURL *string) error {
	if strings.Contains(c.URL, ",") {
		nodes, err := splitNodeURLs(c.URL)
		if err != nil {
			return err
		}
		c.URL, c.nodeURLs = nodes[0], nodes
	}
	if err := c.finish(); err != nil {
		return err
	}
	for _, p := range pids {
		if _, err := readProcCPU(p.PID); err != nil {
			return fmt.Errorf("-pids %s=%d: %w", p.Label, p.PID, err)
		}
	}
	if *apiURL == "" {
		*apiURL, _ = httpBase(c.URL)
	}
	if u, err := url.Parse(*apiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-api must be an http(s) URL, got %q", *apiURL)
	}
	*apiURL = strings.TrimSuffix(*apiURL, "/")
	return nil
}

// httpBase is the http(s)://host of the WebSocket URL.
func httpBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host, nil
}

// ---------------------------------------------------------------------------
// Dialing

// sourceAddrs returns the local addresses to dial from: nil (let the kernel
// choose) unless the server is on 127.0.0.0/8, where connection i uses
// 127.0.0.(1 + i%K). Each source address has its own ephemeral port range
// towards the server, so K addresses allow K times as many connections.
func sourceAddrs(wsURL string, k, conns int) []net.IP {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	if k == 0 {
		k = (conns + 4999) / 5000
	}
	if k <= 1 {
		return nil
	}
	ips := make([]net.IP, k)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(1+i))
	}
	return ips
}

// newDialers returns one WebSocket dialer per source address (one dialer
// with the kernel's choice when ips is empty), offering permessage-deflate
// when deflate is set.
func newDialers(ips []net.IP, timeout time.Duration, deflate bool) []*websocket.Dialer {
	if len(ips) == 0 {
		return []*websocket.Dialer{withDeflate(newDialer(timeout), deflate)}
	}
	ds := make([]*websocket.Dialer, len(ips))
	for i, ip := range ips {
		nd := &net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: ip}}
		d := withDeflate(newDialer(timeout), deflate)
		d.NetDialContext = countingDial(nd.DialContext)
		ds[i] = d
	}
	return ds
}

// handshake opens one connection and subscribes it to the channel, waiting
// for the subscription's confirmation. The returned connection has no read
// deadline; rest holds the messages that came after the confirmation in its
// frame (for the caller to handle first).
func handshake(ctx context.Context, d subDialer, cfg *targetConfig) (c subConn, rest []byte, err error) {
	c, err = d.dial(ctx, cfg.URL, cfg.Timeout)
	if err != nil {
		return nil, nil, err
	}
	var steps []string
	switch cfg.Target {
	case targetCentrifugo:
		steps = []string{
			`{"id":1,"connect":{}}`,
			`{"id":2,"subscribe":{"channel":"` + cfg.Channel + `"}}`,
		}
	default:
		steps = []string{`{"id":1,"op":"subscribe","channel":"` + cfg.Channel + `"}`}
	}
	for i, cmd := range steps {
		deadline := time.Now().Add(cfg.Timeout)
		_ = c.SetWriteDeadline(deadline)
		if err := c.writeText([]byte(cmd)); err != nil {
			c.closeNow()
			return nil, nil, fmt.Errorf("write %s: %w", cmd, err)
		}
		_ = c.SetReadDeadline(deadline)
		if rest, err = awaitReply(c, cfg.Target, i+1); err != nil {
			c.closeNow()
			return nil, nil, err
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	_ = c.SetWriteDeadline(time.Time{})
	return c, rest, nil
}

// awaitReply reads until the reply to command id arrives and returns what
// followed it in its frame. Both protocols answer {"id":N, ...}, with
// "error" on failure. Centrifugo's pings before the reply are answered;
// anything else before it is skipped.
func awaitReply(c subConn, t targetKind, id int) ([]byte, error) {
	for range handshakeMaxMsgs {
		frame, err := c.readFrame(nil)
		if err != nil {
			return nil, fmt.Errorf("waiting for the reply to command %d: %w", id, err)
		}
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if t == targetCentrifugo && isCentrifugoPing(line) {
				if err := c.writeText(centrifugoPong); err != nil {
					return nil, err
				}
				continue
			}
			var rep struct {
				ID    int             `json:"id"`
				Error json.RawMessage `json:"error"`
			}
			if json.Unmarshal(line, &rep) != nil || rep.ID != id {
				continue
			}
			if len(rep.Error) > 0 {
				return nil, fmt.Errorf("command %d refused: %s", id, clip(line))
			}
			return frame, nil
		}
	}
	return nil, fmt.Errorf("no reply to command %d in %d messages", id, handshakeMaxMsgs)
}

// readFrame reads the next data message of a fasthttp/websocket
// connection into buf (reused).
func readFrame(c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.NextReader()
	if err != nil {
		return buf, err
	}
	b := buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// splitLines yields the non-empty newline-separated messages of a frame,
// without a trailing \r.
func splitLines(frame []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) == 0 {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

// Centrifugo's JSON protocol pings with an empty reply, {}, and expects an
// empty command, {}, back (centrifuge client.go: jsonPingReply, isPong).
var centrifugoPong = []byte(`{}`)

func isCentrifugoPing(line []byte) bool {
	return len(bytes.TrimSpace(line)) == 2 && bytes.Equal(bytes.TrimSpace(line), centrifugoPong)
}

// openAll opens and subscribes n connections, at most cfg.DialParallel at a
// time, and calls ready(i, conn) for each from the goroutine that opened
// it; ready must return promptly (start a goroutine for the connection).
// It returns when every handshake has finished and its ready or failed
// call has returned, or ctx ends; failed handshakes go to failed.
func openAll(ctx context.Context, cfg *targetConfig, n int, ready func(i int, c subConn, rest []byte), failed func(i int, err error)) {
	dialers := newSubDialers(newDialers(sourceAddrs(cfg.URL, cfg.SourceIPs, n), cfg.Timeout, cfg.Deflate), cfg.Deflate)
	nodeCfgs := []*targetConfig{cfg}
	if len(cfg.nodeURLs) > 1 {
		nodeCfgs = make([]*targetConfig, len(cfg.nodeURLs))
		for k, u := range cfg.nodeURLs {
			c := *cfg
			c.URL = u
			nodeCfgs[k] = &c
		}
	}
	sem := make(chan struct{}, cfg.DialParallel)
	var handshakes sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < n; j++ {
				failed(j, fmt.Errorf("not dialled: %w", ctx.Err()))
			}
			handshakes.Wait()
			return
		}
		handshakes.Add(1)
		go func() {
			d := dialers[i%len(dialers)]
			if i < cfg.compressingSenders {
				d.deflate = false // fasthttp/websocket, which compresses what it sends (and still offers deflate)
			}
			c, rest, err := handshake(ctx, d, nodeCfgs[i%len(nodeCfgs)])
			<-sem
			defer handshakes.Done() // after ready or failed: openAll's caller counts on both
			if err != nil {
				failed(i, err)
				return
			}
			ready(i, c, rest)
		}()
	}
	handshakes.Wait()
}

// closeAll closes the connections (a close frame, then the socket), with
// bounded parallelism, without waiting for the server's close frames.
func closeAll(conns []subConn) {
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.closeNow()
		}()
	}
	wg.Wait()
}

// ---------------------------------------------------------------------------
// Server measurements

// userHZ is the unit of utime/stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// readProcCPU returns the user+system CPU time of process pid so far (all
// threads).
func readProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

func parseProcStatCPU(b []byte) (time.Duration, error) {
	// The command name is in parentheses and may contain spaces: the
	// fields we want follow the last ')'. After it: state(0) ... utime(11)
	// stime(12).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad utime/stime in /proc stat")
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procStatus is what the tool reads from /proc/PID/status.
type procStatus struct {
	RSSKB   int64 `json:"rss_kb"`  // VmRSS
	HWMKB   int64 `json:"hwm_kb"`  // VmHWM, peak RSS
	Threads int64 `json:"threads"` // OS threads
}

func readProcStatus(pid int) (procStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	return parseProcStatus(b)
}

func parseProcStatus(b []byte) (procStatus, error) {
	var s procStatus
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSSKB
		case "VmHWM":
			dst = &s.HWMKB
		case "Threads":
			dst = &s.Threads
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("/proc status %s: %w", k, err)
		}
		*dst = n
		found++
	}
	if s.RSSKB == 0 && found == 0 {
		return s, errors.New("no VmRSS in /proc status")
	}
	return s, nil
}

// scrapeMetric fetches a Prometheus text exposition and returns the value
// of the unlabelled sample name (e.g. go_goroutines).
func scrapeMetric(ctx context.Context, client *http.Client, metricsURL, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	return parseMetric(io.LimitReader(resp.Body, 64<<20), name)
}

func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || len(rest) == 0 || rest[0] != ' ' {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		return strconv.ParseFloat(f[0], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// ---------------------------------------------------------------------------
// Broadcast: configuration

// Bounds of the broadcast mode.
const (
	maxRate       = 100_000
	maxBcastSize  = 60 << 10 // the body must stay under duplex's 64 KiB API limit
	maxSeenBits   = 8 << 30  // subs x messages, 1 GiB of bitsets
	defaultBSize  = 64
	drainPollStep = 10 * time.Millisecond
)

type broadcastConfig struct {
	targetConfig
	Subs     int
	Rate     float64
	Size     int
	Payload  payloadKind
	Duration time.Duration
	Warmup   time.Duration
	Grace    time.Duration
	APIURL   string
	APIKey   string
	// ExtraPIDs are measured over the server's window (cluster.go).
	ExtraPIDs pidList
}

func parseBroadcastFlags(args []string, out io.Writer) (broadcastConfig, error) {
	var cfg broadcastConfig
	fs := flag.NewFlagSet("duplexload broadcast", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.targetConfig.register(fs)
	fs.IntVar(&cfg.Subs, "subs", 1000, "number of subscriber connections")
	fs.Float64Var(&cfg.Rate, "rate", 100, "publications per second")
	fs.IntVar(&cfg.Size, "size", defaultBSize, "size in bytes of each publication's data (a JSON object with seq, send time and padding)")
	fs.Var(&cfg.Payload, "payload", `what pads each publication to -size: "pad" (one repeated letter) or "chat" (chat-like JSON messages, which compress as real ones do)`)
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured publishing window")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "publishing before the measured window (checked for loss, not timed)")
	fs.DurationVar(&cfg.Grace, "grace", 3*time.Second, "how long after the last publication a message may still arrive before it counts as lost")
	fs.StringVar(&cfg.APIURL, "api", "", "HTTP base URL of the publish API (default: the -url host over http)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("API_KEY"), "API key (duplex: Authorization: Bearer; centrifugo: X-API-Key); default $API_KEY")
	fs.Var(&cfg.ExtraPIDs, "pids", "further processes to measure over the same window as -server-pid, as label=PID,… (e.g. the other nodes and the NATS server)")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload broadcast [flags]")
		fmt.Fprintln(out, "Subscribes -subs connections to one channel, publishes -rate messages/s through POST /api/publish,")
		fmt.Fprintln(out, "and reports deliveries/s, delivery latency, lost and duplicated messages, and the server's CPU per delivery.")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		return cfg, err
	}
	if err := cfg.finishNodes(cfg.ExtraPIDs, &cfg.APIURL); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Subs < 1 || cfg.Subs > maxConns:
		return cfg, fmt.Errorf("-subs must be in [1, %d], got %d", maxConns, cfg.Subs)
	case !(cfg.Rate > 0 && cfg.Rate <= maxRate):
		return cfg, fmt.Errorf("-rate must be in (0, %d], got %v", maxRate, cfg.Rate)
	case cfg.Size < 1 || cfg.Size > maxBcastSize:
		return cfg, fmt.Errorf("-size must be in [1, %d], got %d", maxBcastSize, cfg.Size)
	case cfg.Duration <= 0 || cfg.Duration > maxDuration:
		return cfg, fmt.Errorf("-duration must be in (0, %s], got %s", maxDuration, cfg.Duration)
	case cfg.Warmup < 0 || cfg.Warmup > maxDuration:
		return cfg, fmt.Errorf("-warmup must be in [0, %s], got %s", maxDuration, cfg.Warmup)
	case cfg.Grace < 0 || cfg.Grace > time.Hour:
		return cfg, fmt.Errorf("-grace must be in [0, 1h], got %s", cfg.Grace)
	}
	if bits := float64(cfg.Subs) * float64(cfg.maxSeq()+1); bits > maxSeenBits {
		return cfg, fmt.Errorf("-subs x -rate x (-warmup + -duration) is too large (%.0f deliveries to track; at most %d)", bits, maxSeenBits)
	}
	return cfg, nil
}

// interval is the time between two publications.
func (c *broadcastConfig) interval() time.Duration {
	return max(time.Duration(float64(time.Second)/c.Rate), 1)
}

// firstWindowSeq is the first publication of the measured window: seq is
// scheduled at start + (seq-1)*interval, and the window starts at
// start + warmup.
func (c *broadcastConfig) firstWindowSeq() uint64 {
	iv := c.interval()
	n := c.Warmup / iv
	if n*iv < c.Warmup {
		n++
	}
	return uint64(n) + 1
}

// maxSeq is the largest sequence number the publisher may use (seqs start
// at 1).
func (c *broadcastConfig) maxSeq() uint64 {
	return uint64((c.Warmup+c.Duration)/c.interval()) + 1
}

// ---------------------------------------------------------------------------
// Broadcast: payload

// The data of every publication is a JSON object
//
//	{"dxseq":SEQ,"dxts":UNIX_NANOS,"pad":"xxx…"}
//
// padded to the requested size (never cut: seq and send time always fit
// from 48 bytes up). The unusual key names let the subscriber find them by
// a byte search in any envelope without decoding the JSON.
var (
	seqKey = []byte(`"dxseq":`)
	tsKey  = []byte(`"dxts":`)
)

func appendBroadcastData(dst []byte, seq uint64, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"dxseq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"dxts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"pad":"`...)
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// appendPublishBody is the body of POST /api/publish, the same for both
// targets: {"channel":CH,"data":DATA}.
func appendPublishBody(dst []byte, channel string, kind payloadKind, seq uint64, ts int64, size int) []byte {
	dst = append(dst, `{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = appendData(dst, kind, seq, ts, size)
	return append(dst, '}')
}

// findUint finds key in line and parses the unsigned integer after it
// (spaces allowed before the digits).
func findUint(line, key []byte) (uint64, bool) {
	i := bytes.Index(line, key)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(key):]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	var v uint64
	n := 0
	for n < len(rest) && n < 20 && rest[n] >= '0' && rest[n] <= '9' {
		v = v*10 + uint64(rest[n]-'0')
		n++
	}
	return v, n > 0
}

// ---------------------------------------------------------------------------
// Broadcast: result

// ServerStats is what the tool measured of the server process.
type ServerStats struct {
	PID  int     `json:"pid"`
	CPUS float64 `json:"cpu_s"` // user+system over the measured window and the drain
	// CPUSPerMillion is CPUS per million deliveries of the measured window.
	CPUSPerMillion float64 `json:"cpu_s_per_million_deliveries"`
	procStatus             // at the end of the run
}

// BroadcastResult is what broadcast -json prints. Fields are only ever added.
type BroadcastResult struct {
	Mode      string    `json:"mode"`
	Target    string    `json:"target"`
	URL       string    `json:"url"`
	APIURL    string    `json:"api_url"`
	Channel   string    `json:"channel"`
	StartedAt time.Time `json:"started_at"`
	Subs      int       `json:"subs"`      // requested
	SubsOpen  int       `json:"subs_open"` // subscribed at start-up
	SetupS    float64   `json:"setup_s"`   // opening and subscribing them
	SourceIPs int       `json:"source_ips"`
	Rate      float64   `json:"rate"`
	Size      int       `json:"size"`
	Payload   string    `json:"payload"`
	Deflate   bool      `json:"deflate"`
	WarmupS   float64   `json:"warmup_s"`
	DurationS float64   `json:"duration_s"`
	GraceS    float64   `json:"grace_s"`

	// DeflateContext: every subscriber negotiated permessage-deflate with
	// context takeover (the server compresses against its previous
	// messages, as it may for browsers).
	DeflateContext bool `json:"deflate_context"`

	// Published counts the publications the API accepted (warmup
	// included); PublishedWindow those sent in the measured window.
	Published        uint64  `json:"published"`
	PublishedWindow  uint64  `json:"published_window"`
	PublishErrors    uint64  `json:"publish_errors"`
	PublishRate      float64 `json:"publish_rate"` // achieved, measured window
	PublishLatencyUS Latency `json:"publish_latency_us"`
	// PublishLagMaxMS: the longest a publication went out after its
	// scheduled time (the publisher waits for each answer, so a slow API
	// delays the next publication).
	PublishLagMaxMS float64 `json:"publish_lag_max_ms"`
	// SpanS: from the first publication of the measured window to the
	// answer to its last, or DurationS if that is longer. Rates are per SpanS,
	// so a publisher that fell behind does not inflate them.
	SpanS float64 `json:"span_s"`

	// Deliveries counts first deliveries of measured-window publications
	// (those scheduled in it); DeliveriesPerS = Deliveries / SpanS.
	Deliveries      uint64  `json:"deliveries"`
	DeliveriesTotal uint64  `json:"deliveries_total"` // warmup included, duplicates excluded
	DeliveriesPerS  float64 `json:"deliveries_per_s"`
	// LatencyUS: receive time minus the send time in the message (taken just
	// before the publish request), first deliveries of the measured window.
	LatencyUS Latency `json:"latency_us"`
	// DrainS: after the last publication, how long until every open
	// subscriber had everything (or the grace period ended).
	DrainS float64 `json:"drain_s"`

	// Expected = Published x SubsOpen. Lost: accepted publications a
	// subscriber never got (by the end of the grace period; a subscriber
	// that disconnected loses the rest). Duplicated: extra copies.
	Expected    uint64 `json:"expected"`
	Lost        uint64 `json:"lost"`
	LostSubs    int    `json:"lost_subs"` // subscribers with any loss
	Duplicated  uint64 `json:"duplicated"`
	Reordered   uint64 `json:"reordered"`  // arrivals with a lower seq than an earlier one
	Unexpected  uint64 `json:"unexpected"` // deliveries of seqs the API did not accept (e.g. a timed-out publish)
	Missed      uint64 `json:"missed"`     // sum of duplex {"missed":n} notices
	Disconnects int    `json:"disconnects"`

	// WireBytes: what the subscribers read off their sockets from the
	// first publication to the end of the drain (frame headers, pings and
	// compressed payloads as they are); per delivery, over DeliveriesTotal.
	WireBytes            int64   `json:"wire_bytes"`
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`

	Server     *ServerStats `json:"server,omitempty"`
	LoaderCPUS float64      `json:"loader_cpu_s"` // this tool, same window as the server's

	// Several nodes (cluster.go). PublishNode is the index in the -url
	// list of the node serving -api (-1: none of them). Nodes: per node,
	// with several -url. CrossNode*: deliveries to subscribers on another
	// node than the publishing one. Processes: the -pids, same window as
	// Server.
	PublishNode         int          `json:"publish_node"`
	Nodes               []NodeResult `json:"nodes,omitempty"`
	CrossNodeDeliveries uint64       `json:"cross_node_deliveries,omitempty"`
	CrossNodeLatencyUS  *Latency     `json:"cross_node_latency_us,omitempty"`
	Processes           []ProcCPU    `json:"processes,omitempty"`

	ErrorSamples []string `json:"error_samples,omitempty"`
	Interrupted  bool     `json:"interrupted,omitempty"`
	GoMaxProcs   int      `json:"gomaxprocs"`
}

func latencySummary(h *Histogram) Latency {
	return Latency{
		Min: usec(h.Min()), Mean: usec(h.Mean()),
		P50: usec(h.Percentile(50)), P90: usec(h.Percentile(90)), P99: usec(h.Percentile(99)),
		P999: usec(h.Percentile(99.9)), Max: usec(h.Max()),
	}
}

// errSamples keeps the first few error messages of a run.
type errSamples struct {
	mu sync.Mutex
	s  []string
}

func (e *errSamples) add(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.s) < maxErrorSamples {
		e.s = append(e.s, fmt.Sprintf(format, a...))
	}
}

func (e *errSamples) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.s...)
}

// ---------------------------------------------------------------------------
// Broadcast: run

// interruptDrain bounds the drain of an interrupted run, which should stop
// quickly.
const interruptDrain = time.Second

func broadcastCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("broadcast", args, stdout, stderr, parseBroadcastFlags,
		func(ctx context.Context, cfg broadcastConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runBroadcast(ctx, cfg)
			if err != nil {
				return err
			}
			if res.SubsOpen < res.Subs {
				warnf("warning: only %d of %d subscribers opened", res.SubsOpen, res.Subs)
			}
			if res.Lost+res.Duplicated+res.PublishErrors > 0 || res.Disconnects > 0 {
				warnf("lost %d, duplicated %d, publish errors %d, disconnects %d",
					res.Lost, res.Duplicated, res.PublishErrors, res.Disconnects)
			}
			return writeBroadcastReport(stdout, res, cfg.JSON)
		})
}

// bsub is one subscriber. Fields without atomics belong to its reader
// goroutine until the readers have stopped.
type bsub struct {
	id   int
	conn subConn
	seen []uint64 // bitset by seq

	uniq   atomic.Uint64 // distinct seqs received (read by the drain check)
	closed atomic.Bool   // the reader has stopped

	last       uint64
	window     uint64 // first deliveries of measured-window publications
	dups       uint64
	reordered  uint64
	unexpected uint64
	missed     uint64
}

type broadcastRun struct {
	cfg         *broadcastConfig
	firstWindow uint64 // seqs from here on are in the measured window
	hist        *shardedHistogram
	stopping    atomic.Bool
	errs        *errSamples
	disconnects atomic.Int64
	cl          *clusterRun // per node and cross-node (cluster.go)
}

// read is the subscriber's loop: it records every publication and answers
// Centrifugo's pings, until the connection fails or the run stops it (by
// a read deadline).
func (r *broadcastRun) read(s *bsub, rest []byte) {
	defer s.closed.Store(true)
	now := time.Now().UnixNano()
	for line := range splitLines(rest) {
		r.handleLine(s, line, now)
	}
	var buf []byte
	var err error
	for {
		buf, err = s.conn.readFrame(buf[:0])
		if err != nil {
			if !r.stopping.Load() {
				r.disconnects.Add(1)
				r.errs.add("subscriber %d: %v", s.id, err)
			}
			return
		}
		now := time.Now().UnixNano()
		for line := range splitLines(buf) {
			r.handleLine(s, line, now)
		}
	}
}

func (r *broadcastRun) handleLine(s *bsub, line []byte, now int64) {
	seq, ok := findUint(line, seqKey)
	if !ok {
		switch {
		case r.cfg.Target == targetCentrifugo && isCentrifugoPing(line):
			_ = s.conn.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
			if err := s.conn.writeText(centrifugoPong); err != nil {
				r.errs.add("subscriber %d: pong: %v", s.id, err)
			}
		case bytes.HasPrefix(line, []byte(`{"missed":`)):
			n, _ := findUint(line, []byte(`"missed":`))
			s.missed += n
		}
		return
	}
	if seq == 0 || seq > uint64(len(s.seen))*64-1 {
		s.unexpected++
		return
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	if s.seen[w]&bit != 0 {
		s.dups++
		return
	}
	s.seen[w] |= bit
	s.uniq.Add(1)
	if seq < s.last {
		s.reordered++
	}
	s.last = max(s.last, seq)
	ts, ok := findUint(line, tsKey)
	if ok && seq >= r.firstWindow {
		s.window++
		r.hist.Record(s.id, time.Duration(now-int64(ts)))
		r.cl.record(s.id, time.Duration(now-int64(ts)))
	}
}

// publisher posts the publications. It is owned by one goroutine.
type publisher struct {
	cfg    *broadcastConfig
	client *http.Client
	ok     []uint64 // bitset of accepted seqs
	n      uint64   // accepted
	window uint64   // accepted, sent in the measured window
	errors uint64
	hist   Histogram
	body   []byte
	errs   *errSamples
	lastOK uint64
	// maxLag is the longest a publication went out after its scheduled
	// time; winFirst/winLast bracket the measured window's publishing
	// (first send, last answer).
	maxLag            time.Duration
	winFirst, winLast time.Time
}

func newPublisher(cfg *broadcastConfig, errs *errSamples) *publisher {
	return &publisher{
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				Proxy:               nil, // never a proxy from the environment
				MaxIdleConnsPerHost: 4,
				DisableCompression:  true,
			},
		},
		ok:   make([]uint64, cfg.maxSeq()/64+1),
		errs: errs,
	}
}

// post publishes one message; body is the request's JSON.
func (p *publisher) post(ctx context.Context, body []byte) error {
	return postPublish(ctx, p.client, p.cfg.Target, p.cfg.APIURL, p.cfg.APIKey, body)
}

// postPublish posts body to the target's POST /api/publish with its kind
// of API key, and fails on any answer but a success.
func postPublish(ctx context.Context, client *http.Client, target targetKind, apiURL, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		if target == targetCentrifugo {
			req.Header.Set("X-API-Key", key)
		} else {
			req.Header.Set("Authorization", "Bearer "+key)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: HTTP %s: %s", resp.Status, clip(rb))
	}
	// Centrifugo answers API errors with 200 and {"error":{...}}.
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(rb, &r) == nil && len(r.Error) > 0 && !bytes.Equal(r.Error, []byte("null")) {
		return fmt.Errorf("publish refused: %s", clip(rb))
	}
	return nil
}

// run publishes seq 1, 2, … at start + (seq-1)*interval until end. A
// publication that falls behind schedule goes out at once (no burst is
// skipped, none is added). atMeasure runs once, just before the first
// publication of the measured window.
func (p *publisher) run(ctx context.Context, start, measureStart, end time.Time, atMeasure func()) {
	interval := p.cfg.interval()
	measured := false
	for seq := uint64(1); seq <= p.cfg.maxSeq(); seq++ {
		at := start.Add(time.Duration(seq-1) * interval)
		if !at.Before(end) {
			break
		}
		sleepUntil(ctx, at)
		if ctx.Err() != nil {
			return
		}
		inWindow := !at.Before(measureStart)
		if inWindow && !measured {
			measured = true
			atMeasure()
		}
		t0 := time.Now()
		p.maxLag = max(p.maxLag, t0.Sub(at))
		if inWindow && p.winFirst.IsZero() {
			p.winFirst = t0
		}
		p.body = appendPublishBody(p.body[:0], p.cfg.Channel, p.cfg.Payload, seq, t0.UnixNano(), p.cfg.Size)
		if err := p.post(ctx, p.body); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.errors++
			p.errs.add("publish seq %d: %v", seq, err)
			continue
		}
		t1 := time.Now()
		p.hist.Record(t1.Sub(t0))
		if inWindow {
			p.winLast = t1
		}
		p.ok[seq/64] |= 1 << (seq % 64)
		p.n++
		p.lastOK = seq
		if inWindow {
			p.window++
		}
	}
	if !measured {
		atMeasure()
	}
}

// runBroadcast runs the broadcast load. It returns an error only when the
// run could not be set up: the API refuses a probe publication, or no
// subscriber could be opened.
func runBroadcast(ctx context.Context, cfg broadcastConfig) (BroadcastResult, error) {
	res := BroadcastResult{
		Mode: "broadcast", Target: string(cfg.Target), URL: cfg.URL, APIURL: cfg.APIURL, Channel: cfg.Channel,
		StartedAt: time.Now().UTC(), Subs: cfg.Subs, Rate: cfg.Rate, Size: cfg.Size, Payload: cfg.Payload.String(), Deflate: cfg.Deflate,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), GraceS: cfg.Grace.Seconds(),
		SourceIPs:  max(len(sourceAddrs(cfg.URL, cfg.SourceIPs, cfg.Subs)), 1),
		GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	errs := &errSamples{}
	pub := newPublisher(&cfg, errs)
	// A probe (seq 0, before anyone subscribes) checks the API and its key.
	probe := appendPublishBody(nil, cfg.Channel, cfg.Payload, 0, time.Now().UnixNano(), cfg.Size)
	if err := pub.post(ctx, probe); err != nil {
		return res, fmt.Errorf("probe publication to %s failed: %w", cfg.APIURL, err)
	}

	run := &broadcastRun{cfg: &cfg, firstWindow: cfg.firstWindowSeq(), hist: newShardedHistogram(64), errs: errs, cl: newClusterRun(&cfg)}
	subs := make([]*bsub, cfg.Subs)
	words := cfg.maxSeq()/64 + 1
	seen := make([]uint64, uint64(cfg.Subs)*words) // one allocation for all bitsets
	var readers sync.WaitGroup
	var opened atomic.Int64
	setupStart := time.Now()
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	openAll(setupCtx, &cfg.targetConfig, cfg.Subs,
		func(i int, c subConn, rest []byte) {
			s := &bsub{id: i, conn: c, seen: seen[uint64(i)*words : uint64(i+1)*words : uint64(i+1)*words]}
			subs[i] = s
			opened.Add(1)
			readers.Add(1)
			go func() {
				defer readers.Done()
				run.read(s, rest)
			}()
		},
		func(i int, err error) { errs.add("subscriber %d: %v", i, err) })
	cancelSetup()
	res.SetupS = time.Since(setupStart).Seconds()
	res.SubsOpen = int(opened.Load())
	res.DeflateContext = countContextTakeover(subs, func(s *bsub) subConn {
		if s == nil {
			return nil
		}
		return s.conn
	}, errs)
	stopReaders := func() {
		run.stopping.Store(true)
		for _, s := range subs {
			if s != nil {
				_ = s.conn.SetReadDeadline(time.Now())
			}
		}
		readers.Wait()
		conns := make([]subConn, 0, len(subs))
		for _, s := range subs {
			if s != nil {
				conns = append(conns, s.conn)
			}
		}
		closeAll(conns)
	}
	if res.SubsOpen == 0 {
		stopReaders()
		return res, fmt.Errorf("no subscriber could be opened to %s: %v", cfg.URL, errs.list())
	}
	if ctx.Err() != nil {
		stopReaders()
		res.Interrupted = true
		res.ErrorSamples = errs.list()
		return res, nil
	}

	// Publish.
	wire0 := wireBytesRead.Load()
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	var cpu0, self0 time.Duration
	var cpuErr error
	atMeasure := func() {
		self0 = selfcpu.Used()
		if cfg.ServerPID > 0 {
			cpu0, cpuErr = readProcCPU(cfg.ServerPID)
		}
		run.cl.startProcs()
	}
	pub.run(ctx, start, measureStart, end, atMeasure)
	pubEnd := time.Now()
	if ctx.Err() != nil {
		res.Interrupted = true
		end = pubEnd
	}

	// Drain: wait until every open subscriber has every accepted
	// publication, or the grace period ends. An interrupted run drains
	// too, for at most interruptDrain, so that what was published just
	// before the interrupt is not counted as lost.
	grace := cfg.Grace
	if res.Interrupted {
		grace = min(grace, interruptDrain)
	}
	graceEnd := pubEnd.Add(grace)
	for time.Now().Before(graceEnd) {
		done := true
		for _, s := range subs {
			if s != nil && !s.closed.Load() && s.uniq.Load() < pub.n {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(drainPollStep)
	}
	res.DrainS = time.Since(pubEnd).Seconds()
	res.WireBytes = wireBytesRead.Load() - wire0
	var cpu1 time.Duration
	if cfg.ServerPID > 0 && cpuErr == nil {
		cpu1, cpuErr = readProcCPU(cfg.ServerPID)
	}
	res.Processes = run.cl.endProcs()
	res.LoaderCPUS = (selfcpu.Used() - self0).Seconds()
	var status procStatus
	if cfg.ServerPID > 0 && cpuErr == nil {
		status, cpuErr = readProcStatus(cfg.ServerPID)
	}
	if cpuErr != nil {
		errs.add("server pid %d: %v", cfg.ServerPID, cpuErr)
	}
	stopReaders()

	// Tally.
	window := end.Sub(measureStart)
	if window <= 0 {
		window = 0
	}
	res.DurationS = window.Seconds()
	span := window
	if !pub.winFirst.IsZero() && pub.winLast.Sub(pub.winFirst) > span {
		span = pub.winLast.Sub(pub.winFirst)
	}
	res.SpanS = span.Seconds()
	res.PublishLagMaxMS = float64(pub.maxLag) / float64(time.Millisecond)
	res.Published, res.PublishedWindow, res.PublishErrors = pub.n, pub.window, pub.errors
	if span > 0 {
		res.PublishRate = float64(pub.window) / span.Seconds()
	}
	res.PublishLatencyUS = latencySummary(&pub.hist)
	res.Expected = pub.n * uint64(res.SubsOpen)
	lostBySub := make([]uint64, len(subs))
	for _, s := range subs {
		if s == nil {
			continue
		}
		res.Deliveries += s.window
		res.Duplicated += s.dups
		res.Reordered += s.reordered
		res.Unexpected += s.unexpected
		res.Missed += s.missed
		var lost uint64
		for w, okw := range pub.ok {
			got := s.seen[w]
			lost += uint64(bits.OnesCount64(okw &^ got))
			res.DeliveriesTotal += uint64(bits.OnesCount64(okw & got))
			res.Unexpected += uint64(bits.OnesCount64(got &^ okw))
		}
		if lost > 0 {
			res.LostSubs++
		}
		lostBySub[s.id] = lost
		res.Lost += lost
	}
	if span > 0 {
		res.DeliveriesPerS = float64(res.Deliveries) / span.Seconds()
	}
	if res.DeliveriesTotal > 0 {
		res.WireBytesPerDelivery = float64(res.WireBytes) / float64(res.DeliveriesTotal)
	}
	res.LatencyUS = latencySummary(run.hist.Merged())
	res.Disconnects = int(run.disconnects.Load())
	res.PublishNode = run.cl.pubNode
	run.cl.fill(&res, subs, lostBySub)
	for _, e := range run.cl.procErrors() {
		errs.add("%s", e)
	}
	if cfg.ServerPID > 0 && cpuErr == nil {
		st := &ServerStats{PID: cfg.ServerPID, CPUS: (cpu1 - cpu0).Seconds(), procStatus: status}
		if res.Deliveries > 0 {
			st.CPUSPerMillion = st.CPUS / (float64(res.Deliveries) / 1e6)
		}
		res.Server = st
	}
	res.ErrorSamples = errs.list()
	return res, nil
}

func writeBroadcastReport(w io.Writer, r BroadcastResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       broadcast  target %s  %s  channel %s\n", r.Target, r.URL, r.Channel)
	p("subs       %d open of %d (from %d source addresses, set up in %.1fs)\n", r.SubsOpen, r.Subs, r.SourceIPs, r.SetupS)
	p("publish    %.0f msg/s asked, %.1f achieved, %d-byte data via %s/api/publish; %d accepted (%d in window), %d errors\n",
		r.Rate, r.PublishRate, r.Size, r.APIURL, r.Published, r.PublishedWindow, r.PublishErrors)
	p("           publish rtt (us) p50 %.0f  p99 %.0f  max %.0f; max lag behind schedule %.1f ms\n",
		r.PublishLatencyUS.P50, r.PublishLatencyUS.P99, r.PublishLatencyUS.Max, r.PublishLagMaxMS)
	p("window     %.2fs measured (published over %.2fs) after %.2fs warmup; drained in %.2fs (grace %.1fs)",
		r.DurationS, r.SpanS, r.WarmupS, r.DrainS, r.GraceS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	l := r.LatencyUS
	p("\ndeliveries %d in window (%.0f/s); %d total of %d expected\n", r.Deliveries, r.DeliveriesPerS, r.DeliveriesTotal, r.Expected)
	p("latency us min %.0f  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", l.Min, l.P50, l.P90, l.P99, l.P999, l.Max)
	deflate := "plain"
	switch {
	case r.DeflateContext:
		deflate = "permessage-deflate with context takeover"
	case r.Deflate:
		deflate = "permessage-deflate, every message alone"
	}
	p("wire       %d bytes read by the subscribers = %.1f per delivery (%s, %s payload)\n", r.WireBytes, r.WireBytesPerDelivery, deflate, r.Payload)
	p("loss       lost %d (%d subs)  duplicated %d  reordered %d  unexpected %d  missed-notices %d  disconnects %d\n",
		r.Lost, r.LostSubs, r.Duplicated, r.Reordered, r.Unexpected, r.Missed, r.Disconnects)
	if s := r.Server; s != nil {
		p("server     pid %d: cpu %.2fs = %.3f cpu-s per million deliveries; rss %d kB (peak %d kB), %d threads\n",
			s.PID, s.CPUS, s.CPUSPerMillion, s.RSSKB, s.HWMKB, s.Threads)
	}
	writeClusterReport(p, r)
	p("loader     cpu %.2fs over the same window\n", r.LoaderCPUS)
	for _, s := range r.ErrorSamples {
		p("  e.g. %s\n", s)
	}
	return out.err
}
