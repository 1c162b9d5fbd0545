package protocol

import (
	"encoding/json"
	"strconv"
)

// EncodePublication encodes the push for one publication:
// {"channel":"chat:lobby","offset":42,"data":{...},"info":{...}}.
// pub.Data must be compact valid JSON (as DecodeCommand and the hub
// guarantee); the result has no raw newline.
func EncodePublication(channel string, pub Publication) []byte {
	ch, _ := marshal(channel)
	b := make([]byte, 0, len(ch)+len(pub.Data)+96)
	b = append(b, `{"channel":`...)
	b = append(b, ch...)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, pub.Offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, pub.Data...)
	if pub.Info != nil {
		info, _ := marshal(pub.Info)
		b = append(b, `,"info":`...)
		b = append(b, info...)
	}
	if pub.Priority {
		b = append(b, `,"priority":true`...)
	}
	return append(b, '}')
}

// EncodeJoin encodes {"channel":"...","join":{client info}}.
func EncodeJoin(channel string, info ClientInfo) []byte { return encodeEvent(channel, "join", info) }

// EncodeLeave encodes {"channel":"...","leave":{client info}}.
func EncodeLeave(channel string, info ClientInfo) []byte { return encodeEvent(channel, "leave", info) }

func encodeEvent(channel, kind string, info ClientInfo) []byte {
	ch, _ := marshal(channel)
	in, _ := marshal(info)
	b := make([]byte, 0, len(ch)+len(in)+24)
	b = append(b, `{"channel":`...)
	b = append(b, ch...)
	b = append(b, `,"`...)
	b = append(b, kind...)
	b = append(b, `":`...)
	b = append(b, in...)
	return append(b, '}')
}

// EncodePresenceCount encodes {"channel":"...","presence_count":n}: the
// channel's member count, sent once per tick in which it changed (or
// someone joined) instead of join and leave events while the channel has
// more members than its namespace's JoinLeaveMaxMembers.
func EncodePresenceCount(channel string, n int) []byte {
	ch, _ := marshal(channel)
	b := make([]byte, 0, len(ch)+40)
	b = append(b, `{"channel":`...)
	b = append(b, ch...)
	b = append(b, `,"presence_count":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '}')
}

// EncodeMissed encodes {"missed":n}: the connection's send queue was full
// and n publications of drop-oldest namespaces (of any channel) were
// dropped since the last such notice; it comes ahead of everything queued
// after them, and the notices add up to every publication dropped.
// Offsets in later publications show which channels have gaps.
func EncodeMissed(n int) []byte {
	b := make([]byte, 0, 24)
	b = append(b, `{"missed":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '}')
}

// ServerMessage is any one message the server sends, decoded loosely: a
// reply (ID set, with Result or Error), a publication (Channel and Data),
// a join or leave (Channel and Join or Leave), or a missed notice. Go
// clients, the load tool and tests use it.
type ServerMessage struct {
	ID      uint64          `json:"id,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Offset  uint64          `json:"offset,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Info    *ClientInfo     `json:"info,omitempty"`
	Join    *ClientInfo     `json:"join,omitempty"`
	Leave   *ClientInfo     `json:"leave,omitempty"`
	// PresenceCount is set in a presence_count event: the channel's
	// member count, sent instead of join/leave above the namespace's
	// JoinLeaveMaxMembers (it is always at least 1).
	PresenceCount int `json:"presence_count,omitempty"`
	Missed        int `json:"missed,omitempty"`
	// Unsubscribed is set when the server ended the subscription to
	// Channel (EncodeUnsubscribed).
	Unsubscribed *Unsubscribed `json:"unsubscribed,omitempty"`
	// Priority is set on a priority publication.
	Priority bool `json:"priority,omitempty"`
	// Tick is set in a flow-controlled channel's tick frame.
	Tick *Tick `json:"tick,omitempty"`
}

// DecodeServerMessage decodes one line sent by the server.
func DecodeServerMessage(line []byte) (ServerMessage, error) {
	var m ServerMessage
	err := json.Unmarshal(line, &m)
	return m, err
}
