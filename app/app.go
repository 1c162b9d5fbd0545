// Package app assembles duplex: the Fiber app with its middleware and
// routes, the connection registry, and the order in which they shut down.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/template/html/v2"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/metrics"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/views"
	"github.com/duplex/duplex/wsconn"
)

// App is one duplex server. Serve and Shutdown may be called from
// different goroutines; each is called once.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	fiber    *fiber.App
	registry *wsconn.Registry
	apiKey   *handlers.APIKey // the HTTP API's key: the header hook, the error handler and the /api routes
	metrics  *metrics.Metrics
	ready    atomic.Bool

	hub    *realtime.Hub
	verify realtime.TokenVerifier // nil when TOKEN_SECRET is unset
	sse    *handlers.SSE          // the SSE transport of /realtime

	broker      realtime.Broker
	presence    realtime.PresenceStore // nil: the hub's in-memory one
	brokerState func() (state string, healthy bool)
	closeBroker func() // stops the broker and what belongs to it

	features []*features.Feature
	services runningServices // the features' started services
}

// New builds the server with the features fs (features.Default() is the
// product; cfg must come from config.Load with their extensions) and
// starts their services. It fails if a template does not parse, so a
// broken page is found at start-up rather than on the first request, if
// the broker cannot be reached (with NATS_STARTUP=wait it retries until
// ctx ends), or if a feature's service does not start. The caller must
// call Shutdown, or Close if it never serves.
func New(ctx context.Context, cfg config.Config, fs []*features.Feature, log *slog.Logger, version string) (*App, error) {
	engine := html.NewFileSystem(http.FS(views.FS), ".html")
	if err := engine.Load(); err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}

	a := &App{cfg: cfg, log: log, metrics: metrics.New(), features: fs}
	a.registry = wsconn.NewRegistry(wsconn.RegistryConfig{
		MaxSessions: cfg.MaxConnections, MaxPerPeer: cfg.MaxConnectionsPerIP, Poller: cfg.WS.Poller,
		Observer: a.metrics, Log: log,
	})

	if cfg.TokenSecret != "" {
		verify, err := realtime.TokenVerifierHS256([]byte(cfg.TokenSecret))
		if err != nil {
			return nil, fmt.Errorf("token verifier: %w", err)
		}
		a.verify = verify
	}
	if err := a.startBroker(ctx); err != nil {
		return nil, err
	}
	hub, err := realtime.NewHub(realtime.HubConfig{
		Namespaces: cfg.Namespaces, Broker: a.broker, Presence: a.presence, VerifyToken: a.verify, Logger: log,
		GuestNamePrefix: cfg.GuestNamePrefix, UserNamePrefix: cfg.UserNamePrefix,
		Hooks: backendHooks(cfg.Hooks), HookTimeout: cfg.Hooks.Timeout,
		Control: realtime.ControlConfig{Version: version, FindConn: handlers.RealtimeConns(a.registry)},
	})
	if err != nil {
		a.closeBroker()
		return nil, fmt.Errorf("realtime hub: %w", err)
	}
	a.hub = hub
	a.metrics.WatchHub(hub)
	a.sse, err = handlers.NewSSE(handlers.SSEConfig{
		Hub: hub, Registry: a.registry, Limits: handlers.RealtimeLimits(a.socketLimits()), ClientLimits: a.clientLimits(),
		Origins: handlers.NewOriginPolicy(cfg.AllowedOrigins, len(cfg.TrustedProxies) > 0), Verify: a.verify, Observer: a.metrics,
		Log: log,
	})
	if err != nil {
		a.closeBroker()
		return nil, fmt.Errorf("sse transport: %w", err)
	}
	a.apiKey = handlers.NewAPIKey(cfg.APIKey)
	a.fiber = fiber.New(fiber.Config{
		AppName:               "duplex",
		Views:                 engine,
		ErrorHandler:          a.sse.EmitErrors(a.apiKey.ErrorHandler(errorHandler(log))),
		DisableStartupMessage: true,
		// These bound plain HTTP only; WebSockets have their own deadlines.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
		// No route takes more; see apiKey.HeaderReceived for requests
		// without the key.
		BodyLimit: handlers.MaxAPIBodyBytes,
		// Not ReduceMemoryUsage: it reads each new connection's first byte
		// with a system call of its own (so that an idle keep-alive
		// connection holds no read buffer), one more per WebSocket
		// connect; and a hijacked WebSocket holds none of fasthttp's
		// buffers either way once Serve has returned (the poller reads it).
		// The price: an idle plain-HTTP keep-alive connection keeps its
		// read and write buffers (about 8 KB) until IdleTimeout.
		// The client's address comes from X-Forwarded-For only when the
		// request came from a listed proxy; anyone else could forge it.
		ProxyHeader:             proxyHeader(cfg.TrustedProxies),
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
	})
	// A WebSocket outlives its hijack handler: the session closes the
	// connection itself, and the registry's poller reads it meanwhile.
	a.fiber.Server().KeepHijackedConns = true
	a.fiber.Server().HeaderReceived = handlers.EmitBodyLimit(cfg.WS.MaxMessageBytes, a.apiKey.HeaderReceived)

	useMiddleware(a.fiber, log)
	a.routes(version)
	if err := a.startServices(ctx); err != nil {
		a.closeBroker()
		return nil, err
	}
	return a, nil
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// shutdown and an error if serving failed.
func (a *App) Serve(ln net.Listener) error {
	a.ready.Store(true)
	if err := a.fiber.Listener(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Shutdown stops the server in order: readiness goes false (and stays so
// for the drain delay, while the listener still answers), the listener
// closes, the features' services stop, every WebSocket is sent 1001 after
// its queued messages, whatever is still open when ctx ends is dropped,
// and the broker closes. The HTTP server's own
// shutdown does not see hijacked WebSocket connections, hence the registry.
func (a *App) Shutdown(ctx context.Context) error {
	a.ready.Store(false)
	if d := a.cfg.ShutdownDrainDelay; d > 0 {
		a.log.Info("draining: readiness is false", "delay", d.String())
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	// The HTTP server waits for its requests, and an SSE stream is one
	// until the registry closes it: so its shutdown runs beside the
	// registry's. It closes the listener at once.
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := a.fiber.ShutdownWithContext(ctx); err != nil {
			a.log.Warn("http shutdown", "err", err)
		}
	}()
	// The features' publishers stop before the connections close, so the
	// last thing a client is sent is its 1001, not a half-sent tick.
	a.stopServices(ctx)
	// Publications accepted into a flow-controlled tick go out now, ahead
	// of the close frames.
	a.hub.FlushTicks()
	// So do a large channel's publications still being fanned out.
	if err := a.hub.WaitFanouts(ctx); err != nil {
		a.log.Warn("fan-outs still under way at shutdown", "err", err)
	}
	err := a.registry.Shutdown(ctx)
	<-httpDone
	// Every session has unsubscribed by now; nothing uses the broker.
	a.closeBroker()
	if errors.Is(err, wsconn.ErrShutdownTimeout) {
		a.log.Warn("some clients did not close in time and were dropped")
		return nil
	}
	return err
}

// Close releases what New acquired, for an app that was built but never
// served: the features' services, then the broker. A served app is
// stopped with Shutdown instead.
func (a *App) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	a.stopServices(ctx)
	a.closeBroker()
}

// backendHooks are the HTTP hooks cfg configures (none when it has no URL).
func backendHooks(cfg config.Hooks) realtime.Hooks {
	if !cfg.On() {
		return realtime.Hooks{}
	}
	return realtime.NewHTTPHooks(realtime.HTTPHooksConfig{
		ConnectURL: cfg.ConnectURL, SubscribeURL: cfg.SubscribeURL, PublishURL: cfg.PublishURL,
		Timeout: cfg.Timeout, Secret: []byte(cfg.Secret),
	}).Hooks()
}

func proxyHeader(trusted []string) string {
	if len(trusted) == 0 {
		return ""
	}
	return fiber.HeaderXForwardedFor
}

// IdleReads says how idle WebSockets are read: by one epoll poller with no
// goroutine each (WS_POLLER=auto on Linux), or on a goroutine each.
func (a *App) IdleReads() string {
	if a.registry.Polling() {
		return "epoll poller"
	}
	return "goroutine per connection"
}

// Connections is the number of open WebSocket connections.
func (a *App) Connections() int { return a.registry.Len() }
