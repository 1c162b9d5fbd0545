package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Limits that keep every run bounded, whatever the flags say.
const (
	maxConns    = 100_000
	maxSize     = 16 << 20
	maxDuration = 24 * time.Hour
)

// commonConfig holds the flags every mode shares. A new mode embeds it and
// calls register/validate from its own parse function.
type commonConfig struct {
	URL      string
	Conns    int
	Duration time.Duration
	Warmup   time.Duration
	Timeout  time.Duration
	JSON     bool
}

func (c *commonConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8088/ws", "WebSocket URL (ws:// or wss://)")
	fs.IntVar(&c.Conns, "conns", 50, "number of concurrent connections")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", 0, "unmeasured load before the measured duration")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "deadline for each dial, write and reply")
	fs.BoolVar(&c.JSON, "json", false, "print the result as one JSON object on stdout")
}

func (c *commonConfig) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("-url: scheme must be ws or wss, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("-url: missing host")
	}
	switch {
	case c.Conns < 1 || c.Conns > maxConns:
		return fmt.Errorf("-conns must be in [1, %d], got %d", maxConns, c.Conns)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("-duration must be in (0, %s], got %s", maxDuration, c.Duration)
	case c.Warmup < 0 || c.Warmup > maxDuration:
		return fmt.Errorf("-warmup must be in [0, %s], got %s", maxDuration, c.Warmup)
	case c.Timeout <= 0 || c.Timeout > time.Hour:
		return fmt.Errorf("-timeout must be in (0, 1h], got %s", c.Timeout)
	}
	return nil
}

// expectMode says what a correct echo reply looks like.
type expectMode string

const (
	expectTutorial expectMode = "tutorial"
	expectVerbatim expectMode = "verbatim"
)

func (e *expectMode) String() string { return string(*e) }

func (e *expectMode) Set(s string) error {
	switch expectMode(s) {
	case expectTutorial, expectVerbatim:
		*e = expectMode(s)
		return nil
	}
	return fmt.Errorf("must be %q or %q", expectTutorial, expectVerbatim)
}

// echoConfig is the configuration of the echo mode.
type echoConfig struct {
	commonConfig
	Size    int
	Expect  expectMode
	Deflate bool
}

// parseEchoFlags parses the arguments that follow "echo". Usage and errors
// are written to out.
func parseEchoFlags(args []string, out io.Writer) (echoConfig, error) {
	cfg := echoConfig{Expect: expectTutorial}
	fs := flag.NewFlagSet("duplexload echo", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.commonConfig.register(fs)
	fs.IntVar(&cfg.Size, "size", 16, "message size in bytes (ASCII; unique per message when >= 12)")
	fs.Var(&cfg.Expect, "expect", `reply contract: "tutorial" or "verbatim"`)
	fs.BoolVar(&cfg.Deflate, "deflate", false, "offer permessage-deflate as browsers do (a server that declines it fails the dial)")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: duplexload echo [flags]")
		fmt.Fprintln(out, "Each connection sends a message, waits for and checks its reply, and repeats.")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		return cfg, err
	}
	if err := cfg.commonConfig.validate(); err != nil {
		return cfg, err
	}
	if cfg.Size < 1 || cfg.Size > maxSize {
		return cfg, fmt.Errorf("-size must be in [1, %d], got %d", maxSize, cfg.Size)
	}
	return cfg, nil
}

// parseArgs parses a mode's flags and refuses positional arguments, which
// are always a mistake (a flag's value without its flag, for example).
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}
