package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

func init() {
	registerMode(mode{
		name:    "echo",
		summary: "request/reply: each connection sends a message and checks the reply, in a loop",
		run:     echoCmd,
	})
}

func echoCmd(args []string, stdout, stderr io.Writer) int {
	return runMode("echo", args, stdout, stderr, parseEchoFlags,
		func(ctx context.Context, cfg echoConfig, stdout io.Writer, warnf func(string, ...any)) error {
			res, err := runEcho(ctx, cfg)
			if err != nil {
				return err
			}
			if res.ConnsOpen < res.Conns {
				warnf("warning: only %d of %d connections opened", res.ConnsOpen, res.Conns)
			}
			if res.Errors > 0 {
				warnf("%d errors in the measured window", res.Errors)
			}
			return writeReport(stdout, res, cfg.JSON)
		})
}

// runEcho runs the echo load. It returns an error only when the run could
// not be set up (no connection opened); errors during the run are counted
// in the Result.
func runEcho(ctx context.Context, cfg echoConfig) (Result, error) {
	res := Result{
		Mode:      "echo",
		URL:       cfg.URL,
		StartedAt: time.Now().UTC(),
		Conns:     cfg.Conns,
		Size:      cfg.Size,
		Expect:    string(cfg.Expect),
		WarmupS:   cfg.Warmup.Seconds(),
	}
	d := withDeflate(newDialer(cfg.Timeout), cfg.Deflate)
	conns, errs := dialAll(ctx, d, cfg.URL, cfg.Conns, cfg.Timeout)
	var firstErr error
	for i, c := range conns {
		if c != nil {
			res.ConnsOpen++
		} else if firstErr == nil {
			firstErr = errs[i]
		}
	}
	if res.ConnsOpen == 0 {
		return res, fmt.Errorf("no connection could be opened to %s: %w", cfg.URL, firstErr)
	}

	// The clock starts once every connection is open (or has failed).
	measureStart := time.Now().Add(cfg.Warmup)
	end := measureStart.Add(cfg.Duration)
	var interruptedAt atomic.Int64 // unix nanos; 0 = not interrupted
	stopWatch := context.AfterFunc(ctx, func() { interruptedAt.Store(time.Now().UnixNano()) })
	defer stopWatch()

	tallies := make([]tally, cfg.Conns)
	hist := newShardedHistogram(min(cfg.Conns, 64))
	var wg sync.WaitGroup
	for i := range conns {
		if errs[i] != nil {
			// A failed start-up dial is an error of the run; the worker retries.
			tallies[i].fail(errDial, cfg.Warmup == 0, errs[i])
		}
		w := &echoWorker{
			id: i, cfg: &cfg, dialer: d, conn: conns[i], t: &tallies[i], hist: hist,
			measureStart: measureStart, end: end,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()

	window := cfg.Duration
	if at := interruptedAt.Load(); at != 0 {
		res.Interrupted = true
		window = max(0, min(time.Unix(0, at).Sub(measureStart), cfg.Duration))
	}
	var total tally
	for i := range tallies {
		total.merge(&tallies[i])
	}
	return buildResult(res, &total, hist.Merged(), window), nil
}

// echoWorker drives one connection; it is owned by one goroutine.
type echoWorker struct {
	id           int
	cfg          *echoConfig
	dialer       *websocket.Dialer
	conn         *websocket.Conn // nil after a fatal error, until redialled
	t            *tally
	hist         *shardedHistogram
	measureStart time.Time
	end          time.Time

	seq  uint64
	msg  []byte // current message
	buf  []byte // reply buffer
	want []byte // expected reply scratch
}

// redialBackoff is the pause after a failed redial, so a dead server does
// not turn the run into a busy loop.
const redialBackoff = 100 * time.Millisecond

func (w *echoWorker) run(ctx context.Context) {
	defer func() {
		if w.conn != nil {
			closeGracefully(w.conn)
		}
	}()
	if w.conn != nil {
		w.setup(w.conn)
	}
	for {
		now := time.Now()
		if !now.Before(w.end) || ctx.Err() != nil {
			return
		}
		measured := !now.Before(w.measureStart)
		if w.conn == nil {
			c, err := dial(ctx, w.dialer, w.cfg.URL, w.cfg.Timeout)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.t.fail(errDial, measured, err)
				wake := time.Now().Add(redialBackoff)
				if wake.After(w.end) {
					wake = w.end
				}
				sleepUntil(ctx, wake)
				continue
			}
			w.t.reconnects++
			w.setup(c)
		}
		w.roundTrip(measured)
	}
}

func (w *echoWorker) setup(c *websocket.Conn) {
	w.conn = c
	// Room for the expected reply plus slack, so an oversized reply is an
	// error rather than an unbounded read.
	c.SetReadLimit(int64(2*expectedLen(w.cfg.Expect, w.cfg.Size) + 64<<10))
}

// roundTrip sends one message and checks its reply. A write or read error
// leaves the connection unusable, so it is dropped (and redialled by run).
func (w *echoWorker) roundTrip(measured bool) {
	w.msg = appendPayload(w.msg[:0], w.id, w.seq, w.cfg.Size)
	w.seq++
	c := w.conn
	t0 := time.Now()
	deadline := t0.Add(w.cfg.Timeout)
	if err := c.SetWriteDeadline(deadline); err != nil {
		w.drop(classify(err), measured, err)
		return
	}
	if err := c.WriteMessage(websocket.TextMessage, w.msg); err != nil {
		w.drop(classify(err), measured, fmt.Errorf("write: %w", err))
		return
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		w.drop(classify(err), measured, err)
		return
	}
	mt, err := w.readMessage()
	t1 := time.Now()
	if err != nil {
		w.drop(classify(err), measured, fmt.Errorf("read: %w", err))
		return
	}
	if mt != websocket.TextMessage {
		w.t.fail(errWrong, measured, fmt.Errorf("reply to %s is not a text message (type %d)", clip(w.msg), mt))
		return
	}
	var bad error
	w.want, bad = checkReply(w.cfg.Expect, w.msg, w.buf, w.want)
	if bad != nil {
		w.t.fail(errWrong, measured, bad)
		return
	}
	w.t.okAll++
	if measured {
		w.t.ok++
		w.hist.Record(w.id, t1.Sub(t0))
	}
}

// readMessage reads the next data message into w.buf, reusing its memory.
func (w *echoWorker) readMessage() (int, error) {
	mt, r, err := w.conn.NextReader()
	if err != nil {
		return mt, err
	}
	b := w.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			w.buf = b
			return mt, nil
		}
		if err != nil {
			w.buf = b
			return mt, err
		}
	}
}

func (w *echoWorker) drop(k errorKind, measured bool, err error) {
	w.t.fail(k, measured, err)
	_ = w.conn.Close()
	w.conn = nil
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
