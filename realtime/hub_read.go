package realtime

import (
	"context"
	"slices"

	"github.com/duplex/duplex/realtime/protocol"
)

// The hub's reads: what is active here, who is in a channel, what it
// keeps. They create nothing in the hub, and the in-memory broker and
// presence store keep nothing for them either: reads of channels nobody
// uses must not cost memory.

// ChannelInfo is one active channel and its local subscriber count.
type ChannelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// Channels lists the channels with local subscribers, sorted by name.
func (h *Hub) Channels() []ChannelInfo {
	var out []ChannelInfo
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for name, hc := range sh.channels {
			if n := hc.count.Load(); n > 0 {
				out = append(out, ChannelInfo{Channel: name, Subscribers: int(n)})
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int {
		if a.Channel < b.Channel {
			return -1
		}
		if a.Channel > b.Channel {
			return 1
		}
		return 0
	})
	return out
}

// Subscribers is the number of local subscribers of channel.
func (h *Hub) Subscribers(channel string) int {
	if hc := h.lookup(channel); hc != nil {
		return int(hc.count.Load())
	}
	return 0
}

// Presence returns who is in channel (all nodes). The server always gets
// the member list where one is kept; namespaces with count-only presence
// return only Count.
//
// Errors: bad_channel, not_found (presence off), unavailable.
func (h *Hub) Presence(ctx context.Context, channel string) (protocol.PresenceResult, error) {
	_, o, err := h.ns.Lookup(channel)
	if err != nil {
		return protocol.PresenceResult{}, err
	}
	switch o.Presence {
	case PresenceOff:
		return protocol.PresenceResult{}, protocol.Errorf(protocol.CodeNotFound, "presence is off in this namespace")
	case PresenceCount:
		n, err := h.presence.Count(ctx, channel)
		if err != nil {
			return protocol.PresenceResult{}, h.unavailable("presence", channel, err)
		}
		return protocol.PresenceResult{Count: n}, nil
	}
	m, err := h.presence.Get(ctx, channel)
	if err != nil {
		return protocol.PresenceResult{}, h.unavailable("presence", channel, err)
	}
	return protocol.PresenceResult{Count: len(m), Clients: m}, nil
}

// History returns up to limit kept publications of channel in offset
// order: the latest ones, or with since the ones after it (since.Epoch may
// be empty to match any epoch). limit <= 0 or above the namespace's
// history size means the history size.
//
// Errors: bad_channel, not_found (history off, or since no longer kept or
// of another epoch), unavailable.
func (h *Hub) History(ctx context.Context, channel string, since *StreamPosition, limit int) (protocol.HistoryResult, error) {
	_, o, err := h.ns.Lookup(channel)
	if err != nil {
		return protocol.HistoryResult{}, err
	}
	if o.HistorySize == 0 {
		return protocol.HistoryResult{}, protocol.Errorf(protocol.CodeNotFound, "history is off in this namespace")
	}
	if limit <= 0 || limit > o.HistorySize {
		limit = o.HistorySize
	}
	res, err := h.broker.History(ctx, channel, HistoryRequest{Since: since, Limit: limit})
	if err != nil {
		return protocol.HistoryResult{}, h.unavailable("history", channel, err)
	}
	if since != nil && !res.Recovered && len(res.Publications) == 0 {
		return protocol.HistoryResult{}, protocol.Errorf(protocol.CodeNotFound, "position is no longer in history (reload)")
	}
	pubs := res.Publications
	if pubs == nil {
		pubs = []Publication{}
	}
	return protocol.HistoryResult{Publications: pubs, Offset: res.Position.Offset, Epoch: res.Position.Epoch}, nil
}
