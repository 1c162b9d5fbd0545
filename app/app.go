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
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/template/html/v2"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/metrics"
	"github.com/duplex/duplex/public"
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

	broker      realtime.Broker
	presence    realtime.PresenceStore // nil: the hub's in-memory one
	brokerState func() (state string, healthy bool)
	closeBroker func() // stops the broker and what belongs to it
}

// New builds the server. It fails if a template does not parse, so a
// broken page is found at start-up rather than on the first request, and
// if the broker cannot be reached (with NATS_STARTUP=wait it retries until
// ctx ends). The caller must call Shutdown, or Close if it never serves.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, version string) (*App, error) {
	engine := html.NewFileSystem(http.FS(views.FS), ".html")
	if err := engine.Load(); err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}

	a := &App{cfg: cfg, log: log, metrics: metrics.New()}
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
	})
	if err != nil {
		a.closeBroker()
		return nil, fmt.Errorf("realtime hub: %w", err)
	}
	a.hub = hub
	a.metrics.WatchHub(hub)
	a.apiKey = handlers.NewAPIKey(cfg.APIKey)
	a.fiber = fiber.New(fiber.Config{
		AppName:               "duplex",
		Views:                 engine,
		ErrorHandler:          a.apiKey.ErrorHandler(errorHandler(log)),
		DisableStartupMessage: true,
		// These bound plain HTTP only; WebSockets have their own deadlines.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
		// No route takes more; see apiKey.HeaderReceived for requests
		// without the key.
		BodyLimit: handlers.MaxAPIBodyBytes,
		// Release request read buffers between requests instead of keeping
		// them per connection: a hijacked WebSocket would otherwise pin
		// one for its whole life (about 3.5 KB per idle connection).
		ReduceMemoryUsage: true,
		// The client's address comes from X-Forwarded-For only when the
		// request came from a listed proxy; anyone else could forge it.
		ProxyHeader:             proxyHeader(cfg.TrustedProxies),
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
	})
	// A WebSocket outlives its hijack handler: the session closes the
	// connection itself, and the registry's poller reads it meanwhile.
	a.fiber.Server().KeepHijackedConns = true
	a.fiber.Server().HeaderReceived = a.apiKey.HeaderReceived

	useMiddleware(a.fiber, log)
	a.routes(version)
	return a, nil
}

func (a *App) routes(version string) {
	lim := wsconn.Limits{
		MaxMessageBytes: a.cfg.WS.MaxMessageBytes,
		PingInterval:    a.cfg.WS.PingInterval,
		PongTimeout:     a.cfg.WS.PongTimeout,
		WriteTimeout:    a.cfg.WS.WriteTimeout,
		SendQueueBytes:  a.cfg.WS.SendQueueBytes,
	}
	guard := handlers.UpgradeGuard(a.registry, handlers.NewOriginPolicy(a.cfg.AllowedOrigins, len(a.cfg.TrustedProxies) > 0),
		handlers.NewPeerRate(a.cfg.ConnectRatePerIP), a.metrics)
	echo := handlers.WebSocket(a.registry, lim, handlers.Echo, a.log)

	// "/" serves the page, and the echo socket too, so the tutorial's own
	// client (new WebSocket("ws://host:8088")) works unchanged.
	a.fiber.Get("/", guard, echo, handlers.Page("index", "WebSocket 回声演示"))
	a.fiber.Get("/ws", guard, echo, handlers.UpgradeRequired(a.metrics))
	rt := handlers.WebSocket(a.registry, handlers.RealtimeLimits(lim),
		handlers.Realtime(a.hub, realtime.ClientLimits{
			MaxSubscriptions: a.cfg.MaxSubscriptions,
			// Any one reply fits the send queue with room to spare, so a
			// reply never counts as slow consumption.
			MaxReplyBytes: min(realtime.DefaultMaxReplyBytes, a.cfg.WS.SendQueueBytes/4),
		}), a.log)
	a.fiber.Get("/realtime", guard, handlers.RealtimeIdentity(a.verify), rt, handlers.UpgradeRequired(a.metrics))

	api := handlers.API{Hub: a.hub, TokenSecret: []byte(a.cfg.TokenSecret), TokenTTL: a.cfg.TokenTTL}
	apiGroup := a.fiber.Group("/api", a.apiKey.Middleware())
	apiGroup.Post("/publish", api.Publish)
	apiGroup.Post("/broadcast", api.Broadcast)
	apiGroup.Get("/channels", api.Channels)
	apiGroup.Get("/presence/:channel", api.Presence)
	apiGroup.Get("/history/:channel", api.History)
	apiGroup.Post("/token", api.Token)

	a.fiber.Get("/chat", handlers.Page("chat", "聊天室"))
	a.fiber.Get("/live", handlers.Page("live", "直播弹幕"))
	a.fiber.Get("/push", handlers.Page("push", "消息推送"))

	health := handlers.Health{
		Version:     version,
		Started:     time.Now(),
		Connections: a.registry.Len,
		Ready:       a.ready.Load,
		Broker:      a.brokerState,
	}
	a.fiber.Get("/healthz", health.Healthz)
	a.fiber.Get("/livez", health.Livez)
	a.fiber.Get("/readyz", health.Readyz)
	a.fiber.Get("/metrics", adaptor.HTTPHandler(a.metrics.Handler()))
	a.fiber.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(public.FS), MaxAge: 3600}))
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
// closes, every WebSocket is sent 1001 after its queued messages, and
// whatever is still open when ctx ends is dropped. The HTTP server's own
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
	if err := a.fiber.ShutdownWithContext(ctx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	err := a.registry.Shutdown(ctx)
	// Every session has unsubscribed by now; nothing uses the broker.
	a.closeBroker()
	if errors.Is(err, wsconn.ErrShutdownTimeout) {
		a.log.Warn("some clients did not close in time and were dropped")
		return nil
	}
	return err
}

// Close releases what New acquired, for an app that was built but never
// served; a served app is stopped with Shutdown instead.
func (a *App) Close() { a.closeBroker() }

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
