package realtime

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/duplex/duplex/realtime/protocol"
)

// fillHistory publishes n publications of about size bytes each to channel.
func fillHistory(t *testing.T, h *Hub, channel string, n, size int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		data := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", size-32))
		if _, err := h.Publish(context.Background(), channel, []byte(data), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// oneReply sends cmd and returns its reply, which must come as one
// message on a 1 MiB queue (the default WS_SEND_QUEUE_BYTES) within the
// reply bound.
func oneReply(t *testing.T, c *Client, s *testSub, id uint64, cmd string) protocol.ServerMessage {
	t.Helper()
	c.HandleFrame([]byte(cmd))
	s.mu.Lock()
	for _, f := range s.queue {
		if len(f.b) > DefaultMaxReplyBytes {
			t.Errorf("a %d-byte reply, over the %d-byte bound", len(f.b), DefaultMaxReplyBytes)
		}
	}
	s.mu.Unlock()
	msgs := s.Drain(t)
	if s.isClosed() {
		t.Fatal("the reply closed the connection")
	}
	return replyTo(t, msgs, id)
}

// 100 kept publications of 16 KB are 1.6 MB, more than a client's whole
// send queue: history answers in pages that each fit, marked more, and
// asking again from the last offset gets the rest, each publication once
// and in order.
func TestHistoryRepliesArePaged(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	fillHistory(t, h, "chat:big", 100, 16<<10)
	c, s := newClient(t, h, Identity{Name: "a"})

	var got []uint64
	cmd := `{"id":1,"op":"history","channel":"chat:big","limit":100}`
	for id := uint64(1); ; id++ {
		if id > 50 {
			t.Fatal("no end to the pages")
		}
		r := decodeResult[protocol.HistoryResult](t, oneReply(t, c, s, id, cmd))
		if len(r.Publications) == 0 {
			t.Fatalf("page %d is empty: %+v", id, r)
		}
		for _, p := range r.Publications {
			got = append(got, p.Offset)
		}
		if !r.More {
			break
		}
		last := r.Publications[len(r.Publications)-1].Offset
		cmd = fmt.Sprintf(`{"id":%d,"op":"history","channel":"chat:big","since":{"offset":%d,"epoch":%q},"limit":%d}`, id+1, last, r.Epoch, 100-len(got))
	}
	if !contiguous(got, 1, 100) {
		t.Errorf("pages brought %v", got)
	}
	// A reply that fits is not marked.
	r := decodeResult[protocol.HistoryResult](t, oneReply(t, c, s, 99, `{"id":99,"op":"history","channel":"chat:big","limit":3}`))
	if r.More || len(r.Publications) != 3 {
		t.Errorf("small page: %d publications, more=%v", len(r.Publications), r.More)
	}
}

// A recovery that would not fit in one reply is refused (recovered:false,
// so the client pages through history) instead of closing the connection.
func TestRecoveryTooLargeForOneReply(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	c, s := newClient(t, h, Identity{Name: "a"})
	pos := decodeResult[protocol.SubscribeResult](t, oneReply(t, c, s, 1, `{"id":1,"op":"subscribe","channel":"chat:rec"}`))
	c.Close()
	fillHistory(t, h, "chat:rec", 100, 16<<10)

	c2, s2 := newClient(t, h, Identity{Name: "a"})
	r := decodeResult[protocol.SubscribeResult](t, oneReply(t, c2, s2, 1,
		fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"chat:rec","recover":{"offset":%d,"epoch":%q}}`, pos.Offset, pos.Epoch)))
	if r.Recovered == nil || *r.Recovered || len(r.Publications) != 0 || r.Offset != 100 {
		t.Errorf("recover of 1.6 MB: recovered=%v, %d publications, offset %d", r.Recovered, len(r.Publications), r.Offset)
	}
	// A gap that fits is still recovered.
	c3, s3 := newClient(t, h, Identity{Name: "a"})
	r = decodeResult[protocol.SubscribeResult](t, oneReply(t, c3, s3, 1,
		fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"chat:rec","recover":{"offset":95,"epoch":%q}}`, pos.Epoch)))
	if r.Recovered == nil || !*r.Recovered || len(r.Publications) != 5 {
		t.Errorf("recover of 5: recovered=%v, %d publications", r.Recovered, len(r.Publications))
	}
}
