package wsconn

import (
	"testing"
	"unsafe"
)

// maxSessionSize is the largest Session the allocator serves without a
// malloc header: one byte more, and every connection pays 704 bytes for
// it instead of 512 (docs/benchmarks.md, idle memory).
const maxSessionSize = 512

func TestSessionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > maxSessionSize {
		t.Fatalf("Session is %d bytes, over %d: every idle connection would pay the next size class", n, maxSessionSize)
	}
}
