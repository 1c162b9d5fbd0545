package realtime

import (
	"testing"
	"unsafe"
)

// maxSubscriptionSize is the allocator's size class a Subscription fits:
// one is made per connection and channel, so a field that pushes it into
// the next class (176 bytes) costs every idle subscribed connection.
const maxSubscriptionSize = 160

func TestSubscriptionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Subscription{}); n > maxSubscriptionSize {
		t.Fatalf("Subscription is %d bytes, over %d: every subscription would pay the next size class", n, maxSubscriptionSize)
	}
}
