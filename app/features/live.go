package features

import (
	"time"

	"github.com/duplex/duplex/realtime"
)

// The live rooms' flow control: 10 ticks a second, at most 5 comments a
// tick (50 a second, what a screen of bullets can show) besides priority
// ones.
const (
	LiveFlowTick   = 100 * time.Millisecond
	LiveFlowBudget = 5
)

// Live is the live stream's bullet comments (弹幕): page /live
// (views/live.html, public/js/live.js) on channels live:<room>, which
// count their viewers (no member list, no join or leave events), keep no
// history, and let viewers comment at 3/s (burst 5). A flooded room
// holds: comments go out as one frame per LiveFlowTick, sampled fairly
// down to LiveFlowBudget a tick (priority ones, from the HTTP API, always
// shown; a sender always sees their own), and a slow viewer skips ticks
// rather than being disconnected.
func Live() *Feature {
	return &Feature{
		Name: "live",
		Namespaces: realtime.Namespaces{"live": {
			Presence:      realtime.PresenceCount,
			ClientPublish: true, PublishRate: 3, PublishBurst: 5,
			SlowPolicy: realtime.PolicyDropOldest,
			FlowTick:   LiveFlowTick, FlowBudget: LiveFlowBudget,
		}},
		Pages: []Page{{Path: "/live", View: "live", Title: "直播弹幕"}},
	}
}
