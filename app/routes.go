package app

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/duplex/duplex/app/features"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/public"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/wsconn"
)

// routes registers the core's routes (the /realtime socket, the HTTP API,
// health, metrics and static files), then each feature's pages and routes.
func (a *App) routes(version string) {
	lim := a.socketLimits()
	origins := handlers.NewOriginPolicy(a.cfg.AllowedOrigins, len(a.cfg.TrustedProxies) > 0)
	// One budget of new connections per address, WebSocket and SSE alike.
	peerRate := handlers.NewPeerRate(a.cfg.ConnectRatePerIP)
	guard := handlers.UpgradeGuard(a.registry, origins, peerRate, a.metrics)

	// Only /realtime fans shared messages out, so only its sessions may
	// keep the server's deflate context; the other sockets tell their
	// clients they need keep no window (server_no_context_takeover).
	rtLim := handlers.RealtimeLimits(lim)
	rtLim.DeflateContext = a.cfg.WS.CompressionContext
	rt := handlers.WebSocket(a.registry, rtLim, handlers.Realtime(a.hub, a.clientLimits()), a.log)
	identity := handlers.RealtimeIdentity(a.verify)
	if a.cfg.Hooks.ConnectURL != "" {
		identity = handlers.RealtimeHandshake(a.cfg.Hooks.Headers, a.cfg.Hooks.Cookies)
	}
	a.fiber.Get("/realtime", guard, identity, rt, handlers.UpgradeRequired(a.metrics))
	// The SSE transport is read with fetch, which, unlike a WebSocket,
	// needs the server's leave to cross origins.
	cors := handlers.CrossOrigin(origins)
	a.fiber.Get("/realtime/sse", cors, handlers.SSEGuard(a.registry, origins, peerRate, a.metrics), identity, a.sse.Stream)
	a.fiber.Post("/realtime/emit", cors, a.sse.Emit)
	a.fiber.Options("/realtime/emit", cors)

	api := handlers.API{Hub: a.hub, TokenSecret: []byte(a.cfg.TokenSecret), TokenTTL: a.cfg.TokenTTL}
	apiGroup := a.fiber.Group("/api", a.apiKey.Middleware())
	apiGroup.Post("/publish", api.Publish)
	apiGroup.Post("/broadcast", api.Broadcast)
	apiGroup.Get("/channels", api.Channels)
	apiGroup.Get("/presence/:channel", api.Presence)
	apiGroup.Get("/history/:channel", api.History)
	apiGroup.Post("/token", api.Token)
	apiGroup.Post("/disconnect", api.Disconnect)
	apiGroup.Post("/unsubscribe", api.Unsubscribe)
	apiGroup.Get("/info", api.Info)

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

	r := features.Router{
		Router: a.fiber,
		Guard:  guard,
		WebSocket: func(open handlers.Opener) fiber.Handler {
			return handlers.WebSocket(a.registry, lim, open, a.log)
		},
		UpgradeRequired: handlers.UpgradeRequired(a.metrics),
		Page:            page,
		Hub:             a.hub,
		Log:             a.log,
	}
	for _, f := range a.features {
		for _, p := range f.Pages {
			a.fiber.Get(p.Path, page(p))
		}
		if f.Routes != nil {
			f.Routes(r)
		}
	}
}

// socketLimits are the WS_* settings as every connection uses them.
func (a *App) socketLimits() wsconn.Limits {
	return wsconn.Limits{
		MaxMessageBytes: a.cfg.WS.MaxMessageBytes,
		PingInterval:    a.cfg.WS.PingInterval,
		PongTimeout:     a.cfg.WS.PongTimeout,
		WriteTimeout:    a.cfg.WS.WriteTimeout,
		SendQueueBytes:  a.cfg.WS.SendQueueBytes,
		// Offers are accepted with this on; each session that
		// negotiated deflate gets it (handlers.WebSocket). SSE streams
		// have no use for it.
		Deflate:         a.cfg.WS.Compression,
		DeflateMinBytes: a.cfg.WS.CompressionMinBytes,
	}
}

// clientLimits bound each /realtime client, over a socket or SSE.
func (a *App) clientLimits() realtime.ClientLimits {
	return realtime.ClientLimits{
		MaxSubscriptions: a.cfg.MaxSubscriptions,
		// Any one reply fits the send queue with room to spare, so a
		// reply never counts as slow consumption.
		MaxReplyBytes: min(realtime.DefaultMaxReplyBytes, a.cfg.WS.SendQueueBytes/4),
	}
}

func page(p features.Page) fiber.Handler { return handlers.PageWith(p.View, p.Title, p.Data) }
