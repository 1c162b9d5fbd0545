package features

import "github.com/duplex/duplex/realtime"

// Live is the live stream's bullet comments (弹幕): page /live
// (views/live.html, public/js/live.js) on channels live:<room>, which
// count their viewers (no member list, no join or leave events), keep no
// history, let viewers comment at 3/s (burst 5), and drop a slow viewer's
// oldest comments rather than disconnect it.
func Live() *Feature {
	return &Feature{
		Name: "live",
		Namespaces: realtime.Namespaces{"live": {
			Presence:      realtime.PresenceCount,
			ClientPublish: true, PublishRate: 3, PublishBurst: 5,
			SlowPolicy: realtime.PolicyDropOldest,
		}},
		Pages: []Page{{Path: "/live", View: "live", Title: "直播弹幕"}},
	}
}
