package wsconn

import "time"

// Limits bounds what one connection may cost the server. Serve takes it
// by pointer, and the sessions given the same one share it, so it must
// not change once a session has it.
type Limits struct {
	// MaxMessageBytes is the largest inbound message; a larger one closes
	// the connection with 1009 (the library sends it).
	MaxMessageBytes int64
	// PingInterval is how often the writer pings the client.
	PingInterval time.Duration
	// PongTimeout is how long past a ping interval the session waits for
	// any sign of life (any bytes: a pong, a message) before it drops the
	// connection; a silent client is dropped within two ping intervals plus
	// this.
	PongTimeout time.Duration
	// WriteTimeout is how long the client may take to accept each write,
	// of at most writeChunk bytes: it bounds a lack of progress, so a
	// client that keeps reading, however slowly, is not dropped for the
	// size of its backlog.
	WriteTimeout time.Duration
	// SendQueueBytes caps the bytes waiting in one session's send queue.
	SendQueueBytes int
	// MissedNotice, if set, encodes the text message that tells the client
	// n of its droppable messages (SendDropOldest) were dropped; the writer
	// sends it ahead of the next message. Nil tells the client nothing.
	MissedNotice func(n int) []byte
	// MaxBatch is how many queued text messages the writer may join, with
	// newlines, into one frame: one write for many messages. 0 or 1 sends
	// each message as its own frame, which echo needs; a protocol whose
	// messages never contain a raw newline (JSON lines) can batch.
	MaxBatch int
	// Deflate says the client negotiated permessage-deflate (RFC 7692)
	// without context takeover of its own: RSV1 marks its compressed
	// messages, which are inflated within MaxMessageBytes, and the
	// session compresses data messages of DeflateMinBytes or more. The
	// handler sets it per connection, from the upgrade's negotiation.
	Deflate bool
	// DeflateContext says the negotiation left the server its context
	// (no server_no_context_takeover): the client inflates each message
	// with the window of the compressed ones before it, so a
	// SharedMessage may go out compressed against the one it follows.
	// Only with Deflate.
	DeflateContext bool
	// DeflateMinBytes is the smallest data message sent compressed where
	// Deflate is set; smaller ones go plain, since deflate barely shrinks
	// them and costs the CPU all the same.
	DeflateMinBytes int
}

// closeGrace is how long the server waits for the client's answer to its
// close frame before it drops the TCP connection. Short, because a client
// that ignores a close frame gets nothing by being waited for.
const closeGrace = 2 * time.Second
