package features

import (
	"time"

	"github.com/duplex/duplex/realtime"
)

// Chat is the chat rooms: page /chat (views/chat.html, public/js/chat.js)
// on channels chat:<room>, which keep the last 100 messages for 10
// minutes, list their members with join and leave events (each 200 ms
// tick's events in one frame, a count alone above 200 members), let
// clients publish at 10/s (burst 20), and disconnect a reader too slow for
// them.
func Chat() *Feature {
	return &Feature{
		Name: "chat",
		Namespaces: realtime.Namespaces{"chat": {
			HistorySize: 100, HistoryTTL: 10 * time.Minute,
			Presence: realtime.PresenceMembers, JoinLeave: true,
			JoinLeaveTick: realtime.DefaultJoinLeaveTick, JoinLeaveMaxMembers: realtime.DefaultJoinLeaveMaxMembers,
			ClientPublish: true, PublishRate: 10, PublishBurst: 20,
			SlowPolicy: realtime.PolicyDisconnect,
		}},
		Pages: []Page{{Path: "/chat", View: "chat", Title: "聊天室"}},
	}
}
