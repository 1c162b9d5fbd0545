package main

// live mode: one live room (弹幕, issue 11). -viewers connections
// subscribe and read; -senders connections subscribe and publish -rate
// comments/s each over the WebSocket, as a page does; -prio-senders post
// priority comments through the HTTP API. Every comment's data is the
// broadcast mode's {"dxseq","dxts","pad"}, and its seq names its sender
// (liveConfig.seqSpace), so one byte search per comment tells who sent it
// and when, in duplex's tick frames as in Centrifugo's pushes.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex/duplex/internal/selfcpu"
)

func init() {
	registerMode(mode{
		name:    "live",
		summary: "a live room: V viewers, S senders publishing over the WebSocket, priority comments through the API (duplex or centrifugo)",
		run:     liveCmd,
	})
}

// livePublishID is the first command id of a sender's publishes (the
// handshake uses 1 and 2): publish n has id livePublishID+n.
const livePublishID = 10

func liveCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("live", args, stdout, stderr, parseLiveFlags,
		func(ctx context.Context, cfg liveConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runLive(ctx, cfg)
			if err != nil {
				return err
			}
			if res.ViewersOpen < res.Viewers || res.SendersOpen < res.Senders {
				warnf("warning: %d of %d viewers and %d of %d senders opened", res.ViewersOpen, res.Viewers, res.SendersOpen, res.Senders)
			}
			if res.Disconnects > 0 || res.Rejected > 0 {
				warnf("disconnects %d, publishes refused %d", res.Disconnects, res.Rejected)
			}
			return writeLiveReport(stdout, res, cfg.JSON)
		})
}

// liveConn is one connection of the room. Fields without atomics belong
// to its reader goroutine until the readers have stopped; wmu serializes
// its writes (a sender's publishes, Centrifugo pongs).
type liveConn struct {
	idx    int
	sender int // sender index, -1 for a viewer
	conn   subConn
	wmu    sync.Mutex
	seen   []uint64 // bitset by seq
	ok     []uint64 // a sender's accepted publishes, bitset by seq
	closed atomic.Bool

	window     uint64   // first deliveries of comments sent in the window
	bySender   []uint32 // others' comments delivered here, by sender
	dups       uint64
	unexpected uint64
	missed     uint64
	ticks      uint64
	tickTotal  uint64
	tickShown  uint64
	accepted   uint64
	rejected   uint64
}

type liveRun struct {
	cfg          *liveConfig
	measureStart int64 // unix nanos; comments sent from here on are timed
	end          int64
	hist         *shardedHistogram
	stopping     atomic.Bool
	errs         *errSamples
	disconnects  atomic.Int64
}

var (
	tickKey      = []byte(`"tick":{`)
	tickTotalKey = []byte(`"total":`)
	tickShownKey = []byte(`"shown":`)
	missedKey    = []byte(`"missed":`)
	replyPrefix  = []byte(`{"id":`)
	errorKey     = []byte(`"error"`)
)

func (r *liveRun) read(c *liveConn, rest []byte) {
	defer c.closed.Store(true)
	for line := range splitLines(rest) {
		r.handleLine(c, line, time.Now().UnixNano())
	}
	var buf []byte
	var err error
	for {
		buf, err = c.conn.readFrame(buf[:0])
		if err != nil {
			if !r.stopping.Load() {
				r.disconnects.Add(1)
				r.errs.add("connection %d: %v", c.idx, err)
			}
			return
		}
		now := time.Now().UnixNano()
		for line := range splitLines(buf) {
			r.handleLine(c, line, now)
		}
	}
}

func (r *liveRun) handleLine(c *liveConn, line []byte, now int64) {
	switch {
	case r.cfg.Target == targetCentrifugo && isCentrifugoPing(line):
		c.wmu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
		err := c.conn.writeText(centrifugoPong)
		c.wmu.Unlock()
		if err != nil {
			r.errs.add("connection %d: pong: %v", c.idx, err)
		}
		return
	case bytes.HasPrefix(line, replyPrefix):
		r.handleReply(c, line)
		return
	case bytes.HasPrefix(line, []byte(`{"missed":`)):
		n, _ := findUint(line, missedKey)
		c.missed += n
		return
	}
	if i := bytes.Index(line, tickKey); i >= 0 {
		head := line[i:min(len(line), i+96)]
		total, _ := findUint(head, tickTotalKey)
		shown, _ := findUint(head, tickShownKey)
		missed, _ := findUint(head, missedKey)
		c.ticks++
		c.tickTotal += total
		c.tickShown += shown
		c.missed += missed
	}
	for len(line) > 0 {
		i := bytes.Index(line, seqKey)
		if i < 0 {
			return
		}
		line = line[i+len(seqKey):]
		seq, ok := findUint(line, nil)
		if !ok {
			continue
		}
		ts, _ := findUint(line, tsKey)
		r.deliver(c, seq, int64(ts), now)
	}
}

// handleReply counts a sender's publish reply.
func (r *liveRun) handleReply(c *liveConn, line []byte) {
	id, ok := findUint(line, replyPrefix)
	if !ok || c.sender < 0 || id < livePublishID {
		return
	}
	seq := uint64(c.sender)*r.cfg.perSenderSeqs + id - livePublishID
	if bytes.Contains(line, errorKey) {
		c.rejected++
		r.errs.add("sender %d: %s", c.sender, clip(line))
		return
	}
	if seq < r.cfg.seqSpace() {
		c.ok[seq/64] |= 1 << (seq % 64)
		c.accepted++
	}
}

func (r *liveRun) deliver(c *liveConn, seq uint64, ts, now int64) {
	if seq == 0 || seq >= r.cfg.seqSpace() {
		c.unexpected++
		return
	}
	from := int(seq / r.cfg.perSenderSeqs)
	w, bit := seq/64, uint64(1)<<(seq%64)
	if c.seen[w]&bit != 0 {
		if from != c.sender { // one's own may come twice: at once, and in a tick
			c.dups++
		}
		return
	}
	c.seen[w] |= bit
	if from != c.sender && from < r.cfg.Senders {
		c.bySender[from]++
	}
	if ts >= r.measureStart && ts < r.end {
		c.window++
		r.hist.Record(c.idx, time.Duration(now-ts))
	}
}

// schedule calls each(n) for n = 1, 2, … at start + phase + (n-1)/rate,
// where phase spreads the i-th of count publishers over one interval,
// until end, ctx ends, each returns false, or n reaches limit.
func schedule(ctx context.Context, start, end time.Time, rate float64, i, count int, limit uint64, each func(n uint64) bool) {
	iv := time.Duration(float64(time.Second) / rate)
	phase := iv * time.Duration(i) / time.Duration(max(count, 1))
	for n := uint64(1); n < limit; n++ {
		at := start.Add(phase + time.Duration(n-1)*iv)
		if !at.Before(end) {
			return
		}
		sleepUntil(ctx, at)
		if ctx.Err() != nil || !each(n) {
			return
		}
	}
}

// send is a sender's loop: its comments over the WebSocket.
func (r *liveRun) send(ctx context.Context, c *liveConn, start, end time.Time) {
	var msg []byte
	schedule(ctx, start, end, r.cfg.Rate, c.sender, r.cfg.Senders, r.cfg.perSenderSeqs, func(n uint64) bool {
		seq := uint64(c.sender)*r.cfg.perSenderSeqs + n
		msg = appendLivePublish(msg[:0], r.cfg.Target, r.cfg.Channel, livePublishID+n, seq, time.Now().UnixNano(), r.cfg.Size)
		c.wmu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
		err := c.conn.writeText(msg)
		c.wmu.Unlock()
		if err != nil && !r.stopping.Load() {
			r.errs.add("sender %d: publish: %v", c.sender, err)
		}
		return err == nil
	})
}

// appendLivePublish is a client publish command of the target's protocol.
func appendLivePublish(dst []byte, t targetKind, channel string, id, seq uint64, ts int64, size int) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	if t == targetCentrifugo {
		dst = append(dst, `,"publish":{"channel":"`...)
		dst = append(dst, channel...)
		dst = append(dst, `","data":`...)
		dst = appendBroadcastData(dst, seq, ts, size)
		return append(dst, "}}"...)
	}
	dst = append(dst, `,"op":"publish","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = appendBroadcastData(dst, seq, ts, size)
	return append(dst, '}')
}

// prioPublisher posts priority comments through the API. ok is its
// accepted seqs; it is owned by its goroutine until it returns.
type prioPublisher struct {
	idx      int // its seqs come after the senders'
	ok       []uint64
	accepted uint64
	errors   uint64
}

func (r *liveRun) publishPriority(ctx context.Context, p *prioPublisher, client *http.Client, start, end time.Time) {
	k := uint64(r.cfg.Senders + p.idx)
	var body []byte
	schedule(ctx, start, end, r.cfg.PrioRate, p.idx, r.cfg.PrioSenders, r.cfg.perSenderSeqs, func(n uint64) bool {
		seq := k*r.cfg.perSenderSeqs + n
		body = append(body[:0], `{"channel":"`...)
		body = append(body, r.cfg.Channel...)
		body = append(body, `","data":`...)
		body = appendBroadcastData(body, seq, time.Now().UnixNano(), r.cfg.Size)
		if r.cfg.Target == targetDuplex {
			body = append(body, `,"priority":true`...)
		}
		body = append(body, '}')
		if err := postPublish(ctx, client, r.cfg.Target, r.cfg.APIURL, r.cfg.APIKey, body); err != nil {
			if ctx.Err() == nil {
				p.errors++
				r.errs.add("priority publish: %v", err)
			}
			return true
		}
		p.ok[seq/64] |= 1 << (seq % 64)
		p.accepted++
		return true
	})
}

// runLive runs the live room. It returns an error only when it could not
// be set up (no connection opened).
func runLive(ctx context.Context, cfg liveConfig) (RoomResult, error) {
	res := RoomResult{
		Mode: "live", Target: string(cfg.Target), URL: cfg.URL, Nodes: len(cfg.nodeURLs), Channel: cfg.Channel,
		StartedAt: time.Now().UTC(), Viewers: cfg.Viewers, Senders: cfg.Senders, Rate: cfg.Rate,
		PrioSenders: cfg.PrioSenders, PrioRate: cfg.PrioRate, Size: cfg.Size, Deflate: cfg.Deflate,
		WarmupS: cfg.Warmup.Seconds(), GraceS: cfg.Grace.Seconds(), GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	res.Nodes = max(res.Nodes, 1)
	errs := &errSamples{}
	n := cfg.Viewers + cfg.Senders
	words := cfg.seqSpace()/64 + 1
	seen := make([]uint64, uint64(n)*words)
	conns := make([]*liveConn, n)
	run := &liveRun{cfg: &cfg, hist: newShardedHistogram(64), errs: errs}
	var readers sync.WaitGroup
	var viewersOpen, sendersOpen atomic.Int64
	setupStart := time.Now()
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	// Connection i: senders first (spread over the nodes like the rest).
	cfg.compressingSenders = cfg.Senders
	openAll(setupCtx, &cfg.targetConfig, n,
		func(i int, wc subConn, rest []byte) {
			c := &liveConn{idx: i, sender: -1, conn: wc, seen: seen[uint64(i)*words : uint64(i+1)*words : uint64(i+1)*words],
				bySender: make([]uint32, cfg.Senders)}
			if i < cfg.Senders {
				c.sender = i
				c.ok = make([]uint64, words)
				sendersOpen.Add(1)
			} else {
				viewersOpen.Add(1)
			}
			conns[i] = c
			readers.Add(1)
			go func() {
				defer readers.Done()
				run.read(c, rest)
			}()
		},
		func(i int, err error) { errs.add("connection %d: %v", i, err) })
	cancelSetup()
	res.SetupS = time.Since(setupStart).Seconds()
	res.ViewersOpen, res.SendersOpen = int(viewersOpen.Load()), int(sendersOpen.Load())
	res.DeflateContext = countContextTakeover(conns[min(cfg.Senders, n):], func(c *liveConn) subConn {
		if c == nil {
			return nil
		}
		return c.conn
	}, errs)
	stopReaders := func() {
		run.stopping.Store(true)
		var open []subConn
		for _, c := range conns {
			if c != nil {
				_ = c.conn.SetReadDeadline(time.Now())
				open = append(open, c.conn)
			}
		}
		readers.Wait()
		closeAll(open)
	}
	if res.ViewersOpen+res.SendersOpen == 0 {
		stopReaders()
		return res, fmt.Errorf("no connection could be opened to %s: %v", cfg.URL, errs.list())
	}

	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, DisableCompression: true}}
	prio := make([]*prioPublisher, cfg.PrioSenders)
	for i := range prio {
		prio[i] = &prioPublisher{idx: i, ok: make([]uint64, words)}
	}
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	run.measureStart, run.end = measureStart.UnixNano(), end.UnixNano()
	var pubs sync.WaitGroup
	for _, c := range conns {
		if c != nil && c.sender >= 0 {
			pubs.Go(func() { run.send(ctx, c, start, end) })
		}
	}
	for _, p := range prio {
		pubs.Go(func() { run.publishPriority(ctx, p, client, start, end) })
	}
	// The window's CPU: from its start to its end.
	sleepUntil(ctx, measureStart)
	procs := append([]procSpec{{Label: "server", PID: cfg.ServerPID}}, cfg.ExtraPIDs...)
	if cfg.ServerPID == 0 {
		procs = procs[1:]
	}
	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		cpu0[i], _ = readProcCPU(p.PID)
	}
	self0 := selfcpu.Used()
	wire0 := wireBytesRead.Load()
	sleepUntil(ctx, end)
	window := time.Since(measureStart)
	if open := res.ViewersOpen + res.SendersOpen; open > 0 {
		res.WireBytesPerConnPerS = float64(wireBytesRead.Load()-wire0) / float64(open) / window.Seconds()
	}
	for i, p := range procs {
		cpu1, err := readProcCPU(p.PID)
		if err != nil {
			errs.add("%s pid %d: %v", p.Label, p.PID, err)
			continue
		}
		st, _ := readProcStatus(p.PID)
		pc := RoomProc{Label: p.Label, PID: p.PID, CPUS: (cpu1 - cpu0[i]).Seconds(), RSSKB: st.RSSKB, HWMKB: st.HWMKB, Threads: st.Threads}
		pc.Cores = pc.CPUS / window.Seconds()
		if p.Label == "server" && i == 0 && cfg.ServerPID > 0 {
			res.Server = &pc
		} else {
			res.Processes = append(res.Processes, pc)
		}
	}
	res.LoaderCPUS = (selfcpu.Used() - self0).Seconds()
	pubs.Wait()
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	grace := cfg.Grace
	if res.Interrupted {
		grace = min(grace, interruptDrain)
	}
	time.Sleep(grace)
	stopReaders()
	res.DurationS = window.Seconds()
	tallyLive(&res, &cfg, conns, prio, window)
	res.LatencyUS = latencySummary(run.hist.Merged())
	res.Disconnects = int(run.disconnects.Load())
	res.ErrorSamples = errs.list()
	return res, nil
}
