package realtime

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/duplex/duplex/realtime/protocol"
)

// presenceList is one channel's member list encoded once: the entries of
// a presence result's clients object in client id order, and the store
// version they were read at. It is immutable once built and shared by
// every reader; only the first-page cache is set later, atomically.
//
// Encoding 1,000 members (cloning the map, sorting, marshalling) for
// every presence call cost seconds of CPU under load; with the list kept
// until the store's version moves, a call costs a version check and one
// copy of the page.
type presenceList struct {
	version uint64
	ids     []string
	entries [][]byte
	first   atomic.Pointer[presenceFirstPage]
}

// presenceFirstPage is the encoded first page for one reply bound (every
// client of a server has the same bound, so one is kept).
type presenceFirstPage struct {
	maxBytes int
	body     []byte
}

func newPresenceList(members []ClientInfo, version uint64) *presenceList {
	l := &presenceList{version: version, ids: make([]string, len(members)), entries: make([][]byte, len(members))}
	for i, m := range members {
		l.ids[i] = m.Client
		l.entries[i] = protocol.EncodePresenceEntry(m)
	}
	return l
}

// presencePageOverhead bounds a presence reply's bytes besides its
// entries and next cursor: the id, count and keys.
const presencePageOverhead = 128

// page encodes the result object of the members after the client id
// after (all when empty) that fit in a reply of maxBytes, with the total
// count, and more/next when some are left. A page holds at least one
// member, so asking for the next always moves on.
func (l *presenceList) page(after string, maxBytes int) []byte {
	if after == "" {
		if f := l.first.Load(); f != nil && f.maxBytes == maxBytes {
			return f.body
		}
	}
	start, found := slices.BinarySearch(l.ids, after)
	if found {
		start++
	}
	end, used := start, presencePageOverhead
	for end < len(l.entries) {
		// Room for this entry and, should the page end here, its id as
		// the next cursor.
		used += len(l.entries[end]) + 1
		if end > start && used+len(l.ids[end])+2 > maxBytes {
			break
		}
		end++
	}
	next := ""
	if end < len(l.ids) {
		next = l.ids[end-1]
	}
	body := protocol.EncodePresencePage(len(l.ids), l.entries[start:end], next)
	if after == "" {
		l.first.Store(&presenceFirstPage{maxBytes: maxBytes, body: body})
	}
	return body
}

// memberList returns channel's encoded member list. A store that reports
// versions (MemoryPresence) has the list cached on the hub's channel
// until its version moves; only channels with local subscribers keep one,
// so presence reads of other channels create nothing. Other stores
// (NATSPresence, whose entries other nodes change) are read every time.
func (h *Hub) memberList(ctx context.Context, channel string) (*presenceList, error) {
	ml, ok := h.presence.(memberLister)
	if !ok {
		m, err := h.presence.Get(ctx, channel)
		if err != nil {
			return nil, h.unavailable("presence", channel, err)
		}
		members := slices.SortedFunc(maps.Values(m), func(a, b ClientInfo) int { return cmp.Compare(a.Client, b.Client) })
		return newPresenceList(members, 0), nil
	}
	hc := h.lookup(channel)
	if hc != nil {
		if l := hc.presence.Load(); l != nil && l.version == ml.version(channel) {
			return l, nil
		}
	}
	// Readers racing here may store lists of different versions; a stale
	// one fails the version check of the next read and is rebuilt.
	l := newPresenceList(ml.members(channel))
	if hc != nil {
		hc.presence.Store(l)
	}
	return l, nil
}

// presencePage is a client's presence result of channel as encoded JSON:
// the count only in count namespaces, else one page of members (see
// presenceList.page). Errors: bad_channel, not_found (presence off),
// unavailable.
func (h *Hub) presencePage(ctx context.Context, channel, after string, maxBytes int) (json.RawMessage, error) {
	_, o, err := h.ns.Lookup(channel)
	if err != nil {
		return nil, err
	}
	if o.Presence != PresenceMembers {
		res, err := h.Presence(ctx, channel) // off or count: small
		if err != nil {
			return nil, err
		}
		return protocol.EncodePresencePage(res.Count, nil, ""), nil
	}
	l, err := h.memberList(ctx, channel)
	if err != nil {
		return nil, err
	}
	return l.page(after, maxBytes), nil
}
