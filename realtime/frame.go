package realtime

import "sync"

// SharedFrame is one encoded frame on its way to subscribers: a
// publication's is made once per fan-out and handed to every subscriber
// of the channel, so that what a transport derives from the bytes, such
// as wsconn's permessage-deflate payload, is derived once for all of them
// rather than once per connection. The realtime package only carries it;
// it knows nothing of compression, which stays the transport's business.
//
// Concurrency: Data is never modified; Alternate is safe for concurrent
// use.
type SharedFrame struct {
	// Data is the frame as the protocol encodes it.
	Data []byte

	once sync.Once
	alt  []byte
}

// NewSharedFrame wraps data, which must not be modified afterwards.
func NewSharedFrame(data []byte) *SharedFrame { return &SharedFrame{Data: data} }

// Alternate returns encode(Data), calling encode only once for the frame,
// on behalf of the first subscriber that asks (one asking meanwhile waits
// for it, the time of one encode); every later call returns the same
// bytes, which must not be modified. A frame has one alternate form, so
// every caller must pass the same encode.
func (f *SharedFrame) Alternate(encode func([]byte) []byte) []byte {
	f.once.Do(func() { f.alt = encode(f.Data) })
	return f.alt
}
