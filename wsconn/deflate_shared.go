package wsconn

import "sync"

// SharedMessage is one data message on its way to many sessions, such as
// a channel's publication fanned out to its subscribers: sessions that
// negotiated deflate share its compressed forms, each made at most once
// for all of them. There are two:
//   - alone: compressed on its own, which every such session can take;
//   - after: compressed against the message it follows (the channel's
//     previous publication), which only a session with
//     Limits.DeflateContext whose last compressed message was exactly that
//     one can take, since its client's inflater window then ends with it
//     (RFC 7692 section 7.2.3.2). On chat-like JSON it is about half the
//     size of the other (docs/benchmarks.md).
//
// Which one a session sends is decided by its writer when the frame is
// written, in the order of the socket: a message queued behind others, or
// dropped from a queue, never confuses what the client has.
//
// Concurrency: immutable but for its compressed forms, made once each;
// safe for concurrent use.
type SharedMessage struct {
	kind  MessageType
	data  []byte
	prev  []byte // the data of the message this one follows, until after is made
	forms *deflateForms
}

// deflateForms are a SharedMessage's compressed forms and identities, in
// an object of their own: a queued message keeps only these, compressed
// bytes, and not the plain ones.
type deflateForms struct {
	id      uint64 // 0: no message follows this one
	afterID uint64 // the message this one follows; 0: none

	alone, after lazyDeflate
}

// lazyDeflate is one compressed form, made once.
type lazyDeflate struct {
	once sync.Once
	b    []byte
}

// NewSharedMessage wraps data (not to be modified afterwards) of kind.
// id, if not 0, identifies the message among all those of the process,
// for the one that may follow it; afterID and prev name the message this
// one follows (0 and nil for none): what its sessions were sent before
// it, to the same channel. Safe from any goroutine; the message is then
// safe for concurrent use.
func NewSharedMessage(kind MessageType, data []byte, id, afterID uint64, prev []byte) *SharedMessage {
	return &SharedMessage{kind: kind, data: data, prev: prev, forms: &deflateForms{id: id, afterID: afterID}}
}

// Data is the message as it is sent plain. Safe from any goroutine.
func (m *SharedMessage) Data() []byte { return m.data }

// compressedAlone is m compressed on its own.
func (m *SharedMessage) compressedAlone() []byte {
	f := m.forms
	f.alone.once.Do(func() { f.alone.b = DeflateMessage(m.data) })
	return f.alone.b
}

// compressedAfter is m compressed against the message it follows.
func (m *SharedMessage) compressedAfter() []byte {
	f := m.forms
	f.after.once.Do(func() {
		f.after.b = deflateAfter(m.data, m.prev)
		m.prev = nil // needed no more; let it be collected
	})
	return f.after.b
}

// queuedForm is what the queue holds of m for this session, whose opcode
// (with RSV1) is op: its alone form, and its forms if the writer may yet
// send the other one or must record m as the client's last compressed
// message. The other form is made now, since the writer will have only
// the forms. A session that cannot follow messages keeps the alone bytes
// alone.
func (s *Session) queuedForm(op int, m *SharedMessage) outMessage {
	out := outMessage{kind: int32(op), data: m.compressedAlone()}
	if f := m.forms; s.lim.DeflateContext && (f.id != 0 || f.afterID != 0) {
		out.forms = f
		if f.afterID != 0 {
			m.compressedAfter()
		}
	}
	return out
}

// deflatedPayload is what the compressed message about to be written next
// goes out as, and records it as the last compressed one the client got.
// payload is its alone form, or nil if not made yet; forms are its shared
// forms, nil for a message of this session alone; shared, if known (an
// unqueued message), makes a form not made yet. The caller holds writeMu
// and writes the frame next.
func (s *Session) deflatedPayload(payload []byte, forms *deflateForms, shared *SharedMessage) []byte {
	if forms == nil {
		s.lastDeflated = 0 // the client's window now ends with something no message follows
		return payload
	}
	last := s.lastDeflated
	s.lastDeflated = forms.id
	switch {
	case s.lim.DeflateContext && forms.afterID != 0 && forms.afterID == last:
		if shared == nil {
			// Queued: queuedForm made it, and the queue's mutex orders
			// that before this read.
			return forms.after.b
		}
		return shared.compressedAfter()
	case payload != nil:
		return payload
	}
	return shared.compressedAlone()
}
