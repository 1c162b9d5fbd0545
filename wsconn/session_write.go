package wsconn

import "bytes"

// writeNow writes one frame on the caller's goroutine if that cannot
// overtake anything and need not wait: nothing is queued or being
// written, and the socket takes the frame in one non-blocking write. If
// the socket takes only part, the rest goes to the writer, ahead of
// anything queued later. done is false when the caller must queue. A
// compressed message's payload is chosen here, once it is sure to be
// written (deflatedPayload); shared is the SharedMessage it is one of,
// payload then nil.
func (s *Session) writeNow(opcode int, payload []byte, shared *SharedMessage) (done bool, err error) {
	if s.sock.raw == nil || !s.writeMu.TryLock() {
		return false, nil
	}
	defer s.writeMu.Unlock()
	if s.finished || s.closeSent {
		return true, ErrClosed // nothing may follow the close frame
	}
	if s.pending != nil || !s.queue.idle() {
		return false, nil
	}
	if opcode&rsv1Bit != 0 {
		var forms *deflateForms
		if shared != nil {
			forms = shared.forms
		}
		payload = s.deflatedPayload(payload, forms, shared)
	}
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	*buf = appendFrame((*buf)[:0], opcode, payload)
	n, werr := s.sock.tryWrite(*buf)
	if werr != nil {
		s.failWrite(werr)
		return true, ErrClosed
	}
	if n < len(*buf) {
		s.pending = bytes.Clone((*buf)[n:])
		s.startWriter(s.queue.kick())
	}
	if op := opcode &^ rsv1Bit; op == opText || op == opBinary {
		s.obs.MessageOut(len(payload))
	}
	return true, nil
}

// sendControl sends a ping or a pong: at once if the client is idle,
// otherwise through the writer, ahead of queued data.
func (s *Session) sendControl(opcode int, payload []byte) {
	if done, _ := s.writeNow(opcode, payload, nil); done {
		return
	}
	if opcode == opPing {
		s.startWriter(s.queue.pushPing())
	} else {
		s.startWriter(s.queue.pushPong(payload))
	}
}

// startWriter starts the writer goroutine when the queue says one must.
func (s *Session) startWriter(start bool) {
	if start {
		go s.writeLoop()
	}
}

// writeLoop is the writer goroutine. It is started when something is
// queued while no writer runs, and it exits once it has written everything
// (or the close frame), so an idle session has none.
func (s *Session) writeLoop() {
	defer s.queue.writers.Done()
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("session writer panicked", "session", s.id, "panic", r)
			s.forceClose()
			s.queue.writerQuit()
		}
	}()
	var spare work
	for {
		s.writeMu.Lock()
		next, err := s.flush(spare)
		s.writeMu.Unlock()
		if err != nil {
			s.failWrite(err)
			s.queue.writerQuit()
			return
		}
		spare = next
		if s.closeSentOrGone() {
			s.queue.writerQuit() // nothing more will be written
			return
		}
		if s.queue.writerDone(s.closeDue) {
			return
		}
	}
}

// closeDue reports a close frame still to send. Only the writer calls it.
func (s *Session) closeDue() bool {
	return s.closing() && s.closeCode != 0 && !s.closeSent
}

// closeSentOrGone reports that the writer has nothing left to do: the
// close frame is out, or the socket is dead. Only the writer calls it.
func (s *Session) closeSentOrGone() bool { return s.closeSent || s.dead.Load() }

// flush writes, in one system call where it can, the rest of an unfinished
// frame, the control frames due, every queued message, and the close frame
// once one is due. Runs of text messages are joined into one frame when
// MaxBatch allows. It returns the emptied work for the next take. The
// caller holds writeMu.
func (s *Session) flush(spare work) (work, error) {
	if s.finished || s.dead.Load() {
		return spare, ErrClosed
	}
	// Whether the close frame is due is read before the queue is taken:
	// everything sent before Close is then in this flush, ahead of it.
	closing := s.closeDue()
	w := s.queue.take(spare)
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	b := append((*buf)[:0], s.pending...)
	s.pending = nil
	if w.pongDue {
		b = appendFrame(b, opPong, w.pong)
	}
	if w.ping {
		b = appendFrame(b, opPing, nil)
	}
	if w.missed > 0 && s.lim.MissedNotice != nil {
		// Ahead of everything queued after the dropped messages.
		b = appendFrame(b, opText, s.lim.MissedNotice(w.missed))
	}
	for i := 0; i < len(w.items); {
		n := 1
		if s.lim.MaxBatch > 1 && w.items[i].kind == opText {
			for n < s.lim.MaxBatch && i+n < len(w.items) && w.items[i+n].kind == opText {
				n++
			}
		}
		if n == 1 {
			m := &w.items[i]
			if m.kind&rsv1Bit != 0 {
				m.data = s.deflatedPayload(m.data, m.forms, nil)
			}
			b = appendFrame(b, int(m.kind), m.data)
		} else {
			b = appendJoinedTextFrame(b, w.items[i:i+n])
		}
		i += n
	}
	if closing {
		b = appendFrame(b, opClose, AppendClosePayload(nil, CloseCode(s.closeCode), s.closeReason))
	}
	*buf = b
	if len(b) > 0 {
		if err := s.sock.writeAll(b, s.lim.WriteTimeout); err != nil {
			return w, err
		}
	}
	for _, m := range w.items {
		s.obs.MessageOut(len(m.data))
	}
	clear(w.items) // let the payloads be collected
	w.items, w.missed, w.ping, w.pongDue = w.items[:0], 0, false, false
	if closing {
		s.closeSent = true
		if !s.closeEcho {
			s.obs.CloseSent(CloseCode(s.closeCode))
		}
	}
	return w, nil
}

// failWrite ends a session whose socket can no longer be written to.
func (s *Session) failWrite(err error) {
	s.log().Debug("session write failed", "session", s.id, "err", err)
	s.forceClose()
}
