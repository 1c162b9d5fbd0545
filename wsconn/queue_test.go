package wsconn

import (
	"fmt"
	"testing"
)

func msg(s string) outMessage { return outMessage{kind: 1, data: []byte(s)} }

func TestQueueCapsBytes(t *testing.T) {
	q := newSendQueue(10)
	if !q.push(msg("12345")) || !q.push(msg("12345")) {
		t.Fatal("pushes under the cap refused")
	}
	if q.push(msg("x")) {
		t.Fatal("push over the cap accepted")
	}
	got := q.takeAll(nil)
	if len(got) != 2 || q.bytes != 0 {
		t.Fatalf("took %d, %d bytes left", len(got), q.bytes)
	}
	if !q.push(msg("1234567890")) {
		t.Fatal("queue not emptied by takeAll")
	}
}

func TestQueueDropOldestKeepsNewestInOrder(t *testing.T) {
	q := newSendQueue(10)
	for i := 0; i < 5; i++ {
		if _, ok := q.pushDropOldest(msg(fmt.Sprintf("m%d", i))); !ok { // 2 bytes each
			t.Fatal("refused")
		}
	}
	dropped, ok := q.pushDropOldest(msg("abcd")) // needs 4 bytes: drops m0, m1
	if !ok || dropped != 2 {
		t.Fatalf("dropped %d ok=%v, want 2 true", dropped, ok)
	}
	var got []string
	for _, m := range q.takeAll(nil) {
		got = append(got, string(m.data))
	}
	if fmt.Sprint(got) != "[m2 m3 m4 abcd]" {
		t.Fatalf("queue = %v", got)
	}
	if _, ok := q.pushDropOldest(msg("this is over ten bytes")); ok {
		t.Fatal("a message larger than the cap was queued")
	}
}
