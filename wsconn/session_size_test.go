package wsconn

import (
	"testing"
	"unsafe"
)

// maxSessionSize is the allocator's size class a Session fits in: one
// byte more, and every connection pays 512 bytes for it instead of 480
// (and past 512, with a malloc header, 704: docs/benchmarks.md, idle
// memory).
const maxSessionSize = 480

func TestSessionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > maxSessionSize {
		t.Fatalf("Session is %d bytes, over %d: every idle connection would pay the next size class", n, maxSessionSize)
	}
}
