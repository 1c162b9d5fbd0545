package realtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/realtime/protocol"
)

// A backend failure reaches clients and API callers as a fixed message
// with code unavailable; its text (addresses, subjects, library errors)
// is logged on the server, and the cause stays reachable with errors.Is.
func TestBackendErrorTextStaysOnTheServer(t *testing.T) {
	const secret = "dial tcp 10.9.8.7:4222: connection refused"
	var logs syncBuf
	spy := newSpyBroker()
	h := newTestHub(t, HubConfig{Broker: spy, Logger: logs.logger()})
	c, s := newClient(t, h, Identity{Name: "李旺"})
	spy.mu.Lock()
	spy.fail = fmt.Errorf("nats: publish to chat:a: %w: %s", ErrBrokerUnavailable, secret)
	spy.mu.Unlock()

	for _, cmd := range []string{
		`{"id":1,"op":"publish","channel":"chat:a","data":{"t":1}}`,
		`{"id":2,"op":"subscribe","channel":"chat:a"}`,
	} {
		msgs, _ := send(t, c, s, cmd)
		if len(msgs) != 1 || msgs[0].Error == nil {
			t.Fatalf("%s: want one error reply, got %+v", cmd, msgs)
		}
		if e := msgs[0].Error; e.Code != protocol.CodeUnavailable || strings.Contains(e.Message, "10.9.8.7") || strings.Contains(e.Message, "nats") {
			t.Errorf("%s: client was told %q (%s)", cmd, e.Message, e.Code)
		}
	}

	_, err := h.Publish(context.Background(), "chat:a", []byte(`1`), nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable || strings.Contains(pe.Message, "10.9.8.7") {
		t.Errorf("API caller's coded error: %#v", pe)
	}
	if !errors.Is(err, ErrBrokerUnavailable) {
		t.Errorf("the cause is lost past the hub: %v", err)
	}
	if !strings.Contains(logs.String(), "10.9.8.7") {
		t.Errorf("the cause was not logged:\n%s", logs.String())
	}
}
