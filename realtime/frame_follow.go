package realtime

import "sync/atomic"

// A channel's publication names the one fanned out before it
// (SharedFrame.Follows), so that a transport can encode it against the
// one its client got last: permessage-deflate compresses it against the
// previous publication, about half the bytes on chat-like JSON
// (docs/benchmarks.md). The hub keeps, per large channel, the identity and
// the data of its last publication; the transport checks what each client
// got before it uses them.

// followMinSubscribers is the fewest subscribers for which a channel keeps
// its last publication for the next one to follow. What is kept is that
// publication's frame (its size, per channel), which pays off when many
// subscribers share the saving; a channel of a few, such as one per user,
// keeps nothing, so a hundred thousand of them hold no memory for it.
const followMinSubscribers = 8

// frameIDs numbers the frames that others may follow, process-wide, so
// that an id names one frame whatever the channel or hub (tests run
// several hubs). Zero is never used.
var frameIDs atomic.Uint64

// followed is what a channel keeps of its last publication: only what the
// next one needs, not the frame with what transports prepared of it.
type followed struct {
	id   uint64
	data []byte
}

// nextFrame wraps a publication's encoded frame (one for the whole
// fan-out), as the one that follows the channel's last publication when
// the channel is large enough to keep it. Publications of a channel come
// one at a time; if two ever raced, each would still name the frame it
// swapped out, and transports check what a client got before they use it.
func (hc *hubChannel) nextFrame(encoded []byte) *SharedFrame {
	if hc.count.Load() < followMinSubscribers {
		if hc.last.Load() != nil {
			hc.last.Store(nil)
		}
		return NewSharedFrame(encoded)
	}
	f := &SharedFrame{Data: encoded, id: frameIDs.Add(1)}
	if prev := hc.last.Swap(&followed{id: f.id, data: encoded}); prev != nil {
		f.after, f.prevData = prev.id, prev.data
	}
	return f
}
