package wsconn

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Session.Send.
var (
	// ErrClosed: the session is closing; the message was not queued.
	ErrClosed = errors.New("wsconn: session closed")
	// ErrSlowConsumer: the client's send queue was full, so the session is
	// being closed with CloseTryAgainLater and the message was not queued.
	ErrSlowConsumer = errors.New("wsconn: slow consumer, send queue full")
)

// Handler serves the messages of one session. Its methods are called one
// at a time, never concurrently, from the session's reader (a read turn
// started when the client sends something, or the handler goroutine for a
// connection read without the poller): HandleMessage for each complete
// data message, in order, and Closed once, when reading has stopped and
// before the writer is joined, so the handler can withdraw the session
// from wherever it was published.
//
// data is valid only during the HandleMessage call: its buffer is reused
// for the next message, so a handler that keeps it must copy it. To answer,
// call Session.Reply (which copies only if it has to queue) or Session.Send
// (which takes ownership). A handler must not block for long, since the
// next message is not read until it returns.
type Handler interface {
	HandleMessage(kind MessageType, data []byte)
	Closed()
}

// OpenFunc makes the Handler of a new session, once it is registered.
type OpenFunc func(s *Session) Handler

// Session is one WebSocket connection, from the upgrade until it is
// closed.
//
// An idle session has no goroutine: the registry's poller starts a read
// turn when the client sends something, and frames are written by whoever
// sends them when the client is idle and the socket takes them at once,
// or else by a writer goroutine that runs only while something is queued.
//
// Concurrency: Send, SendDropOldest, Reply, Close and ID may be called from
// any goroutine. Every write to the socket is made under writeMu, so
// frames never interleave and nothing queued is overtaken. The session
// ends once (end): reading stops, the handler is told, the writer is
// joined, and only then is the connection closed.
type Session struct {
	// What a delivery reads, for every subscriber of a publication, comes
	// first and in place (no pointer to chase): at thousands of
	// subscribers a fan-out is bound by cache misses as much as by code.
	// The order packs the first cache line: lock, flags, pending, and
	// obs; then the socket's descriptor fields; then the queue's busy flag.
	// The whole is kept within 480 bytes, a size class of the allocator
	// (TestSessionFitsItsSizeClass); past 512 it would also get an 8-byte
	// header, which rounds it up to 704.
	writeMu sync.Mutex // held for every write
	// Guarded by writeMu.
	closeSent  bool        // the close frame has been written
	finished   bool        // the session has ended: write nothing more
	closeCode  uint16      // a CloseCode, written once before closingNow is set; 0: no close frame
	closingNow atomic.Bool // set once the session is closing (after closeCode)
	dead       atomic.Bool
	endReq     atomic.Bool // end at the next read turn, without a handshake
	pending    []byte      // the rest of a frame tryWrite could not finish; goes first
	obs        Observer
	sock       socket    // the TCP socket under hijacked: reads and writes
	queue      sendQueue // what the writer still has to write

	id       uint64
	peer     string   // the client's address as Serve was given it, for MaxPerPeer
	hijacked net.Conn // the upgraded connection as the HTTP server handed it over
	poll     *poller  // nil: read on the handler goroutine instead
	lim      *Limits  // shared by the sessions Serve was given the same for
	reg      *Registry

	// Reader side, owned by whoever holds rstate: the current read turn,
	// or the poller while it handles pings and pongs (pollInput).
	handler Handler
	parser  frameParser
	rstate  atomic.Int32 // turnIdle, turnRunning or turnAgain
	// closeOnce (12 bytes, 4-aligned) beside rstate fills a whole word.
	closeOnce sync.Once
	lastSeen  atomic.Int64 // unix nanoseconds of the last bytes from the client

	// The heartbeat, on the registry's heartbeats (guarded by its mu).
	hbDue  int64 // beatClock time of the next beat
	hbSlot int32 // 1 + the index in the heap; 0: not in it
	hbGone bool  // the session has ended: never schedule it again

	ended     bool // the reader's: the session has ended
	closeEcho bool // the close frame answers the client's; not counted as sent

	grace *time.Timer // after Close: the client's time to answer

	closeReason string

	// lastDeflated is the id of the last compressed message written, that
	// of a SharedMessage another may follow, or 0. Guarded by writeMu.
	lastDeflated uint64
}

// newSession sets a session of reg up on hijacked; with direct, sock's
// descriptor is used for non-blocking writes and reads (and by the
// poller). lim must not change afterwards.
func newSession(reg *Registry, id uint64, hijacked, sock net.Conn, direct bool, lim *Limits) *Session {
	if sock == nil {
		sock = hijacked
	}
	s := &Session{
		id:       id,
		hijacked: hijacked,
		lim:      lim,
		obs:      reg.obs,
		reg:      reg,
		parser:   frameParser{maxMessage: lim.MaxMessageBytes, deflate: lim.Deflate},
	}
	s.sock.init(sock, direct)
	s.queue.maxBytes = lim.SendQueueBytes
	s.lastSeen.Store(time.Now().UnixNano())
	return s
}

// ID identifies the session for the life of the process; IDs are never
// reused, so they are safe as map keys.
func (s *Session) ID() uint64 { return s.id }

// Send sends one data message (TextMessage or BinaryMessage)
// and returns at once: it writes the frame itself when the client is idle
// and the socket takes it whole, and queues it for the writer otherwise.
// data must not be modified afterwards. It is never dropped: if the queue
// is over its byte cap, droppable messages (SendDropOldest's) make room
// first; if that is not enough, the slow-consumer policy applies: the
// session is closed with 1013 and ErrSlowConsumer is returned.
//
// On a session that negotiated deflate, a message of DeflateMinBytes or
// more is compressed first (Deflates).
func (s *Session) Send(kind MessageType, data []byte) error {
	op := int(kind)
	if s.Deflates(len(data)) {
		op, data = op|rsv1Bit, DeflateMessage(data)
	}
	return s.send(op, data)
}

// send is Send for a payload ready to frame with op.
func (s *Session) send(op int, data []byte) error {
	_, err := s.sendOut(op, data, nil, false)
	return err
}

// Deflates reports whether this session sends a data message of n bytes
// compressed: it negotiated permessage-deflate, and n is at least
// Limits.DeflateMinBytes. Safe from any goroutine.
func (s *Session) Deflates(n int) bool { return s.lim.Deflate && n >= s.lim.DeflateMinBytes }

// SendShared sends one message that other sessions are sent too: plain,
// or, where Deflates says so, compressed in whichever of its shared
// forms this session can take when it is written (SharedMessage), so that
// a fan-out compresses each publication at most twice however many
// subscribers it has. It queues like Send, or with dropOldest like
// SendDropOldest; compressed messages are never joined into a batch. Safe
// from any goroutine.
func (s *Session) SendShared(m *SharedMessage, dropOldest bool) (dropped int, err error) {
	if !s.Deflates(len(m.data)) {
		return s.sendOut(int(m.kind), m.data, nil, dropOldest)
	}
	return s.sendOut(int(m.kind)|rsv1Bit, nil, m, dropOldest)
}

// sendOut writes one data message at once if it can (writeNow), or
// queues it: with dropOldest as SendDropOldest does, else as Send does.
// A compressed message that is one of shared's forms has data nil.
func (s *Session) sendOut(op int, data []byte, shared *SharedMessage, dropOldest bool) (dropped int, err error) {
	if s.closingOrDead() {
		return 0, ErrClosed
	}
	if done, err := s.writeNow(op, data, shared); done {
		return 0, err
	}
	m := outMessage{kind: int32(op), data: data}
	if shared != nil {
		m = s.queuedForm(op, shared)
	}
	if dropOldest {
		dropped, start := s.queue.pushDropOldest(m)
		s.startWriter(start)
		return dropped, nil
	}
	return 0, s.enqueueMessage(m)
}

// enqueue queues one data message (its opcode, with RSV1 if compressed)
// for the writer, applying the disconnect slow-consumer policy when the
// queue is full.
func (s *Session) enqueue(op int, data []byte) error {
	return s.enqueueMessage(outMessage{kind: int32(op), data: data})
}

// enqueueMessage is enqueue for a message made up.
func (s *Session) enqueueMessage(m outMessage) error {
	ok, start := s.queue.push(m)
	s.startWriter(start)
	if !ok {
		s.Close(CloseTryAgainLater, "slow consumer: send queue full")
		return ErrSlowConsumer
	}
	return nil
}

// SendDropOldest sends one data message like Send, but the message may be
// dropped: when the queue is full, the oldest droppable messages are
// dropped to make room, or this one if what must not be dropped (replies,
// notices: every Send) fills the queue. It never closes the session for
// being slow. It reports how many messages were dropped; the writer tells
// the client how many it missed, with Limits.MissedNotice, ahead of the
// next message it writes, so the counts the client is told add up to what
// it lost.
func (s *Session) SendDropOldest(kind MessageType, data []byte) (dropped int, err error) {
	op := int(kind)
	if s.Deflates(len(data)) {
		op, data = op|rsv1Bit, DeflateMessage(data)
	}
	return s.sendDropOldest(op, data)
}

// sendDropOldest is SendDropOldest for a payload ready to frame with op.
func (s *Session) sendDropOldest(op int, data []byte) (dropped int, err error) {
	return s.sendOut(op, data, nil, true)
}

// Reply sends one data message, typically the handler's answer to the
// message it is handling, like Send; but data is not kept, so it is copied
// if it has to be queued.
func (s *Session) Reply(kind MessageType, data []byte) error {
	if s.Deflates(len(data)) {
		return s.Send(kind, data) // compressing made a copy the queue may keep
	}
	if s.closingOrDead() {
		return ErrClosed
	}
	if done, err := s.writeNow(int(kind), data, nil); done {
		return err
	}
	return s.enqueue(int(kind), bytes.Clone(data))
}

// Close asks the writer to flush what is queued, then send a close frame
// with code and reason; the client then has closeGrace to answer before
// the connection is dropped. Only the first call has any effect. It does
// not block.
func (s *Session) Close(code CloseCode, reason string) {
	s.closeWith(code, reason, false)
}

// closeWith is Close; echo marks the answer to a client's close frame.
// code 0 sends no close frame at all.
func (s *Session) closeWith(code CloseCode, reason string, echo bool) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeReason, s.closeEcho = uint16(code), reason, echo
		s.closingNow.Store(true)
		if code == 0 {
			return
		}
		s.startWriter(s.queue.kick())
		if !echo {
			// The client has closeGrace to answer; then reading stops,
			// and the session ends once the writer is done.
			s.grace = time.AfterFunc(closeGrace, s.stopReading)
		}
	})
}

func (s *Session) closing() bool { return s.closingNow.Load() }

// closingOrDead reports that nothing more may be sent: Close was called,
// or the connection failed.
func (s *Session) closingOrDead() bool { return s.closingNow.Load() || s.dead.Load() }

// forceClose ends the session without waiting for anything: every pending
// and later read and write on the socket fails at once, and the session
// ends at its next read turn. Safe from any goroutine, any number of
// times.
func (s *Session) forceClose() {
	s.dead.Store(true)
	s.endReq.Store(true)
	s.sock.kill()
	s.notify()
}

// stopReading ends the session at its next read turn, still letting the
// writer finish (it has WriteTimeout per writeChunk). Safe from any goroutine.
func (s *Session) stopReading() {
	s.endReq.Store(true)
	s.sock.stopReads()
	s.notify()
}

// beat is the heartbeat, on the registry's heartbeats timer: it drops a
// client that has sent nothing (not even a pong) for a ping interval plus
// the pong timeout, and otherwise pings it and schedules the next beat.
func (s *Session) beat() {
	if s.closingOrDead() {
		return
	}
	if time.Since(time.Unix(0, s.lastSeen.Load())) > s.lim.PingInterval+s.lim.PongTimeout {
		s.log().Debug("session silent past the pong timeout", "session", s.id)
		s.forceClose()
		return
	}
	s.sendControl(opPing, nil)
	s.reg.beats.schedule(s, s.lim.PingInterval)
}

// startHeartbeat schedules the first beat.
func (s *Session) startHeartbeat() { s.reg.beats.schedule(s, s.lim.PingInterval) }

// log is where the session logs: its registry's logger.
func (s *Session) log() *slog.Logger { return s.reg.log }

// end is the one way a session ends, on its reader: no more reading, the
// handler is told, the writer is joined (so a close frame already due goes
// out, unless kill), and the connection is closed and forgotten.
func (s *Session) end(kill bool) {
	if s.ended {
		return
	}
	s.ended = true
	s.parser = frameParser{} // let go of a partial frame or message
	s.closeWith(0, "", false)
	if kill {
		s.dead.Store(true)
		s.sock.kill()
	}
	s.reg.beats.remove(s)
	if s.grace != nil {
		s.grace.Stop()
	}
	s.handlerClosed()
	s.queue.stop()

	// A writeNow from another goroutine may still be writing; once writeMu
	// is ours, none is, and finished keeps any later one from starting.
	s.writeMu.Lock()
	s.finished = true
	s.pending = nil
	s.writeMu.Unlock()

	if s.poll != nil {
		s.poll.del(s.sock.fd)
	}
	s.sock.close(s.hijacked)
	s.reg.remove(s)
}

// handlerClosed tells the handler the session has stopped reading; a panic
// there is logged, and the session still ends cleanly.
func (s *Session) handlerClosed() {
	if s.handler == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("session close handler panicked", "session", s.id, "panic", r)
		}
	}()
	s.handler.Closed()
}
