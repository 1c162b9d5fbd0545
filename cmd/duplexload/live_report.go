package main

// live mode: the result and its report.

import (
	"encoding/json"
	"io"
	"math/bits"
	"time"
)

// RoomProc is one measured process over the live window.
type RoomProc struct {
	Label   string  `json:"label"`
	PID     int     `json:"pid"`
	CPUS    float64 `json:"cpu_s"`
	Cores   float64 `json:"cores"` // CPUS per second of the window
	RSSKB   int64   `json:"rss_kb"`
	HWMKB   int64   `json:"hwm_kb"`
	Threads int64   `json:"threads"`
}

// RoomResult is what live -json prints. Fields are only ever added.
type RoomResult struct {
	Mode        string    `json:"mode"`
	Target      string    `json:"target"`
	URL         string    `json:"url"`
	Nodes       int       `json:"nodes"`
	Channel     string    `json:"channel"`
	StartedAt   time.Time `json:"started_at"`
	Viewers     int       `json:"viewers"`
	ViewersOpen int       `json:"viewers_open"`
	Senders     int       `json:"senders"`
	SendersOpen int       `json:"senders_open"`
	SetupS      float64   `json:"setup_s"`
	Rate        float64   `json:"rate"` // per sender
	PrioSenders int       `json:"prio_senders"`
	PrioRate    float64   `json:"prio_rate"`
	Size        int       `json:"size"`
	Deflate     bool      `json:"deflate"`
	WarmupS     float64   `json:"warmup_s"`
	DurationS   float64   `json:"duration_s"`
	GraceS      float64   `json:"grace_s"`

	// DeflateContext: every viewer negotiated permessage-deflate with
	// context takeover (senders never do, see -deflate).
	DeflateContext bool `json:"deflate_context"`
	// WireBytesPerConnPerS: what the connections read off their sockets
	// in the window (frame headers and compressed payloads as they are),
	// per open connection per second: a viewer's bandwidth.
	WireBytesPerConnPerS float64 `json:"wire_bytes_per_conn_per_s"`

	// Accepted: sender publishes answered with success; Rejected: with
	// an error (e.g. rate_limited). PrioAccepted: priority comments the
	// API accepted. CommentsPerS: all accepted over warmup and window.
	Accepted     uint64  `json:"accepted"`
	Rejected     uint64  `json:"rejected"`
	PrioAccepted uint64  `json:"prio_accepted"`
	PrioErrors   uint64  `json:"prio_errors"`
	CommentsPerS float64 `json:"comments_per_s"`

	// DeliveriesPerViewerPerS: comments sent in the window that reached a
	// viewer (first time), per open viewer, per second of the window.
	DeliveriesPerViewerPerS float64 `json:"deliveries_per_viewer_per_s"`
	// LatencyUS: from a comment's send (the time in its data) to its
	// arrival, every first delivery of a window comment to any connection.
	LatencyUS Latency `json:"latency_us"`
	// OwnShareMin / OwnShareMean: of each sender's accepted comments, the
	// share it saw itself (goal 1).
	OwnShareMin  float64 `json:"own_share_min"`
	OwnShareMean float64 `json:"own_share_mean"`
	// PrioDelivered: priority comments delivered over accepted x
	// connections; PrioDeliveredMin: the least any connection got (goal 1).
	PrioDelivered    float64 `json:"prio_delivered"`
	PrioDeliveredMin float64 `json:"prio_delivered_min"`
	// FairShareMin / FairShareMax: each sender's share of the others'
	// comments delivered, over the fair share (1 / senders); FairOK: all
	// within fairShareBound of it.
	FairShareMin float64 `json:"fair_share_min"`
	FairShareMax float64 `json:"fair_share_max"`
	FairOK       bool    `json:"fair_ok"`
	// RoomPerS / ShownPerS: duplex tick frames' counts, per viewer per
	// second ("183 条/秒，显示 50 条"); Ticks: tick frames per viewer.
	RoomPerS  float64 `json:"room_per_s"`
	ShownPerS float64 `json:"shown_per_s"`
	TicksPerS float64 `json:"ticks_per_s"`
	// Missed: comments a viewer was told it missed (tick "missed" and
	// {"missed":n}), summed; Dups: comments delivered twice (one's own
	// excepted); Unexpected: unknown seqs.
	Missed      uint64 `json:"missed"`
	Dups        uint64 `json:"dups"`
	Unexpected  uint64 `json:"unexpected"`
	Disconnects int    `json:"disconnects"`

	Server     *RoomProc  `json:"server,omitempty"`
	Processes  []RoomProc `json:"processes,omitempty"`
	LoaderCPUS float64    `json:"loader_cpu_s"`

	ErrorSamples []string `json:"error_samples,omitempty"`
	Interrupted  bool     `json:"interrupted,omitempty"`
	GoMaxProcs   int      `json:"gomaxprocs"`
}

// tallyLive fills res from the connections and publishers, once every
// reader has stopped.
func tallyLive(res *RoomResult, cfg *liveConfig, conns []*liveConn, prio []*prioPublisher, window time.Duration) {
	prioOK := make([]uint64, cfg.seqSpace()/64+1)
	for _, p := range prio {
		res.PrioAccepted += p.accepted
		res.PrioErrors += p.errors
		for w, v := range p.ok {
			prioOK[w] |= v
		}
	}
	bySender := make([]uint64, cfg.Senders)
	var viewerWindow, ticks, tickTotal, tickShown, prioGot uint64
	res.OwnShareMin, res.PrioDeliveredMin = 1, 1
	var ownSum float64
	var open int
	for _, c := range conns {
		if c == nil {
			continue
		}
		open++
		res.Missed += c.missed
		res.Dups += c.dups
		res.Unexpected += c.unexpected
		for k, n := range c.bySender {
			bySender[k] += uint64(n)
		}
		var got uint64
		for w, v := range prioOK {
			got += uint64(bits.OnesCount64(v & c.seen[w]))
		}
		prioGot += got
		if res.PrioAccepted > 0 {
			res.PrioDeliveredMin = min(res.PrioDeliveredMin, float64(got)/float64(res.PrioAccepted))
		}
		if c.sender >= 0 {
			res.Accepted += c.accepted
			res.Rejected += c.rejected
			var own uint64
			for w, v := range c.ok {
				own += uint64(bits.OnesCount64(v & c.seen[w]))
			}
			share := 1.0
			if c.accepted > 0 {
				share = float64(own) / float64(c.accepted)
			}
			ownSum += share
			res.OwnShareMin = min(res.OwnShareMin, share)
			continue
		}
		viewerWindow += c.window
		ticks += c.ticks
		tickTotal += c.tickTotal
		tickShown += c.tickShown
	}
	if res.SendersOpen > 0 {
		res.OwnShareMean = ownSum / float64(res.SendersOpen)
	}
	if res.PrioAccepted > 0 && open > 0 {
		res.PrioDelivered = float64(prioGot) / float64(res.PrioAccepted*uint64(open))
	}
	if run := cfg.Warmup + window; run > 0 {
		res.CommentsPerS = float64(res.Accepted+res.PrioAccepted) / run.Seconds()
	}
	if s := window.Seconds(); s > 0 && res.ViewersOpen > 0 {
		per := float64(res.ViewersOpen) * s
		res.DeliveriesPerViewerPerS = float64(viewerWindow) / per
		// Ticks count over the whole run (warmup included).
		run := (cfg.Warmup + window).Seconds()
		res.RoomPerS = float64(tickTotal) / float64(res.ViewersOpen) / run
		res.ShownPerS = float64(tickShown) / float64(res.ViewersOpen) / run
		res.TicksPerS = float64(ticks) / float64(res.ViewersOpen) / run
	}
	var all uint64
	for _, n := range bySender {
		all += n
	}
	res.FairShareMin, res.FairShareMax = 0, 0
	if all > 0 && len(bySender) > 0 {
		fair := float64(all) / float64(len(bySender))
		res.FairShareMin = float64(bySender[0]) / fair
		for _, n := range bySender {
			r := float64(n) / fair
			res.FairShareMin = min(res.FairShareMin, r)
			res.FairShareMax = max(res.FairShareMax, r)
		}
		res.FairOK = res.FairShareMin >= 1/fairShareBound && res.FairShareMax <= fairShareBound
	}
}

func writeLiveReport(w io.Writer, r RoomResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	out := &textOut{w: w}
	p := out.printf
	p("mode       live  target %s  %s (%d node(s))  channel %s\n", r.Target, r.URL, r.Nodes, r.Channel)
	p("room       %d of %d viewers, %d of %d senders x %.1f/s (WebSocket), %d priority publishers x %.1f/s (API); set up in %.1fs\n",
		r.ViewersOpen, r.Viewers, r.SendersOpen, r.Senders, r.Rate, r.PrioSenders, r.PrioRate, r.SetupS)
	if r.Deflate {
		p("deflate    permessage-deflate; viewers with context takeover %v\n", r.DeflateContext)
	}
	p("wire       %.0f bytes read per connection per second\n", r.WireBytesPerConnPerS)
	p("comments   %d accepted, %d refused, %d priority accepted (%d errors): %.1f/s\n",
		r.Accepted, r.Rejected, r.PrioAccepted, r.PrioErrors, r.CommentsPerS)
	p("window     %.2fs after %.2fs warmup, grace %.1fs", r.DurationS, r.WarmupS, r.GraceS)
	if r.Interrupted {
		p(" (interrupted)")
	}
	l := r.LatencyUS
	p("\nviewers    %.1f deliveries/s each; ticks %.1f/s: room %.1f/s, shown %.1f/s; missed %d\n",
		r.DeliveriesPerViewerPerS, r.TicksPerS, r.RoomPerS, r.ShownPerS, r.Missed)
	p("latency us p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", l.P50, l.P90, l.P99, l.Max)
	p("goals      own seen min %.1f%% (mean %.1f%%); priority delivered %.1f%% (min %.1f%%); fair share %.2f..%.2f (ok %v); disconnects %d\n",
		100*r.OwnShareMin, 100*r.OwnShareMean, 100*r.PrioDelivered, 100*r.PrioDeliveredMin, r.FairShareMin, r.FairShareMax, r.FairOK, r.Disconnects)
	p("other      dups %d  unexpected %d\n", r.Dups, r.Unexpected)
	if s := r.Server; s != nil {
		p("server     pid %d: %.2f cores (cpu %.2fs); rss %d kB (peak %d kB), %d threads\n", s.PID, s.Cores, s.CPUS, s.RSSKB, s.HWMKB, s.Threads)
	}
	for _, s := range r.Processes {
		p("process    %s pid %d: %.2f cores; rss %d kB\n", s.Label, s.PID, s.Cores, s.RSSKB)
	}
	p("loader     cpu %.2fs over the window\n", r.LoaderCPUS)
	for _, s := range r.ErrorSamples {
		p("  e.g. %s\n", s)
	}
	return out.err
}
