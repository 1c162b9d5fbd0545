package wsconn

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
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
// Concurrency: Send, Reply, Close and ID may be called from any goroutine.
// Data writes are serialized by writeMu: the writer goroutine holds it for
// each flush of the queue, and Reply holds it for an inline write when the
// queue is empty. The session's reader and writer have ended, and writeMu
// has been taken one last time, before the handler returns, so no write can
// outlive the connection and land on a reused one.
type Session struct {
	id   uint64
	conn *websocket.Conn
	lim  Limits
	obs  Observer
	log  *slog.Logger

	queue *sendQueue
	// writeMu is held for every data write and for the close frame, so
	// there is one writer at a time and nothing queued is overtaken.
	writeMu sync.Mutex

	closeOnce   sync.Once
	closeReq    chan struct{} // closed once a close frame is due
	closeCode   int           // written once before closeReq is closed
	closeReason string

	// released is set when the handler is about to return; after that the
	// pooled conn may belong to another client and must not be touched.
	mu       sync.Mutex
	released bool
}

func newSession(id uint64, conn *websocket.Conn, lim Limits, obs Observer, log *slog.Logger) *Session {
	return &Session{
		id:       id,
		conn:     conn,
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

// Send queues one data message (websocket.TextMessage or BinaryMessage)
// for the writer and returns at once. data must not be modified afterwards.
// If the queue is over its byte cap, the slow-consumer policy applies: the
// session is closed with 1013 and ErrSlowConsumer is returned.
func (s *Session) Send(kind int, data []byte) error {
	if s.closing() {
		return ErrClosed
	}
	if !s.queue.push(outMessage{kind: kind, data: data}) {
		s.Close(CloseTryAgainLater, "slow consumer: send queue full")
		return ErrSlowConsumer
	}
	return nil
}

// SendDropOldest queues one data message like Send, but when the queue is
// full it drops the oldest queued messages to make room instead of closing
// the session, and reports how many it dropped. It fails with
// ErrSlowConsumer only if data alone is larger than the queue's cap.
func (s *Session) SendDropOldest(kind int, data []byte) (dropped int, err error) {
	if s.closing() {
		return 0, ErrClosed
	}
	dropped, ok := s.queue.pushDropOldest(outMessage{kind: kind, data: data})
	if !ok {
		return 0, ErrSlowConsumer
	}
	return dropped, nil
}

// Reply sends one data message, typically the handler's answer to the
// message it is handling. When nothing is queued and no write is under way
// it writes at once, on the caller's goroutine: one goroutine switch fewer
// per reply, and no copy. Otherwise it queues a copy, as Send would, so
// the order of everything sent is kept either way. data is not kept.
func (s *Session) Reply(kind int, data []byte) error {
	if s.writeMu.TryLock() {
		if !s.closing() && s.queue.empty() {
			err := s.writeFrame([]outMessage{{kind: kind, data: data}})
			s.writeMu.Unlock()
			if err != nil {
				s.failWrite(err)
				return ErrClosed
			}
			return nil
		}
		s.writeMu.Unlock()
	}
	return s.Send(kind, bytes.Clone(data))
}

// Close asks the writer to flush what is queued, then send a close frame
// with code and reason, and the reader to wait briefly for the client's
// answer. Only the first call has any effect. It does not block.
func (s *Session) Close(code int, reason string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeReason = code, reason
		close(s.closeReq)
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
// connection as the handler returns. It does not close the socket itself:
// a hijacked fasthttp connection ignores Close. Safe from any goroutine.
func (s *Session) forceClose() {
	s.withConn(func(c *websocket.Conn) {
		past := time.Unix(1, 0)
		_ = c.NetConn().SetReadDeadline(past)
		_ = c.NetConn().SetWriteDeadline(past)
	})
}

// withConn runs f on the socket unless the handler has already returned.
func (s *Session) withConn(f func(*websocket.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		f(s.conn)
	}
}

// run is the whole life of the session, on the handler goroutine: it starts
// the writer, reads until the connection ends, and joins the writer.
func (s *Session) run(h Handler) {
	s.conn.SetReadLimit(s.lim.MaxMessageBytes)
	_ = s.conn.SetReadDeadline(s.lim.readDeadline(time.Now()))
	s.conn.SetPongHandler(func(string) error {
		if s.closing() {
			return nil // keep the close grace deadline
		}
		return s.conn.SetReadDeadline(s.lim.readDeadline(time.Now()))
	})

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()

	s.readLoop(h)
	s.closed(h)
	// The reader is done, so nothing more will be answered; let the writer
	// finish (it sends the close frame if one is due) and wait for it.
	s.Close(0, "")
	<-writerDone

	// A Reply from another goroutine may still be writing; once writeMu is
	// ours, none is, and closing() keeps any later one from starting.
	s.writeMu.Lock()
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

// writeLoop is the only goroutine that writes data to the socket. It
// drains the queue, pings on an interval, and on a close request flushes
// what is queued before it sends the close frame.
func (s *Session) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session writer panicked", "session", s.id, "panic", r)
			s.forceClose()
		}
	}()
	ping := time.NewTicker(s.lim.PingInterval)
	defer ping.Stop()
	var batch []outMessage
	for {
		select {
		case <-s.queue.wake:
			var err error
			s.writeMu.Lock()
			batch, err = s.flush(batch)
			s.writeMu.Unlock()
			if err != nil {
				s.failWrite(err)
				return
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.lim.WriteTimeout)); err != nil {
				s.failWrite(err)
				return
			}
		case <-s.closeReq:
			if s.closeCode == 0 {
				return // the reader ended; the connection is already gone
			}
			s.writeMu.Lock()
			defer s.writeMu.Unlock()
			if _, err := s.flush(batch); err != nil {
				s.failWrite(err)
				return
			}
			msg := websocket.FormatCloseMessage(s.closeCode, s.closeReason)
			if err := s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(s.lim.WriteTimeout)); err == nil {
				s.obs.CloseSent(s.closeCode)
			}
			return
		}
	}
}

// flush writes every queued message, each frame with its own deadline.
// Runs of text messages are joined into one frame when MaxBatch allows.
// The caller holds writeMu.
func (s *Session) flush(spare []outMessage) ([]outMessage, error) {
	batch := s.queue.takeAll(spare)
	for i := 0; i < len(batch); {
		n := 1
		if s.lim.MaxBatch > 1 && batch[i].kind == websocket.TextMessage {
			for n < s.lim.MaxBatch && i+n < len(batch) && batch[i+n].kind == websocket.TextMessage {
				n++
			}
		}
		if err := s.writeFrame(batch[i : i+n]); err != nil {
			return batch, err
		}
		clear(batch[i : i+n]) // let the payloads be collected
		i += n
	}
	return batch, nil
}

var newline = []byte{'\n'}

// writeFrame sends msgs as one frame: the message itself, or text messages
// joined by newlines. The caller holds writeMu.
func (s *Session) writeFrame(msgs []outMessage) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.lim.WriteTimeout))
	if len(msgs) == 1 {
		if err := s.conn.WriteMessage(msgs[0].kind, msgs[0].data); err != nil {
			return err
		}
		s.obs.MessageOut(len(msgs[0].data))
		return nil
	}
	w, err := s.conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for j, m := range msgs {
		if j > 0 {
			_, _ = w.Write(newline)
		}
		if _, err := w.Write(m.data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	for _, m := range msgs {
		s.obs.MessageOut(len(m.data))
	}
	return nil
}

// failWrite ends a session whose socket can no longer be written to: the
// reader is woken by closing the socket.
func (s *Session) failWrite(err error) {
	s.log.Debug("session write failed", "session", s.id, "err", err)
	s.forceClose()
}
