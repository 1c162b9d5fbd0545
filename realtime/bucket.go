package realtime

import "time"

// tokenBucket is a token bucket in 16 bytes, for the limits every
// connection carries (commands, abuse, publications per namespace): the
// rate and the burst are the caller's, shared by all connections, so a
// bucket keeps only its own tokens and when it last counted them. An idle
// connection holds two; golang.org/x/time/rate's Limiter is 80 bytes and
// a pointer each.
//
// Concurrency: none; the Client's mutex guards its buckets.
type tokenBucket struct {
	tokens float64 // as of last
	last   int64   // bucketClock nanoseconds of the last take; 0: never (full)
}

// bucketEpoch anchors bucketClock, so last is monotonic and fits 8 bytes.
var bucketEpoch = time.Now()

// bucketClock is the monotonic time in nanoseconds since bucketEpoch,
// never 0 (the "never taken" mark).
func bucketClock() int64 { return max(int64(time.Since(bucketEpoch)), 1) }

// allow takes one token if there is one, refilling at rate tokens per
// second up to burst; a new bucket starts full. Like rate.Limiter.Allow.
func (b *tokenBucket) allow(rate float64, burst int) bool {
	now := bucketClock()
	if b.last == 0 {
		b.tokens = float64(burst)
	} else if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(float64(burst), b.tokens+rate*float64(elapsed)/float64(time.Second))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
