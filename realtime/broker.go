package realtime

import (
	"context"
	"errors"
	"time"
)

// ErrOutcomeUnknown is returned (wrapped) by a publish that reached the
// broker but was not confirmed, such as a JetStream publish whose ack
// timed out: it may or may not have been stored, and delivered. Any other
// publish error means it was not stored. A retry with the same
// idempotency key (PublishOnce) cannot make a duplicate.
var ErrOutcomeUnknown = errors.New("publish outcome unknown")

// IdempotencyWindow is how long a broker remembers an idempotency key
// (the memory broker by default, and JetStream's duplicate window).
const IdempotencyWindow = 2 * time.Minute

// BrokerHandler receives what a Broker delivers to this node: publications
// and join/leave events for channels the node subscribed to.
//
// Concurrency: the broker calls it from its own goroutines. For any one
// channel the calls are sequential and publications arrive in offset
// order; calls for different channels may run in parallel. The handler
// must not block on anything but the channel's own delivery: the Hub
// enqueues, except that a publication to a large channel (fanoutAsyncMin
// subscribers) waits while the channel's previous fan-out runs, up to one
// fan-out, so that publications do not age in the server unseen by their
// publisher. It must not call back into the broker for the same channel.
type BrokerHandler interface {
	HandlePublication(channel string, pub Publication)
	HandleJoin(channel string, info ClientInfo)
	HandleLeave(channel string, info ClientInfo)
}

// PublishOptions carry the namespace's history settings to the broker.
type PublishOptions struct {
	// HistorySize is how many publications to keep (0: none, but the
	// offset still advances).
	HistorySize int
	// HistoryTTL is how long each kept publication lives.
	HistoryTTL time.Duration
	// Priority is stored with the publication and delivered with it
	// (Publication.Priority), to every node.
	Priority bool
}

// HistoryRequest selects publications from a channel's stream.
type HistoryRequest struct {
	// Since, when set, asks for the publications after that position (the
	// recovery case); when nil, for the latest ones. An empty Since.Epoch
	// matches any epoch (the HTTP API's ?since=offset).
	Since *StreamPosition
	// Limit caps the publications returned (0: none, only the position;
	// <0: all kept). With Since, the oldest after it come first; without,
	// the newest Limit, still in offset order.
	Limit int
}

// HistoryResult is a channel's current position and the selected
// publications in offset order.
type HistoryResult struct {
	Position     StreamPosition
	Publications []Publication
	// Recovered is meaningful only with Since: true when the epoch matches
	// and every publication after Since is still kept and was returned
	// (so the gap is closed exactly); false when the gap is older than
	// what is kept, exceeds Limit, or the epoch differs.
	Recovered bool
}

// Broker is the boundary between the Hub and whatever carries
// publications between nodes and keeps history: MemoryBroker for one
// node, NATS for several (issue 4). It assigns each publication of a
// channel the next offset of that channel's stream.
//
// Concurrency: every method may be called from any goroutine. SetHandler
// is called once, before any other method.
type Broker interface {
	// SetHandler sets where this node's publications and events go.
	SetHandler(h BrokerHandler)
	// Publish appends data (compact JSON) to the channel's stream and
	// delivers it to every node subscribed to the channel (this one
	// included), returning its position.
	Publish(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions) (StreamPosition, error)
	// PublishOnce is Publish with an idempotency key, which names one
	// publication of the channel: the first publish with the key is
	// stored as Publish stores it; a repeat within the broker's window
	// (IdempotencyWindow) stores and delivers nothing and returns the
	// first one's position with replayed set, whatever its data. The
	// position is zero when the broker no longer keeps that publication
	// (a namespace without history, after later publications). An empty
	// key makes it Publish.
	PublishOnce(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions, key string) (pos StreamPosition, replayed bool, err error)
	// PublishJoin and PublishLeave deliver a presence event to every
	// subscribed node, in order with the channel's publications.
	PublishJoin(ctx context.Context, channel string, info ClientInfo) error
	PublishLeave(ctx context.Context, channel string, info ClientInfo) error
	// Subscribe registers this node's interest in a channel; the Hub calls
	// it when the first local subscriber arrives. Unsubscribe is called
	// when the last one leaves. Calls for one channel never overlap.
	Subscribe(ctx context.Context, channel string) error
	Unsubscribe(ctx context.Context, channel string) error
	// History returns the channel's position and kept publications.
	History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error)
}
