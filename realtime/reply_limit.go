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
	return fitCount(len(pubs), func(i int) Publication { return pubs[i] }, epoch, maxBytes)
}

// fitNewestPublications is how many of pubs, newest first, fit in such a
// reply: a subscribe with latest keeps the newest, which a ticker shows.
// Like fitPublications it is at least one when pubs is not empty, and a
// pure function.
func fitNewestPublications(pubs []Publication, epoch string, maxBytes int) int {
	return fitCount(len(pubs), func(i int) Publication { return pubs[len(pubs)-1-i] }, epoch, maxBytes)
}

// fitCount is how many of the n publications at(0), at(1), … fit in a
// reply of at most maxBytes, and at least one when n > 0.
func fitCount(n int, at func(int) Publication, epoch string, maxBytes int) int {
	budget := maxBytes - replyOverhead - len(epoch)
	for i := range n {
		budget -= protocol.PublicationSize(at(i)) + 1 // the comma
		if budget < 0 {
			return max(i, 1)
		}
	}
	return n
}
