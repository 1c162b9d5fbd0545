package features

import "github.com/duplex/duplex/handlers"

// Echo is the tutorial's echo: the page at "/" with input#m and a 发送
// button, and its socket. "/" serves the page and the socket both, so the
// tutorial's own client (new WebSocket("ws://host:8088")) works
// unchanged; "/ws" is the socket alone. Files: views/index.html,
// public/js/echo.js, handlers/echo.go (the reply).
func Echo() *Feature {
	page := Page{Path: "/", View: "index", Title: "WebSocket 回声演示"}
	return &Feature{
		Name: "echo",
		Routes: func(r Router) {
			echo := r.WebSocket(handlers.Echo)
			r.Get("/", r.Guard, echo, r.Page(page))
			r.Get("/ws", r.Guard, echo, r.UpgradeRequired)
		},
	}
}
