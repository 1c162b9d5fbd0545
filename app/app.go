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
	metrics  *metrics.Metrics
	ready    atomic.Bool
}

// New builds the server. It fails if a template does not parse, so a
// broken page is found at start-up rather than on the first request.
func New(cfg config.Config, log *slog.Logger, version string) (*App, error) {
	engine := html.NewFileSystem(http.FS(views.FS), ".html")
	if err := engine.Load(); err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}

	a := &App{cfg: cfg, log: log, metrics: metrics.New()}
	a.registry = wsconn.NewRegistry(cfg.MaxConnections, a.metrics, log)
	a.fiber = fiber.New(fiber.Config{
		AppName:               "duplex",
		Views:                 engine,
		ErrorHandler:          errorHandler(log),
		DisableStartupMessage: true,
		// These bound plain HTTP only; WebSockets have their own deadlines.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  60 * time.Second,
		BodyLimit:    1 << 20,
	})

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
	guard := handlers.UpgradeGuard(a.registry, handlers.NewOriginPolicy(a.cfg.AllowedOrigins), a.metrics)
	echo := handlers.WebSocket(a.registry, lim, handlers.Echo, a.metrics, a.log)

	// "/" serves the page, and the echo socket too, so the tutorial's own
	// client (new WebSocket("ws://host:8088")) works unchanged.
	a.fiber.Get("/", guard, echo, handlers.Page("index", "WebSocket 回声演示"))
	a.fiber.Get("/ws", guard, echo, handlers.UpgradeRequired(a.metrics))
	a.fiber.Get("/chat", handlers.Page("chat", "聊天室"))
	a.fiber.Get("/live", handlers.Page("live", "直播弹幕"))
	a.fiber.Get("/push", handlers.Page("push", "消息推送"))

	health := handlers.Health{
		Version:     version,
		Started:     time.Now(),
		Connections: a.registry.Len,
		Ready:       a.ready.Load,
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
	if errors.Is(err, wsconn.ErrShutdownTimeout) {
		a.log.Warn("some clients did not close in time and were dropped")
		return nil
	}
	return err
}

// Connections is the number of open WebSocket connections.
func (a *App) Connections() int { return a.registry.Len() }
