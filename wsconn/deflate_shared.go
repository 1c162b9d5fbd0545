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
	kind    MessageType
	data    []byte
	id      uint64 // 0: no message follows this one
	afterID uint64 // the message this one follows; 0: none
	prev    []byte // that message's data, until after is made

	alone, after lazyDeflate
}

// lazyDeflate is one compressed form of a SharedMessage.
type lazyDeflate struct {
	once sync.Once
	b    []byte
}

// NewSharedMessage wraps data (not to be modified afterwards) of kind.
// id, if not 0, identifies the message among all those of the process,
// for the one that may follow it; afterID and prev name the message this
// one follows (0 and nil for none): what its sessions were sent before
// it, to the same channel.
func NewSharedMessage(kind MessageType, data []byte, id, afterID uint64, prev []byte) *SharedMessage {
	return &SharedMessage{kind: kind, data: data, id: id, afterID: afterID, prev: prev}
}

// Data is the message as it is sent plain.
func (m *SharedMessage) Data() []byte { return m.data }

// compressedAlone is m compressed on its own.
func (m *SharedMessage) compressedAlone() []byte {
	m.alone.once.Do(func() { m.alone.b = DeflateMessage(m.data) })
	return m.alone.b
}

// compressedAfter is m compressed against the message it follows.
func (m *SharedMessage) compressedAfter() []byte {
	m.after.once.Do(func() {
		m.after.b = deflateAfter(m.data, m.prev)
		m.prev = nil // needed no more; let it be collected
	})
	return m.after.b
}

// deflatedPayload is what the compressed message about to be written next
// goes out as: shared's form that this session can take (payload is its
// alone form, or nil if not made yet), or payload itself for a message of
// this session alone (shared nil). It records the message as the last
// compressed one the client got. The caller holds writeMu and writes the
// frame next.
func (s *Session) deflatedPayload(payload []byte, shared *SharedMessage) []byte {
	if shared == nil {
		s.lastDeflated = 0 // the client's window now ends with something no message follows
		return payload
	}
	last := s.lastDeflated
	s.lastDeflated = shared.id
	switch {
	case s.lim.DeflateContext && shared.afterID != 0 && shared.afterID == last:
		return shared.compressedAfter()
	case payload != nil:
		return payload
	}
	return shared.compressedAlone()
}
