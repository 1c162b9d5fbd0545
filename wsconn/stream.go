package wsconn

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stream is one connection that carries messages to the client only, over
// a transport other than a WebSocket (server-sent events, whose commands
// come by separate requests). It is a member of the registry like a
// Session: it counts against MaxSessions and MaxPerPeer, shares the id
// space, and Shutdown closes it with 1001. Its messages go through the
// same byte-capped send queue with the same slow-consumer policies as a
// session's: Send closes it with 1013 when the queue is full,
// SendDropOldest drops the oldest droppable messages and the writer tells
// the client how many with Limits.MissedNotice.
//
// The writer is the goroutine that runs Serve: it owns the transport's
// encoding (StreamWriter) and it is the stream's only goroutine.
//
// Concurrency: Send, SendDropOldest, Close, Backlogged and ID may be
// called from any goroutine; Serve is called once.
type Stream struct {
	id    uint64
	peer  string
	lim   Limits
	queue sendQueue
	reg   *Registry

	// wake has room for one signal: the queue claimed a writer (the first
	// message after the writer last went idle). Each signal is answered
	// by one drain that ends with the writer released, so the queue's
	// count of writers stays balanced.
	wake chan struct{}

	closeOnce   sync.Once
	closingNow  atomic.Bool
	closeCode   CloseCode // written once before closingNow is set and closeReq closed
	closeReason string
	closeReq    chan struct{} // closed by Close
	killOnce    sync.Once
	killReq     chan struct{}                // closed by kill: stop without writing anything more
	writer      atomic.Pointer[StreamWriter] // Serve's, for kill to abort a blocked write
	ended       atomic.Bool
}

// StreamWriter is one transport's encoding of what a Stream sends. Serve
// calls its methods from its own goroutine only, one at a time; Abort is
// the exception: it may be called from any goroutine while a write
// blocks, and must make that write fail soon.
type StreamWriter interface {
	// Message writes one queued message (as Send was given it).
	Message(data []byte) error
	// Heartbeat writes what keeps an idle stream alive through proxies.
	Heartbeat() error
	// Close writes the final notice with the close code and reason.
	Close(code CloseCode, reason string) error
	// Flush pushes what was written to the client; it is called after
	// each batch, and bounds how long the client may take to accept it
	// (Limits.WriteTimeout).
	Flush() error
	// Abort makes a blocked or later write fail: the client is dropped.
	Abort()
}

// OpenStream registers a new stream from peer (counted against
// MaxPerPeer like a session's peer) or reports why it may not open. The
// caller must then call Serve, which unregisters it when it returns.
func (r *Registry) OpenStream(peer string, lim Limits) (*Stream, Admission) {
	s := &Stream{
		id: r.nextID.Add(1), peer: peer, lim: lim, reg: r,
		wake: make(chan struct{}, 1), closeReq: make(chan struct{}), killReq: make(chan struct{}),
	}
	s.queue.maxBytes = lim.SendQueueBytes
	if why := r.addStream(s); why != Admitted {
		return nil, why
	}
	return s, Admitted
}

// ID identifies the stream for the life of the process, in the same space
// as session ids: never reused, never one a session has.
func (s *Stream) ID() uint64 { return s.id }

// Send queues one message for the writer, never dropping it: droppable
// messages make room first, and if that is not enough the stream is
// closed with 1013 and ErrSlowConsumer returned. data must not be
// modified afterwards.
func (s *Stream) Send(data []byte) error {
	if s.closingOrEnded() {
		return ErrClosed
	}
	ok, start := s.queue.push(outMessage{kind: opText, data: data})
	s.signal(start)
	if !ok {
		s.Close(CloseTryAgainLater, "slow consumer: send queue full")
		return ErrSlowConsumer
	}
	return nil
}

// SendDropOldest queues one droppable message as Session.SendDropOldest
// does; it never closes the stream for being slow.
func (s *Stream) SendDropOldest(data []byte) (dropped int, err error) {
	if s.closingOrEnded() {
		return 0, ErrClosed
	}
	dropped, start := s.queue.pushDropOldest(outMessage{kind: opText, data: data})
	s.signal(start)
	return dropped, nil
}

// Backlogged reports whether something is queued or being written.
func (s *Stream) Backlogged() bool { return !s.queue.idle() }

// Close asks the writer to write what is queued, then the close notice
// with code and reason, and end the stream. Only the first call has any
// effect; later sends fail with ErrClosed. It does not block.
func (s *Stream) Close(code CloseCode, reason string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeReason = code, reason
		s.closingNow.Store(true)
		close(s.closeReq)
	})
}

// Hangup ends the stream without writing anything more: its client has
// closed the connection, so nothing written could reach it. Safe from any
// goroutine, any number of times.
func (s *Stream) Hangup() { s.kill() }

// kill ends the stream without writing anything more (the shutdown
// deadline passed, or the client hung up). Safe from any goroutine, any
// number of times.
func (s *Stream) kill() {
	s.killOnce.Do(func() { close(s.killReq) })
	if w := s.writer.Load(); w != nil {
		(*w).Abort()
	}
}

func (s *Stream) closingOrEnded() bool { return s.closingNow.Load() || s.ended.Load() }

func (s *Stream) signal(start bool) {
	if start {
		s.wake <- struct{}{} // never blocks: one claim, one signal, one drain
	}
}

// Serve is the stream's writer, on the caller's goroutine: it writes the
// queued messages as they come, a heartbeat every Limits.PingInterval,
// and on Close what is queued and then the close notice. It returns when
// the stream is closed, when a write fails (the client left, or took
// nothing for WriteTimeout), or at the shutdown deadline; the stream is
// then unregistered and sends fail.
func (s *Stream) Serve(w StreamWriter) {
	defer s.end()
	var heartbeat <-chan time.Time
	if s.lim.PingInterval > 0 {
		t := time.NewTicker(s.lim.PingInterval)
		defer t.Stop()
		heartbeat = t.C
	}
	// A blocked write (a client that reads nothing) is failed by the
	// writer's own deadline, or at once when the stream is killed.
	s.writer.Store(&w)
	var spare work
	for {
		var err error
		select {
		case <-s.wake:
			spare, err = s.drain(w, spare)
		case <-heartbeat:
			if err = w.Heartbeat(); err == nil {
				err = w.Flush()
			}
		case <-s.closeReq:
			// Everything sent before Close is queued by now, with its
			// signal pending (or drained already).
			select {
			case <-s.wake:
				if spare, err = s.drain(w, spare); err != nil {
					return
				}
			default:
			}
			if err = w.Close(s.closeCode, s.closeReason); err == nil {
				_ = w.Flush()
			}
			return
		case <-s.killReq:
			return
		}
		if err != nil {
			return
		}
	}
}

// drain writes what is queued until the queue is empty, then releases the
// writer the queue counted when it signalled.
func (s *Stream) drain(w StreamWriter, spare work) (work, error) {
	for {
		cur := s.queue.take(spare)
		if cur.missed > 0 && s.lim.MissedNotice != nil {
			if err := w.Message(s.lim.MissedNotice(cur.missed)); err != nil {
				return cur, err
			}
		}
		for _, m := range cur.items {
			if err := w.Message(m.data); err != nil {
				return cur, err
			}
		}
		if len(cur.items) > 0 || cur.missed > 0 {
			if err := w.Flush(); err != nil {
				return cur, err
			}
		}
		clear(cur.items) // let the payloads be collected
		cur.items, cur.missed = cur.items[:0], 0
		spare = cur
		if s.queue.writerDone(func() bool { return false }) {
			s.queue.writers.Done()
			return spare, nil
		}
	}
}

// end unregisters the stream: no writer may start any more, what is
// queued is dropped, and a writer the queue still counts is released.
func (s *Stream) end() {
	s.ended.Store(true)
	q := &s.queue
	q.mu.Lock()
	q.stopped = true
	counted := q.writing
	clear(q.items)
	q.items, q.bytes, q.dropBytes, q.missed, q.writing = nil, 0, 0, 0, false
	q.update()
	q.mu.Unlock()
	if counted {
		q.writers.Done()
	}
	s.reg.removeStream(s)
}
