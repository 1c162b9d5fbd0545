package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/duplex/duplex/app"
	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// configError marks a refused configuration, which exits with code 2.
type configError struct{ err error }

func (e configError) Error() string { return "invalid config: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ce configError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		return 2
	default:
		return 1
	}
}

// run dispatches the subcommand: none or serve, healthcheck, token or version.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(ctx, args[1:], getenv, stderr)
		case "token":
			return token(args[1:], getenv, stdout, stderr)
		case "version":
			_, err := fmt.Fprintln(stdout, version)
			return err
		case "serve":
			args = args[1:]
		}
	}
	return serve(ctx, args, getenv, stdout, stderr)
}

// listenConfig accepts connections without TCP keep-alive probes, which
// Go otherwise turns on for each accepted connection, at four setsockopt
// calls apiece (of the 17 or so system calls a /realtime connect and
// subscribe cost the server with them): a WebSocket has its own heartbeat (WS_PING_INTERVAL), an SSE
// stream its heartbeat comments, and an idle HTTP connection its idle
// timeout, each of which finds a dead peer sooner than the probes would.
var listenConfig = net.ListenConfig{KeepAlive: -1}

// serve runs the server until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	product := features.Default()
	cfg, err := config.Load(args, getenv, stderr, features.ConfigExtensions(product)...)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return configError{err}
	}

	log := newLogger(cfg, stdout)
	// Features' services log through slog's default, in the same format.
	slog.SetDefault(log)
	log.Info("starting duplex", "version", version, "config", cfg.Effective())

	a, err := app.New(ctx, cfg, product, log, version)
	if err != nil {
		return fmt.Errorf("build app: %w", err)
	}
	ln, err := listenConfig.Listen(ctx, "tcp", cfg.Addr())
	if err != nil {
		a.Close()
		return fmt.Errorf("listen: %w", err)
	}

	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "idle_reads", a.IdleReads())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String(), "connections", a.Connections())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = a.Shutdown(sctx)
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
