//go:build linux

package wsconn

import (
	"io"
	"syscall"
	"unsafe"

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
// It sends on the descriptor itself, past the runtime's fd lock and
// deadlines: the caller holds the session's writeMu, under which the
// session never closes the socket, so the descriptor is valid; and since
// a deadline would not stop it, a killed socket is refused here.
func (s *socket) tryWrite(b []byte) (n int, err error) {
	if s.killed.Load() {
		return 0, errKilled
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, errno := sendNoWait(s.fd, b)
		switch errno {
		case 0:
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		}
		return 0, errno
	}
}

// sendNoWait is one send(2) of b on the socket fd with MSG_DONTWAIT, made
// as a raw system call: it cannot block (the socket is non-blocking, and
// MSG_DONTWAIT says so again), so the runtime need not be told, as
// syscall.Write does with entersyscall and exitsyscall on every call.
// Telling it costs more than the bookkeeping: the kernel often preempts
// the thread on its way back from a send that woke the reader (always on
// loopback), and the runtime's monitor then finds the P "in a system
// call" past its 20 µs and hands it to another thread, which is one more
// thread woken per few sends. send(2) rather than write(2) also skips the
// VFS layer (fdget_pos, rw_verify_area, fsnotify) every write passes.
// MSG_NOSIGNAL: a reset connection is an EPIPE error, never a SIGPIPE.
func sendNoWait(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	return int(r), errno
}

// recvNoWait is one recv(2) into b from the socket fd with MSG_DONTWAIT,
// as a raw system call for the reasons of sendNoWait. len(b) > 0.
func recvNoWait(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		syscall.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}

// rawRead is the body of one read: false tells the runtime to wait until
// the socket is readable and call it again.
func (op *readOp) rawRead(fd uintptr) bool {
	for {
		n, errno := recvNoWait(int(fd), op.buf)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			if !op.noWait {
				return false
			}
			op.n, op.err = 0, nil
		case errno != 0:
			op.n, op.err = 0, errno
		case n == 0:
			op.n, op.err = 0, io.EOF
		default:
			op.n, op.err = n, nil
		}
		return true
	}
}
