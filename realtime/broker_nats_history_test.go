package realtime

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplex/duplex/internal/natstest"
)

// When the marker that gives a new channel its epoch cannot be stored,
// History reports why, not the "message not found" of the read before.
func TestNATSBrokerHistoryReportsMarkerFailure(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	prefix := fmt.Sprintf("mark%d", testPrefixes.Add(1))
	b := newTestNATSBroker(t, n, func(o *NATSOptions) { o.Prefix = prefix })
	// A stream that refuses every message with headers: the marker too.
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: b.streamName("chat"), Subjects: []string{prefix + ".ch.chat.>"}, MaxMsgSize: 8, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	_, err := b.History(ctx, "chat:new", HistoryRequest{})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamMessageExceedsMaximum || errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("history error %v, want the marker's cause", err)
	}
}
