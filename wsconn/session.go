package wsconn

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
)

// Errors returned by Session.Send.
var (
	// ErrClosed: the session is closing; the message was not queued.
	ErrClosed = errors.New("wsconn: session closed")
	// ErrSlowConsumer: the client's send queue was full, so the session is
	// being closed with CloseTryAgainLater and the message was not queued.
	ErrSlowConsumer = errors.New("wsconn: slow consumer, send queue full")
)

// Handler serves the messages of one session. Both methods are called on
// the session's reader goroutine, one at a time: HandleMessage for each
// complete data message, in order, and Closed once, when reading has
// stopped and before the writer is joined, so the handler can withdraw the
// session from wherever it was published.
//
// data is valid only during the HandleMessage call: its buffer is reused
// for the next message, so a handler that keeps it must copy it. To answer,
// call Session.Reply (which copies only if it has to queue) or Session.Send
// (which takes ownership). A handler must not block for long, since the
// next message is not read until it returns.
type Handler interface {
	HandleMessage(kind int, data []byte)
	Closed()
}

// OpenFunc makes the Handler of a new session, once it is registered.
type OpenFunc func(s *Session) Handler

// Session is one WebSocket connection while its handler runs.
//
// Concurrency: Send, SendDropOldest, Reply, Close and ID may be called from
// any goroutine. Every write to the socket is made under writeMu, so one
// writer at a time: either the caller itself, when nothing is queued and
// the socket takes the frame at once (the common case for an idle client),
// or the writer goroutine, which runs only while something is queued. The
// reader and any writer have ended, and writeMu has been taken one last
// time, before the handler returns, so no write can outlive the connection
// and land on a reused one.
type Session struct {
	id   uint64
	conn *websocket.Conn // reading; the library also sends 1002 and 1009 on it
	sock *socket         // every frame the session writes
	lim  Limits
	obs  Observer
	log  *slog.Logger

	queue *sendQueue
	// writeMu is held for every write, so frames never interleave and
	// nothing queued is overtaken.
	writeMu sync.Mutex
	// Guarded by writeMu.
	pending   []byte // the rest of a frame tryWrite could not finish; goes first
	closeSent bool   // the close frame has been written
	finished  bool   // the handler is returning: write nothing more

	ping *time.Timer

	closeOnce   sync.Once
	closeReq    chan struct{} // closed once the session is closing
	closeCode   int           // written once before closeReq is closed; 0: no close frame
	closeReason string
	closeEcho   bool // the close frame answers the client's; not counted as sent
	dead        atomic.Bool

	// released is set when the handler is about to return; after that the
	// pooled conn may belong to another client and must not be touched.
	mu       sync.Mutex
	released bool
}

func newSession(id uint64, conn *websocket.Conn, sock net.Conn, lim Limits, obs Observer, log *slog.Logger) *Session {
	if sock == nil {
		sock = conn.NetConn()
	}
	return &Session{
		id:       id,
		conn:     conn,
		sock:     newSocket(sock),
		lim:      lim,
		obs:      obs,
		log:      log,
		queue:    newSendQueue(lim.SendQueueBytes),
		closeReq: make(chan struct{}),
	}
}

// ID identifies the session for the life of the process; IDs are never
// reused, so they are safe as map keys where *websocket.Conn is not.
func (s *Session) ID() uint64 { return s.id }

// Send sends one data message (websocket.TextMessage or BinaryMessage)
// and returns at once: it writes the frame itself when the client is idle
// and the socket takes it whole, and queues it for the writer otherwise.
// data must not be modified afterwards. If the queue is over its byte cap,
// the slow-consumer policy applies: the session is closed with 1013 and
// ErrSlowConsumer is returned.
func (s *Session) Send(kind int, data []byte) error {
	if s.closing() || s.dead.Load() {
		return ErrClosed
	}
	if done, err := s.writeNow(kind, data); done {
		return err
	}
	ok, start := s.queue.push(outMessage{kind: kind, data: data})
	s.startWriter(start)
	if !ok {
		s.Close(CloseTryAgainLater, "slow consumer: send queue full")
		return ErrSlowConsumer
	}
	return nil
}

// SendDropOldest sends one data message like Send, but when the queue is
// full it drops the oldest queued messages to make room instead of closing
// the session, and reports how many it dropped. It fails with
// ErrSlowConsumer only if data alone is larger than the queue's cap.
func (s *Session) SendDropOldest(kind int, data []byte) (dropped int, err error) {
	if s.closing() || s.dead.Load() {
		return 0, ErrClosed
	}
	if done, err := s.writeNow(kind, data); done {
		return 0, err
	}
	dropped, ok, start := s.queue.pushDropOldest(outMessage{kind: kind, data: data})
	s.startWriter(start)
	if !ok {
		return 0, ErrSlowConsumer
	}
	return dropped, nil
}

// Reply sends one data message, typically the handler's answer to the
// message it is handling, like Send; but data is not kept, so it is copied
// if it has to be queued.
func (s *Session) Reply(kind int, data []byte) error {
	if s.closing() || s.dead.Load() {
		return ErrClosed
	}
	if done, err := s.writeNow(kind, data); done {
		return err
	}
	return s.Send(kind, bytes.Clone(data))
}

// writeNow writes one frame on the caller's goroutine if that cannot
// overtake anything and need not wait: nothing is queued or being
// written, and the socket takes the frame in one non-blocking write. If
// the socket takes only part, the rest goes to the writer, ahead of
// anything queued later. done is false when the caller must queue.
func (s *Session) writeNow(opcode int, payload []byte) (done bool, err error) {
	if s.sock.raw == nil || !s.writeMu.TryLock() {
		return false, nil
	}
	defer s.writeMu.Unlock()
	if s.finished || s.pending != nil || !s.queue.idle() {
		return false, nil
	}
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	*buf = appendFrame((*buf)[:0], opcode, payload)
	n, _, werr := s.sock.tryWrite(*buf)
	if werr != nil {
		s.failWrite(werr)
		return true, ErrClosed
	}
	if n < len(*buf) {
		s.pending = bytes.Clone((*buf)[n:])
		s.startWriter(s.queue.kick())
	}
	if opcode == websocket.TextMessage || opcode == websocket.BinaryMessage {
		s.obs.MessageOut(len(payload))
	}
	return true, nil
}

// sendPing is the heartbeat: it pings the client, then schedules the next
// ping. It runs on its timer's goroutine.
func (s *Session) sendPing() {
	if s.closing() || s.dead.Load() {
		return
	}
	if done, _ := s.writeNow(websocket.PingMessage, nil); !done {
		s.startWriter(s.queue.pushPing())
	}
	s.ping.Reset(s.lim.PingInterval)
}

// answerPing answers the client's ping. It runs on the reader goroutine.
func (s *Session) answerPing(payload string) error {
	if s.closing() || s.dead.Load() {
		return nil
	}
	if done, _ := s.writeNow(websocket.PongMessage, []byte(payload)); !done {
		s.startWriter(s.queue.pushPong([]byte(payload)))
	}
	return nil
}

// startWriter starts the writer goroutine when the queue says one must.
func (s *Session) startWriter(start bool) {
	if start {
		go s.writeLoop()
	}
}

// Close asks the writer to flush what is queued, then send a close frame
// with code and reason, and the reader to wait briefly for the client's
// answer. Only the first call has any effect. It does not block.
func (s *Session) Close(code int, reason string) {
	s.closeWith(code, reason, false)
}

// closeWith is Close; echo marks the answer to a client's close frame.
// code 0 sends no close frame at all.
func (s *Session) closeWith(code int, reason string, echo bool) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeReason, s.closeEcho = code, reason, echo
		close(s.closeReq)
		if code != 0 {
			s.startWriter(s.queue.kick())
		}
		// Wake the reader too: it may be blocked on a silent client. Socket
		// deadlines may be set from any goroutine.
		s.withConn(func(c *websocket.Conn) { _ = c.SetReadDeadline(time.Now().Add(closeGrace)) })
	})
}

func (s *Session) closing() bool {
	select {
	case <-s.closeReq:
		return true
	default:
		return false
	}
}

// forceClose makes every pending and future read and write on the socket
// fail at once, which ends the session; the server then drops the TCP
// connection as the handler returns. Safe from any goroutine.
func (s *Session) forceClose() {
	s.dead.Store(true)
	s.withConn(func(*websocket.Conn) { s.sock.kill() })
}

// withConn runs f on the socket unless the handler has already returned.
func (s *Session) withConn(f func(*websocket.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		f(s.conn)
	}
}

// run is the whole life of the session, on the handler goroutine: it
// reads until the connection ends, then waits for the writer, if one runs.
func (s *Session) run(h Handler) {
	s.conn.SetReadLimit(s.lim.MaxMessageBytes)
	_ = s.conn.SetReadDeadline(s.lim.readDeadline(time.Now()))
	s.conn.SetPongHandler(func(string) error {
		if s.closing() {
			return nil // keep the close grace deadline
		}
		return s.conn.SetReadDeadline(s.lim.readDeadline(time.Now()))
	})
	// The library would answer pings and close frames itself, on the
	// reader goroutine, past writeMu; these keep every write in one line.
	s.conn.SetPingHandler(s.answerPing)
	s.conn.SetCloseHandler(func(code int, _ string) error {
		s.closeWith(code, "", true)
		return nil
	})
	s.ping = time.AfterFunc(s.lim.PingInterval, s.sendPing)

	s.readLoop(h)
	s.closed(h)
	// The reader is done, so nothing more will be answered: no new writes
	// start (a close frame already due is still sent), and the writer, if
	// one runs, is waited for.
	s.Close(0, "")
	s.ping.Stop()
	s.queue.stop()

	// A writeNow from another goroutine may still be writing; once writeMu
	// is ours, none is, and finished keeps any later one from starting.
	s.writeMu.Lock()
	s.finished = true
	s.pending = nil
	s.mu.Lock()
	s.released = true
	s.mu.Unlock()
	s.writeMu.Unlock()
}

// readBufPool holds message buffers between reads, so an idle connection
// holds none and a busy one allocates none.
var readBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledReadBuf keeps buffers grown by rare large messages out of the
// pool, so it does not pin their memory.
const maxPooledReadBuf = 64 << 10

// readLoop reads messages until the connection fails or closes. Protocol
// violations the library detects (1002, 1009) are answered by the library
// itself; invalid UTF-8 is ours to catch.
func (s *Session) readLoop(h Handler) {
	extended := time.Now()
	for {
		kind, r, err := s.conn.NextReader()
		if err != nil {
			s.noteReadError(err)
			return
		}
		buf := readBufPool.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			readBufPool.Put(buf)
			s.noteReadError(err)
			return
		}
		s.handleMessage(h, kind, buf.Bytes())
		if buf.Cap() <= maxPooledReadBuf {
			readBufPool.Put(buf)
		}
		// Any message proves the client alive. Moving the deadline costs a
		// timer update, so it is done at most a few times per interval.
		if now := time.Now(); now.Sub(extended) > s.lim.PingInterval/8 && !s.closing() {
			_ = s.conn.SetReadDeadline(s.lim.readDeadline(now))
			extended = now
		}
	}
}

// handleMessage checks one message and hands it to the handler.
func (s *Session) handleMessage(h Handler, kind int, data []byte) {
	if s.closing() {
		return // draining until the client answers our close frame
	}
	s.obs.MessageIn(len(data))
	if kind == websocket.TextMessage && !utf8.Valid(data) {
		s.Close(CloseInvalidPayload, "invalid UTF-8 in text message")
		return
	}
	if !s.dispatch(h, kind, data) {
		s.Close(CloseInternalError, "internal error")
	}
}

// dispatch calls the handler, turning a panic into a logged error so that
// one bad message cannot take the server down.
func (s *Session) dispatch(h Handler, kind int, data []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("message handler panicked", "session", s.id, "panic", r)
			ok = false
		}
	}()
	h.HandleMessage(kind, data)
	return true
}

// closed tells the handler the session has stopped reading; a panic there
// is logged, and the session still ends cleanly.
func (s *Session) closed(h Handler) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session close handler panicked", "session", s.id, "panic", r)
		}
	}()
	h.Closed()
}

// noteReadError records the close code the library sent on our behalf, if
// any. The library gives protocol errors no type of their own: every read
// error it makes up itself starts with "websocket: ".
func (s *Session) noteReadError(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		// The client closed; the library echoed its close frame.
	case errors.Is(err, websocket.ErrReadLimit):
		s.obs.CloseSent(CloseMessageTooBig)
	case isNetworkError(err):
		// Gone, timed out, or dropped: nobody to send a close frame to.
	case strings.HasPrefix(err.Error(), "websocket: "):
		s.obs.CloseSent(CloseProtocolError)
	}
	s.log.Debug("session read ended", "session", s.id, "err", err)
}

func isNetworkError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// writeLoop is the writer goroutine. It is started when something is
// queued while no writer runs, and it exits once it has written everything
// (or the close frame), so an idle session has none.
func (s *Session) writeLoop() {
	defer s.queue.writers.Done()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session writer panicked", "session", s.id, "panic", r)
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
	w := s.queue.take(spare)
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	b := append((*buf)[:0], s.pending...)
	s.pending = nil
	if w.pongDue {
		b = appendFrame(b, websocket.PongMessage, w.pong)
	}
	if w.ping {
		b = appendFrame(b, websocket.PingMessage, nil)
	}
	for i := 0; i < len(w.items); {
		n := 1
		if s.lim.MaxBatch > 1 && w.items[i].kind == websocket.TextMessage {
			for n < s.lim.MaxBatch && i+n < len(w.items) && w.items[i+n].kind == websocket.TextMessage {
				n++
			}
		}
		if n == 1 {
			b = appendFrame(b, w.items[i].kind, w.items[i].data)
		} else {
			b = appendJoinedTextFrame(b, w.items[i:i+n])
		}
		i += n
	}
	closing := s.closeDue()
	if closing {
		b = appendFrame(b, websocket.CloseMessage, websocket.FormatCloseMessage(s.closeCode, s.closeReason))
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
	w.items, w.ping, w.pongDue = w.items[:0], false, false
	if closing {
		s.closeSent = true
		if !s.closeEcho {
			s.obs.CloseSent(s.closeCode)
		}
	}
	return w, nil
}

// failWrite ends a session whose socket can no longer be written to: the
// reader is woken by killing the socket.
func (s *Session) failWrite(err error) {
	s.log.Debug("session write failed", "session", s.id, "err", err)
	s.forceClose()
}
