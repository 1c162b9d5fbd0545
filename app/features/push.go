package features

import (
	"time"

	"github.com/duplex/duplex/realtime"
)

// Push is server push through the HTTP API: page /push (views/push.html,
// public/js/push.js) shows announcements from push:<topic>, which anyone
// may read, and a signed-in user's private messages from user:<id>, which
// only that user may read. Only the server publishes to either; each
// keeps its last 20 for 10 minutes, so a page that reconnects recovers
// what it missed.
func Push() *Feature {
	return &Feature{
		Name: "push",
		Namespaces: realtime.Namespaces{
			"push": {
				HistorySize: 20, HistoryTTL: 10 * time.Minute,
				SlowPolicy: realtime.PolicyDisconnect,
			},
			"user": {
				HistorySize: 20, HistoryTTL: 10 * time.Minute,
				UserChannel: true,
				SlowPolicy:  realtime.PolicyDisconnect,
			},
		},
		Pages: []Page{{Path: "/push", View: "push", Title: "消息推送"}},
	}
}
