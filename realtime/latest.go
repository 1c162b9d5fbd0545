package realtime

import (
	"context"

	"github.com/duplex/duplex/realtime/protocol"
)

// Latest on subscribe: the reply carries the newest n kept publications,
// so that a page (a stock ticker) shows the current value at once. It is
// read the way recovery is: the subscription is registered and parks live
// pushes first, then history is read, and the reply with its position is
// enqueued before the parked pushes after that position. The reply covers
// the stream up to the position and the pushes everything after it, so
// the two meet with no gap and no duplicate.

// The refusals of latest. Their messages are fixed: nothing about the
// server's configuration or state beyond the rule itself.
var (
	errLatestTooFew    = protocol.Errorf(protocol.CodeBadRequest, "latest must be >= 1")
	errLatestNoHistory = protocol.Errorf(protocol.CodeBadRequest, "latest needs history, which this namespace does not keep")
	errLatestTooMany   = protocol.Errorf(protocol.CodeBadRequest, "latest is larger than the namespace's history size")
)

// checkLatest validates SubscribeOptions.Latest against the channel's
// namespace: 0 (not asked), or 1 to the namespace's history size.
func checkLatest(latest int, o NamespaceOptions) error {
	switch {
	case latest == 0:
		return nil
	case latest < 0:
		return errLatestTooFew
	case o.HistorySize == 0:
		return errLatestNoHistory
	case latest > o.HistorySize:
		return errLatestTooMany
	}
	return nil
}

// subscribeHistory reads what a subscribe reply covers, once the
// subscription parks live pushes: the channel's position and, as opts
// asks, the publications missed since opts.Recover or the newest
// opts.Latest. With both, the latest ones are read only when the gap
// cannot be recovered; that second read's position is the reply's (the
// later of the two), so the parked pushes still start right after it.
func (h *Hub) subscribeHistory(ctx context.Context, channel string, opts SubscribeOptions) (HistoryResult, error) {
	if opts.Recover != nil {
		hist, err := h.broker.History(ctx, channel, HistoryRequest{Since: opts.Recover, Limit: h.maxRecover})
		if err != nil || hist.Recovered || opts.Latest == 0 {
			return hist, err
		}
	}
	// Limit 0 (no latest asked) reads the position only.
	return h.broker.History(ctx, channel, HistoryRequest{Limit: opts.Latest})
}

// newestThatFit returns the newest of pubs (oldest first, ending at the
// reply's position) that a subscribe reply with latest holds: at most n,
// and no more than fit in maxBytes (but at least one). The older ones
// left out can be read with history. It is a pure function.
func newestThatFit(pubs []Publication, n int, epoch string, maxBytes int) []Publication {
	if len(pubs) > n {
		pubs = pubs[len(pubs)-n:]
	}
	return pubs[len(pubs)-fitNewestPublications(pubs, epoch, maxBytes):]
}
