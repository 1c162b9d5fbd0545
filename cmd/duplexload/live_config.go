package main

// live mode: configuration.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Bounds and defaults of the live mode.
const (
	maxLiveSenders     = 10_000
	maxLiveSenderRate  = 100
	maxLiveTrack       = 8 << 30 // connections x comments, 1 GiB of bitsets
	defaultLiveSize    = 64
	defaultLiveChannel = "live:bench"
	// fairShareBound is the fairness goal: every sender's share
	// of what viewers were shown is within this factor of the fair share.
	fairShareBound = 2.0
)

type liveConfig struct {
	targetConfig
	Viewers       int
	Senders       int
	Rate          float64 // per sender, comments/s, over the WebSocket
	PrioSenders   int     // API publishers with the priority flag
	PrioRate      float64 // per priority sender
	Size          int
	Duration      time.Duration
	Warmup        time.Duration
	Grace         time.Duration
	APIURL        string
	APIKey        string
	ExtraPIDs     pidList
	perSenderSeqs uint64 // seq space of one sender
}

func parseLiveFlags(args []string, out io.Writer) (liveConfig, error) {
	var cfg liveConfig
	fs := flag.NewFlagSet("duplexload live", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.targetConfig.register(fs)
	fs.IntVar(&cfg.Viewers, "viewers", 1000, "viewer connections (subscribe, read)")
	fs.IntVar(&cfg.Senders, "senders", 20, "sender connections (subscribe, and publish over the WebSocket)")
	fs.Float64Var(&cfg.Rate, "rate", 2, "comments per second of each sender")
	fs.IntVar(&cfg.PrioSenders, "prio-senders", 2, "publishers through the HTTP API with the priority flag (duplex; Centrifugo has none, so plain API publishes)")
	fs.Float64Var(&cfg.PrioRate, "prio-rate", 1, "comments per second of each priority publisher")
	fs.IntVar(&cfg.Size, "size", defaultLiveSize, "size in bytes of each comment's data")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "measured window")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "publishing before the measured window (not timed)")
	fs.DurationVar(&cfg.Grace, "grace", 2*time.Second, "how long after the last comment deliveries are still counted")
	fs.StringVar(&cfg.APIURL, "api", "", "HTTP base URL of the publish API (default: the first -url host over http)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("API_KEY"), "API key; default $API_KEY")
	fs.Var(&cfg.ExtraPIDs, "pids", "further processes to measure over the window, as label=PID,… (the other nodes, NATS)")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload live [flags]")
		fmt.Fprintln(out, "A live room: -viewers read, -senders publish -rate comments/s each over the WebSocket, -prio-senders")
		fmt.Fprintln(out, "publish priority comments through the API. Reports server CPU (cores) and RSS, deliveries per viewer per second,")
		fmt.Fprintln(out, "send-to-arrival latency, each sender's share of its own comments seen, priority comments delivered,")
		fmt.Fprintln(out, "fairness between senders and disconnects. -url may list several nodes (viewers and senders spread over them).")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		return cfg, err
	}
	if cfg.Channel == "" {
		cfg.Channel = defaultLiveChannel
	}
	if err := cfg.finishNodes(cfg.ExtraPIDs, &cfg.APIURL); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Viewers < 0 || cfg.Viewers > maxConns:
		return cfg, fmt.Errorf("-viewers must be in [0, %d], got %d", maxConns, cfg.Viewers)
	case cfg.Senders < 1 || cfg.Senders > maxLiveSenders:
		return cfg, fmt.Errorf("-senders must be in [1, %d], got %d", maxLiveSenders, cfg.Senders)
	case !(cfg.Rate > 0 && cfg.Rate <= maxLiveSenderRate):
		return cfg, fmt.Errorf("-rate must be in (0, %d], got %v", maxLiveSenderRate, cfg.Rate)
	case cfg.PrioSenders < 0 || cfg.PrioSenders > maxLiveSenders:
		return cfg, fmt.Errorf("-prio-senders must be in [0, %d], got %d", maxLiveSenders, cfg.PrioSenders)
	case cfg.PrioSenders > 0 && !(cfg.PrioRate > 0 && cfg.PrioRate <= maxLiveSenderRate):
		return cfg, fmt.Errorf("-prio-rate must be in (0, %d], got %v", maxLiveSenderRate, cfg.PrioRate)
	case cfg.Size < 1 || cfg.Size > maxBcastSize:
		return cfg, fmt.Errorf("-size must be in [1, %d], got %d", maxBcastSize, cfg.Size)
	case cfg.Duration <= 0 || cfg.Duration > maxDuration:
		return cfg, fmt.Errorf("-duration must be in (0, %s], got %s", maxDuration, cfg.Duration)
	case cfg.Warmup < 0 || cfg.Warmup > maxDuration:
		return cfg, fmt.Errorf("-warmup must be in [0, %s], got %s", maxDuration, cfg.Warmup)
	case cfg.Grace < 0 || cfg.Grace > time.Hour:
		return cfg, fmt.Errorf("-grace must be in [0, 1h], got %s", cfg.Grace)
	}
	total := cfg.Warmup + cfg.Duration
	cfg.perSenderSeqs = uint64(total.Seconds()*max(cfg.Rate, cfg.PrioRate)) + 2
	if n := float64(cfg.Viewers+cfg.Senders) * float64(cfg.seqSpace()); n > maxLiveTrack {
		return cfg, fmt.Errorf("(-viewers + -senders) x comments is too large (%.0f to track; at most %d)", n, maxLiveTrack)
	}
	return cfg, nil
}

// seqSpace is one past the largest comment seq: sender k (priority
// publishers after the senders) numbers its comments k*perSenderSeqs + n,
// n from 1.
func (c *liveConfig) seqSpace() uint64 {
	return uint64(c.Senders+c.PrioSenders) * c.perSenderSeqs
}
