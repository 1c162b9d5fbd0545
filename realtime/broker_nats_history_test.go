package realtime

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplex/duplex/internal/natstest"
)

// A new channel's position needs no write: on a stream that refuses every
// message with headers (as the marker of older versions was), History
// still answers offset 0 and an epoch. When the epoch cannot be derived
// (the stream's info cannot be read), History reports why, not the
// "message not found" of the read before.
func TestNATSBrokerHistoryOfNewChannelWritesNothing(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	prefix := fmt.Sprintf("mark%d", testPrefixes.Add(1))
	b := newTestNATSBroker(t, n, func(o *NATSOptions) { o.Prefix = prefix })
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: b.streamName("chat"), Subjects: []string{prefix + ".ch.chat.>"}, MaxMsgSize: 8, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	res, err := b.History(ctx, "chat:new", HistoryRequest{})
	if err != nil || res.Position.Offset != 0 || res.Position.Epoch == "" {
		t.Fatalf("history of a new channel on a stream that stores nothing: %+v %v", res, err)
	}

	st, err := b.streamFor(ctx, "chat", nil)
	if err != nil || st == nil {
		t.Fatalf("stream: %v %v", st, err)
	}
	b.streamsMu.Lock()
	b.streams["chat"] = &natsStream{name: st.name, st: infoFails{st.st}, keep: st.keep, ttl: st.ttl}
	b.streamsMu.Unlock()
	_, err = b.History(ctx, "chat:new", HistoryRequest{})
	if !errors.Is(err, errInfoFails) || errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("history error %v, want the stream info's cause", err)
	}
}

var errInfoFails = errors.New("test: stream info refused")

// infoFails is a stream whose info cannot be read.
type infoFails struct{ jetstream.Stream }

func (infoFails) Info(context.Context, ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	return nil, errInfoFails
}

// A read of a channel that has nothing creates nothing (issue 10): history
// of never-seen channels, on either node, stores no message and no subject.
// Their positions are still stable: the same on both nodes, and the epoch
// the first publication, from the other node, gets.
func TestNATSBrokerHistoryOfNeverSeenChannelsStoresNothing(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	nodes := [2]*NATSBroker{}
	for i := range nodes {
		nodes[i] = newTestNATSBroker(t, n, func(o *NATSOptions) { o.Namespaces = testNamespaces() })
	}
	a, b := nodes[0], nodes[1]
	if _, err := a.Publish(ctx, "chat:seen", []byte("1"), nil, hist100); err != nil {
		t.Fatal(err)
	}
	state := func() jetstream.StreamState {
		t.Helper()
		st, err := a.js.Stream(ctx, a.streamName("chat"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	before := state()

	const channels = 48
	positions := make([]StreamPosition, channels)
	for i := range channels {
		ch := fmt.Sprintf("chat:never-%d", i)
		res, err := nodes[i%2].History(ctx, ch, HistoryRequest{Limit: -1})
		if err != nil || res.Position.Offset != 0 || res.Position.Epoch == "" || len(res.Publications) != 0 {
			t.Fatalf("history of %s: %+v %v", ch, res, err)
		}
		positions[i] = res.Position
		// Recovering the position just read, on the other node.
		rec, err := nodes[(i+1)%2].History(ctx, ch, HistoryRequest{Since: &res.Position, Limit: 10})
		if err != nil || !rec.Recovered || rec.Position != res.Position {
			t.Fatalf("recover %s at %+v on the other node: %+v %v", ch, res.Position, rec, err)
		}
	}
	if after := state(); after.Msgs != before.Msgs || after.NumSubjects != before.NumSubjects || after.LastSeq != before.LastSeq {
		t.Fatalf("reads of %d never-seen channels changed the stream: %d messages, %d subjects, last %d → %d, %d, %d",
			channels, before.Msgs, before.NumSubjects, before.LastSeq, after.Msgs, after.NumSubjects, after.LastSeq)
	}
	if positions[0].Epoch == positions[1].Epoch {
		t.Errorf("two channels share the epoch %s", positions[0].Epoch)
	}
	// The first publication, from the node that did not read, continues
	// the position the reader was given, and recovers from it.
	pos, err := b.Publish(ctx, "chat:never-0", []byte("1"), nil, hist100)
	if err != nil || pos != (StreamPosition{Offset: 1, Epoch: positions[0].Epoch}) {
		t.Fatalf("first publication %+v %v after the position %+v", pos, err, positions[0])
	}
	rec, err := a.History(ctx, "chat:never-0", HistoryRequest{Since: &positions[0], Limit: 10})
	if err != nil || !rec.Recovered || fmt.Sprint(offsets(rec.Publications)) != "[1]" {
		t.Fatalf("recover from the new channel's position: %+v %v", rec, err)
	}
}

// A channel whose messages all aged out starts over at offset 1 in a new
// epoch, though nothing marks it: its next first publication falls in a
// later ChannelIdleTTL period. A position of the old epoch then does not
// recover.
func TestNATSBrokerAgedOutChannelGetsNewEpoch(t *testing.T) {
	ctx := context.Background()
	n := natstest.Start(t)
	b := newTestNATSBroker(t, n, func(o *NATSOptions) { o.ChannelIdleTTL = time.Second })
	short := PublishOptions{HistorySize: 5, HistoryTTL: 100 * time.Millisecond}
	first, err := b.Publish(ctx, "chat:aging", []byte("1"), nil, short)
	if err != nil || first.Offset != 1 {
		t.Fatalf("publish: %+v %v", first, err)
	}
	st, err := b.streamFor(ctx, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the channel to age out", func() bool {
		_, err := st.st.GetLastMsgForSubject(ctx, b.dataSubject("chat", "chat:aging"))
		return errors.Is(err, jetstream.ErrMsgNotFound)
	})
	res, err := b.History(ctx, "chat:aging", HistoryRequest{})
	if err != nil || res.Position.Offset != 0 || res.Position.Epoch == "" || res.Position.Epoch == first.Epoch {
		t.Fatalf("aged-out channel's position %+v %v, want offset 0 in an epoch other than %s", res.Position, err, first.Epoch)
	}
	again, err := b.Publish(ctx, "chat:aging", []byte("1"), nil, short)
	if err != nil || again != (StreamPosition{Offset: 1, Epoch: res.Position.Epoch}) {
		t.Fatalf("publication after ageing out %+v %v, want offset 1 in %s", again, err, res.Position.Epoch)
	}
	if rec, err := b.History(ctx, "chat:aging", HistoryRequest{Since: &first, Limit: 10}); err != nil || rec.Recovered {
		t.Errorf("recovered the old epoch's position: %+v %v", rec, err)
	}
}

func TestDerivedEpoch(t *testing.T) {
	created := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	e := derivedEpoch("duplex_ch_chat", created, "chat:a", now, day)
	if len(e) != 12 {
		t.Fatalf("epoch %q, want 12 hex digits", e)
	}
	if same := derivedEpoch("duplex_ch_chat", created, "chat:a", now.Add(time.Hour), day); same != e {
		t.Errorf("within one period: %s then %s", e, same)
	}
	for name, other := range map[string]string{
		"another channel": derivedEpoch("duplex_ch_chat", created, "chat:b", now, day),
		"another stream":  derivedEpoch("other_ch_chat", created, "chat:a", now, day),
		"re-created":      derivedEpoch("duplex_ch_chat", created.Add(time.Nanosecond), "chat:a", now, day),
		"the next period": derivedEpoch("duplex_ch_chat", created, "chat:a", now.Add(day), day),
	} {
		if other == e {
			t.Errorf("%s: the same epoch %s", name, e)
		}
	}
}
