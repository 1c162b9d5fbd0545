package client

import (
	"math/rand/v2"
	"time"
)

// The reconnect delays of duplex.js: full jitter below a ceiling that
// doubles from DefaultBackoffMin up to DefaultBackoffMax.
const (
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 20 * time.Second
)

// backoff is the delay before reconnect attempt n (0 for the first retry):
// uniformly random below min·2ⁿ, capped at max (full jitter: clients that
// lost the same server do not come back together).
func backoff(n int, min, max time.Duration) time.Duration {
	ceiling := max
	if n < 32 && min<<n < max && min<<n > 0 {
		ceiling = min << n
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}
