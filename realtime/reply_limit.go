package realtime

import "github.com/duplex/duplex/realtime/protocol"

// replyOverhead bounds what a history or subscribe reply holds besides
// its publications and epoch: the id, the result's keys, offset and flags
// (two 20-digit numbers and some 80 bytes of keys and punctuation).
const replyOverhead = 160

// fitPublications is how many of pubs, oldest first, fit in a reply of
// at most maxBytes whose epoch is epoch. It is at least one when pubs is
// not empty, so that paging always moves on (one publication is far
// smaller than any sensible bound: client data is capped at 16 KiB, API
// bodies at 64 KiB). It is a pure function.
func fitPublications(pubs []Publication, epoch string, maxBytes int) int {
	budget := maxBytes - replyOverhead - len(epoch)
	for i, p := range pubs {
		budget -= protocol.PublicationSize(p) + 1 // the comma
		if budget < 0 {
			return max(i, 1)
		}
	}
	return len(pubs)
}
