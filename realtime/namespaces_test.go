package realtime

import "time"

// testNamespaces are the namespaces the server's features bring (see
// app/features), for the tests of the core:
//   - chat: history 100 / 10 min, member presence with join/leave (each
//     200 ms tick's events in one frame, a count alone above 200 members), client
//     publish at 10/s burst 20, disconnect slow consumers;
//   - live: online count only, no join/leave, no history, client publish at
//     3/s burst 5, drop-oldest for slow consumers;
//   - user: only the user with that id subscribes; only the server publishes;
//   - push: anyone subscribes; only the server publishes.
func testNamespaces() Namespaces {
	return Namespaces{
		"chat": {
			HistorySize: 100, HistoryTTL: 10 * time.Minute,
			Presence: PresenceMembers, JoinLeave: true,
			JoinLeaveTick: DefaultJoinLeaveTick, JoinLeaveMaxMembers: DefaultJoinLeaveMaxMembers,
			ClientPublish: true, PublishRate: 10, PublishBurst: 20,
			SlowPolicy: PolicyDisconnect,
		},
		"live": {
			Presence:      PresenceCount,
			ClientPublish: true, PublishRate: 3, PublishBurst: 5,
			SlowPolicy: PolicyDropOldest,
		},
		"user": {
			HistorySize: 20, HistoryTTL: 10 * time.Minute,
			UserChannel: true,
			SlowPolicy:  PolicyDisconnect,
		},
		"push": {
			HistorySize: 20, HistoryTTL: 10 * time.Minute,
			SlowPolicy: PolicyDisconnect,
		},
	}
}
