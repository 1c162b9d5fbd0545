package realtime

import (
	"context"
	"errors"

	"github.com/duplex/duplex/realtime/protocol"
)

// Published is the outcome of one keyed publish: the publication's
// position, and whether the key had been used already (nothing new was
// published; the position is the first publication's, zero when the
// broker no longer keeps it). A plain value, safe to copy and share.
type Published struct {
	StreamPosition
	Replayed bool `json:"replayed,omitempty"`
}

// outcomeUnknownMessage is what a client is told when a publish may or may
// not have been stored; the cause goes to the log.
const outcomeUnknownMessage = "the publish was not confirmed in time and may have been stored: retry with the same idempotency key"

// PublishOnce is Publish with an idempotency key (see Broker.PublishOnce):
// a repeat of key on channel within the broker's window publishes nothing
// and returns the first publication's position, Replayed. An empty key
// makes it Publish. Safe for concurrent use, like every Hub method.
//
// Errors: those of Publish, where unavailable now means "not stored",
// and outcome_unknown for a publish the broker received but did not
// confirm (retry it with the same key).
func (h *Hub) PublishOnce(ctx context.Context, channel string, data []byte, info *ClientInfo, key string) (Published, error) {
	return h.PublishWith(ctx, channel, data, info, PublishDetails{Key: key})
}

// BroadcastOnce is Broadcast with an idempotency key, used on every
// channel: a retried broadcast publishes only to the channels the first
// attempt did not reach. Safe for concurrent use.
func (h *Hub) BroadcastOnce(ctx context.Context, channels []string, data []byte, info *ClientInfo, key string) ([]Published, error) {
	if len(channels) == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "no channels")
	}
	opts := make([]NamespaceOptions, len(channels))
	for i, name := range channels {
		_, o, err := h.ns.Lookup(name)
		if err != nil {
			return nil, err
		}
		opts[i] = o
	}
	compact, err := compactJSON(data)
	if err != nil {
		return nil, err
	}
	out := make([]Published, 0, len(channels))
	for i, name := range channels {
		pos, replayed, err := h.publishOnce(ctx, name, opts[i], compact, info, key)
		if err != nil {
			return out, err
		}
		out = append(out, Published{pos, replayed})
	}
	return out, nil
}

// PublishDetails are the details of one PublishWith. A plain value.
type PublishDetails struct {
	// Key is an idempotency key, as for PublishOnce; empty: none.
	Key string
	// Priority marks the publication (Publication.Priority, carried to
	// every node): flow control (NamespaceOptions.FlowTick) never samples
	// it out. Meant for the server's rare highlighted messages.
	Priority bool
}

// PublishWith is PublishOnce with the details of req. Safe for concurrent
// use. Errors: those of PublishOnce.
func (h *Hub) PublishWith(ctx context.Context, channel string, data []byte, info *ClientInfo, req PublishDetails) (Published, error) {
	_, nsOpts, err := h.ns.Lookup(channel)
	if err != nil {
		return Published{}, err
	}
	compact, err := compactJSON(data)
	if err != nil {
		return Published{}, err
	}
	opts := PublishOptions{HistorySize: nsOpts.HistorySize, HistoryTTL: nsOpts.HistoryTTL, Priority: req.Priority}
	pos, replayed, err := h.publishWith(ctx, channel, compact, info, opts, req.Key)
	return Published{pos, replayed}, err
}

// publishOnce sends already compacted data, keyed when key is set.
func (h *Hub) publishOnce(ctx context.Context, channel string, nsOpts NamespaceOptions, data []byte, info *ClientInfo, key string) (StreamPosition, bool, error) {
	return h.publishWith(ctx, channel, data, info,
		PublishOptions{HistorySize: nsOpts.HistorySize, HistoryTTL: nsOpts.HistoryTTL}, key)
}

// publishWith sends already compacted data with the broker options opts.
func (h *Hub) publishWith(ctx context.Context, channel string, data []byte, info *ClientInfo, opts PublishOptions, key string) (StreamPosition, bool, error) {
	pos, replayed, err := h.broker.PublishOnce(ctx, channel, data, info, opts, key)
	if errors.Is(err, ErrOutcomeUnknown) {
		h.log.Warn("publish not confirmed by the broker; it may have been stored", "channel", channel, "err", err)
		return StreamPosition{}, false, &backendError{
			public: &Error{Code: protocol.CodeOutcomeUnknown, Message: outcomeUnknownMessage},
			cause:  err,
		}
	}
	if err != nil {
		return StreamPosition{}, false, h.unavailable("publish", channel, err)
	}
	return pos, replayed, nil
}
