//go:build linux

package wsconn

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytesKnown: Linux tells a socket's unsent bytes (SIOCOUTQ).
const unsentBytesKnown = true

// unsentBytes is how many bytes the kernel still holds in the send queue
// of s's connection (written by us, not yet acknowledged by the client),
// and whether it could tell. writeAll calls it only when a write timed
// out, so the cost of the look-up does not matter.
func (s *socket) unsentBytes() (int, bool) {
	sc, ok := s.out.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n, ierr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}

// initDirect takes the descriptor under s.out, if it has one (a TCP
// connection), for tryWrite, readWait and the poller; without one every
// write goes through writeAll and reads through the connection.
func (s *socket) initDirect() {
	sc, ok := s.out.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	if raw.Control(func(fd uintptr) { s.fd = int(fd) }) == nil {
		s.raw = raw
	}
}

// tryWrite writes as much of b as the kernel takes at once, without
// waiting. Only for a socket with a descriptor (raw non-nil).
//
// It calls write(2) on the descriptor itself, past the runtime's fd lock
// and deadlines: the caller holds the session's writeMu, under which the
// session never closes the socket, so the descriptor is valid; and since
// a deadline would not stop it, a killed socket is refused here.
func (s *socket) tryWrite(b []byte) (n int, err error) {
	if s.killed.Load() {
		return 0, errKilled
	}
	for {
		n, err = syscall.Write(s.fd, b)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		}
		return max(n, 0), err
	}
}

// rawRead is the body of one read: false tells the runtime to wait until
// the socket is readable and call it again.
func (op *readOp) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), op.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if !op.noWait {
				return false
			}
			op.n, op.err = 0, nil
		case err != nil:
			op.n, op.err = 0, err
		case n == 0:
			op.n, op.err = 0, io.EOF
		default:
			op.n, op.err = n, nil
		}
		return true
	}
}
