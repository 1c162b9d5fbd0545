package protocol

import (
	"encoding/json"
	"strconv"
)

// ConnectResult answers connect: who the server thinks the client is.
// ExpiresIn, for a connection signed in with a token, is how many
// seconds are left until the server closes it with CloseTokenExpired
// unless a refresh comes first (at least 1; absent without a token).
type ConnectResult struct {
	Client    string `json:"client"`
	User      string `json:"user,omitempty"`
	Name      string `json:"name,omitempty"`
	ExpiresIn int64  `json:"expires_in,omitempty"`
}

// SubscribeResult answers subscribe with the channel's current position.
// Recovered is set only when the command asked to recover; Publications
// then holds every missed publication in offset order (none when
// Recovered is false: the client must reload). When the command asked
// for latest, Publications (then always present, possibly empty) holds
// the newest kept publications up to the position, oldest first: the
// recovered ones when Recovered is true, else the latest ones.
// Publications is omitted when nil, and encoded as [] when empty.
type SubscribeResult struct {
	Offset       uint64        `json:"offset"`
	Epoch        string        `json:"epoch"`
	Recovered    *bool         `json:"recovered,omitempty"`
	Publications []Publication `json:"publications,omitzero"`
}

// PublishResult answers publish with the new publication's position.
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// PresenceResult answers presence. Clients (client id → info) is omitted
// in namespaces that keep only a count, and when the channel is empty.
// Count is always the whole channel's. More is set when the member list
// did not fit in one reply: Clients holds the members whose ids sort
// first (after the request's after), and Next is the after to send for
// the following page.
type PresenceResult struct {
	Count   int                   `json:"count"`
	Clients map[string]ClientInfo `json:"clients,omitempty"`
	More    bool                  `json:"more,omitempty"`
	Next    string                `json:"next,omitempty"`
}

// EncodePresenceEntry encodes one member as it appears in a presence
// result's clients object: "client id":{info}. Pages of a member list are
// assembled from these with EncodePresencePage, so a list can be encoded
// once and paged many times.
func EncodePresenceEntry(info ClientInfo) []byte {
	key, _ := marshal(info.Client) // strings only: cannot fail
	val, _ := marshal(info)
	b := make([]byte, 0, len(key)+1+len(val))
	b = append(b, key...)
	b = append(b, ':')
	return append(b, val...)
}

// EncodePresencePage encodes a PresenceResult (the result object only,
// for EncodeResultJSON) from count and encoded entries (of
// EncodePresenceEntry, in client id order); next, when not empty, sets
// more and next.
func EncodePresencePage(count int, entries [][]byte, next string) []byte {
	n := 48 + len(next)
	for _, e := range entries {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	if len(entries) > 0 {
		b = append(b, `,"clients":{`...)
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, e...)
		}
		b = append(b, '}')
	}
	if next != "" {
		nx, _ := marshal(next)
		b = append(b, `,"more":true,"next":`...)
		b = append(b, nx...)
	}
	return append(b, '}')
}

// HistoryResult answers history: publications in offset order and the
// channel's current position. More is set when the selection did not fit
// in one reply: Publications holds its oldest part, and the client asks
// again with since set to the last one's offset for the rest.
type HistoryResult struct {
	Publications []Publication `json:"publications"`
	Offset       uint64        `json:"offset"`
	Epoch        string        `json:"epoch"`
	More         bool          `json:"more,omitempty"`
}

// PublicationSize is the length of p as the reply encoders write it
// inside a list ({"offset":N,"data":…,"info":{…}}), without the comma.
// p.Data must be compact JSON, as the hub keeps it (it is then copied
// verbatim). Size-bounded replies use it to decide what fits.
func PublicationSize(p Publication) int {
	n := len(`{"offset":,"data":}`) + len(strconv.AppendUint(nil, p.Offset, 10)) + len(p.Data)
	if p.Info != nil {
		info, _ := marshal(p.Info) // strings only: cannot fail
		n += len(`,"info":`) + len(info)
	}
	return n
}

// Empty is the result of ops that return nothing (ping, unsubscribe).
type Empty struct{}

// EncodeResult encodes {"id":id,"result":result}. result must marshal
// (all result types above do); if it does not, an internal error reply
// is returned instead. A json.RawMessage result is taken as already
// encoded and copied verbatim, like EncodeResultJSON.
func EncodeResult(id uint64, result any) []byte {
	if raw, ok := result.(json.RawMessage); ok {
		return EncodeResultJSON(id, raw)
	}
	body, err := marshal(result)
	if err != nil {
		return EncodeError(id, Errorf(CodeInternal, "encoding result failed"))
	}
	return EncodeResultJSON(id, body)
}

// EncodeResultJSON encodes {"id":id,"result":body} for a result already
// encoded: body must be one compact JSON value (it is copied verbatim).
func EncodeResultJSON(id uint64, body []byte) []byte {
	b := make([]byte, 0, len(body)+32)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"result":`...)
	b = append(b, body...)
	return append(b, '}')
}

// EncodeError encodes {"id":id,"error":{...}}, or {"error":{...}} when id
// is 0 (the command's id could not be read).
func EncodeError(id uint64, e *Error) []byte {
	body, _ := marshal(e) // two strings: cannot fail
	b := make([]byte, 0, len(body)+32)
	b = append(b, '{')
	if id != 0 {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, ',')
	}
	b = append(b, `"error":`...)
	b = append(b, body...)
	return append(b, '}')
}
