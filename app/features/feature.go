// Package features holds duplex's product: each feature (the tutorial's
// echo, chat rooms, live 弹幕, push, the stock ticker, sports scores) is one Feature
// value that declares its routes, its pages, its namespaces with their
// options, its settings and its background services. The app registers a
// list of them (Default) and owns their lifecycle; the cores (wsconn,
// realtime) know none of them.
//
// A feature's files are named after it in every folder: for the ticker,
// app/features/ticker*.go (declaration, services, Go tests),
// app/ticker_test.go, views/ticker.html, public/js/ticker.js,
// public/css/ticker.css and e2e/ticker_browser_test.go. What features
// share has its own file here (service_loop.go: a publisher's goroutine
// and its stop; list_setting.go: "a:b,c:d" settings and duration bounds). docs/extending.md
// walks through adding one.
package features

import (
	"context"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/realtime"
)

// Feature is one unit of the product. Build it with its constructor
// (Chat(), Ticker(), …): the settings bind the feature's own variables, so
// one value serves one server. After config.Load has set the settings, the
// app only reads a Feature, from its start-up goroutine.
type Feature struct {
	// Name identifies the feature in logs and errors, and names its files.
	Name string
	// Namespaces are the channel namespaces the feature brings, with
	// their default options. NAMESPACES may override any option.
	Namespaces realtime.Namespaces
	// Settings are the feature's own settings (config.BoolSetting and the
	// like), loaded, listed and validated with the core's.
	Settings []config.Setting
	// Pages are served with the site's layout.
	Pages []Page
	// Routes, when set, adds the feature's other routes.
	Routes func(r Router)
	// Services run in the background while the server serves: started
	// once the hub exists and before the listener opens, stopped at
	// shutdown before the connections and the broker close.
	Services []Service
}

// Page is a server-rendered page: views/<View>.html inside the layout.
type Page struct {
	Path  string // for example "/ticker"
	View  string // the template's name, for example "ticker"
	Title string // the <title>, before " · duplex"
	// Data, when set, gives values the page's script reads from its
	// <body>'s data-* attributes (DuplexUI.data in public/js/ui.js); see
	// handlers.PageData.
	Data handlers.PageData
}

// Service is a feature's background work, for example a publisher. Start
// is called once, from the app's start-up goroutine, and must return once
// the service runs (ctx bounds the start only, not the service's life); an
// error stops the server from starting. Stop is called once, after a
// successful Start, and returns when the service has stopped or ctx ends;
// it must make the service's goroutines return.
type Service interface {
	Start(ctx context.Context, hub *realtime.Hub) error
	Stop(ctx context.Context) error
}

// Router is what a feature's Routes may use: the app's router, and the
// pieces a WebSocket route is made of.
type Router struct {
	fiber.Router
	// Guard answers the upgrades the server refuses (bad handshake,
	// origin, connection caps, per-address rate) before a socket handler
	// runs; put it first on every WebSocket route.
	Guard fiber.Handler
	// WebSocket upgrades a request to a session of open; a request that
	// is not an upgrade goes on to the next handler.
	WebSocket func(open handlers.Opener) fiber.Handler
	// UpgradeRequired ends a plain request on a socket-only route (426).
	UpgradeRequired fiber.Handler
	// Page renders a page, as Pages would.
	Page func(p Page) fiber.Handler
	// Hub is the channels' hub, for handlers that publish or read.
	Hub *realtime.Hub
	// Log is the server's logger.
	Log *slog.Logger
}

// ConfigExtensions are what fs add to the configuration, one extension
// each: their namespaces and settings, for config.Load.
func ConfigExtensions(fs []*Feature) []config.Extension {
	out := make([]config.Extension, len(fs))
	for i, f := range fs {
		out[i] = config.Extension{Name: f.Name, Namespaces: f.Namespaces, Settings: f.Settings}
	}
	return out
}
