package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"
)

// Latency is a latency summary in microseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// ErrorCounts are the errors of the measured window by kind.
type ErrorCounts struct {
	Wrong   uint64 `json:"wrong"`
	Timeout uint64 `json:"timeout"`
	IO      uint64 `json:"io"`
	Dial    uint64 `json:"dial"`
}

// Result is the outcome of one run; it is what -json prints. Fields are only
// ever added, so scripts that read older results keep working.
type Result struct {
	Mode      string    `json:"mode"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
	Conns     int       `json:"conns"`      // requested
	ConnsOpen int       `json:"conns_open"` // opened at start-up
	Size      int       `json:"size,omitempty"`
	Expect    string    `json:"expect,omitempty"`
	WarmupS   float64   `json:"warmup_s"`
	// DurationS is the measured window actually run (shorter than asked
	// only when interrupted).
	DurationS float64 `json:"duration_s"`
	// Msgs counts correct replies to messages sent in the measured window;
	// MsgsPerS = Msgs / DurationS.
	Msgs uint64 `json:"msgs"`
	// MsgsTotal counts every correct reply of the run, warmup included
	// (e.g. to divide a server's CPU time by).
	MsgsTotal    uint64      `json:"msgs_total"`
	MsgsPerS     float64     `json:"msgs_per_s"`
	LatencyUS    Latency     `json:"latency_us"` // round trip, correct replies only
	Errors       uint64      `json:"errors"`     // measured window, all kinds
	ErrorsByKind ErrorCounts `json:"errors_by_kind"`
	WarmupErrors uint64      `json:"warmup_errors"`
	Reconnects   uint64      `json:"reconnects"`
	ErrorSamples []string    `json:"error_samples,omitempty"`
	Interrupted  bool        `json:"interrupted,omitempty"`
	GoMaxProcs   int         `json:"gomaxprocs"`
}

func usec(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// buildResult fills the measured parts of r from t, the latencies h and
// the window length.
func buildResult(r Result, t *tally, h *Histogram, window time.Duration) Result {
	r.DurationS = window.Seconds()
	r.Msgs = t.ok
	r.MsgsTotal = t.okAll
	if window > 0 {
		r.MsgsPerS = float64(t.ok) / window.Seconds()
	}
	r.LatencyUS = Latency{
		Min:  usec(h.Min()),
		Mean: usec(h.Mean()),
		P50:  usec(h.Percentile(50)),
		P90:  usec(h.Percentile(90)),
		P99:  usec(h.Percentile(99)),
		P999: usec(h.Percentile(99.9)),
		Max:  usec(h.Max()),
	}
	r.Errors = t.totalErrors()
	r.ErrorsByKind = ErrorCounts{
		Wrong:   t.errs[errWrong],
		Timeout: t.errs[errTimeout],
		IO:      t.errs[errIO],
		Dial:    t.errs[errDial],
	}
	r.WarmupErrors = t.warmupErrors
	r.Reconnects = t.reconnects
	r.ErrorSamples = t.samples
	r.GoMaxProcs = runtime.GOMAXPROCS(0)
	return r
}

// writeReport prints r as one JSON object (asJSON) or as text.
// textOut writes a text report line by line and keeps the first error,
// so a report prints every line and checks once, at the end.
type textOut struct {
	w   io.Writer
	err error
}

func (t *textOut) printf(format string, a ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, a...)
	}
}

func writeReport(w io.Writer, r Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r) // one line, newline-terminated
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       %s  %s\n", r.Mode, r.URL)
	p("conns      %d open of %d requested", r.ConnsOpen, r.Conns)
	if r.Size > 0 {
		p(", %d-byte messages, expect %s", r.Size, r.Expect)
	}
	p("\nwindow     %.2fs measured after %.2fs warmup", r.DurationS, r.WarmupS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	p("\nmsgs       %d  (%.0f msgs/s); %d including warmup\n", r.Msgs, r.MsgsPerS, r.MsgsTotal)
	l := r.LatencyUS
	p("rtt (us)   min %.0f  mean %.0f  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
		l.Min, l.Mean, l.P50, l.P90, l.P99, l.P999, l.Max)
	e := r.ErrorsByKind
	p("errors     %d  (wrong %d, timeout %d, io %d, dial %d); warmup errors %d; reconnects %d\n",
		r.Errors, e.Wrong, e.Timeout, e.IO, e.Dial, r.WarmupErrors, r.Reconnects)
	for _, s := range r.ErrorSamples {
		p("  e.g. %s\n", s)
	}
	return out.err
}
