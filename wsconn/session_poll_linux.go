//go:build linux

package wsconn

import "syscall"

// pollInlineMaxBytes is the most input the poller handles itself: a
// heartbeat's pong, or a few pings and pongs (a control frame from a
// client is at most 131 bytes). More, even if it is only pings, goes to a
// read turn, so that a client flooding pings is answered on a goroutine of
// its own and every other idle session's input never waits behind
// hundreds of its pongs on the one poller goroutine.
const pollInlineMaxBytes = 2 * (maxControlPayload + 6) // 6: a masked control frame's header

// pollInput is the poller's answer to input on an idle session's socket.
// A heartbeat's pong (or a client's ping) is the only input most idle
// connections ever send, and it needs no read turn: the poller reads what
// is there without waiting, into buf (its own), and if that is nothing
// but whole pings and pongs it handles them itself (a pong only proves the
// client alive; a ping's pong is written at once or queued, never waited
// for) and watches the socket again. A goroutine, a read deadline and the
// turn's linger are then saved per beat. Anything else, bytes of a data or
// close frame, a frame cut short, the end of the stream or an error,
// starts a read turn, which handles the bytes already read first.
//
// It runs on the poller's goroutine and never blocks: no handler runs on
// it. It keeps to the one-reader rule: it reads only after taking rstate
// from idle, as a read turn does, and loses no notification: one that
// comes meanwhile makes it start a turn.
func (s *Session) pollInput(buf []byte) {
	if !s.rstate.CompareAndSwap(turnIdle, turnRunning) {
		s.notify() // a turn is running (or the session ended): it reads once more
		return
	}
	if s.endReq.Load() {
		s.startTurn(nil, 0)
		return
	}
	n, errno := recvNoWait(s.sock.fd, buf)
	for errno == syscall.EINTR {
		n, errno = recvNoWait(s.sock.fd, buf)
	}
	switch {
	case errno == syscall.EAGAIN:
		// Nothing after all: watch again.
	case errno != 0 || n <= 0:
		s.startTurn(nil, 0) // the turn reads the error or the end of the stream itself
		return
	case n <= pollInlineMaxBytes && s.parser.onlyPings(buf[:n]):
		s.consume(buf[:n])
	default:
		op := getReadOp()
		copy(op.buf, buf[:n])
		s.startTurn(op, n)
		return
	}
	if again, err := s.letGo(s.poll.rearm); again || err != nil {
		s.startTurn(nil, 0) // notified meanwhile, or not watched: a turn ends it
	}
}
