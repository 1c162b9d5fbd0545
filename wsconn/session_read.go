package wsconn

import (
	"errors"
	"os"
	"time"
)

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// Read turns: a session read by the poller has no goroutine while idle.
// When input arrives, the poller handles a heartbeat's pings and pongs
// itself (pollInput) and starts a turn for anything else; when the
// session must end, notify starts one. A
// turn reads and handles input, waiting for more in the runtime's own
// network poller while the client keeps talking, and after activeLinger
// of silence hands the socket back to the registry's poller and exits.
// rstate keeps turns one at a time and loses no notification: one that
// comes during a turn makes the turn go round once more.
const (
	turnIdle    = 0
	turnRunning = 1
	turnAgain   = 2 // running, and notified since it last read
)

// activeLinger is how long a read turn waits for more input after the
// last it got. A busy client thus costs no hand-over between pollers per
// message, and an idle one no goroutine after this long.
const activeLinger = 100 * time.Millisecond

// firstInputWait is how long the first read turn, on the goroutine the
// HTTP server hands the upgraded connection to, waits for the client's
// first input before it gives the socket to the registry's poller. A
// client sends its first commands as soon as it has the handshake's
// answer, so waiting here, in the runtime's network poller where the
// socket is registered anyway, handles them without what a turn started
// by the poller costs: watching the socket, an event, a goroutine whose
// stack grows again, and a linger that ends on a timer.
const firstInputWait = activeLinger

// readBufSize is what one read takes from the socket at most. The buffer
// is pooled (readOp): a session holds one only during a read turn.
const readBufSize = 4096

// notify starts a read turn unless one is running, in which case that
// turn reads once more. For a session read on its handler goroutine it
// does nothing: that goroutine is woken through the socket's deadlines.
func (s *Session) notify() {
	if s.poll == nil {
		return
	}
	for {
		switch s.rstate.Load() {
		case turnIdle:
			if s.rstate.CompareAndSwap(turnIdle, turnRunning) {
				s.startTurn(nil, 0)
				return
			}
		case turnRunning:
			if s.rstate.CompareAndSwap(turnRunning, turnAgain) {
				return
			}
		default:
			return
		}
	}
}

// startTurn starts a read turn's goroutine; the caller has taken rstate.
// early, if not nil, holds n bytes the poller already read (pollInput):
// the turn handles them first.
func (s *Session) startTurn(early *readOp, n int) {
	s.reg.turnsStarted.Add(1)
	if early != nil {
		go s.readTurnAfter(early, n)
		return
	}
	go s.readTurn()
}

// readTurn is one read turn's goroutine.
func (s *Session) readTurn() { s.readTurnFor(activeLinger) }

// readTurnFor is a read turn that waits linger for more input after the
// last it got; with linger 0 it hands the socket back as soon as it has
// read what is there.
func (s *Session) readTurnFor(linger time.Duration) {
	for {
		s.readActive(linger, linger)
		if !s.handBack(s.poll.rearm) {
			return
		}
	}
}

// firstTurn is the session's first read turn, on the goroutine Serve runs
// on: it waits up to firstInputWait for the client's first input (unless
// await is false: the client sent some with its handshake), reads what
// there is then without waiting for more (a client typically sends its
// first commands at once and then falls silent, and a burst of new
// connections should not hold a goroutine each for long), and gives the
// socket to the registry's poller, which is not watching it yet.
func (s *Session) firstTurn(await bool) {
	first := time.Duration(0)
	if await {
		first = firstInputWait
	}
	s.readActive(first, 0)
	if s.handBack(s.poll.add) {
		s.readTurnFor(0)
	}
}

// firstTurnStack is the goroutine stack that Serve's goroutine, the one
// the HTTP server starts per connection, is grown to in one step before
// the session opens and runs its first read turn on it. Opening the
// application's session and handling the client's first commands (a
// subscribe: JSON decoding, the hub, the reply) go deep, and a new
// goroutine's stack starts at a few KB, so without it the stack grows by
// doubling, several copies per connect, each moving every frame that deep
// path has pushed (15 of the 176 us per connect in a perf profile; 10
// with this). The goroutine exits once the poller has the socket, so its
// stack goes back to the runtime's cache; only a connection that takes
// the poller's place (WS_POLLER=off) keeps its goroutine, and it does not
// reserve.
const firstTurnStack = 16 << 10

// reserveFirstTurnStack grows the calling goroutine's stack to
// firstTurnStack while it is shallow, so copying it is cheap: its frame
// is half of that, and the runtime doubles a stack until the frame fits.
// n only keeps the compiler from dropping the frame.
//
//go:noinline
func reserveFirstTurnStack(n int) byte {
	var frame [firstTurnStack / 2]byte
	frame[n%len(frame)] = byte(n)
	return frame[(n+1)%len(frame)]
}

// handBack ends a read turn's reading: unless the session has ended, it
// has the poller watch the socket (watch: add or rearm), then lets go. It
// reports whether the turn must read again instead, having been notified
// meanwhile; input that came before watch fires the poller at once.
func (s *Session) handBack(watch func(fd int, id uint64) error) (again bool) {
	if s.ended {
		return false // rstate stays running: nothing is read any more
	}
	again, err := s.letGo(watch)
	if err != nil {
		s.log().Error("session not watched for input", "session", s.id, "err", err)
		s.end(true)
		return false
	}
	return again
}

// letGo has the poller watch the socket (watch: add or rearm), then gives
// up rstate, unless a notification came meanwhile: then it keeps rstate
// and reports again. It never ends the session, so the poller can use it.
func (s *Session) letGo(watch func(fd int, id uint64) error) (again bool, err error) {
	if err := watch(s.sock.fd, s.id); err != nil {
		return false, err
	}
	if s.rstate.CompareAndSwap(turnRunning, turnIdle) {
		return false, nil
	}
	s.rstate.Store(turnRunning) // notified meanwhile: read again
	return true, nil
}

// readTurnAfter is a read turn that first handles early[:n], what the
// poller read for it (pollInput); early goes back to its pool.
func (s *Session) readTurnAfter(early *readOp, n int) {
	s.consume(early.buf[:n])
	putReadOp(early)
	s.readTurn()
}

// readActive reads and handles input until the client has been silent for
// linger after its last input (0: until the socket has nothing more), or
// for first before any (0: not at all), or the session ends.
func (s *Session) readActive(first, linger time.Duration) {
	if s.ended {
		return
	}
	op := getReadOp()
	defer putReadOp(op)
	wait := first > 0
	extended := time.Now()
	if wait {
		_ = s.sock.out.SetReadDeadline(extended.Add(first))
	}
	// stopReading and forceClose set endReq before their own deadline, so
	// one that a line here replaced is seen in the loop's condition.
	for !s.ended && !s.endReq.Load() {
		n, err := s.sock.readWait(op, wait)
		if n > 0 {
			s.consume(op.buf[:n])
			if wait && linger == 0 {
				// Input came: from now on, read only what is there.
				// The deadline goes, since it would fail those reads
				// (and a later turn's) once it passed.
				wait = false
				_ = s.sock.out.SetReadDeadline(time.Time{})
			} else if now := time.Now(); wait && now.Sub(extended) > linger/2 && !s.ended && !s.endReq.Load() {
				_ = s.sock.out.SetReadDeadline(now.Add(linger))
				extended = now
			}
			if !wait && n < len(op.buf) && !s.ended && !s.endReq.Load() {
				// A short read took all the socket had: back to the
				// poller now rather than after a read that finds
				// nothing (one system call fewer per connect). The
				// poller's watch fires at once for input that came
				// meanwhile.
				return
			}
		} else if err == nil {
			return // nothing more (wait false): back to the poller
		}
		if err != nil {
			if isTimeout(err) && !s.endReq.Load() {
				if wait && linger == 0 {
					// The first wait passed with no input: the poller
					// watches the socket from now on, without a deadline.
					_ = s.sock.out.SetReadDeadline(time.Time{})
					if s.endReq.Load() {
						continue // stopReading's deadline was just replaced
					}
				}
				return // idle: back to the poller
			}
			s.endAfterReadError()
			return
		}
	}
	if !s.ended {
		s.end(s.dead.Load())
	}
}

// endAfterReadError ends the session after a read failed. A client gone
// or a broken socket is dead; but the read deadline stopReading sets only
// stops reading, and the writer may still send a close frame that is due.
func (s *Session) endAfterReadError() { s.end(!s.endReq.Load() || s.dead.Load()) }

// readBlocking reads the session on the calling goroutine until it ends,
// for a connection the poller cannot watch.
func (s *Session) readBlocking() {
	op := getReadOp()
	defer putReadOp(op)
	for !s.ended {
		if s.endReq.Load() {
			s.end(s.dead.Load())
			return
		}
		n, err := s.hijacked.Read(op.buf)
		if n > 0 {
			s.consume(op.buf[:n])
		}
		if err != nil {
			s.endAfterReadError()
		}
	}
}

// consume parses bytes from the client. A protocol violation fails the
// connection: the close frame with its code goes out, then the socket is
// closed, without waiting for the client's answer.
func (s *Session) consume(data []byte) {
	s.lastSeen.Store(time.Now().UnixNano())
	if v := s.parser.feed(data, s); v != nil {
		s.log().Debug("session protocol violation", "session", s.id, "code", v.code, "reason", v.reason)
		s.Close(v.code, v.reason)
		s.end(false)
	}
}

// message, ping, pong and closeFrame make Session the parser's
// frameEvents; they run on the reader.

func (s *Session) message(opcode int, data []byte) {
	if s.closing() {
		return // draining until the client answers our close frame
	}
	s.obs.MessageIn(len(data))
	if !s.dispatch(opcode, data) {
		s.Close(CloseInternalError, "internal error")
	}
}

func (s *Session) ping(payload []byte) {
	if !s.closing() {
		s.sendControl(opPong, payload)
	}
}

func (s *Session) pong() {} // any input proves the client alive; consume noted it

func (s *Session) closeFrame(code CloseCode) {
	s.closeWith(code, "", true) // no-op if our own close frame went first
	s.end(false)
}

// dispatch calls the handler, turning a panic into a logged error so that
// one bad message cannot take the server down.
func (s *Session) dispatch(opcode int, data []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("message handler panicked", "session", s.id, "panic", r)
			ok = false
		}
	}()
	s.handler.HandleMessage(MessageType(opcode), data)
	return true
}

// takeBuffered takes the bytes the HTTP server read past the upgrade
// request, if any. A client may (against RFC 6455 section 4.1) send frames
// without waiting for the handshake's answer; they then sit in the
// server's read buffer behind hijacked, which goes back to the server's
// pool when the hijack handler returns, so they must be taken now. With a
// read deadline in the past, hijacked yields what is buffered and then
// fails without consuming anything from the socket.
func (s *Session) takeBuffered() []byte {
	_ = s.sock.out.SetReadDeadline(time.Unix(1, 0))
	defer func() { _ = s.sock.out.SetReadDeadline(time.Time{}) }()
	op := getReadOp() // a buffer of its own would be garbage per connection
	defer putReadOp(op)
	var early []byte
	for {
		n, err := s.hijacked.Read(op.buf)
		early = append(early, op.buf[:n]...)
		if err != nil || n == 0 {
			return early
		}
	}
}

// open makes the session's handler; a panic there is logged and reported
// as false.
func (s *Session) open(open OpenFunc) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("session open panicked", "session", s.id, "panic", r)
			ok = false
		}
	}()
	s.handler = open(s)
	return true
}
