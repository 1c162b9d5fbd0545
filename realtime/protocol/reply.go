package protocol

import "strconv"

// ConnectResult answers connect: who the server thinks the client is.
type ConnectResult struct {
	Client string `json:"client"`
	User   string `json:"user,omitempty"`
	Name   string `json:"name,omitempty"`
}

// SubscribeResult answers subscribe with the channel's current position.
// Recovered is set only when the command asked to recover; Publications
// then holds every missed publication in offset order (none when
// Recovered is false: the client must reload).
type SubscribeResult struct {
	Offset       uint64        `json:"offset"`
	Epoch        string        `json:"epoch"`
	Recovered    *bool         `json:"recovered,omitempty"`
	Publications []Publication `json:"publications,omitempty"`
}

// PublishResult answers publish with the new publication's position.
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// PresenceResult answers presence. Clients (client id → info) is omitted
// in namespaces that keep only a count.
type PresenceResult struct {
	Count   int                   `json:"count"`
	Clients map[string]ClientInfo `json:"clients,omitempty"`
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
// is returned instead.
func EncodeResult(id uint64, result any) []byte {
	body, err := marshal(result)
	if err != nil {
		return EncodeError(id, Errorf(CodeInternal, "encoding result failed"))
	}
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
