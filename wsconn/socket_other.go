//go:build !linux

package wsconn

import "errors"

// errNoDirectIO: only Linux sessions write to the descriptor themselves.
var errNoDirectIO = errors.New("wsconn: no direct socket I/O on this system")

// unsentBytesKnown: this system's unsent bytes are not looked at, so a
// write that returns nothing for the write timeout ends the connection.
const unsentBytesKnown = false

// unsentBytes cannot tell here.
func (s *socket) unsentBytes() (int, bool) { return 0, false }

// initDirect leaves raw nil: on this system every write goes through
// writeAll (net.Conn) and every read through the connection, on the
// session's own goroutine.
func (s *socket) initDirect() {}

// tryWrite is never called: writeNow checks raw first.
func (s *socket) tryWrite([]byte) (int, error) { return 0, errNoDirectIO }

// rawRead is never called: readWait needs raw.
func (op *readOp) rawRead(uintptr) bool { return true }
