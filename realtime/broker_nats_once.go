package realtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishOutcomeUnknown tells a JetStream publish that may have been
// stored (it was sent, and no answer came: a timeout, a connection lost
// while waiting) from one that surely was not: the server refused it, no
// stream listens on the subject, or it could not be sent at all. When in
// doubt it says unknown, since a client told "not stored" retries without
// fear of a duplicate.
func publishOutcomeUnknown(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject):
		return false
	}
	return true
}

// storedPosition is the position of the publication stored at seq: what
// a repeated idempotency key answers. It is zero when the stream no longer
// holds that message (a namespace that keeps only its last one); the
// repeat still published nothing.
func (b *NATSBroker) storedPosition(ctx context.Context, st *natsStream, seq uint64) (StreamPosition, error) {
	m, err := st.st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StreamPosition{}, nil
	}
	if err != nil {
		// The repeat was answered (nothing new is stored) but its first
		// position cannot be read now: the caller may ask again.
		return StreamPosition{}, fmt.Errorf("nats: reading the first publication of a repeated key: %w", err)
	}
	h := parseStored(m.Header)
	return StreamPosition{Offset: h.offset, Epoch: h.epoch}, nil
}
