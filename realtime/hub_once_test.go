package realtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/realtime/protocol"
)

// A publish the broker got but did not confirm is outcome_unknown, to the
// API and to a connected client alike, with a fixed message (the cause
// stays in the log); any other broker failure is unavailable: not stored.
func TestHubTellsNotStoredFromOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	b := newSpyBroker()
	h := newTestHub(t, HubConfig{Broker: b})
	for _, tc := range []struct {
		fail error
		code protocol.Code
	}{
		{fmt.Errorf("nats: publish to chat:a: %w: %w", ErrOutcomeUnknown, context.DeadlineExceeded), protocol.CodeOutcomeUnknown},
		{fmt.Errorf("nats: reading chat:a: %w", ErrBrokerUnavailable), protocol.CodeUnavailable},
	} {
		b.mu.Lock()
		b.fail = tc.fail
		b.mu.Unlock()
		_, err := h.PublishOnce(ctx, "chat:a", []byte(`1`), nil, "k")
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Fatalf("broker error %v: hub error %v, want code %s", tc.fail, err, tc.code)
		}
		if tc.code == protocol.CodeOutcomeUnknown && strings.Contains(pe.Message, "deadline") {
			t.Errorf("client message leaks the cause: %q", pe.Message)
		}
		if _, err := h.Broadcast(ctx, []string{"chat:a"}, []byte(`1`), nil); !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("broadcast: %v, want code %s", err, tc.code)
		}
	}
}
