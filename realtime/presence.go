package realtime

import "context"

// PresenceStore keeps who is subscribed to each channel, across nodes in
// a multi-node setup. Entries are keyed by client id (ClientInfo.Client).
//
// Concurrency: every method may be called from any goroutine. Maps
// returned by Get belong to the caller.
type PresenceStore interface {
	// Add records info under info.Client in channel (replacing any entry).
	Add(ctx context.Context, channel string, info ClientInfo) error
	// Remove deletes client's entry; removing a missing entry is not an error.
	Remove(ctx context.Context, channel, client string) error
	// Get returns every entry of channel.
	Get(ctx context.Context, channel string) (map[string]ClientInfo, error)
	// Count returns the number of entries of channel.
	Count(ctx context.Context, channel string) (int, error)
}
