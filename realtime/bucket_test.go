package realtime

import (
	"testing"
	"time"
)

func TestTokenBucketStartsFullThenRefusesPastBurst(t *testing.T) {
	var b tokenBucket
	for i := range 5 {
		if !b.allow(0.001, 5) {
			t.Fatalf("take %d of a burst of 5 refused", i+1)
		}
	}
	if b.allow(0.001, 5) {
		t.Fatal("a sixth take within the burst of 5 was allowed")
	}
}

func TestTokenBucketRefillsAtItsRateUpToBurst(t *testing.T) {
	var b tokenBucket
	for b.allow(1000, 3) {
	}
	// Pretend a long pause: the bucket refills to its burst, no more.
	b.last -= int64(time.Hour)
	n := 0
	for b.allow(1000, 3) && n < 10 {
		n++
	}
	if n < 3 || n > 4 { // 3 from the burst, maybe 1 refilled meanwhile
		t.Fatalf("after a long pause %d takes were allowed, want the burst of 3", n)
	}
	// A quarter of a second at 8/s is 2 tokens.
	for b.allow(8, 3) {
	}
	b.last -= int64(250 * time.Millisecond)
	if !b.allow(8, 3) || !b.allow(8, 3) {
		t.Fatal("250 ms at 8/s did not give 2 tokens")
	}
	if b.allow(8, 3) {
		t.Fatal("250 ms at 8/s gave more than 2 tokens")
	}
}
