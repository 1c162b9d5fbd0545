package wsconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errKilled is the write error of a socket that kill has ended.
var errKilled = errors.New("wsconn: connection force-closed")

// socket writes whole frames to one connection. It has two ways to write:
//
//   - tryWrite makes one non-blocking write(2) attempt and reports how much
//     the kernel took, so the goroutine fanning a publication out can write
//     to an idle client itself, with no goroutine switch, and never wait for
//     a slow one. It needs the socket's file descriptor; without one (a
//     connection that is not a *net.TCPConn) every write goes through
//     writeAll.
//   - writeAll blocks until everything is written, or until the client
//     has taken nothing of a writeChunk for the write timeout. Only the
//     session's writer goroutine uses it, and Serve for a refusal.
//
// The descriptor (fd) also serves reads (readWait) and the poller.
//
// Concurrency: the caller holds the session's writeMu for both, so bytes
// of different frames never interleave. kill may be called at any time.
type socket struct {
	// What tryWrite reads comes first (see Session's layout).
	raw    syscall.RawConn // nil: no non-blocking attempts
	fd     int             // the descriptor under raw, for the poller
	killed atomic.Bool
	closed bool // guarded by closeMu; here, it fills killed's padding
	out    net.Conn

	// closeMu orders kill and stopReads, which any goroutine may call at
	// any time, before closing: out may be a hijacked connection that the
	// HTTP server reuses once it is closed.
	closeMu sync.Mutex
}

// init sets s up on out; with direct, and where the system allows
// (initDirect), its descriptor is used for non-blocking writes and reads.
// s must not be copied afterwards.
func (s *socket) init(out net.Conn, direct bool) {
	s.out = out
	if direct {
		s.initDirect()
	}
}

// readOp is one reader's buffer and the state of its reads through the
// runtime's poller. It is pooled (readOps): a session holds one only
// during a read turn, so an idle session carries neither the buffer nor
// the state, nor the bound callback that raw.Read needs (a closure made
// per read would be allocated per read).
type readOp struct {
	buf    []byte // readBufSize bytes
	noWait bool
	n      int
	err    error
	fn     func(fd uintptr) bool // rawRead, bound once
}

var readOps = sync.Pool{New: func() any {
	op := &readOp{buf: make([]byte, readBufSize)}
	op.fn = op.rawRead
	return op
}}

func getReadOp() *readOp   { return readOps.Get().(*readOp) }
func putReadOp(op *readOp) { op.err = nil; readOps.Put(op) }

// readWait reads what the socket has into op.buf, waiting in the
// runtime's network poller until there is something, io.EOF, or the read
// deadline; with wait false it returns 0 and no error at once when there is
// nothing. Only for a socket with a descriptor (raw non-nil).
func (s *socket) readWait(op *readOp, wait bool) (int, error) {
	op.noWait = !wait
	if err := s.raw.Read(op.fn); err != nil {
		return 0, err // the deadline, or killed, or closed
	}
	return op.n, op.err
}

// writeChunk is the most writeAll writes under one deadline. The write
// timeout bounds a client's lack of progress, not the size of a flush (up
// to the send queue's cap, 1 MiB by default, which a slow link can need
// minutes for): a client that keeps taking at least writeChunk per
// timeout (6.4 KiB/s at the default 10 s) stays connected, however long
// the whole takes, and drop-oldest makes room in its queue meanwhile; one
// that stops is dropped a timeout after its socket's buffers filled.
//
// Where the system tells a socket's unsent bytes (Linux), the kernel
// sending some of them within the timeout counts as progress too: a send
// buffer grown to megabytes (loopback, a proxy) is reported writable
// again only once a third of it is free, which a slow client may take
// longer than the timeout to drain while it reads all along.
const writeChunk = 64 << 10

// writeAll writes b in chunks of at most writeChunk, waiting at most
// timeout for the client to make progress on each. Where the socket has
// a descriptor, b is first offered whole to one non-blocking write: a
// client that keeps up takes any flush in that one system call, with no
// deadline set, and only what the kernel cannot take at once is written
// chunk by chunk.
func (s *socket) writeAll(b []byte, timeout time.Duration) error {
	if s.raw != nil {
		n, err := s.tryWrite(b)
		if err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
	for {
		chunk := b[:min(len(b), writeChunk)]
		if err := s.out.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return fmt.Errorf("wsconn: set write deadline: %w", err)
		}
		if s.killed.Load() {
			return errKilled // the deadline just set may have replaced kill's
		}
		queued, known := s.unsentBytes()
		n, err := s.out.Write(chunk)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) || s.killed.Load() || n == 0 && !s.drained(queued, known) {
				return err
			}
			// The client took bytes within the timeout: it is slow, not
			// stalled. Write the rest under a new deadline.
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
}

// drained reports whether the kernel sent some of what it held before a
// write that timed out having written nothing. A socket whose send
// buffer has grown to megabytes is reported writable again only once a
// third of it is free, which a client on a slow link may take longer than
// the write timeout to drain while it reads all along.
func (s *socket) drained(before int, known bool) bool {
	if !known {
		return false
	}
	now, ok := s.unsentBytes()
	return ok && now < before
}

// stopReads makes every pending and later read fail at once; writes go
// on. Safe from any goroutine.
func (s *socket) stopReads() { s.expire(false) }

// kill makes every pending and later read and write fail at once. It does
// not close the socket: the session does that once it has ended (close).
// Safe from any goroutine.
func (s *socket) kill() {
	s.killed.Store(true)
	s.expire(true)
}

// expire sets the read deadline, and the write deadline with writes, in
// the past, unless the connection is closed.
func (s *socket) expire(writes bool) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return
	}
	past := time.Unix(1, 0)
	_ = s.out.SetReadDeadline(past)
	if writes {
		_ = s.out.SetWriteDeadline(past)
	}
}

// close closes conn (the connection out belongs to); kill and stopReads
// do nothing afterwards.
func (s *socket) close(conn net.Conn) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closed = true
	_ = conn.Close()
}

// frameBufPool holds the buffers frames are built in, so that an idle
// session holds none.
var frameBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledFrameBuf keeps buffers grown by a large backlog out of the pool.
const maxPooledFrameBuf = 64 << 10

func getFrameBuf() *[]byte { return frameBufPool.Get().(*[]byte) }

func putFrameBuf(b *[]byte) {
	if cap(*b) <= maxPooledFrameBuf {
		*b = (*b)[:0]
		frameBufPool.Put(b)
	}
}
