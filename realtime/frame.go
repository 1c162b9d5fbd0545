package realtime

import "sync"

// SharedFrame is one encoded frame on its way to subscribers: a
// publication's is made once per fan-out and handed to every subscriber
// of the channel, so that what a transport derives from the bytes, such
// as wsconn's permessage-deflate payload, is derived once for all of them
// rather than once per connection. The realtime package only carries it;
// it knows nothing of compression, which stays the transport's business.
//
// A channel's publication may also name the publication fanned out before
// it to the same channel (Follows): a transport that can encode a frame
// against the one its client got last (permessage-deflate's context
// takeover) does so for the clients whose last frame that was.
//
// Concurrency: Data and the identities are never modified; Prepared is
// safe for concurrent use.
type SharedFrame struct {
	// Data is the frame as the protocol encodes it.
	Data []byte

	id       uint64 // 0: not a channel's publication, never followed
	after    uint64 // the id of the frame this one follows; 0: none
	prevData []byte // that frame's Data

	once     sync.Once
	prepared any
}

// NewSharedFrame wraps data, which must not be modified afterwards. The
// frame follows nothing and nothing will follow it.
func NewSharedFrame(data []byte) *SharedFrame { return &SharedFrame{Data: data} }

// ID identifies a channel's publication among every frame of the
// process; it is 0 for a frame that nothing follows (a reply, a join).
func (f *SharedFrame) ID() uint64 { return f.id }

// Follows names the frame fanned out to the same channel just before this
// one, by its ID and Data, or returns 0 and nil. Some subscribers may not
// have got it (they subscribed since, or their transport dropped it), so
// a transport checks the ID against the last frame it sent before it
// encodes against the data.
func (f *SharedFrame) Follows() (id uint64, data []byte) { return f.after, f.prevData }

// Prepared returns prepare(f), calling prepare only once for the frame,
// on behalf of the first subscriber that asks (one asking meanwhile waits
// for it, the time of one call); every later call returns the same value,
// which must not be modified. A frame has one prepared form, so every
// caller must pass the same prepare.
func (f *SharedFrame) Prepared(prepare func(*SharedFrame) any) any {
	f.once.Do(func() { f.prepared = prepare(f) })
	return f.prepared
}
